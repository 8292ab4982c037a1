// DNS over TCP at the gateway: DnsTcpResponder and its use by HostEngine,
// fed hand-built segments at literal times. Expected frames are spelled out
// here from the RFCs (only the gateway's initial sequence number is read
// from its SYN-ACK).
#include "core/dns_tcp.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "core/host_engine.h"
#include "test_frames.h"

namespace wownet {
namespace {

using namespace wownet::test;

constexpr UnixTime T0 = 1'700'000'000;
const MacAddr kGwMac{{0x02, 0x77, 0x6e, 0x00, 0x00, 0x01}};
const MacAddr kVmMac{{0x52, 0x54, 0x00, 0x00, 0x00, 0x01}};
const MacAddr kVm2Mac{{0x52, 0x54, 0x00, 0x00, 0x00, 0x02}};
const Ipv4Addr kGw = Ipv4Addr::from_octets(10, 128, 0, 1);
const Ipv4Addr kVm = Ipv4Addr::from_octets(10, 128, 0, 5);
const Ipv4Addr kVm2 = Ipv4Addr::from_octets(10, 128, 0, 6);
constexpr std::uint8_t FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10;
constexpr std::uint16_t kPort = 40000;

class Directory : public NameDirectory {
 public:
  std::optional<Ipv4Addr> find_host_name(std::string_view name) const override {
    if (name == "web") return Ipv4Addr::from_octets(10, 128, 0, 7);
    return std::nullopt;
  }
  bool is_leased(Ipv4Addr) const override { return false; }
  std::string host_name_of(Ipv4Addr) const override { return {}; }
};

// A TCP segment (RFC 793 §3.1) with a correct checksum for src -> dst.
Bytes tcp_segment(Ipv4Addr src, Ipv4Addr dst, std::uint16_t sport, std::uint16_t dport, std::uint32_t seq,
                  std::uint32_t ack, std::uint8_t flags, std::uint16_t window, const Bytes& payload,
                  const Bytes& options = {}) {
  Bytes t;
  put16(t, sport);
  put16(t, dport);
  put32(t, seq);
  put32(t, ack);
  t.push_back(std::uint8_t((20 + options.size()) / 4 << 4));
  t.push_back(flags);
  put16(t, window);
  put16(t, 0);
  put16(t, 0);
  t.insert(t.end(), options.begin(), options.end());
  t.insert(t.end(), payload.begin(), payload.end());
  fill_tcp_checksum(src, dst, t);
  return t;
}

// The frame the gateway sends the VM: IPv4 ID 0, DF, TTL 64.
Bytes from_gateway(std::uint32_t seq, std::uint32_t ack, std::uint8_t flags, std::uint16_t window,
                   const Bytes& payload = {}, const Bytes& options = {}, Ipv4Addr vm = kVm, MacAddr mac = kVmMac,
                   std::uint16_t port = kPort) {
  return ethernet(
      mac, kGwMac, 0x0800,
      ipv4_fragment(kGw, vm, 6, 0, 0x4000, tcp_segment(kGw, vm, 53, port, seq, ack, flags, window, payload, options)));
}

Bytes to_gateway(std::uint32_t seq, std::uint32_t ack, std::uint8_t flags, std::uint16_t window,
                 const Bytes& payload = {}, const Bytes& options = {}, std::uint16_t port = kPort,
                 std::uint16_t dport = 53, Ipv4Addr vm = kVm, MacAddr mac = kVmMac) {
  return ethernet(kGwMac, mac, 0x0800,
                  ipv4(vm, kGw, 6, tcp_segment(vm, kGw, port, dport, seq, ack, flags, window, payload, options)));
}

// A query for <label>.wow A with ID `id`, RD set, no EDNS; and its answer, `addr`.
Bytes query(std::uint16_t id, const std::string& label = "web") {
  Bytes q;
  put16(q, id);
  q.insert(q.end(), {0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, std::uint8_t(label.size())});
  q.insert(q.end(), label.begin(), label.end());
  q.insert(q.end(), {3, 'w', 'o', 'w', 0, 0, 1, 0, 1});
  return q;
}
Bytes answer(std::uint16_t id, const std::string& label = "web", Ipv4Addr addr = Ipv4Addr::from_octets(10, 128, 0, 7)) {
  Bytes a = query(id, label);
  a[2] = 0x85;  // QR, AA, RD
  a[7] = 1;     // ANCOUNT
  a.insert(a.end(), {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4});
  put(a, addr);
  return a;
}
// A message with its 2-byte length prefix (RFC 1035 §4.2.2).
Bytes framed(const Bytes& m) {
  Bytes b;
  put16(b, std::uint16_t(m.size()));
  b.insert(b.end(), m.begin(), m.end());
  return b;
}
Bytes slice(const Bytes& b, std::size_t from, std::size_t to) {
  return Bytes(b.begin() + long(from), b.begin() + long(std::min(to, b.size())));
}
std::uint32_t seq_of(const Bytes& frame) {
  return std::uint32_t(frame[38]) << 24 | std::uint32_t(frame[39]) << 16 | std::uint32_t(frame[40]) << 8 | frame[41];
}
const Bytes kMss1460{2, 4, 0x05, 0xb4};
const Bytes kMss1360{2, 4, 0x05, 0x50};

class DnsTcpTest : public ::testing::Test {
 protected:
  DnsTcpTest() {
    zone_.domain = "wow";
    zone_.network = *Ipv4Prefix::parse("10.128.0.0/9");
    zone_.gateway = kGw;
    limits_.connections_per_vm = 2;
    limits_.connections = 3;
  }
  DnsTcpResponder& responder() {
    if (!responder_) responder_ = std::make_unique<DnsTcpResponder>(limits_);
    return *responder_;
  }

