// The registry's message handler. A fresh in-memory Registry (no store)
// per input, nodes n0 and n1 online, n2 known offline; then steps of [op,
// arg, 16-bit length, bytes]: the bytes are a serialized NodeMessage from
// one of the nodes (or a stranger, or the rendezvous itself), or a local
// request, or sessions come, go and move, and time passes. After every
// step: nothing outside the pool is recorded, replies carry the request's
// id and every lease message fits its budget.

#include <string>
#include <vector>

#include "fuzz_input.h"
#include "fuzz_target.h"
#include "quiet_protobuf.h"
#include "registry/registry.h"

using namespace wownet;
using namespace wownet::registry;
namespace ov = wownet::overlay;

namespace {

constexpr UnixTime kT0 = 1'700'000'000;

void check(const Registry& reg, const NetworkConfig& cfg, const std::vector<Outgoing>& out, const std::string& from,
           std::uint64_t request_id) {
  for (const Lease& l : reg.leases().snapshot()) {
    WOWNET_FUZZ_CHECK(cfg.network.is_host(l.address) && l.address != cfg.gateway);
    if (l.state != LeaseState::Declined) WOWNET_FUZZ_CHECK(!l.mac.is_zero() && !l.mac.is_multicast());
  }
  for (const Outgoing& o : out) {
    // Replies go to the sender; anything else only to other real nodes.
    WOWNET_FUZZ_CHECK(o.node_id == from || (!o.node_id.empty() && o.node_id != reg.self_id()));
    if (o.node_id == from && !o.message.has_lease_update() && !o.message.has_lease_snapshot() && !o.message.has_crl() &&
        !o.message.has_punch())
      WOWNET_FUZZ_CHECK(o.message.request_id() == request_id);
    if (o.message.has_lease_update() || o.message.has_lease_snapshot())
      WOWNET_FUZZ_CHECK(o.message.ByteSizeLong() <= kMaxLeaseMessageBytes);
  }
}

}  // namespace

WOWNET_FUZZ_TARGET(registry)(const std::uint8_t* data, std::size_t size) {
  fuzz::quiet_protobuf();
  NetworkConfig cfg;
  cfg.network = *Ipv4Prefix::parse("10.128.0.0/27");
  cfg.offer_hold = 30;
  cfg.lease_time = 300;
  cfg.decline_hold = 120;
  Registry reg(cfg, nullptr);
  reg.set_self("self", "rdv", {Endpoint{"192.0.2.1", 7700}});
  std::vector<Outgoing> out;
  reg.on_node_up(kT0, "n0", "n0-name", "198.51.100.7", 4000, out);
  reg.on_node_up(kT0, "n1", "n1-name", "198.51.100.8", 4000, out);
  reg.on_node_up(kT0, "n2", "n2-name", "198.51.100.9", 4000, out);
  reg.on_node_down(kT0, "n2");
  static const char* const kNodes[] = {"n0", "n1", "n2", "stranger", "self", ""};

  fuzz::FuzzReader in(data, size);
  UnixTime now = kT0;
  for (int steps = 0; !in.empty() && steps < 64; ++steps) {
    const std::uint8_t op = in.u8();
    const std::uint8_t arg = in.u8();
    const auto bytes = in.chunk();
    const std::string from = kNodes[arg % 6];
    out.clear();
    ov::NodeMessage m;
    const bool parsed = m.ParseFromArray(bytes.data(), int(bytes.size()));
    switch (op % 6) {
      case 0:
      case 1:
        if (!parsed) continue;
        reg.on_message(now, from, m, out);
        check(reg, cfg, out, from, m.request_id());
        break;
      case 2:
        if (!parsed) continue;
        if (m.has_lease_release())
          (void)reg.release_local(now, m.lease_release(), out);
        else
          (void)reg.request_local(now, m.lease_request(), out);
        check(reg, cfg, out, "self", 0);
        break;
      case 3:
        if (arg & 0x80) {
          reg.on_node_down(now, from);
        } else if (arg & 0x40) {
          reg.on_node_moved(now, from, std::string(bytes.begin(), bytes.end()), arg);
        } else {
          reg.on_node_up(now, from, from + "-name", std::string(bytes.begin(), bytes.end()), 4001, out);
          check(reg, cfg, out, from, 0);
        }
        break;
      case 4:
        now += (arg & 0x80) ? UnixTime(arg & 0x7f) * 10 : UnixTime(arg & 0x0f);
        if (reg.next_deadline() <= now) {
          reg.on_timer(now, out);
          check(reg, cfg, out, "", 0);
        }
        break;
      case 5: {
        ov::Resolved resolved;
        std::string error;
        const std::string text(bytes.begin(), bytes.end());
        if (arg & 1)
          (void)reg.resolve_node(text, resolved, error);
        else
          (void)reg.resolve(now, text, resolved, error);
        break;
      }
    }
  }
}
