// Receive-side TCP coalescing: byte-exact segments in, super-frames out, and
// the kernel's (here: segment_tcp4's) segmentation of each super-frame must
// give back exactly the segments that went in.
#include "core/gro.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "core/bytes.h"
#include "core/offload.h"
#include "test_frames.h"

namespace wownet {
namespace {

using namespace wownet::test;

const Ipv4Addr kA = Ipv4Addr::from_octets(10, 128, 0, 2);
const Ipv4Addr kB = Ipv4Addr::from_octets(10, 128, 0, 9);
const Ipv4Addr kC = Ipv4Addr::from_octets(10, 128, 0, 17);

constexpr std::uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10, kUrg = 0x20, kEce = 0x40,
                       kCwr = 0x80;

// One TCP/IPv4 segment, every field spelled out; built here with its own
// checksum code, independent of core/.
struct Seg {
  Ipv4Addr src = kA;
  Ipv4Addr dst = kB;
  std::uint16_t sport = 40000;
  std::uint16_t dport = 5201;
  std::uint32_t seq = 1000;
  std::uint32_t ack = 77;
  std::uint8_t flags = kAck;
  std::uint16_t window = 502;
  std::uint8_t tos = 0;
  std::uint8_t ttl = 64;
  std::uint16_t ip_id = 0x1234;
  std::uint16_t frag = 0x4000;  // DF
  Bytes tcp_options;            // a multiple of 4
  Bytes ip_options;             // a multiple of 4
  Bytes data;

  Bytes build() const {
    Bytes tcp;
    put16(tcp, sport);
    put16(tcp, dport);
    put32(tcp, seq);
    put32(tcp, ack);
    tcp.push_back(std::uint8_t((5 + tcp_options.size() / 4) << 4));
    tcp.push_back(flags);
    put16(tcp, window);
    put16(tcp, 0);
    put16(tcp, 0);
    tcp.insert(tcp.end(), tcp_options.begin(), tcp_options.end());
    tcp.insert(tcp.end(), data.begin(), data.end());
    fill_tcp_checksum(src, dst, tcp);
    std::size_t ihl = 20 + ip_options.size();
    Bytes p = {std::uint8_t(0x40 | (ihl / 4)), tos};
    put16(p, std::uint16_t(ihl + tcp.size()));
    put16(p, ip_id);
    put16(p, frag);
    p.push_back(ttl);
    p.push_back(6);
    put16(p, 0);
    put(p, src);
    put(p, dst);
    p.insert(p.end(), ip_options.begin(), ip_options.end());
    std::uint16_t ic = sum16(p.data(), ihl);
    p[10] = std::uint8_t(ic >> 8);
    p[11] = std::uint8_t(ic);
    p.insert(p.end(), tcp.begin(), tcp.end());
    return p;
  }
};

Bytes pattern(std::size_t n, std::uint8_t salt) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = std::uint8_t(i * 31 + salt + (i >> 8));
  return b;
}

// A stream of `sizes.size()` segments of one flow: sequence numbers and IP
// identifications follow on, the data is a pattern; `last_flags` on the last.
std::vector<Seg> stream(const Seg& first, const std::vector<std::size_t>& sizes, std::uint8_t last_flags = kAck) {
  std::vector<Seg> out;
  Seg s = first;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    s.data = pattern(sizes[i], std::uint8_t(i));
    if (i + 1 == sizes.size()) s.flags = last_flags;
    out.push_back(s);
    s.seq += std::uint32_t(sizes[i]);
    s.ip_id = std::uint16_t(s.ip_id + 1);
    s.flags &= std::uint8_t(~kCwr);
  }
  return out;
}

// Packets in their own buffers, as the overlay hands them over.
struct Batch {
  std::vector<Bytes> packets;
  std::vector<Bytes> originals;
  std::vector<ByteSpan> spans;