  // Feeds one frame from the VM (attachment 1 unless given) and returns the frames sent back.
  std::vector<Bytes> feed(const Bytes& frame, UnixTime now = T0, std::uint32_t attachment = 1) {
    auto eth = parse_ethernet(frame);
    auto ip = parse_ipv4(eth->payload);
    auto tcp = parse_tcp(*ip);
    EXPECT_TRUE(tcp.has_value());
    if (!tcp) return {};
    const DnsTcpEndpoints ends{attachment, eth->src, ip->src, kGwMac, kGw};
    std::vector<Bytes> out;
    for (ConstByteSpan f : responder().on_segment(now, ends, *tcp, zone_, dir_, dns_counters_))
      out.emplace_back(f.begin(), f.end());
    return out;
  }

  // Handshake from port `port` with initial sequence number 1000; returns the gateway's ISN.
  std::uint32_t connect(std::uint16_t port = kPort, const Bytes& mss = kMss1460, std::uint16_t window = 64240) {
    auto syn_ack = feed(to_gateway(1000, 0, SYN, window, {}, mss, port));
    EXPECT_EQ(syn_ack.size(), 1u);
    if (syn_ack.size() != 1) return 0;
    const std::uint32_t iss = seq_of(syn_ack[0]);
    EXPECT_EQ(syn_ack[0], from_gateway(iss, 1001, SYN | ACK, 2048, {}, kMss1360, kVm, kVmMac, port));
    EXPECT_TRUE(feed(to_gateway(1001, iss + 1, ACK, window, {}, {}, port)).empty());
    return iss;
  }

  struct Sink : TapFrameSink {
    std::vector<std::pair<std::uint32_t, Bytes>> frames;
    void frame(std::uint32_t to, ConstByteSpan f) override { frames.emplace_back(to, Bytes(f.begin(), f.end())); }
  };

