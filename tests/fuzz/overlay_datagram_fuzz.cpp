// PeerManager::on_datagram, the overlay's receive demux, on datagrams from
// anyone. Input: a mode byte, then steps of [op, arg, 16-bit length, bytes].
//
// Mode bit 0 clear: a fresh manager (node-a) per input; bit 1 makes it
// connect() to 192.0.2.2:7700 first and bit 2 send a packet to node-b
// there (so a client handshake is in flight); steps deliver the bytes from
// one of four endpoints (op & 3), or (op & 0x80) let time pass.
//
// Mode bit 0 set: node-a with a keyed session to node-b, set up once per
// process (time does not move, so it stays up). Steps, by op % 4: bytes
// from an endpoint as above; bytes as an IPv4 packet node-b seals and
// sends (one byte then XORed with arg at a position from the next two
// bytes); bytes as a NodeMessage node-b sends over DTLS (likewise
// changed); bytes from node-b's own endpoint.

#include "fuzz_input.h"
#include "overlay_world.h"
#include "quiet_protobuf.h"

using namespace wownet;
using namespace wownet::fuzz;
using overlay::UdpEndpoint;

namespace {

const UdpEndpoint kEpA{Ipv4Addr::from_octets(192, 0, 2, 1), 7700};
const UdpEndpoint kEpB{Ipv4Addr::from_octets(192, 0, 2, 2), 7700};
const UdpEndpoint kFrom[4] = {kEpB, {Ipv4Addr::from_octets(198, 51, 100, 7), 40000}, {Ipv4Addr{5}, 1}, kEpA};

struct KeyedPair {
  std::unique_ptr<overlay::PeerManager> a, b;
  RecordingOutput out_a, out_b;
  std::int64_t now = kOverlayT0;

  // Delivers everything in flight between a and b.
  void deliver() {
    for (int rounds = 0; rounds < 100 && (!out_a.sent.empty() || !out_b.sent.empty()); ++rounds) {
      auto from_a = std::move(out_a.sent);
      auto from_b = std::move(out_b.sent);
      out_a.sent.clear();
      out_b.sent.clear();
      for (auto& d : from_a)
        if (d.to == kEpB) b->on_datagram(now, kEpA, d.bytes, out_b.box());
      for (auto& d : from_b)
        if (d.to == kEpA) a->on_datagram(now, kEpB, d.bytes, out_a.box());
    }
  }
};

KeyedPair& keyed_pair() {
  static KeyedPair* pair = [] {
    const OverlayWorld& w = overlay_world();
    auto* p = new KeyedPair;
    p->a = make_peer_manager(w.a, "node-a", 1);
    p->b = make_peer_manager(w.b, "node-b", 2);
    p->b->set_endpoints(w.a.id, {kEpA});
    std::vector<std::uint8_t> ip(40, 0);
    ip[0] = 0x45;
    if (!p->b->send_packet(p->now, w.a.id, ip, p->out_b.box())) overlay_setup_failed("send_packet");
    p->deliver();
    if (p->out_a.ups != 1 || p->out_b.ups != 1) overlay_setup_failed("no keyed session between node-a and node-b");
    return p;
  }();
  return *pair;
}

void fresh(FuzzReader& in, std::uint8_t mode) {
  const OverlayWorld& w = overlay_world();
  auto pm = make_peer_manager(w.a, "node-a", 7);
  RecordingOutput out;
  std::int64_t now = kOverlayT0;
  if (mode & 2) pm->connect(now, kEpB, out.box());
  if (mode & 4) {
    pm->set_endpoints(w.b.id, {kEpB});
    std::vector<std::uint8_t> ip(28, 0);
    ip[0] = 0x45;
    (void)pm->send_packet(now, w.b.id, ip, out.box());
  }
  for (int steps = 0; !in.empty() && steps < 32; ++steps) {
    const std::uint8_t op = in.u8();
    const std::uint8_t arg = in.u8();
    std::vector<std::uint8_t> bytes = in.chunk_copy();
    if (op & 0x80) {
      now += std::int64_t(arg) * 100;
      if (pm->next_deadline_ms() <= now) pm->on_timer(now, out.box());
      continue;
    }
    pm->on_datagram(now, kFrom[op & 3], bytes, out.box());
    out.sent.clear();
  }
  (void)pm->peers();
}

void keyed(FuzzReader& in) {
  KeyedPair& p = keyed_pair();
  const OverlayWorld& w = overlay_world();
  for (int steps = 0; !in.empty() && steps < 32; ++steps) {
    const std::uint8_t op = in.u8();
    const std::uint8_t arg = in.u8();
    std::vector<std::uint8_t> bytes = in.chunk_copy();
    p.out_a.sent.clear();
    p.out_b.sent.clear();
    switch (op % 4) {
      case 0: p.a->on_datagram(p.now, kFrom[(op >> 2) & 3], bytes, p.out_a.box()); break;
      case 1:
      case 2: {
        bool sent;
        if (op % 4 == 1) {
          sent = p.b->send_packet(p.now, w.a.id, bytes, p.out_b.box());
        } else {
          overlay::NodeMessage m;
          sent =
              m.ParseFromArray(bytes.data(), int(bytes.size())) && p.b->send_control(p.now, w.a.id, m, p.out_b.box());
        }
        const std::uint16_t pos = in.u16();
        if (!sent) break;
        for (auto& d : p.out_b.sent) {
          if (!d.bytes.empty()) d.bytes[pos % d.bytes.size()] ^= arg;
          p.a->on_datagram(p.now, kEpB, d.bytes, p.out_a.box());
        }
        break;
      }
      case 3: p.a->on_datagram(p.now, kEpB, bytes, p.out_a.box()); break;
    }
  }
  p.out_a.sent.clear();
  p.out_b.sent.clear();
}

}  // namespace

WOWNET_FUZZ_TARGET(overlay_datagram)(const std::uint8_t* data, std::size_t size) {
  fuzz::quiet_protobuf();
  FuzzReader in(data, size);
  const std::uint8_t mode = in.u8();
  if (mode & 1)
    keyed(in);
  else
    fresh(in, mode);
}