  explicit Batch(const std::vector<Bytes>& in) : packets(in), originals(in) {
    for (auto& p : packets) spans.emplace_back(p.data(), p.size());
  }
  static Batch of(const std::vector<Seg>& segs) {
    std::vector<Bytes> in;
    for (const auto& s : segs) in.push_back(s.build());
    return Batch(in);
  }
};

Bytes bytes_of(const GroFrame& f) {
  Bytes b(f.size);
  EXPECT_EQ(f.copy_to(ByteSpan(b.data(), b.size())), f.size);
  return b;
}

struct Collect : SegmentSink {
  std::vector<Bytes> out;
  void segment(ConstByteSpan p) override { out.emplace_back(p.begin(), p.end()); }
};

// What the kernel makes of a frame written to a TAP: a super-frame is cut
// into its segments, anything else is one packet.
std::vector<Bytes> expand(const GroFrame& f) {
  Bytes b = bytes_of(f);
  if (!f.is_super_frame()) return {b};
  Collect c;
  std::vector<std::uint8_t> scratch(2048 + 60);
  EXPECT_EQ(segment_tcp4(b, f.gso_size, ByteSpan(scratch.data(), scratch.size()), c), f.segments);
  return c.out;
}

// All frames expanded, in order.
std::vector<Bytes> expand_all(const GroBatch& r) {
  std::vector<Bytes> out;
  for (const auto& f : r.frames) {
    auto e = expand(f);
    out.insert(out.end(), e.begin(), e.end());
  }
  return out;
}

std::vector<std::uint16_t> segment_counts(const GroBatch& r) {
  std::vector<std::uint16_t> n;
  for (const auto& f : r.frames) n.push_back(f.segments);
  return n;
}

using Counts = std::vector<std::uint16_t>;

TEST(GroTest, InOrderSegmentsBecomeOneSuperFrameThatSegmentsBackExactly) {
  Seg first;
  first.seq = 0xfffff000;  // the sequence space wraps inside the frame
  auto segs = stream(first, {1448, 1448, 1448, 700}, kAck | kPsh);
  Batch batch = Batch::of(segs);
  TcpCoalescer gro;
  GroBatch r = gro.coalesce(batch.spans);
  ASSERT_EQ(r.consumed, 4u);
  ASSERT_EQ(r.frames.size(), 1u);
  const GroFrame& f = r.frames[0];
  EXPECT_TRUE(f.is_super_frame());
  EXPECT_EQ(f.segments, 4);
  EXPECT_EQ(f.gso_size, 1448);
  EXPECT_EQ(f.header_size, 40);
  EXPECT_EQ(f.ip_header_size, 20);
  EXPECT_FALSE(f.ecn);
  ASSERT_EQ(f.parts.size(), 4u);
  // No copy: the head is the first packet's buffer, the rest point at payloads.
  EXPECT_EQ(f.parts[0].data(), batch.packets[0].data());
  EXPECT_EQ(f.parts[1].data(), batch.packets[1].data() + 40);

  Bytes out = bytes_of(f);
  std::size_t total = 40 + 1448 * 3 + 700;
  ASSERT_EQ(out.size(), total);
  EXPECT_EQ(load16(&out[2]), total);         // IP total length
  EXPECT_EQ(load16(&out[4]), 0x1234);        // the head's identification
  EXPECT_EQ(sum16(out.data(), 20), 0);       // IP header checksum
  EXPECT_EQ(load32(&out[24]), 0xfffff000u);  // the head's sequence number
  EXPECT_EQ(out[33], kAck | kPsh);           // PSH from the last segment
  Bytes data;
  for (const auto& s : segs) data.insert(data.end(), s.data.begin(), s.data.end());
  EXPECT_TRUE(std::equal(data.begin(), data.end(), out.begin() + 40));
  // The checksum field holds the folded pseudo-header sum over the frame's
  // TCP length, as the kernel expects with NEEDS_CSUM.
  std::uint32_t pseudo =
      (kA.value >> 16) + (kA.value & 0xffff) + (kB.value >> 16) + (kB.value & 0xffff) + 6 + std::uint32_t(total - 20);
  while (pseudo >> 16) pseudo = (pseudo & 0xffff) + (pseudo >> 16);
  EXPECT_EQ(load16(&out[36]), pseudo);
  // Completing it gives the packet a stack would have built in one piece.
  ASSERT_TRUE(complete_checksum(ByteSpan(out.data(), out.size()), 20, 16));
  Seg whole = first;
  whole.flags = kAck | kPsh;
  whole.data = data;
  EXPECT_EQ(out, whole.build());

  EXPECT_EQ(expand_all(r), batch.originals);
  EXPECT_EQ(gro.stats().super_frames, 1u);
  EXPECT_EQ(gro.stats().segments_merged, 3u);
  EXPECT_EQ(gro.stats().frames_out, 1u);
}