  DnsZone zone_;
  Directory dir_;
  DnsCounters dns_counters_;
  DnsTcpLimits limits_;
  std::unique_ptr<DnsTcpResponder> responder_;
};

TEST_F(DnsTcpTest, HandshakeAdvertisesMssAndWindow) {
  connect();
  EXPECT_EQ(responder().open_connections(), 1u);
  EXPECT_EQ(responder().counters().connections, 1u);
  EXPECT_EQ(responder().counters().resets_sent, 0u);
}

TEST_F(DnsTcpTest, QueryAnsweredWithAckPiggybackedOnTheData) {
  const std::uint32_t iss = connect();
  const Bytes q = framed(query(0x1234));
  auto out = feed(to_gateway(1001, iss + 1, ACK | PSH, 64240, q));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], from_gateway(iss + 1, 1001 + std::uint32_t(q.size()), ACK | PSH, 2048, framed(answer(0x1234))));
  EXPECT_EQ(responder().counters().queries, 1u);
  EXPECT_EQ(dns_counters_.answered, 1u);
}

TEST_F(DnsTcpTest, QuerySplitAcrossTwoSegments) {
  const std::uint32_t iss = connect();
  const Bytes q = framed(query(0x0101));
  // The length prefix and three bytes: acknowledged, nothing to answer yet; the window shows what is held.
  auto out = feed(to_gateway(1001, iss + 1, ACK, 64240, slice(q, 0, 5)));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], from_gateway(iss + 1, 1006, ACK, 2048 - 5));
  out = feed(to_gateway(1006, iss + 1, ACK | PSH, 64240, slice(q, 5, q.size())));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], from_gateway(iss + 1, 1001 + std::uint32_t(q.size()), ACK | PSH, 2048, framed(answer(0x0101))));
}

TEST_F(DnsTcpTest, PipelinedQueriesAreAnsweredInOrder) {
  const std::uint32_t iss = connect();
  const Bytes q = cat({framed(query(1)), framed(query(2))});
  auto out = feed(to_gateway(1001, iss + 1, ACK | PSH, 64240, q));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], from_gateway(iss + 1, 1001 + std::uint32_t(q.size()), ACK | PSH, 2048,
                                 cat({framed(answer(1)), framed(answer(2))})));
  EXPECT_EQ(responder().counters().queries, 2u);
}

// Three answers (129 bytes) to a VM with MSS 64 and a 100-byte window:
// 64 + 36 bytes now, the last 29 once the first segment is acknowledged.
TEST_F(DnsTcpTest, AnswersLargerThanOneMssRespectMssAndWindow) {
  const std::uint32_t iss = connect(kPort, Bytes{2, 4, 0, 64}, 100);
  const Bytes q = cat({framed(query(1)), framed(query(2)), framed(query(3))});
  const Bytes a = cat({framed(answer(1)), framed(answer(2)), framed(answer(3))});
  ASSERT_EQ(a.size(), 129u);
  const std::uint32_t ack = 1001 + std::uint32_t(q.size());
  auto out = feed(to_gateway(1001, iss + 1, ACK | PSH, 100, q));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], from_gateway(iss + 1, ack, ACK | PSH, 2048, slice(a, 0, 64)));
  EXPECT_EQ(out[1], from_gateway(iss + 65, ack, ACK | PSH, 2048, slice(a, 64, 100)));
  out = feed(to_gateway(ack, iss + 65, ACK, 100));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], from_gateway(iss + 101, ack, ACK | PSH, 2048, slice(a, 100, 129)));
  EXPECT_TRUE(feed(to_gateway(ack, iss + 130, ACK, 100)).empty());
}

TEST_F(DnsTcpTest, FinIsAnsweredWithFinAndTheConnectionCloses) {
  const std::uint32_t iss = connect();
  const Bytes q = framed(query(7));
  const std::uint32_t a = std::uint32_t(framed(answer(7)).size());
  const std::uint32_t seq = 1001 + std::uint32_t(q.size());
  feed(to_gateway(1001, iss + 1, ACK | PSH, 64240, q));
  auto out = feed(to_gateway(seq, iss + 1 + a, FIN | ACK, 64240));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], from_gateway(iss + 1 + a, seq + 1, FIN | ACK, 2048));
  EXPECT_EQ(responder().open_connections(), 1u);  // LAST-ACK
  EXPECT_TRUE(feed(to_gateway(seq + 1, iss + 2 + a, ACK, 64240)).empty());
  EXPECT_EQ(responder().open_connections(), 0u);
  EXPECT_EQ(responder().counters().closed, 1u);
}

