// The HostEngine the engine fuzz targets start from: three attachments
// (two VMs with known MACs, one that still has to learn its MAC), leases
// for them, and VMs of two other nodes; plus the checks every returned
// FrameAction must pass.
#pragma once

#include <memory>
#include <vector>

#include "core/host_engine.h"
#include "fuzz_target.h"

namespace wownet::fuzz {

inline constexpr UnixTime kEngineT0 = 1'700'000'000;
inline const MacAddr kVm1Mac{{0x52, 0x54, 0x00, 0x00, 0x00, 0x01}};
inline const MacAddr kVm2Mac{{0x52, 0x54, 0x00, 0x00, 0x00, 0x02}};
inline const MacAddr kVm3Mac{{0x52, 0x54, 0x00, 0x00, 0x00, 0x03}};
inline const MacAddr kHostMac{{0xfe, 0x54, 0x00, 0x00, 0x00, 0x03}};
inline const MacAddr kRemoteMac{{0x52, 0x54, 0x00, 0x00, 0x01, 0x01}};
inline const Ipv4Addr kVm1Ip = Ipv4Addr::from_octets(10, 128, 0, 2);
inline const Ipv4Addr kVm2Ip = Ipv4Addr::from_octets(10, 128, 0, 3);
inline const Ipv4Addr kRemote1Ip = Ipv4Addr::from_octets(10, 128, 0, 9);
inline const Ipv4Addr kRemote2Ip = Ipv4Addr::from_octets(10, 128, 0, 10);

// A fresh engine; in registry mode (node "self") if `registry`.
inline std::unique_ptr<HostEngine> make_engine(bool registry) {
  NetworkConfig cfg;
  cfg.network = *Ipv4Prefix::parse("10.128.0.0/26");
  auto e = std::make_unique<HostEngine>(cfg);
  const std::string self = registry ? "self" : "";
  if (registry) e->use_registry(self);
  e->add_attachment(1, "vm1", kVm1Mac, kEngineT0);
  e->add_attachment(2, "vm2", kVm2Mac, kEngineT0);
  e->add_attachment(3, "vm3", std::nullopt, kEngineT0);
  e->set_host_macs(3, {kHostMac});
  auto lease = [&](Ipv4Addr a, MacAddr m, const char* vm, const char* name, const std::string& node) {
    (void)e->on_registry_lease(kEngineT0,
                               Lease{a, m, vm, name, node, kEngineT0 + 3600, LeaseState::Bound, LeaseOrigin::Dhcp});
  };
  lease(kVm1Ip, kVm1Mac, "vm1", "one", self);
  lease(kVm2Ip, kVm2Mac, "vm2", "two", self);
  lease(kRemote1Ip, kRemoteMac, "r1", "remote", "n1");
  lease(kRemote2Ip, MacAddr{{0x52, 0x54, 0x00, 0x00, 0x02, 0x01}}, "r2", "", "n2");
  return e;
}

// Every byte of an action's frame is readable (ASan checks), it is no
// larger than a frame can be, goes to a known attachment or a named peer
// and parses as what it claims to be.
inline void check_action(const HostEngine& engine, const FrameAction& a) {
  unsigned sum = 0;
  for (std::uint8_t b : a.frame) sum += b;
  (void)sum;
  switch (a.kind) {
    case FrameAction::Kind::WriteToTap: {
      WOWNET_FUZZ_CHECK(engine.attachment(a.to) != nullptr);
      WOWNET_FUZZ_CHECK(a.frame.size() <= 65535 + kEthernetHeaderSize);
      const auto eth = parse_ethernet(a.frame);
      WOWNET_FUZZ_CHECK(eth);
      for (ConstByteSpan more : a.more) {
        for (std::uint8_t b : more) sum += b;
        WOWNET_FUZZ_CHECK(more.size() <= 65535 + kEthernetHeaderSize);
        WOWNET_FUZZ_CHECK(parse_ethernet(more).has_value());
      }
      break;
    }
    case FrameAction::Kind::SendToPeer:
      WOWNET_FUZZ_CHECK(a.more.empty());
      WOWNET_FUZZ_CHECK(!a.peer.empty() && a.peer != engine.self_node());
      WOWNET_FUZZ_CHECK(parse_ipv4(a.frame).has_value());
      break;
    case FrameAction::Kind::None:
    case FrameAction::Kind::Drop: WOWNET_FUZZ_CHECK(a.frame.empty() && a.more.empty()); break;
  }
}

}  // namespace wownet::fuzz