TEST(GroTest, VnetHeaderOfASuperFrame) {
  Seg first;
  first.flags = kAck | kCwr;                                  // CWR on the head: the frame is marked ECN
  first.tcp_options = {1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2};  // NOP NOP timestamps
  Batch batch = Batch::of(stream(first, {1388, 1388, 1000}));
  TcpCoalescer gro;
  GroBatch r = gro.coalesce(batch.spans);
  ASSERT_EQ(r.frames.size(), 1u);
  EXPECT_TRUE(r.frames[0].ecn);
  VnetHeader h = vnet_header_for(r.frames[0]);
  std::uint8_t raw[10];
  write_vnet_header(h, raw);
  // NEEDS_CSUM, TCPV4|ECN, hdr_len 14+20+32=66, gso_size 1388 (0x056c),
  // csum_start 34, csum_offset 16.
  const std::uint8_t want[10] = {1, 0x81, 66, 0, 0x6c, 0x05, 34, 0, 16, 0};
  EXPECT_EQ(0, std::memcmp(raw, want, 10));
  VnetHeader back = VnetHeader::parse(raw);
  EXPECT_EQ(back.gso(), VnetHeader::kGsoTcpV4);
  EXPECT_EQ(back.gso_size, 1388);
  // With no link header (a TUN): offsets from the IP header.
  write_vnet_header(vnet_header_for(r.frames[0], 0), raw);
  const std::uint8_t want_tun[10] = {1, 0x81, 52, 0, 0x6c, 0x05, 20, 0, 16, 0};
  EXPECT_EQ(0, std::memcmp(raw, want_tun, 10));
  // CWR stays on the first segment only when the frame is cut.
  EXPECT_EQ(expand_all(r), batch.originals);
}

TEST(GroTest, SingleSegmentPassesUnchangedWithAZeroVnetHeader) {
  Batch batch = Batch::of(stream(Seg{}, {1448}));
  TcpCoalescer gro;
  GroBatch r = gro.coalesce(batch.spans);
  ASSERT_EQ(r.frames.size(), 1u);
  const GroFrame& f = r.frames[0];
  EXPECT_FALSE(f.is_super_frame());
  EXPECT_EQ(f.segments, 1);
  ASSERT_EQ(f.parts.size(), 1u);
  EXPECT_EQ(f.parts[0].data(), batch.packets[0].data());
  EXPECT_EQ(bytes_of(f), batch.originals[0]);
  EXPECT_EQ(batch.packets[0], batch.originals[0]);
  std::uint8_t raw[10];
  std::memset(raw, 0xee, sizeof raw);
  write_vnet_header(vnet_header_for(f), raw);
  const std::uint8_t zero[10] = {};
  EXPECT_EQ(0, std::memcmp(raw, zero, 10));
}

