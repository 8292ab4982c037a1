// Deterministic fuzzing of HostEngine::on_tap_frame and the parsers: valid
// frames of every kind, mutated (bit flips, truncation, extension, random
// fields) with a fixed seed. Run under ASan+UBSan in CI. Asserts that the
// engine never writes outside its spans, never answers with an oversized
// frame, never lets a frame through to another VM from a foreign source,
// and keeps counting.
#include <gtest/gtest.h>

#include <random>

#include "core/dhcp.h"
#include "core/host_engine.h"
#include "core/packet.h"
#include "host_engine_fixture.h"  // addresses and MACs

namespace wownet {
namespace {

using namespace wownet::test;
using engine_test::kGw, engine_test::kGwMac, engine_test::kMac1, engine_test::kMac2, engine_test::T0;

std::vector<Bytes> seeds(Ipv4Addr a1, Ipv4Addr a2) {
  Bytes dns_q = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 1, 'x', 3, 'w', 'o', 'w', 0, 0, 1, 0, 1};
  return {
      ethernet(MacAddr::broadcast(), kMac1, 0x0800,
               ipv4(Ipv4Addr{}, Ipv4Addr{0xffffffff}, 17, udp(68, 67, dhcp(1, 1, kMac1, Ipv4Addr{}, true)))),
      ethernet(MacAddr::broadcast(), kMac1, 0x0800,
               ipv4(Ipv4Addr{}, Ipv4Addr{0xffffffff}, 17,
                    udp(68, 67, dhcp(3, 2, kMac1, Ipv4Addr{}, true, cat({opt_addr(50, a1), opt_addr(54, kGw)}))))),
      ethernet(MacAddr::broadcast(), kMac1, 0x0806, arp(1, kMac1, a1, MacAddr{}, a2)),
      ethernet(kGwMac, kMac1, 0x0800, ipv4(a1, a2, 1, icmp_echo(1, 2, Bytes(32, 7)))),
      ethernet(kGwMac, kMac1, 0x0800, ipv4(a1, kGw, 1, icmp_echo(1, 2, Bytes(32, 7)))),
      ethernet(kGwMac, kMac1, 0x0800, ipv4(a1, kGw, 17, udp(5000, 53, dns_q))),
      ethernet(kGwMac, kMac1, 0x0800, ipv4(a1, a2, 6, Bytes(40, 0))),
  };
}

TEST(EngineFuzzTest, MutatedFramesAreHandledSafely) {
  NetworkConfig cfg;
  HostEngine engine(cfg);
  engine.add_attachment(1, "vm1", kMac1, T0);
  engine.add_attachment(2, "vm2", kMac2, T0);
  engine.leases().put(Ipv4Addr::from_octets(10, 128, 0, 2), kMac1, "vm1", "", T0 + 3600, LeaseState::Bound,
                      LeaseOrigin::Dhcp);
  engine.leases().put(Ipv4Addr::from_octets(10, 128, 0, 3), kMac2, "vm2", "b", T0 + 3600, LeaseState::Bound,
                      LeaseOrigin::Dhcp);
  engine.remove_attachment(1);
  engine.add_attachment(1, "vm1", kMac1, T0);
  engine.remove_attachment(2);
  engine.add_attachment(2, "vm2", kMac2, T0);
  auto base = seeds(Ipv4Addr::from_octets(10, 128, 0, 2), Ipv4Addr::from_octets(10, 128, 0, 3));

  std::mt19937 rng(20261123);
  std::uint64_t written = 0;
  for (int iter = 0; iter < 60000; ++iter) {
    Bytes f = base[rng() % base.size()];
    switch (rng() % 5) {
      case 0:  // bit flips
        for (int k = 0, n = 1 + int(rng() % 8); k < n; ++k) f[rng() % f.size()] ^= std::uint8_t(1u << (rng() % 8));
        break;
      case 1:  // truncate
        f.resize(rng() % (f.size() + 1));
        break;
      case 2:  // extend with noise
        for (int k = 0, n = int(rng() % 64); k < n; ++k) f.push_back(std::uint8_t(rng()));
        break;
      case 3:  // random byte values at random places
        for (int k = 0, n = 1 + int(rng() % 16); k < n; ++k) f[rng() % f.size()] = std::uint8_t(rng());
        break;
      default:  // pure noise
        f.assign(rng() % 600, 0);
        for (auto& b : f) b = std::uint8_t(rng());
    }
    AttachmentId from = 1 + rng() % 3;  // 3 does not exist
    Bytes buf = f;
    FrameAction a = engine.on_tap_frame(T0 + iter / 100, from, ByteSpan(buf.data(), buf.size()), rng() % 4 == 0);
    if (a.kind == FrameAction::Kind::WriteToTap) {
      ++written;
      ASSERT_LE(a.frame.size(), 2048u + f.size());
      ASSERT_GE(a.frame.size(), kEthernetHeaderSize);
      if (a.to != from) {
        // Switched to the other VM: must carry the sender's own bound address.
        auto eth = parse_ethernet(a.frame);
        ASSERT_TRUE(eth);
        auto ip = parse_ipv4(eth->payload);
        ASSERT_TRUE(ip);
        ASSERT_EQ(ip->src, *engine.attachment(from)->ip);
      }
    }
    if (iter % 5000 == 0) engine.on_timer(T0 + iter / 100);
    // Random parsers on their own, too.
    (void)parse_dhcp(ConstByteSpan(f.data(), f.size()));
    (void)parse_arp(ConstByteSpan(f.data(), f.size()));
    if (auto ip = parse_ipv4(ConstByteSpan(f.data(), f.size()))) (void)parse_udp(*ip);
  }
  EXPECT_GT(written, 0u);  // the mutations kept some frames valid
  EXPECT_GT(engine.counters().drops[std::size_t(DropReason::Malformed)], 0u);
  EXPECT_GT(engine.counters().drops[std::size_t(DropReason::UnknownAttachment)], 0u);
  // The bound addresses survived the storm.
  EXPECT_EQ(engine.attachment(2)->ip, Ipv4Addr::from_octets(10, 128, 0, 3));
}

}  // namespace
}  // namespace wownet
