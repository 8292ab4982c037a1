// DnsTcpResponder (DNS over TCP at the gateway): segments from two VMs on
// four ports each, timers, attachments going away. Sequence and
// acknowledgment numbers are chosen relative to what the responder last
// sent on that port, so the fuzzer reaches established connections, split
// and pipelined queries, FIN and RST handling and retransmission.
// Input: steps of [op, port, flags, seq delta, ack delta, window (2),
// payload chunk]; op 0-5 a segment, 6 time passes, 7 an attachment goes.
#include <array>
#include <limits>
#include <vector>

#include "core/dns_tcp.h"
#include "fuzz_input.h"
#include "fuzz_target.h"

using namespace wownet;
using namespace wownet::fuzz;

namespace {

constexpr UnixTime kT0 = 1'700'000'000;
const MacAddr kGwMac{{0x02, 0x77, 0x6e, 0x00, 0x00, 0x01}};

class Directory : public NameDirectory {
 public:
  std::optional<Ipv4Addr> find_host_name(std::string_view name) const override {
    if (name == "web") return Ipv4Addr::from_octets(10, 128, 0, 7);
    return std::nullopt;
  }
  bool is_leased(Ipv4Addr a) const override { return a == Ipv4Addr::from_octets(10, 128, 0, 5); }
  std::string host_name_of(Ipv4Addr) const override { return "web"; }
};

struct PortState {
  std::uint32_t our_next = 0;    // the VM's view: next sequence number it expects from the gateway
  std::uint32_t their_next = 0;  // next sequence number the gateway expects from the VM
};

// Every frame is Ethernet/IPv4/TCP from the gateway to the VM that sent,
// with correct checksums, and no larger than the responder's frame room.
void check_frame(ConstByteSpan f, const DnsTcpEndpoints& ends, std::uint16_t vm_port, PortState& st) {
  WOWNET_FUZZ_CHECK(f.size() <= kTcpOffset + 24 + DnsTcpResponder::kMaxMss);
  auto eth = parse_ethernet(f);
  WOWNET_FUZZ_CHECK(eth && eth->dst == ends.vm_mac && eth->src == kGwMac);
  auto ip = parse_ipv4(eth->payload);
  WOWNET_FUZZ_CHECK(ip && ip->src == ends.gateway_ip && ip->dst == ends.vm_ip);
  auto tcp = parse_tcp(*ip, true);
  WOWNET_FUZZ_CHECK(tcp && tcp->dst_port == vm_port);
  WOWNET_FUZZ_CHECK(tcp->payload.size() <= DnsTcpResponder::kMaxMss);
  if (tcp->flags & kTcpAck) st.their_next = tcp->ack;
  if (!(tcp->flags & kTcpRst))
    st.our_next = tcp->seq + std::uint32_t(tcp->payload.size()) + ((tcp->flags & (kTcpSyn | kTcpFin)) ? 1 : 0);
}

}  // namespace

WOWNET_FUZZ_TARGET(dns_tcp)(const std::uint8_t* data, std::size_t size) {
  FuzzReader in(data, size);
  DnsTcpLimits limits;
  limits.connections_per_vm = 3;
  limits.connections = 5;
  limits.mss = 100;  // small, so that answers span segments
  DnsTcpResponder responder(limits);
  DnsZone zone{"wow",
               *Ipv4Prefix::parse("10.128.0.0/9"),
               Ipv4Addr::from_octets(10, 128, 0, 1),
               60,
               {StaticName{"printer", Ipv4Addr::from_octets(10, 128, 0, 40)}}};
  Directory names;
  DnsCounters dns_counters;
  UnixTime now = kT0;
  const std::array<DnsTcpEndpoints, 2> vms{
      DnsTcpEndpoints{1, MacAddr{{0x52, 0x54, 0, 0, 0, 1}}, Ipv4Addr::from_octets(10, 128, 0, 5), kGwMac, zone.gateway},
      DnsTcpEndpoints{2, MacAddr{{0x52, 0x54, 0, 0, 0, 2}}, Ipv4Addr::from_octets(10, 128, 0, 6), kGwMac,
                      zone.gateway}};
  std::array<PortState, 8> ports{};
  struct Sink : TapFrameSink {
    std::uint32_t frames = 0;
    void frame(std::uint32_t attachment, ConstByteSpan f) override {
      WOWNET_FUZZ_CHECK(attachment == 1 || attachment == 2);
      WOWNET_FUZZ_CHECK(parse_ethernet(f).has_value());
      ++frames;
    }
  } sink;

  for (int steps = 0; !in.empty() && steps < 256; ++steps) {
    const std::uint8_t op = in.u8();
    if (op % 8 == 6) {
      now += in.u8() % 20;
      if (responder.next_deadline() <= now) {
        responder.on_timer(now, sink);
        WOWNET_FUZZ_CHECK(responder.next_deadline() > now);
      }
      continue;
    }
    if (op % 8 == 7) {
      responder.forget(1 + (in.u8() & 1));
      continue;
    }
    const std::uint8_t port_sel = in.u8() & 7;
    const DnsTcpEndpoints& ends = vms[port_sel >> 2];
    PortState& st = ports[port_sel];
    TcpView tcp;
    tcp.src_port = std::uint16_t(40000 + port_sel);
    tcp.dst_port = (op & 0x80) ? 80 : kDnsPort;
    tcp.flags = in.u8() & 0x3f;
    tcp.seq = st.their_next + std::uint32_t(std::int32_t(std::int8_t(in.u8())));
    tcp.ack = st.our_next + std::uint32_t(std::int32_t(std::int8_t(in.u8())));
    tcp.window = in.u16();
    std::vector<std::uint8_t> options;
    if (tcp.flags & kTcpSyn) {
      const std::uint16_t mss = in.u16();
      options = {2, 4, std::uint8_t(mss >> 8), std::uint8_t(mss)};
      st.their_next = tcp.seq + 1;
    }
    const auto payload = in.chunk_copy();
    tcp.options = options;
    tcp.payload = payload;
    const auto frames = tcp.dst_port == kDnsPort ? responder.on_segment(now, ends, tcp, zone, names, dns_counters)
                                                 : responder.reset(ends, tcp);
    WOWNET_FUZZ_CHECK(frames.size() <= DnsTcpResponder::kMaxFramesPerCall);
    for (ConstByteSpan f : frames) {
      PortState scratch = st;
      check_frame(f, ends, tcp.src_port, tcp.dst_port == kDnsPort ? st : scratch);
    }
    WOWNET_FUZZ_CHECK(responder.open_connections() <= limits.connections);
  }
  // However it was left, every connection ends by itself: nothing leaks.
  for (int i = 0; i < 4 && responder.open_connections() > 0; ++i) {
    now += 100;
    responder.on_timer(now, sink);
  }
  WOWNET_FUZZ_CHECK(responder.open_connections() == 0);
  WOWNET_FUZZ_CHECK(responder.next_deadline() == std::numeric_limits<UnixTime>::max());
}