TEST(GroTest, NonTcpAndGarbagePassUnchangedInOrder) {
  std::vector<Bytes> in = {
      ipv4(kA, kB, 17, udp(1000, 2000, pattern(1400, 1))),
      ipv4(kA, kB, 17, udp(1000, 2000, pattern(1400, 2))),
      ipv4(kA, kB, 1, icmp_echo(1, 1, pattern(56, 3))),
      Bytes{0x45, 0x00},                // truncated
      Bytes{},                          // empty
      Bytes(60, 0x60),                  // IPv6 version nibble
      ipv4(kA, kB, 6, pattern(10, 4)),  // TCP header cut short
  };
  Batch batch(in);
  TcpCoalescer gro;
  GroBatch r = gro.coalesce(batch.spans);
  ASSERT_EQ(r.frames.size(), in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    EXPECT_FALSE(r.frames[i].is_super_frame());
    EXPECT_EQ(bytes_of(r.frames[i]), in[i]) << i;
  }
  EXPECT_EQ(batch.packets, batch.originals);
}

TEST(GroTest, PshAndFinEndAFrame) {
  auto segs = stream(Seg{}, {1000, 1000, 1000, 1000, 1000, 1000}, kAck | kFin);
  segs[1].flags = kAck | kPsh;
  Batch batch = Batch::of(segs);
  TcpCoalescer gro;
  GroBatch r = gro.coalesce(batch.spans);
  EXPECT_EQ(segment_counts(r), (Counts{2, 4}));
  EXPECT_EQ(bytes_of(r.frames[0])[33], kAck | kPsh);
  EXPECT_EQ(bytes_of(r.frames[1])[33], kAck | kFin);
  EXPECT_EQ(expand_all(r), batch.originals);
}

TEST(GroTest, SynRstUrgAndPushedHeadsAreNeverMerged) {
  for (std::uint8_t flag : {kSyn, kRst, kUrg, kPsh, kFin}) {
    auto segs = stream(Seg{}, {1000, 1000, 1000, 1000, 1000});
    segs[2].flags = kAck | flag;
    Batch batch = Batch::of(segs);
    TcpCoalescer gro;
    GroBatch r = gro.coalesce(batch.spans);
    // SYN, RST and URG stand alone; PSH and FIN end the frame they join.
    Counts want = (flag == kPsh || flag == kFin) ? Counts{3, 2} : Counts{2, 1, 2};
    EXPECT_EQ(segment_counts(r), want) << int(flag);
    EXPECT_EQ(expand_all(r), batch.originals) << int(flag);
  }
  // A head that already ends (PSH) takes no followers.
  auto segs = stream(Seg{}, {1000, 1000, 1000});
  segs[0].flags = kAck | kPsh;
  Batch batch = Batch::of(segs);
  TcpCoalescer gro;
  EXPECT_EQ(segment_counts(gro.coalesce(batch.spans)), (Counts{1, 2}));
}

TEST(GroTest, CwrAfterTheHeadIsNotMerged) {
  auto segs = stream(Seg{}, {1000, 1000, 1000});
  segs[1].flags = kAck | kCwr;
  Batch batch = Batch::of(segs);
  TcpCoalescer gro;
  GroBatch r = gro.coalesce(batch.spans);
  EXPECT_EQ(segment_counts(r), (Counts{1, 2}));
  EXPECT_TRUE(r.frames[1].ecn);
  EXPECT_EQ(expand_all(r), batch.originals);
}