// A VM that sends its query and FIN together still gets the answer, then the FIN.
TEST_F(DnsTcpTest, QueryWithFinGetsAnswerThenFin) {
  const std::uint32_t iss = connect();
  const Bytes q = framed(query(9));
  const std::uint32_t end = 1001 + std::uint32_t(q.size());
  auto out = feed(to_gateway(1001, iss + 1, FIN | ACK | PSH, 64240, q));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], from_gateway(iss + 1, end + 1, FIN | ACK | PSH, 2048, framed(answer(9))));
}

TEST_F(DnsTcpTest, SegmentsWithoutAConnectionGetRst) {
  // An ACK: RST with its acknowledgment number as sequence number (RFC 793 §3.4).
  auto out = feed(to_gateway(5000, 0xabcdef01, ACK, 1000, Bytes{1, 2, 3}));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], from_gateway(0xabcdef01, 0, RST, 0));
  // No ACK: RST|ACK acknowledging everything the segment occupied.
  out = feed(to_gateway(5000, 0, FIN, 1000, Bytes{1, 2, 3}));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], from_gateway(0, 5004, RST | ACK, 0));
  // Never a RST for a RST.
  EXPECT_TRUE(feed(to_gateway(5000, 0, RST, 0)).empty());
  EXPECT_EQ(responder().counters().resets_sent, 2u);
}

TEST_F(DnsTcpTest, ConnectionLimitsPerVmAndInAll) {
  connect(40001);
  connect(40002);
  auto out = feed(to_gateway(7000, 0, SYN, 1000, {}, kMss1460, 40003));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], from_gateway(0, 7001, RST | ACK, 0, {}, {}, kVm, kVmMac, 40003));
  EXPECT_EQ(responder().counters().refused_limit, 1u);
  // Another VM gets one more; then the host's limit of 3 is reached.
  EXPECT_EQ(feed(to_gateway(7000, 0, SYN, 1000, {}, {}, 40001, 53, kVm2, kVm2Mac), T0, 2).size(), 1u);
  out = feed(to_gateway(7000, 0, SYN, 1000, {}, {}, 40002, 53, kVm2, kVm2Mac), T0, 2);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], from_gateway(0, 7001, RST | ACK, 0, {}, {}, kVm2, kVm2Mac, 40002));
  EXPECT_EQ(responder().counters().refused_limit, 2u);
  EXPECT_EQ(responder().open_connections(), 3u);
  responder().forget(1);
  EXPECT_EQ(responder().open_connections(), 1u);
}

TEST_F(DnsTcpTest, IdleConnectionIsResetOnTheTimer) {
  const std::uint32_t iss = connect();
  EXPECT_EQ(responder().next_deadline(), T0 + 10);
  Sink sink;
  responder().on_timer(T0 + 9, sink);
  EXPECT_TRUE(sink.frames.empty());
  responder().on_timer(T0 + 10, sink);
  ASSERT_EQ(sink.frames.size(), 1u);
  EXPECT_EQ(sink.frames[0].first, 1u);
  EXPECT_EQ(sink.frames[0].second, from_gateway(iss + 1, 1001, RST | ACK, 2048));
  EXPECT_EQ(responder().open_connections(), 0u);
  EXPECT_EQ(responder().counters().idle_resets, 1u);
  EXPECT_EQ(responder().next_deadline(), std::numeric_limits<UnixTime>::max());
}