TEST(GroTest, IpOptionsAndFragmentsAreLeftAlone) {
  auto segs = stream(Seg{}, {1000, 1000, 1000, 1000});
  segs[1].ip_options = {1, 1, 1, 0};  // NOP NOP NOP EOL
  std::vector<Bytes> in;
  for (const auto& s : segs) in.push_back(s.build());
  // A TCP first fragment and a later fragment of the same flow.
  Seg frag = segs[3];
  frag.frag = 0x2000;  // MF
  in.push_back(frag.build());
  frag.frag = 0x0010;
  in.push_back(frag.build());
  Batch batch(in);
  TcpCoalescer gro;
  GroBatch r = gro.coalesce(batch.spans);
  // The options packet ends the first frame, the next two merge again.
  EXPECT_EQ(segment_counts(r), (Counts{1, 1, 2, 1, 1}));
  for (std::size_t k : {0u, 1u, 3u, 4u}) EXPECT_FALSE(r.frames[k].is_super_frame());
  EXPECT_EQ(bytes_of(r.frames[1]), in[1]);
  EXPECT_EQ(bytes_of(r.frames[3]), in[4]);
  EXPECT_EQ(bytes_of(r.frames[4]), in[5]);
  EXPECT_EQ(expand_all(r), batch.originals);
}

TEST(GroTest, MixedFlowsInOneBatchKeepEachFlowInOrder) {
  Seg a;
  Seg b;
  b.sport = 40001;  // another connection between the same hosts
  Seg c;
  c.src = kC;
  c.seq = 9;
  auto fa = stream(a, {1448, 1448, 1448, 100});
  auto fb = stream(b, {1200, 1200, 1200});
  auto fc = stream(c, {500, 500});
  std::vector<Bytes> in = {fa[0].build(), fb[0].build(), fa[1].build(), ipv4(kA, kB, 17, udp(1, 2, pattern(99, 9))),
                           fb[1].build(), fc[0].build(), fa[2].build(), fc[1].build(),
                           fb[2].build(), fa[3].build()};
  Batch batch(in);
  TcpCoalescer gro;
  GroBatch r = gro.coalesce(batch.spans);
  ASSERT_EQ(r.frames.size(), 4u);
  // In the order of each frame's first packet: A, B, the UDP datagram, C.
  EXPECT_EQ(segment_counts(r), (Counts{4, 3, 1, 2}));
  EXPECT_EQ(r.frames[0].gso_size, 1448);
  EXPECT_EQ(r.frames[1].gso_size, 1200);
  EXPECT_EQ(r.frames[3].gso_size, 500);
  auto ea = expand(r.frames[0]);
  auto eb = expand(r.frames[1]);
  auto ec = expand(r.frames[3]);
  EXPECT_EQ(ea, (std::vector<Bytes>{in[0], in[2], in[6], in[9]}));
  EXPECT_EQ(eb, (std::vector<Bytes>{in[1], in[4], in[8]}));
  EXPECT_EQ(bytes_of(r.frames[2]), in[3]);
  EXPECT_EQ(ec, (std::vector<Bytes>{in[5], in[7]}));
}

TEST(GroTest, ALostSegmentSplitsTheFrame) {
  auto segs = stream(Seg{}, {1000, 1000, 1000, 1000, 1000});
  segs.erase(segs.begin() + 2);
  Batch batch = Batch::of(segs);
  TcpCoalescer gro;
  GroBatch r = gro.coalesce(batch.spans);
  // The IP identification skips too, but the sequence gap alone suffices.
  EXPECT_EQ(segment_counts(r), (Counts{2, 2}));
  EXPECT_EQ(expand_all(r), batch.originals);
}

TEST(GroTest, ADuplicateStartsANewFrame) {
  auto segs = stream(Seg{}, {1000, 1000, 1000});
  Seg again = segs[1];  // retransmitted: same sequence number, next IP identification
  again.ip_id = std::uint16_t(segs[2].ip_id);
  segs[2].ip_id = std::uint16_t(again.ip_id + 1);
  segs.insert(segs.begin() + 2, again);
  Batch batch = Batch::of(segs);
  TcpCoalescer gro;
  GroBatch r = gro.coalesce(batch.spans);
  EXPECT_EQ(segment_counts(r), (Counts{2, 2}));
  EXPECT_EQ(expand_all(r), batch.originals);
  // Out of order: the later segment first.
  auto ooo = stream(Seg{}, {1000, 1000, 1000});
  std::swap(ooo[1], ooo[2]);
  Batch b2 = Batch::of(ooo);
  EXPECT_EQ(segment_counts(gro.coalesce(b2.spans)), (Counts{1, 1, 1}));
}

TEST(GroTest, FramesStayWithinTheIpv4LengthLimit) {
  std::vector<std::size_t> sizes(50, 1400);  // 70000 bytes of data
  Batch batch = Batch::of(stream(Seg{}, sizes));
  TcpCoalescer gro;
  GroBatch r = gro.coalesce(batch.spans);
  // 40 + 46 * 1400 = 64440 fits; one more segment would make 65840.
  EXPECT_EQ(segment_counts(r), (Counts{46, 4}));
  for (const auto& f : r.frames) EXPECT_LE(f.size, 65535u);
  EXPECT_EQ(r.frames[0].size, 64440u);
  EXPECT_EQ(expand_all(r), batch.originals);
  // A smaller limit, e.g. a TAP that takes less.
  Batch again = Batch::of(stream(Seg{}, sizes));
  TcpCoalescer small(GroOptions{.max_packet_size = 16000});
  EXPECT_EQ(segment_counts(small.coalesce(again.spans)), (Counts{11, 11, 11, 11, 6}));
  // Exactly 65535 is allowed.
  std::vector<std::size_t> exact(45, 1455);  // 40 + 45 * 1455 = 65515
  exact.push_back(20);                       // 65535
  exact.push_back(1);
  Batch b3 = Batch::of(stream(Seg{}, exact));
  GroBatch r3 = gro.coalesce(b3.spans);
  EXPECT_EQ(segment_counts(r3), (Counts{46, 1}));
  EXPECT_EQ(r3.frames[0].size, 65535u);
}

TEST(GroTest, ShortSegmentEndsAFrameAndALargerOneDoesNotJoin) {
  Batch batch = Batch::of(stream(Seg{}, {1000, 600, 1000, 1000, 500, 1000}));
  TcpCoalescer gro;
  GroBatch r = gro.coalesce(batch.spans);
  // 1000+600 | 1000+1000+500 | 1000
  EXPECT_EQ(segment_counts(r), (Counts{2, 3, 1}));
  EXPECT_EQ(expand_all(r), batch.originals);
  Batch grows = Batch::of(stream(Seg{}, {500, 1000, 1000}));
  EXPECT_EQ(segment_counts(gro.coalesce(grows.spans)), (Counts{1, 2}));
}

TEST(GroTest, HeaderDifferencesPreventMerging) {
  struct Case {
    const char* what;
    void (*change)(Seg&);
  };
  const Case cases[] = {
      {"ack", [](Seg& s) { s.ack += 1; }},
      {"window", [](Seg& s) { s.window = 1000; }},
      {"ece", [](Seg& s) { s.flags |= kEce; }},
      {"tos", [](Seg& s) { s.tos = 0x03; }},
      {"ttl", [](Seg& s) { s.ttl = 63; }},
      {"df", [](Seg& s) { s.frag = 0; }},
      {"ip id", [](Seg& s) { s.ip_id = std::uint16_t(s.ip_id + 5); }},
      {"timestamp value", [](Seg& s) { s.tcp_options = {1, 1, 8, 10, 0, 0, 0, 2, 0, 0, 0, 2}; }},
      {"option length", [](Seg& s) { s.tcp_options = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}; }},
      {"dst port", [](Seg& s) { s.dport = 5202; }},
  };
  for (const auto& c : cases) {
    Seg first;
    first.tcp_options = {1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2};
    auto segs = stream(first, {1000, 1000, 1000});
    c.change(segs[1]);
    Batch batch = Batch::of(segs);
    TcpCoalescer gro;
    GroBatch r = gro.coalesce(batch.spans);
    EXPECT_EQ(r.frames.size(), 3u) << c.what;
    EXPECT_EQ(expand_all(r), batch.originals) << c.what;
  }
  // Identical options (timestamps included) merge.
  Seg first;
  first.tcp_options = {1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2};
  Batch batch = Batch::of(stream(first, {1000, 1000, 1000}));
  TcpCoalescer gro;
  GroBatch r = gro.coalesce(batch.spans);
  EXPECT_EQ(segment_counts(r), (Counts{3}));
  EXPECT_EQ(expand_all(r), batch.originals);
}