// Unacknowledged answers go again after 1, 2, 4, 8, 16 s (RFC 6298 §5.5);
// after the fifth retransmission the connection is reset.
TEST_F(DnsTcpTest, UnacknowledgedAnswerIsRetransmittedWithBackoffThenReset) {
  limits_.idle_timeout = 1000;
  const std::uint32_t iss = connect();
  const Bytes q = framed(query(3));
  const std::uint32_t end = 1001 + std::uint32_t(q.size());
  auto first = feed(to_gateway(1001, iss + 1, ACK | PSH, 64240, q));
  ASSERT_EQ(first.size(), 1u);
  Sink sink;
  UnixTime t = T0;
  for (UnixTime wait : {1, 2, 4, 8, 16}) {
    EXPECT_EQ(responder().next_deadline(), t + wait);
    responder().on_timer(t + wait - 1, sink);
    EXPECT_TRUE(sink.frames.empty());
    t += wait;
    responder().on_timer(t, sink);
    ASSERT_EQ(sink.frames.size(), 1u);
    EXPECT_EQ(sink.frames[0].second, first[0]);
    sink.frames.clear();
  }
  EXPECT_EQ(responder().counters().retransmits, 5u);
  responder().on_timer(t + 32, sink);
  ASSERT_EQ(sink.frames.size(), 1u);
  EXPECT_EQ(sink.frames[0].second,
            from_gateway(iss + 1 + std::uint32_t(framed(answer(3)).size()), end, RST | ACK, 2048));
  EXPECT_EQ(responder().counters().timeouts, 1u);
  EXPECT_EQ(responder().open_connections(), 0u);
}

TEST_F(DnsTcpTest, LostSynAckIsSentAgainForARepeatedSyn) {
  auto first = feed(to_gateway(1000, 0, SYN, 64240, {}, kMss1460));
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(feed(to_gateway(1000, 0, SYN, 64240, {}, kMss1460)), first);
  Sink sink;
  responder().on_timer(T0 + 1, sink);
  ASSERT_EQ(sink.frames.size(), 1u);
  EXPECT_EQ(sink.frames[0].second, first[0]);
  EXPECT_EQ(responder().open_connections(), 1u);
}

TEST_F(DnsTcpTest, OutOfOrderDataIsNotKeptAndIsAcknowledgedAgain) {
  const std::uint32_t iss = connect();
  const Bytes q = framed(query(5));
  auto out = feed(to_gateway(1005, iss + 1, ACK, 64240, slice(q, 4, q.size())));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], from_gateway(iss + 1, 1001, ACK, 2048));
  EXPECT_EQ(responder().counters().out_of_order, 1u);
  // The whole query again, then a retransmitted overlap: answered once.
  out = feed(to_gateway(1001, iss + 1, ACK, 64240, q));
  ASSERT_EQ(out.size(), 1u);
  out = feed(to_gateway(1001, iss + 1, ACK, 64240, q));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0],
            from_gateway(iss + 1 + std::uint32_t(framed(answer(5)).size()), 1001 + std::uint32_t(q.size()), ACK, 2048));
  EXPECT_EQ(responder().counters().queries, 1u);
}

TEST_F(DnsTcpTest, RstClosesOnlyAtTheExactSequenceNumber) {
  const std::uint32_t iss = connect();
  auto out = feed(to_gateway(1002, 0, RST, 0));
  ASSERT_EQ(out.size(), 1u);  // in the window but not exact: challenge ACK (RFC 5961 §3.2)
  EXPECT_EQ(out[0], from_gateway(iss + 1, 1001, ACK, 2048));
  EXPECT_TRUE(feed(to_gateway(900000, 0, RST, 0)).empty());  // outside: ignored
  EXPECT_EQ(responder().open_connections(), 1u);
  EXPECT_TRUE(feed(to_gateway(1001, 0, RST, 0)).empty());
  EXPECT_EQ(responder().open_connections(), 0u);
  EXPECT_EQ(responder().counters().resets_received, 1u);
}