TEST(GroTest, IpIdentificationWrapsAndDfClearMerges) {
  Seg first;
  first.ip_id = 0xffff;
  first.frag = 0;
  Batch batch = Batch::of(stream(first, {1000, 1000, 1000}));
  TcpCoalescer gro;
  GroBatch r = gro.coalesce(batch.spans);
  EXPECT_EQ(segment_counts(r), (Counts{3}));
  EXPECT_EQ(expand_all(r), batch.originals);
}

TEST(GroTest, PureAcksAreNeverMerged) {
  auto segs = stream(Seg{}, {0, 0, 0});
  for (auto& s : segs) s.seq = 1000;
  Batch batch = Batch::of(segs);
  TcpCoalescer gro;
  EXPECT_EQ(segment_counts(gro.coalesce(batch.spans)), (Counts{1, 1, 1}));
  EXPECT_EQ(batch.packets, batch.originals);
}

TEST(GroTest, BadChecksumsAreNotMerged) {
  auto segs = stream(Seg{}, {1000, 1000, 1000, 1000});
  Batch batch = Batch::of(segs);
  batch.packets[1][500] ^= 0x01;  // a bit flipped in the data of segment 2
  batch.originals = batch.packets;
  TcpCoalescer gro;
  GroBatch r = gro.coalesce(batch.spans);
  EXPECT_EQ(segment_counts(r), (Counts{1, 1, 2}));
  EXPECT_EQ(bytes_of(r.frames[1]), batch.originals[1]);
  EXPECT_EQ(gro.stats().checksum_failures, 1u);
  // A bad IP header checksum: not even parsed as TCP.
  Batch b2 = Batch::of(stream(Seg{}, {1000, 1000}));
  b2.packets[0][8] = 1;  // TTL changed, checksum not
  b2.originals = b2.packets;
  GroBatch r2 = gro.coalesce(b2.spans);
  EXPECT_EQ(segment_counts(r2), (Counts{1, 1}));
  EXPECT_EQ(b2.packets, b2.originals);
  // Without verification the checksum is not looked at.
  Batch b3 = Batch::of(segs);
  b3.packets[1][500] ^= 0x01;
  TcpCoalescer trusting(GroOptions{.verify_checksums = false});
  EXPECT_EQ(segment_counts(trusting.coalesce(b3.spans)), (Counts{4}));
}

TEST(GroTest, BatchLongerThanCapacityIsTakenInParts) {
  Batch batch = Batch::of(stream(Seg{}, {1000, 1000, 1000, 1000, 1000}));
  TcpCoalescer gro(GroOptions{.max_batch = 3});
  GroBatch r = gro.coalesce(batch.spans);
  EXPECT_EQ(r.consumed, 3u);
  EXPECT_EQ(segment_counts(r), (Counts{3}));
  GroBatch rest = gro.coalesce(std::span<const ByteSpan>(batch.spans).subspan(r.consumed));
  EXPECT_EQ(rest.consumed, 2u);
  EXPECT_EQ(segment_counts(rest), (Counts{2}));
}

TEST(GroTest, MoreFlowsThanOpenSlotsStillKeepOrder) {
  TcpCoalescer gro(GroOptions{.max_open_flows = 2});
  std::vector<std::vector<Seg>> flows;
  for (std::uint16_t k = 0; k < 3; ++k) {
    Seg s;
    s.sport = std::uint16_t(41000 + k);
    flows.push_back(stream(s, {1000, 1000, 1000}));
  }
  std::vector<Bytes> in;
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t k = 0; k < 3; ++k) in.push_back(flows[k][i].build());
  Batch batch(in);
  GroBatch r = gro.coalesce(batch.spans);
  // Round robin over three flows with two slots: each new flow evicts the
  // oldest open one, so nothing merges, and order is kept.
  EXPECT_EQ(r.frames.size(), 9u);
  EXPECT_EQ(expand_all(r), batch.originals);
}

// Random batches of several flows with random losses, duplicates, flag
// changes and corrupted bytes: whatever comes out, expanded as the kernel
// would, is each input packet once, each flow in its input order.
TEST(GroTest, RandomBatchesPreserveEveryPacketAndPerFlowOrder) {
  std::mt19937 rng(4242);
  TcpCoalescer gro(GroOptions{.max_batch = 64, .max_open_flows = 4});
  for (int round = 0; round < 300; ++round) {
    std::vector<std::vector<Seg>> flows;
    for (std::uint16_t k = 0; k < 5; ++k) {
      Seg s;
      s.sport = std::uint16_t(42000 + k);
      s.seq = rng();
      s.ip_id = std::uint16_t(rng());
      std::vector<std::size_t> sizes;
      std::size_t mss = 200 + rng() % 1200;
      for (int i = 0; i < 12; ++i) sizes.push_back(rng() % 8 == 0 ? rng() % (mss + 1) : mss);
      auto f = stream(s, sizes);
      for (auto& seg : f) {
        if (rng() % 20 == 0) seg.flags |= std::uint8_t(1u << (rng() % 8));
        if (rng() % 30 == 0) seg.ttl = 1;
      }
      flows.push_back(f);
    }
    std::vector<std::size_t> pos(flows.size(), 0);
    std::vector<Bytes> in;
    std::vector<int> flow_of;
    while (in.size() < 64) {
      std::size_t k = rng() % flows.size();
      if (pos[k] >= flows[k].size()) {
        in.push_back(ipv4(kA, kB, 17, udp(1, 2, pattern(rng() % 300, 1))));
        flow_of.push_back(-1);
        continue;
      }
      if (pos[k] > 0 && rng() % 15 == 0) {
        in.push_back(flows[k][pos[k] - 1].build());  // a duplicate
      } else {
        in.push_back(flows[k][pos[k]].build());
        pos[k] += rng() % 10 == 0 ? 2 : 1;  // sometimes the next one is lost
      }
      flow_of.push_back(int(k));
      if (rng() % 25 == 0) {
        std::size_t at = rng() % in.back().size();
        in.back()[at] ^= std::uint8_t(1 + rng() % 255);
        // A damaged header may no longer name its flow (or parse): such a
        // packet is only required to come out, not to keep its place.
        if (at < 40) flow_of.back() = -2;
      }
    }
    Batch batch(in);
    GroBatch r = gro.coalesce(batch.spans);
    ASSERT_EQ(r.consumed, in.size());
    std::vector<Bytes> out = expand_all(r);
    ASSERT_EQ(out.size(), in.size()) << round;
    // Per flow, the expanded packets appear in input order.
    for (int k = -1; k < int(flows.size()); ++k) {  // -1: the UDP datagrams
      std::vector<Bytes> want;
      for (std::size_t i = 0; i < in.size(); ++i)
        if (flow_of[i] == k) want.push_back(in[i]);
      std::vector<Bytes> got;
      for (const auto& p : out) {
        auto it = std::find(want.begin(), want.end(), p);
        if (it != want.end()) got.push_back(p);
      }
      EXPECT_EQ(got, want) << "round " << round << " flow " << k;
    }
    std::vector<Bytes> a = in, b = out;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    EXPECT_EQ(a, b) << round;
  }
  EXPECT_GT(gro.stats().segments_merged, 1000u);
}

}  // namespace
}  // namespace wownet