TEST_F(DnsTcpTest, QueryLongerThanTheBufferResetsTheConnection) {
  const std::uint32_t iss = connect();
  auto out = feed(to_gateway(1001, iss + 1, ACK, 64240, Bytes{0x0b, 0xb8, 0, 0}));  // 3000 bytes announced
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], from_gateway(iss + 1, 1005, RST | ACK, 2044));
  EXPECT_EQ(responder().counters().oversized, 1u);
  EXPECT_EQ(responder().open_connections(), 0u);
}

TEST_F(DnsTcpTest, BadAckDuringHandshakeGetsRstAndKeepsTheConnection) {
  auto syn_ack = feed(to_gateway(1000, 0, SYN, 64240, {}, kMss1460));
  const std::uint32_t iss = seq_of(syn_ack[0]);
  auto out = feed(to_gateway(1001, iss + 7, ACK, 64240));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], from_gateway(iss + 7, 0, RST, 0));
  EXPECT_TRUE(feed(to_gateway(1001, iss + 1, ACK, 64240)).empty());
  EXPECT_EQ(responder().open_connections(), 1u);
}

TEST(ParseTcp, HeaderOptionsPayloadAndChecksum) {
  const Bytes seg =
      tcp_segment(kVm, kGw, kPort, 53, 0x01020304, 0x0a0b0c0d, SYN | ACK, 0x1234, Bytes{9, 8, 7}, kMss1460);
  const Bytes packet = ipv4(kVm, kGw, 6, seg);
  auto ip = parse_ipv4(packet);
  ASSERT_TRUE(ip);
  auto t = parse_tcp(*ip);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->src_port, kPort);
  EXPECT_EQ(t->dst_port, 53);
  EXPECT_EQ(t->seq, 0x01020304u);
  EXPECT_EQ(t->ack, 0x0a0b0c0du);
  EXPECT_EQ(t->flags, SYN | ACK);
  EXPECT_EQ(t->window, 0x1234);
  EXPECT_EQ(Bytes(t->options.begin(), t->options.end()), kMss1460);
  EXPECT_EQ(Bytes(t->payload.begin(), t->payload.end()), (Bytes{9, 8, 7}));

  Bytes bad = seg;
  bad.back() ^= 1;
  const Bytes bad_packet = ipv4(kVm, kGw, 6, bad);  // outlives the view parsed from it
  auto bad_ip = parse_ipv4(bad_packet);
  EXPECT_FALSE(parse_tcp(*bad_ip));
  EXPECT_TRUE(parse_tcp(*bad_ip, false));  // offload left the checksum partial

  // Every truncation: too short for the header or its options is refused.
  for (std::size_t n = 0; n < seg.size(); ++n) {
    const Bytes cut_packet = ipv4(kVm, kGw, 6, slice(seg, 0, n));
    auto cut_ip = parse_ipv4(cut_packet);
    ASSERT_TRUE(cut_ip);
    EXPECT_EQ(parse_tcp(*cut_ip, false).has_value(), n >= 24) << n;
  }
  Bytes short_offset = seg;
  short_offset[12] = 0x40;  // data offset 4
  EXPECT_FALSE(parse_tcp(*parse_ipv4(ipv4(kVm, kGw, 6, short_offset)), false));
  EXPECT_FALSE(parse_tcp(*parse_ipv4(ipv4(kVm, kGw, 17, seg)), false));
}

// Through HostEngine: the VM's frames reach the responder, several frames
// come back in one FrameAction, other ports get RST, the timer retransmits.
class DnsTcpEngineTest : public ::testing::Test {
 protected:
  DnsTcpEngineTest() : engine_(config()) { engine_.add_attachment(1, "vm1", kVmMac, T0); }
  static NetworkConfig config() {
    NetworkConfig c;
    c.mtu = 104;  // MSS 64
    return c;
  }
  std::vector<Bytes> send(Bytes frame, UnixTime now = T0) {
    buffer_ = std::move(frame);
    last_ = engine_.on_tap_frame(now, 1, ByteSpan(buffer_.data(), buffer_.size()));
    std::vector<Bytes> out;
    if (last_.kind != FrameAction::Kind::WriteToTap) return out;
    EXPECT_EQ(last_.to, 1u);
    out.emplace_back(last_.frame.begin(), last_.frame.end());
    for (ConstByteSpan f : last_.more) out.emplace_back(f.begin(), f.end());
    return out;
  }
  HostEngine engine_;
  Bytes buffer_;
  FrameAction last_;
};

TEST_F(DnsTcpEngineTest, QueryOverTcpGetsTheUdpAnswerInSeveralFrames) {
  auto syn_ack = send(to_gateway(1000, 0, SYN, 64240, {}, kMss1460));
  ASSERT_EQ(syn_ack.size(), 1u);
  const std::uint32_t iss = seq_of(syn_ack[0]);
  EXPECT_EQ(syn_ack[0], from_gateway(iss, 1001, SYN | ACK, 2048, {}, Bytes{2, 4, 0, 64}));
  EXPECT_TRUE(send(to_gateway(1001, iss + 1, ACK, 64240)).empty());
  const Bytes q = cat({framed(query(1, "gateway")), framed(query(2, "gateway"))});
  const Bytes a = cat({framed(answer(1, "gateway", kGw)), framed(answer(2, "gateway", kGw))});
  const std::uint32_t end = 1001 + std::uint32_t(q.size());
  auto out = send(to_gateway(1001, iss + 1, ACK | PSH, 64240, q));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], from_gateway(iss + 1, end, ACK | PSH, 2048, slice(a, 0, 64)));
  EXPECT_EQ(out[1], from_gateway(iss + 65, end, ACK | PSH, 2048, slice(a, 64, a.size())));
  EXPECT_EQ(engine_.dns_tcp_counters().queries, 2u);
  EXPECT_EQ(engine_.dns_counters().answered, 2u);

  // Unacknowledged: the timer sends the segments again.
  struct Sink : TapFrameSink {
    std::vector<Bytes> frames;
    void frame(std::uint32_t to, ConstByteSpan f) override {
      EXPECT_EQ(to, 1u);
      frames.emplace_back(f.begin(), f.end());
    }
  } sink;
  engine_.on_timer(T0, &sink);  // lease housekeeping only
  EXPECT_TRUE(sink.frames.empty());
  EXPECT_EQ(engine_.next_deadline(), T0 + 1);
  engine_.on_timer(T0 + 1, &sink);
  ASSERT_EQ(sink.frames.size(), 2u);  // go-back-N: both segments
  EXPECT_EQ(sink.frames[0], out[0]);
  EXPECT_EQ(sink.frames[1], out[1]);

  engine_.remove_attachment(1);
  EXPECT_EQ(engine_.dns_tcp_connections(), 0u);
}

TEST_F(DnsTcpEngineTest, OtherPortsGetRstAndBadChecksumsAreDropped) {
  auto out = send(to_gateway(1000, 0, SYN, 64240, {}, kMss1460, kPort, 80));
  ASSERT_EQ(out.size(), 1u);
  Bytes expected =
      ethernet(kVmMac, kGwMac, 0x0800,
               ipv4_fragment(kGw, kVm, 6, 0, 0x4000, tcp_segment(kGw, kVm, 80, kPort, 0, 1001, RST | ACK, 0, {})));
  EXPECT_EQ(out[0], expected);
  EXPECT_EQ(engine_.dns_tcp_counters().closed_port, 1u);

  Bytes bad = to_gateway(1000, 0, SYN, 64240, {}, kMss1460);
  bad.back() ^= 0xff;  // inside the MSS option: the TCP checksum no longer holds
  EXPECT_TRUE(send(bad).empty());
  EXPECT_EQ(last_.kind, FrameAction::Kind::Drop);
  EXPECT_EQ(last_.reason, DropReason::Malformed);
  EXPECT_EQ(engine_.dns_tcp_connections(), 0u);
}

}  // namespace
}  // namespace wownet
