// HostEngine: DHCP, ARP, ICMP, policing, learning and switching, fed with
// hand-built frames at literal times.
#include "core/host_engine.h"

#include <gtest/gtest.h>

#include <map>

#include "test_frames.h"

namespace wownet {
namespace {

using namespace wownet::test;

constexpr UnixTime T0 = 1'700'000'000;
const MacAddr kGwMac{{0x02, 0x77, 0x6e, 0x00, 0x00, 0x01}};
const MacAddr kMac1{{0x52, 0x54, 0x00, 0x00, 0x00, 0x01}};
const MacAddr kMac2{{0x52, 0x54, 0x00, 0x00, 0x00, 0x02}};
const MacAddr kBcast = MacAddr::broadcast();
const Ipv4Addr kGw = Ipv4Addr::from_octets(10, 128, 0, 1);
const Ipv4Addr kAny{0};
const Ipv4Addr kAll{0xffffffff};
Ipv4Addr ip(int a, int b, int c, int d) {
  return Ipv4Addr::from_octets(std::uint8_t(a), std::uint8_t(b), std::uint8_t(c), std::uint8_t(d));
}

// The options of a DHCP reply frame, by code.
std::map<int, Bytes> reply_options(const Bytes& f) {
  std::map<int, Bytes> out;
  std::size_t i = 42 + 240;
  while (i < f.size() && f[i] != 255) {
    if (f[i] == 0) {
      ++i;
      continue;
    }
    int code = f[i];
    std::size_t len = f[i + 1];
    out[code] = Bytes(f.begin() + long(i + 2), f.begin() + long(i + 2 + len));
    i += 2 + len;
  }
  return out;
}

Bytes addr_bytes(Ipv4Addr a) {
  Bytes b;
  put(b, a);
  return b;
}

class HostEngineTest : public ::testing::Test {
 protected:
  HostEngineTest() : engine_(make_config()) {
    engine_.add_attachment(1, "vm1", std::nullopt, T0);
    engine_.add_attachment(2, "vm2", std::nullopt, T0);
  }
  static NetworkConfig make_config() {
    NetworkConfig c;
    c.lease_time = 3600;
    return c;
  }

  FrameAction send(AttachmentId from, Bytes frame, UnixTime now = T0) {
    buffer_ = std::move(frame);
    return engine_.on_tap_frame(now, from, ByteSpan(buffer_.data(), buffer_.size()));
  }
  static Bytes out(const FrameAction& a) { return Bytes(a.frame.begin(), a.frame.end()); }

  Bytes dhcp_frame(MacAddr mac, std::uint8_t type, Ipv4Addr src, Ipv4Addr dst, Ipv4Addr ciaddr, bool bcast,
                   const Bytes& opts = {}) {
    return ethernet(dst == kAll ? kBcast : kGwMac, mac, 0x0800,
                    ipv4(src, dst, 17, udp(68, 67, dhcp(type, 0xabcd0001, mac, ciaddr, bcast, opts))));
  }

  // Runs DISCOVER/OFFER/REQUEST/ACK for `mac` on attachment `att`; returns the address.
  Ipv4Addr lease(AttachmentId att, MacAddr mac, UnixTime now = T0) {
    auto offer = send(att, dhcp_frame(mac, 1, kAny, kAll, kAny, true), now);
    EXPECT_EQ(offer.kind, FrameAction::Kind::WriteToTap);
    if (offer.kind != FrameAction::Kind::WriteToTap) return Ipv4Addr{};
    Ipv4Addr yi = Ipv4Addr::from(out(offer).data() + 42 + 16);
    auto ack = send(att, dhcp_frame(mac, 3, kAny, kAll, kAny, true, cat({opt_addr(50, yi), opt_addr(54, kGw)})), now);
    EXPECT_EQ(ack.kind, FrameAction::Kind::WriteToTap);
    EXPECT_EQ(reply_options(out(ack))[53], Bytes{5});
    return yi;
  }

  HostEngine engine_;
  Bytes buffer_;
};

TEST_F(HostEngineTest, DiscoverGetsOfferWithEveryOption) {
  auto a = send(1, dhcp_frame(kMac1, 1, kAny, kAll, kAny, true));
  ASSERT_EQ(a.kind, FrameAction::Kind::WriteToTap);
  EXPECT_EQ(a.to, 1u);
  Bytes f = out(a);
  ASSERT_GE(f.size(), 42u + 300u);  // BOOTP minimum payload
  // Ethernet: broadcast, from the gateway MAC.
  EXPECT_EQ(Bytes(f.begin(), f.begin() + 14),
            cat({Bytes(6, 0xff), Bytes{0x02, 0x77, 0x6e, 0x00, 0x00, 0x01}, Bytes{0x08, 0x00}}));
  // IPv4 10.128.0.1 -> 255.255.255.255, UDP 67 -> 68.
  EXPECT_EQ(Bytes(f.begin() + 26, f.begin() + 38), (Bytes{10, 128, 0, 1, 255, 255, 255, 255, 0, 67, 0, 68}));
  EXPECT_EQ(f[42], 2);                                                                // BOOTREPLY
  EXPECT_EQ(Bytes(f.begin() + 46, f.begin() + 50), (Bytes{0xab, 0xcd, 0x00, 0x01}));  // xid
  EXPECT_EQ(Bytes(f.begin() + 58, f.begin() + 62), (Bytes{10, 128, 0, 2}));           // yiaddr
  EXPECT_EQ(Bytes(f.begin() + 70, f.begin() + 76), Bytes(kMac1.bytes.begin(), kMac1.bytes.end()));
  auto o = reply_options(f);
  EXPECT_EQ(o[53], Bytes{2});
  EXPECT_EQ(o[54], (Bytes{10, 128, 0, 1}));
  EXPECT_EQ(o[51], (Bytes{0, 0, 0x0e, 0x10}));  // 3600
  EXPECT_EQ(o[58], (Bytes{0, 0, 0x07, 0x08}));  // 1800
  EXPECT_EQ(o[59], (Bytes{0, 0, 0x0c, 0x4e}));  // 3150
  EXPECT_EQ(o[1], (Bytes{255, 128, 0, 0}));
  EXPECT_EQ(o[28], (Bytes{10, 255, 255, 255}));
  EXPECT_EQ(o[3], (Bytes{10, 128, 0, 1}));
  EXPECT_EQ(o[6], (Bytes{10, 128, 0, 1}));
  EXPECT_EQ(o[15], (Bytes{'w', 'o', 'w'}));
  EXPECT_EQ(o[26], (Bytes{0x05, 0x78}));  // 1400
  EXPECT_EQ(o[12], (Bytes{'C', '1', '2', '8', '0', '0', '0', '0', '0', '2'}));
  // An offer is a reservation, not a lease.
  EXPECT_FALSE(engine_.leases().is_leased(ip(10, 128, 0, 2)));
}

TEST_F(HostEngineTest, OfferWithoutBroadcastFlagIsUnicastToClientHardwareAddress) {
  Bytes f = out(send(1, dhcp_frame(kMac1, 1, kAny, kAll, kAny, false)));
  EXPECT_EQ(Bytes(f.begin(), f.begin() + 6), Bytes(kMac1.bytes.begin(), kMac1.bytes.end()));
  EXPECT_EQ(Bytes(f.begin() + 30, f.begin() + 34), (Bytes{10, 128, 0, 2}));
}

TEST_F(HostEngineTest, FullExchangeBindsDistinctAddresses) {
  EXPECT_EQ(lease(1, kMac1), ip(10, 128, 0, 2));
  EXPECT_EQ(lease(2, kMac2), ip(10, 128, 0, 3));
  EXPECT_EQ(engine_.attachment(1)->ip, ip(10, 128, 0, 2));
  EXPECT_EQ(engine_.attachment(2)->ip, ip(10, 128, 0, 3));
  const Lease* l = engine_.leases().find(ip(10, 128, 0, 2));
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->mac, kMac1);
  EXPECT_EQ(l->expiry, T0 + 3600);
  EXPECT_EQ(l->vm, "vm1");
}

TEST_F(HostEngineTest, HostNameOptionIsKeptSanitised) {
  send(1, dhcp_frame(kMac1, 1, kAny, kAll, kAny, true));
  auto ack =
      send(1, dhcp_frame(kMac1, 3, kAny, kAll, kAny, true,
                         cat({opt_addr(50, ip(10, 128, 0, 2)), opt_addr(54, kGw), opt_str(12, "Web_01.example")})));
  ASSERT_EQ(ack.kind, FrameAction::Kind::WriteToTap);
  EXPECT_EQ(engine_.leases().find(ip(10, 128, 0, 2))->host_name, "web01");
  EXPECT_EQ(reply_options(out(ack))[12], (Bytes{'w', 'e', 'b', '0', '1'}));
}

TEST_F(HostEngineTest, RequestForAnotherServerIsIgnored) {
  send(1, dhcp_frame(kMac1, 1, kAny, kAll, kAny, true));
  auto a = send(1, dhcp_frame(kMac1, 3, kAny, kAll, kAny, true,
                              cat({opt_addr(50, ip(10, 128, 0, 2)), opt_addr(54, ip(10, 9, 9, 9))})));
  EXPECT_EQ(a.kind, FrameAction::Kind::None);
  EXPECT_FALSE(engine_.attachment(1)->ip.has_value());
}

TEST_F(HostEngineTest, InitRebootForAnotherClientsAddressIsNakedByBroadcast) {
  lease(1, kMac1);
  auto a = send(2, dhcp_frame(kMac2, 3, kAny, kAll, kAny, false, opt_addr(50, ip(10, 128, 0, 2))));
  ASSERT_EQ(a.kind, FrameAction::Kind::WriteToTap);
  Bytes f = out(a);
  EXPECT_EQ(reply_options(f)[53], Bytes{6});
  EXPECT_EQ(Bytes(f.begin(), f.begin() + 6), Bytes(6, 0xff));
  EXPECT_EQ(Bytes(f.begin() + 58, f.begin() + 62), (Bytes{0, 0, 0, 0}));
  EXPECT_EQ(engine_.dhcp_counters().naks, 1u);
}

TEST_F(HostEngineTest, InitRebootOutsideTheNetworkIsNaked) {
  auto a = send(1, dhcp_frame(kMac1, 3, kAny, kAll, kAny, false, opt_addr(50, ip(192, 168, 1, 7))));
  EXPECT_EQ(reply_options(out(a))[53], Bytes{6});
}

TEST_F(HostEngineTest, RenewalIsUnicastToClientAndExtendsLease) {
  Ipv4Addr a1 = lease(1, kMac1);
  auto a = send(1, dhcp_frame(kMac1, 3, a1, kGw, a1, false), T0 + 1800);
  ASSERT_EQ(a.kind, FrameAction::Kind::WriteToTap);
  Bytes f = out(a);
  EXPECT_EQ(reply_options(f)[53], Bytes{5});
  EXPECT_EQ(Bytes(f.begin(), f.begin() + 6), Bytes(kMac1.bytes.begin(), kMac1.bytes.end()));
  EXPECT_EQ(Bytes(f.begin() + 30, f.begin() + 34), (Bytes{10, 128, 0, 2}));
  EXPECT_EQ(Bytes(f.begin() + 54, f.begin() + 58), (Bytes{10, 128, 0, 2}));  // ciaddr echoed
  EXPECT_EQ(engine_.leases().find(a1)->expiry, T0 + 1800 + 3600);
}

TEST_F(HostEngineTest, RebindingAfterHostdLostStateStillGetsTheAddress) {
  // A VM keeps using 10.128.0.9 and renews by broadcast (REBINDING) with
  // ciaddr set; nothing else holds the address, so it is granted.
  auto a = send(1, dhcp_frame(kMac1, 3, ip(10, 128, 0, 9), kAll, ip(10, 128, 0, 9), false));
  EXPECT_EQ(reply_options(out(a))[53], Bytes{5});
  EXPECT_EQ(engine_.attachment(1)->ip, ip(10, 128, 0, 9));
}

TEST_F(HostEngineTest, ReleasedAddressGoesBackToTheSameMacFirst) {
  Ipv4Addr a1 = lease(1, kMac1);
  send(1, dhcp_frame(kMac1, 7, a1, kGw, a1, false));
  EXPECT_FALSE(engine_.attachment(1)->ip.has_value());
  EXPECT_FALSE(engine_.leases().is_leased(a1));
  EXPECT_EQ(lease(2, kMac2), ip(10, 128, 0, 3));  // not the released one
  EXPECT_EQ(lease(1, kMac1), a1);
}

TEST_F(HostEngineTest, SameMacGetsItsAddressBackAfterExpiry) {
  Ipv4Addr a1 = lease(1, kMac1);
  engine_.on_timer(T0 + 4000);
  EXPECT_FALSE(engine_.attachment(1)->ip.has_value());
  EXPECT_EQ(lease(1, kMac1, T0 + 5000), a1);
}

TEST_F(HostEngineTest, DeclinedAddressIsNotOfferedAgain) {
  Ipv4Addr a1 = lease(1, kMac1);
  send(1, dhcp_frame(kMac1, 4, kAny, kAll, kAny, false, opt_addr(50, a1)));
  EXPECT_EQ(engine_.leases().find(a1)->state, LeaseState::Declined);
  Bytes f = out(send(1, dhcp_frame(kMac1, 1, kAny, kAll, kAny, true)));
  EXPECT_NE(Ipv4Addr::from(f.data() + 58), a1);
}

TEST_F(HostEngineTest, InformGetsConfigurationWithoutLease) {
  Ipv4Addr a1 = lease(1, kMac1);
  Bytes f = out(send(1, dhcp_frame(kMac1, 8, a1, kGw, a1, false)));
  auto o = reply_options(f);
  EXPECT_EQ(o[53], Bytes{5});
  EXPECT_EQ(o.count(51), 0u);
  EXPECT_EQ(o[3], (Bytes{10, 128, 0, 1}));
  EXPECT_EQ(Bytes(f.begin() + 58, f.begin() + 62), (Bytes{0, 0, 0, 0}));
  EXPECT_EQ(Bytes(f.begin() + 30, f.begin() + 34), (Bytes{10, 128, 0, 2}));
}

TEST_F(HostEngineTest, ClientHardwareAddressMustBeTheSender) {
  Bytes frame = ethernet(kBcast, kMac1, 0x0800, ipv4(kAny, kAll, 17, udp(68, 67, dhcp(1, 1, kMac2, kAny, true))));
  EXPECT_EQ(send(1, frame).kind, FrameAction::Kind::None);
  EXPECT_EQ(engine_.dhcp_counters().ignored, 1u);
}

TEST_F(HostEngineTest, DhcpServerMessagesFromVmsAreDropped) {
  Bytes offer = dhcp(2, 1, kMac2, kAny, true);
  offer[0] = 2;
  auto a = send(1, ethernet(kBcast, kMac1, 0x0800, ipv4(ip(10, 128, 0, 77), kAll, 17, udp(67, 68, offer))));
  EXPECT_EQ(a.kind, FrameAction::Kind::Drop);
  EXPECT_EQ(a.reason, DropReason::DhcpServerMessage);
  EXPECT_EQ(engine_.attachment(1)->counters.drops[std::size_t(DropReason::DhcpServerMessage)], 1u);
}

TEST_F(HostEngineTest, ArpForGatewayIsAnsweredByteForByte) {
  Ipv4Addr a1 = lease(1, kMac1);
  auto a = send(1, ethernet(kBcast, kMac1, 0x0806, arp(1, kMac1, a1, MacAddr{}, kGw)));
  ASSERT_EQ(a.kind, FrameAction::Kind::WriteToTap);
  Bytes expected = cat({Bytes(kMac1.bytes.begin(), kMac1.bytes.end()), Bytes{0x02, 0x77, 0x6e, 0, 0, 1},
                        Bytes{0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2}, Bytes{0x02, 0x77, 0x6e, 0, 0, 1},
                        Bytes{10, 128, 0, 1}, Bytes(kMac1.bytes.begin(), kMac1.bytes.end()), Bytes{10, 128, 0, 2}});
  EXPECT_EQ(out(a), expected);
}

TEST_F(HostEngineTest, ArpForLeasedAddressGetsGatewayMacAndUnleasedGetsSilence) {
  Ipv4Addr a1 = lease(1, kMac1);
  Ipv4Addr a2 = lease(2, kMac2);
  Bytes f = out(send(1, ethernet(kBcast, kMac1, 0x0806, arp(1, kMac1, a1, MacAddr{}, a2))));
  ASSERT_EQ(f.size(), 42u);
  EXPECT_EQ(Bytes(f.begin() + 22, f.begin() + 32), cat({Bytes{0x02, 0x77, 0x6e, 0, 0, 1}, addr_bytes(a2)}));
  auto none = send(1, ethernet(kBcast, kMac1, 0x0806, arp(1, kMac1, a1, MacAddr{}, ip(10, 128, 0, 99))));
  EXPECT_EQ(none.kind, FrameAction::Kind::None);
  auto outside = send(1, ethernet(kBcast, kMac1, 0x0806, arp(1, kMac1, a1, MacAddr{}, ip(192, 168, 0, 1))));
  EXPECT_EQ(outside.kind, FrameAction::Kind::None);
}

TEST_F(HostEngineTest, DuplicateAddressProbesAndAnnouncementsGetNoAnswer) {
  Ipv4Addr a2 = lease(2, kMac2);
  // RFC 5227 probe: sender 0.0.0.0, for an address that is leased.
  EXPECT_EQ(send(1, ethernet(kBcast, kMac1, 0x0806, arp(1, kMac1, kAny, MacAddr{}, a2))).kind, FrameAction::Kind::None);
  // Announcement: sender == target.
  EXPECT_EQ(send(2, ethernet(kBcast, kMac2, 0x0806, arp(1, kMac2, a2, MacAddr{}, a2))).kind, FrameAction::Kind::None);
}

TEST_F(HostEngineTest, EchoToGatewayIsAnswered) {
  Ipv4Addr a1 = lease(1, kMac1);
  Bytes req = icmp_echo(0x4242, 7, Bytes{'p', 'i', 'n', 'g'});
  auto a = send(1, ethernet(kGwMac, kMac1, 0x0800, ipv4(a1, kGw, 1, req)));
  ASSERT_EQ(a.kind, FrameAction::Kind::WriteToTap);
  Bytes f = out(a);
  ASSERT_EQ(f.size(), 14u + 20 + 12);
  EXPECT_EQ(Bytes(f.begin() + 26, f.begin() + 34), cat({Bytes{10, 128, 0, 1}, addr_bytes(a1)}));
  EXPECT_EQ(f[34], 0);                     // echo reply
  EXPECT_EQ(sum16(f.data() + 34, 12), 0);  // valid ICMP checksum
  EXPECT_EQ(sum16(f.data() + 14, 20), 0);  // valid IP header checksum
  EXPECT_EQ(Bytes(f.begin() + 38, f.end()), (Bytes{0x42, 0x42, 0, 7, 'p', 'i', 'n', 'g'}));
}

TEST_F(HostEngineTest, TrafficBetweenVmsIsSwitchedWithRewrittenMacs) {
  Ipv4Addr a1 = lease(1, kMac1);
  Ipv4Addr a2 = lease(2, kMac2);
  Bytes payload = icmp_echo(1, 1, Bytes(56, 0xa5));
  Bytes packet = ipv4(a1, a2, 1, payload);
  auto a = send(1, ethernet(kGwMac, kMac1, 0x0800, packet));
  ASSERT_EQ(a.kind, FrameAction::Kind::WriteToTap);
  EXPECT_EQ(a.to, 2u);
  EXPECT_EQ(out(a), ethernet(kMac2, kGwMac, 0x0800, packet));
  EXPECT_EQ(engine_.counters().forwarded, 1u);
}

TEST_F(HostEngineTest, SpoofedSourcesAreDroppedAndCounted) {
  Ipv4Addr a1 = lease(1, kMac1);
  Ipv4Addr a2 = lease(2, kMac2);
  Bytes ping = icmp_echo(1, 1, {});
  // Another VM's address.
  EXPECT_EQ(send(1, ethernet(kGwMac, kMac1, 0x0800, ipv4(a2, a2, 1, ping))).reason, DropReason::SpoofedIp);
  // A free overlay address while bound to another one.
  EXPECT_EQ(send(1, ethernet(kGwMac, kMac1, 0x0800, ipv4(ip(10, 128, 0, 50), a2, 1, ping))).reason,
            DropReason::SpoofedIp);
  // A second MAC on the same VIF.
  EXPECT_EQ(send(1, ethernet(kGwMac, kMac2, 0x0800, ipv4(a1, a2, 1, ping))).reason, DropReason::SpoofedMac);
  // ARP claiming another VM's address.
  EXPECT_EQ(send(1, ethernet(kBcast, kMac1, 0x0806, arp(2, kMac1, a2, kMac2, a2))).reason, DropReason::SpoofedIp);
  const auto& c = engine_.attachment(1)->counters;
  EXPECT_EQ(c.drops[std::size_t(DropReason::SpoofedIp)], 3u);
  EXPECT_EQ(c.drops[std::size_t(DropReason::SpoofedMac)], 1u);
  EXPECT_EQ(c.total_drops(), 4u);
}

TEST_F(HostEngineTest, EverythingOutsideTheOverlayIsDropped) {
  Ipv4Addr a1 = lease(1, kMac1);
  Bytes ping = icmp_echo(1, 1, {});
  EXPECT_EQ(send(1, ethernet(kGwMac, kMac1, 0x0800, ipv4(a1, ip(8, 8, 8, 8), 1, ping))).reason,
            DropReason::OutsideOverlay);
  EXPECT_EQ(send(1, ethernet(kGwMac, kMac1, 0x0800, ipv4(a1, ip(192, 168, 1, 1), 1, ping))).reason,
            DropReason::OutsideOverlay);
  EXPECT_EQ(send(1, ethernet(kGwMac, kMac1, 0x0800, ipv4(a1, ip(10, 255, 255, 255), 1, ping))).reason,
            DropReason::OutsideOverlay);
  EXPECT_EQ(send(1, ethernet(MacAddr{{1, 0, 0x5e, 0, 0, 0xfb}}, kMac1, 0x0800,
                             ipv4(a1, ip(224, 0, 0, 251), 17, udp(5353, 5353, {}))))
                .reason,
            DropReason::OutsideOverlay);
  EXPECT_EQ(send(1, ethernet(kGwMac, kMac1, 0x86dd, Bytes(40, 0))).reason, DropReason::Ethertype);
  EXPECT_EQ(send(1, ethernet(kGwMac, kMac1, 0x8100, Bytes(46, 0))).reason, DropReason::Ethertype);
  EXPECT_EQ(send(1, ethernet(kGwMac, kMac1, 0x0800, ipv4(a1, ip(10, 128, 0, 77), 1, ping))).reason,
            DropReason::NoRoute);
  EXPECT_EQ(send(1, ethernet(kGwMac, kMac1, 0x0800, ipv4(a1, kGw, 47, Bytes(20, 0)))).reason,
            DropReason::GatewayService);
  // TCP to the gateway is DNS over TCP or a RST (tests/core/dns_tcp_test.cpp); a bad checksum is malformed.
  EXPECT_EQ(send(1, ethernet(kGwMac, kMac1, 0x0800, ipv4(a1, kGw, 6, Bytes(20, 0)))).reason, DropReason::Malformed);
}

TEST_F(HostEngineTest, StaticallyConfiguredVmIsLearnedOnce) {
  Ipv4Addr st = ip(10, 128, 0, 50);
  auto a = send(1, ethernet(kBcast, kMac1, 0x0806, arp(1, kMac1, st, MacAddr{}, kGw)));
  EXPECT_EQ(a.kind, FrameAction::Kind::WriteToTap);
  EXPECT_EQ(engine_.attachment(1)->ip, st);
  const Lease* l = engine_.leases().find(st);
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->origin, LeaseOrigin::Learned);
  EXPECT_EQ(engine_.counters().learned, 1u);
  // The address is now taken: another VM claiming it is refused.
  EXPECT_EQ(send(2, ethernet(kBcast, kMac2, 0x0806, arp(1, kMac2, st, MacAddr{}, kGw))).reason, DropReason::SpoofedIp);
  // And DHCP will not hand it out.
  EXPECT_NE(lease(2, kMac2), st);
}

TEST_F(HostEngineTest, LearningCanBeTurnedOff) {
  NetworkConfig c;
  c.learn_static = false;
  HostEngine e(c);
  e.add_attachment(1, "vm1", std::nullopt, T0);
  Bytes f = ethernet(kBcast, kMac1, 0x0806, arp(1, kMac1, ip(10, 128, 0, 50), MacAddr{}, kGw));
  EXPECT_EQ(e.on_tap_frame(T0, 1, ByteSpan(f.data(), f.size())).reason, DropReason::SpoofedIp);
  EXPECT_FALSE(e.attachment(1)->ip.has_value());
}

TEST_F(HostEngineTest, GatewayAndNetworkAddressesAreNeverLearned) {
  EXPECT_EQ(send(1, ethernet(kBcast, kMac1, 0x0806, arp(1, kMac1, kGw, MacAddr{}, kGw))).reason, DropReason::SpoofedIp);
  EXPECT_EQ(send(1, ethernet(kBcast, kMac1, 0x0806, arp(1, kMac1, ip(10, 128, 0, 0), MacAddr{}, kGw))).reason,
            DropReason::SpoofedIp);
}

TEST_F(HostEngineTest, RestoredAttachmentGetsItsBindingBack) {
  Ipv4Addr a1 = lease(1, kMac1);
  auto saved = engine_.leases().snapshot();
  HostEngine fresh(make_config());
  fresh.leases().restore(saved);
  fresh.add_attachment(1, "vm1", kMac1, T0 + 10);
  EXPECT_EQ(fresh.attachment(1)->ip, a1);
  fresh.add_attachment(2, "vm2", std::nullopt, T0 + 10);
  Bytes f = ethernet(kGwMac, kMac2, 0x0800, ipv4(a1, kGw, 1, icmp_echo(1, 1, {})));
  EXPECT_EQ(fresh.on_tap_frame(T0 + 10, 2, ByteSpan(f.data(), f.size())).reason, DropReason::SpoofedIp);
}

TEST_F(HostEngineTest, DnsQueryToGatewayGetsUdpAnswerFromPort53) {
  Ipv4Addr a1 = lease(1, kMac1);
  Bytes q = {0x12, 0x34, 0x01, 0x00, 0,   1,   0,   0, 0,   0,   0,   0, 10, 'C', '1', '2',
             '8',  '0',  '0',  '0',  '0', '0', '2', 3, 'w', 'o', 'w', 0, 0,  1,   0,   1};
  auto a = send(1, ethernet(kGwMac, kMac1, 0x0800, ipv4(a1, kGw, 17, udp(40000, 53, q))));
  ASSERT_EQ(a.kind, FrameAction::Kind::WriteToTap);
  Bytes f = out(a);
  EXPECT_EQ(Bytes(f.begin() + 26, f.begin() + 38),
            cat({Bytes{10, 128, 0, 1}, addr_bytes(a1), Bytes{0, 53, 0x9c, 0x40}}));
  EXPECT_EQ(f[42], 0x12);
  EXPECT_EQ(f[43], 0x34);
  EXPECT_EQ(f[45] & 0x0f, 0);  // NOERROR
  EXPECT_EQ(Bytes(f.end() - 4, f.end()), (Bytes{10, 128, 0, 2}));
}

TEST_F(HostEngineTest, TruncatedFramesNeverCrashAndAreCounted) {
  Bytes full = dhcp_frame(kMac1, 1, kAny, kAll, kAny, true);
  for (std::size_t n = 0; n < full.size(); ++n) {
    Bytes cut(full.begin(), full.begin() + long(n));
    auto a = send(1, cut);
    EXPECT_NE(a.kind, FrameAction::Kind::WriteToTap) << n;
  }
  EXPECT_GT(engine_.attachment(1)->counters.drops[std::size_t(DropReason::Malformed)], 0u);
}

TEST_F(HostEngineTest, UnknownAttachmentIsDropped) {
  EXPECT_EQ(send(9, dhcp_frame(kMac1, 1, kAny, kAll, kAny, true)).reason, DropReason::UnknownAttachment);
}

TEST(LeaseTableTest, ChooseSkipsGatewayAndHonoursRequestedAddress) {
  LeaseTable t(*Ipv4Prefix::parse("10.128.0.0/9"), kGw);
  EXPECT_EQ(t.choose(kMac1, std::nullopt, T0), ip(10, 128, 0, 2));
  EXPECT_EQ(t.choose(kMac1, ip(10, 128, 5, 5), T0), ip(10, 128, 5, 5));
  EXPECT_EQ(t.choose(kMac1, kGw, T0), ip(10, 128, 0, 2));
  EXPECT_EQ(t.choose(kMac1, ip(10, 0, 0, 5), T0), ip(10, 128, 0, 2));
}

TEST(LeaseTableTest, SmallPoolExhaustsAndReusesLongestExpired) {
  LeaseTable t(*Ipv4Prefix::parse("10.0.0.0/30"), ip(10, 0, 0, 1));  // one usable address: .2
  EXPECT_EQ(t.choose(kMac1, std::nullopt, T0), ip(10, 0, 0, 2));
  t.put(ip(10, 0, 0, 2), kMac1, "vm1", "", T0 + 100, LeaseState::Bound, LeaseOrigin::Dhcp);
  EXPECT_EQ(t.choose(kMac2, std::nullopt, T0), std::nullopt);
  EXPECT_EQ(t.choose(kMac2, std::nullopt, T0 + 200), ip(10, 0, 0, 2));
}

TEST(LeaseTableTest, HostNameLookupIgnoresExpiredLeases) {
  LeaseTable t(*Ipv4Prefix::parse("10.128.0.0/9"), kGw);
  t.put(ip(10, 128, 0, 2), kMac1, "vm1", "web", T0 + 100, LeaseState::Bound, LeaseOrigin::Dhcp);
  t.set_now(T0);
  EXPECT_EQ(t.find_host_name("web"), ip(10, 128, 0, 2));
  t.set_now(T0 + 100);
  EXPECT_EQ(t.find_host_name("web"), std::nullopt);
  EXPECT_FALSE(t.is_leased(ip(10, 128, 0, 2)));
}

TEST(HostNameTest, SanitiseKeepsOneLowercaseLabel) {
  EXPECT_EQ(sanitize_host_name("Web-01.example.com"), "web-01");
  EXPECT_EQ(sanitize_host_name("-x_y-"), "xy");
  EXPECT_EQ(sanitize_host_name(""), "");
  EXPECT_EQ(sanitize_host_name(std::string(100, 'a')).size(), 63u);
}

TEST(TypesTest, ParseAndPrintAddresses) {
  EXPECT_EQ(Ipv4Addr::parse("10.128.0.5"), ip(10, 128, 0, 5));
  EXPECT_EQ(Ipv4Addr::parse("10.128.0"), std::nullopt);
  EXPECT_EQ(Ipv4Addr::parse("10.128.0.256"), std::nullopt);
  EXPECT_EQ(Ipv4Addr::parse("10.128.0.5.1"), std::nullopt);
  EXPECT_EQ(ip(10, 128, 0, 5).to_string(), "10.128.0.5");
  EXPECT_EQ(MacAddr::parse("52:54:00:00:00:01"), kMac1);
  EXPECT_EQ(MacAddr::parse("52:54:00:00:00"), std::nullopt);
  EXPECT_EQ(kMac1.to_string(), "52:54:00:00:00:01");
  auto p = Ipv4Prefix::parse("10.128.0.0/9");
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->is_host(ip(10, 255, 255, 254)));
  EXPECT_FALSE(p->is_host(ip(10, 255, 255, 255)));
  EXPECT_FALSE(p->contains(ip(10, 127, 0, 1)));
  EXPECT_EQ(Ipv4Prefix::parse("10.128.0.1/9"), std::nullopt);
}

}  // namespace
}  // namespace wownet

namespace wownet {
namespace {
TEST(HostMacsTest, HostDeviceFramesNeverBecomeTheVm) {
  using namespace wownet::test;
  HostEngine e{NetworkConfig{}};
  e.add_attachment(1, "vm1", std::nullopt, T0);
  e.set_host_macs(1, {kMac2});
  // The bridge's IGMP join, sent before the VM says anything.
  Bytes igmp =
      ethernet(MacAddr{{1, 0, 0x5e, 0, 0, 0x16}}, kMac2, 0x0800, ipv4(kAny, ip(224, 0, 0, 22), 2, Bytes(16, 0)));
  EXPECT_EQ(e.on_tap_frame(T0, 1, ByteSpan(igmp.data(), igmp.size())).reason, DropReason::HostOriginated);
  EXPECT_FALSE(e.attachment(1)->mac.has_value());
  Bytes arp_req = ethernet(kBcast, kMac1, 0x0806, arp(1, kMac1, kAny, MacAddr{}, kGw));
  e.on_tap_frame(T0, 1, ByteSpan(arp_req.data(), arp_req.size()));
  EXPECT_EQ(e.attachment(1)->mac, kMac1);
}
}  // namespace
}  // namespace wownet

namespace wownet {
namespace {
TEST_F(HostEngineTest, PartialUdpChecksumFromOffloadIsOnlyAcceptedWhenFlagged) {
  Ipv4Addr a1 = lease(1, kMac1);
  Bytes q = {0x12, 0x34, 0x01, 0x00, 0,   1, 0,   0,   0,   0, 0, 0, 7, 'g', 'a',
             't',  'e',  'w',  'a',  'y', 3, 'w', 'o', 'w', 0, 0, 1, 0, 1};
  Bytes frame = ethernet(kGwMac, kMac1, 0x0800, ipv4(a1, kGw, 17, udp(40000, 53, q)));
  // What a NIC with checksum offload leaves behind: only the pseudo-header sum.
  frame[14 + 20 + 6] = 0x12;
  frame[14 + 20 + 7] = 0x34;
  EXPECT_EQ(send(1, frame).reason, DropReason::Malformed);
  buffer_ = frame;
  auto a = engine_.on_tap_frame(T0, 1, ByteSpan(buffer_.data(), buffer_.size()), /*checksum_partial=*/true);
  EXPECT_EQ(a.kind, FrameAction::Kind::WriteToTap);
}
}  // namespace
}  // namespace wownet

// Regression tests for abuse a VM could try.
namespace wownet {
namespace {
const MacAddr kMac3{{0x52, 0x54, 0x00, 0x00, 0x00, 0x03}};

TEST_F(HostEngineTest, AVmCannotTakeAnotherVmsMacAndWithItsAddress) {
  Ipv4Addr a1 = lease(1, kMac1);
  Ipv4Addr a2 = lease(2, kMac2);
  engine_.add_attachment(3, "vm3", std::nullopt, T0);
  auto a = send(3, ethernet(MacAddr::broadcast(), kMac1, 0x0806, arp(1, kMac1, a1, MacAddr{}, a2)));
  EXPECT_EQ(a.reason, DropReason::SpoofedMac);
  EXPECT_FALSE(engine_.attachment(3)->mac.has_value());
  // vm2's traffic to vm1 still reaches vm1.
  auto f = send(2, ethernet(kGwMac, kMac2, 0x0800, ipv4(a2, a1, 1, icmp_echo(1, 1, {}))));
  EXPECT_EQ(f.to, 1u);
}

TEST_F(HostEngineTest, DeclinesCannotDrainThePool) {
  int declined = 0;
  for (int i = 0; i < 10; ++i) {
    Bytes f = out(send(1, dhcp_frame(kMac1, 1, kAny, kAll, kAny, true), T0 + i));
    Ipv4Addr offered = Ipv4Addr::from(f.data() + 58);
    send(1, dhcp_frame(kMac1, 4, kAny, kAll, kAny, false, opt_addr(50, offered)), T0 + i);
    if (engine_.leases().find(offered)->state == LeaseState::Declined) ++declined;
  }
  EXPECT_EQ(declined, 1);
  // Declining an address the client was never given does nothing.
  send(2, dhcp_frame(kMac2, 4, kAny, kAll, kAny, false, opt_addr(50, ip(10, 128, 0, 40))));
  EXPECT_EQ(engine_.leases().find(ip(10, 128, 0, 40)), nullptr);
}

TEST_F(HostEngineTest, TheFirstVmToClaimAHostNameKeepsIt) {
  send(1, dhcp_frame(kMac1, 1, kAny, kAll, kAny, true));
  send(1, dhcp_frame(kMac1, 3, kAny, kAll, kAny, true,
                     cat({opt_addr(50, ip(10, 128, 0, 2)), opt_addr(54, kGw), opt_str(12, "db")})));
  send(2, dhcp_frame(kMac2, 1, kAny, kAll, kAny, true));
  send(2, dhcp_frame(kMac2, 3, kAny, kAll, kAny, true,
                     cat({opt_addr(50, ip(10, 128, 0, 3)), opt_addr(54, kGw), opt_str(12, "DB")})));
  EXPECT_EQ(engine_.leases().find(ip(10, 128, 0, 3))->host_name, "");
  engine_.leases().set_now(T0);
  EXPECT_EQ(engine_.leases().find_host_name("db"), ip(10, 128, 0, 2));
  // The agent cannot take it either, nor reserved or automatic-looking names.
  engine_.on_agent_host_name(T0, 2, "db");
  engine_.on_agent_host_name(T0, 2, "gateway");
  engine_.on_agent_host_name(T0, 2, "C128000002");
  EXPECT_EQ(engine_.leases().find(ip(10, 128, 0, 3))->host_name, "");
  engine_.on_agent_host_name(T0, 2, "bravo");
  EXPECT_EQ(engine_.leases().find(ip(10, 128, 0, 3))->host_name, "bravo");
}

TEST_F(HostEngineTest, RenewalsDoNotForceASynchronousSave) {
  Ipv4Addr a1 = lease(1, kMac1);
  std::uint64_t v = engine_.state_version(), e = engine_.expiry_version();
  send(1, dhcp_frame(kMac1, 3, a1, kGw, a1, false), T0 + 100);
  EXPECT_EQ(engine_.state_version(), v);
  EXPECT_GT(engine_.expiry_version(), e);
  EXPECT_EQ(engine_.leases().find(a1)->expiry, T0 + 100 + 3600);
}

TEST_F(HostEngineTest, DhcpFloodsAreRateLimitedPerVm) {
  int limited = 0;
  for (int i = 0; i < 30; ++i) {
    if (send(1, dhcp_frame(kMac1, 1, kAny, kAll, kAny, true)).reason == DropReason::RateLimited) ++limited;
  }
  EXPECT_EQ(limited, 30 - int(kDhcpMessagesPerSecond));
  // The next second the VM is served again, and other VMs never noticed.
  EXPECT_EQ(send(1, dhcp_frame(kMac1, 1, kAny, kAll, kAny, true), T0 + 1).kind, FrameAction::Kind::WriteToTap);
  EXPECT_EQ(send(2, dhcp_frame(kMac2, 1, kAny, kAll, kAny, true)).kind, FrameAction::Kind::WriteToTap);
}

TEST(DhcpLongNamesTest, ReplyDropsTheHostNameRatherThanNothing) {
  NetworkConfig c;
  // 199 characters: with a 63-character host name, more than 576 bytes.
  c.domain =
      std::string(49, 'a') + "." + std::string(49, 'b') + "." + std::string(49, 'c') + "." + std::string(49, 'd');
  HostEngine e(c);
  e.add_attachment(1, "vm1", std::nullopt, T0);
  Bytes f = wownet::test::ethernet(
      MacAddr::broadcast(), kMac1, 0x0800,
      wownet::test::ipv4(
          kAny, kAll, 17,
          wownet::test::udp(
              68, 67, wownet::test::dhcp(1, 9, kMac1, kAny, true, wownet::test::opt_str(12, std::string(63, 'h'))))));
  auto a = e.on_tap_frame(T0, 1, ByteSpan(f.data(), f.size()));
  ASSERT_EQ(a.kind, FrameAction::Kind::WriteToTap);
  Bytes r(a.frame.begin(), a.frame.end());
  auto o = reply_options(r);
  EXPECT_EQ(o[53], Bytes{2});
  EXPECT_EQ(o.count(12), 0u);
  EXPECT_EQ(o[15].size(), c.domain.size());
}
}  // namespace
}  // namespace wownet

// Traffic to and from VMs on other nodes.
namespace wownet {
namespace {
const MacAddr kRemoteMac{{0x52, 0x54, 0x00, 0x00, 0x01, 0x01}};

Lease remote_lease(Ipv4Addr a, const std::string& node, const std::string& host_name = "") {
  Lease l;
  l.address = a;
  l.mac = kRemoteMac;
  l.vm = "far";
  l.host_name = host_name;
  l.node = node;
  l.expiry = T0 + 3600;
  return l;
}

TEST_F(HostEngineTest, TrafficToARemoteVmBecomesABareIpv4PacketForItsNode) {
  Ipv4Addr a1 = lease(1, kMac1);
  Ipv4Addr far = ip(10, 128, 7, 7);
  engine_.leases().apply(remote_lease(far, "node-b", "faraway"));
  Bytes packet = ipv4(a1, far, 1, icmp_echo(9, 9, Bytes(16, 1)));
  auto a = send(1, ethernet(kGwMac, kMac1, 0x0800, packet));
  ASSERT_EQ(a.kind, FrameAction::Kind::SendToPeer);
  EXPECT_EQ(a.peer, "node-b");
  EXPECT_EQ(Bytes(a.frame.begin(), a.frame.end()), packet);
  // ARP and DNS know the remote VM too.
  Bytes f = out(send(1, ethernet(kBcast, kMac1, 0x0806, arp(1, kMac1, a1, MacAddr{}, far))));
  EXPECT_EQ(f.size(), 42u);
  engine_.leases().set_now(T0);
  EXPECT_EQ(engine_.leases().find_host_name("faraway"), far);
  // Local DHCP will not hand out the remote VM's address.
  EXPECT_FALSE(engine_.leases().is_available(far, kMac2, T0));
}

// Another node may not play DHCP server for the VMs here either: a host
// whose own engine was bypassed (a compromised host) is held to the same
// rule as a VM, whole datagrams and first fragments alike.
TEST_F(HostEngineTest, DhcpFromAnotherNodeNeverReachesAVm) {
  Ipv4Addr a1 = lease(1, kMac1);
  Ipv4Addr far = ip(10, 128, 7, 7);
  engine_.leases().apply(remote_lease(far, "node-b"));
  auto from_peer = [&](const Bytes& packet) {
    Bytes buf(14, 0);
    buf.insert(buf.end(), packet.begin(), packet.end());
    return engine_.on_peer_packet(T0, "node-b", ByteSpan(buf.data(), buf.size()), 14, packet.size());
  };
  const Bytes reply = udp(67, 68, Bytes(240, 0));
  EXPECT_EQ(from_peer(ipv4(far, a1, 17, reply)).reason, DropReason::DhcpServerMessage);
  EXPECT_EQ(from_peer(ipv4(far, a1, 17, udp(5000, 68, Bytes(20, 1)))).reason, DropReason::DhcpServerMessage);
  EXPECT_EQ(from_peer(ipv4(far, a1, 17, udp(67, 5000, Bytes(20, 1)))).reason, DropReason::DhcpServerMessage);
  const Bytes first(reply.begin(), reply.begin() + 64);
  EXPECT_EQ(from_peer(ipv4_fragment(far, a1, 17, 77, 0x2000, first)).reason, DropReason::DhcpServerMessage);
  EXPECT_EQ(from_peer(ipv4_fragment(far, a1, 17, 78, 0x2000, Bytes(reply.begin(), reply.begin() + 4))).reason,
            DropReason::Malformed);  // too short to show its ports (RFC 1858 §3.1)
  // Other UDP, whole or fragmented, is delivered.
  EXPECT_EQ(from_peer(ipv4(far, a1, 17, udp(5000, 5001, Bytes(20, 1)))).kind, FrameAction::Kind::WriteToTap);
  const Bytes big = udp(5000, 5001, Bytes(100, 1));
  EXPECT_EQ(from_peer(ipv4_fragment(far, a1, 17, 79, 0x2000, Bytes(big.begin(), big.begin() + 64))).kind,
            FrameAction::Kind::WriteToTap);
  EXPECT_EQ(engine_.counters().peer_drops[std::size_t(DropReason::DhcpServerMessage)], 4u);
}

TEST_F(HostEngineTest, PacketsFromPeersAreDeliveredOnlyFromTheirOwnVms) {
  Ipv4Addr a1 = lease(1, kMac1);
  Ipv4Addr far = ip(10, 128, 7, 7);
  Ipv4Addr other = ip(10, 128, 8, 8);
  engine_.leases().apply(remote_lease(far, "node-b"));
  Lease l = remote_lease(other, "node-c");
  l.mac = MacAddr{{0x52, 0x54, 0, 0, 2, 2}};
  engine_.leases().apply(l);
  Bytes packet = ipv4(far, a1, 1, icmp_echo(3, 4, Bytes(8, 2)));
  Bytes buf(14, 0);
  buf.insert(buf.end(), packet.begin(), packet.end());
  auto a = engine_.on_peer_packet(T0, "node-b", ByteSpan(buf.data(), buf.size()), 14, packet.size());
  ASSERT_EQ(a.kind, FrameAction::Kind::WriteToTap);
  EXPECT_EQ(a.to, 1u);
  EXPECT_EQ(Bytes(a.frame.begin(), a.frame.end()), ethernet(kMac1, kGwMac, 0x0800, packet));
  // node-c may not speak for node-b's VM.
  Bytes buf2(14, 0);
  buf2.insert(buf2.end(), packet.begin(), packet.end());
  EXPECT_EQ(engine_.on_peer_packet(T0, "node-c", ByteSpan(buf2.data(), buf2.size()), 14, packet.size()).reason,
            DropReason::SpoofedIp);
  // Nor for a local VM, nor for an unleased address.
  Bytes spoof = ipv4(ip(10, 128, 0, 3), a1, 1, icmp_echo(3, 4, {}));
  Bytes buf3(14, 0);
  buf3.insert(buf3.end(), spoof.begin(), spoof.end());
  EXPECT_EQ(engine_.on_peer_packet(T0, "node-b", ByteSpan(buf3.data(), buf3.size()), 14, spoof.size()).reason,
            DropReason::SpoofedIp);
  // Garbage and bad offsets are counted, never trusted.
  Bytes junk(40, 0xee);
  EXPECT_EQ(engine_.on_peer_packet(T0, "node-b", ByteSpan(junk.data(), junk.size()), 14, 26).reason,
            DropReason::Malformed);
  EXPECT_EQ(engine_.on_peer_packet(T0, "node-b", ByteSpan(junk.data(), junk.size()), 4, 20).reason,
            DropReason::Malformed);
  EXPECT_EQ(engine_.on_peer_packet(T0, "node-b", ByteSpan(junk.data(), junk.size()), 14, 400).reason,
            DropReason::Malformed);
  EXPECT_EQ(engine_.counters().peer_drops[std::size_t(DropReason::SpoofedIp)], 2u);
  EXPECT_EQ(engine_.counters().from_peers, 1u);
}
}  // namespace
}  // namespace wownet

// Registry mode: addresses come from the rendezvous nodes.
namespace wownet {
namespace {
class RegistryModeTest : public HostEngineTest {
 protected:
  RegistryModeTest() { engine_.use_registry("self-node"); }
  Lease granted(Ipv4Addr a, MacAddr mac, LeaseState state, UnixTime expiry, std::string node = "self-node") {
    Lease l;
    l.address = a;
    l.mac = mac;
    l.vm = "vm1";
    l.node = std::move(node);
    l.state = state;
    l.expiry = expiry;
    return l;
  }
};

TEST_F(RegistryModeTest, DiscoverWaitsForTheRegistryThenOffers) {
  auto a = send(1, dhcp_frame(kMac1, 1, kAny, kAll, kAny, true));
  EXPECT_EQ(a.kind, FrameAction::Kind::None);
  auto asks = engine_.take_lease_asks();
  ASSERT_EQ(asks.size(), 1u);
  EXPECT_EQ(asks[0].kind, LeaseAsk::Kind::Offer);
  EXPECT_EQ(asks[0].mac, kMac1);
  EXPECT_EQ(asks[0].vm, "vm1");
  auto offer = engine_.on_registry_lease(T0, granted(ip(10, 128, 3, 9), kMac1, LeaseState::Offered, T0 + 60));
  ASSERT_EQ(offer.kind, FrameAction::Kind::WriteToTap);
  Bytes f = out(offer);
  EXPECT_EQ(reply_options(f)[53], Bytes{2});
  EXPECT_EQ(Bytes(f.begin() + 58, f.begin() + 62), (Bytes{10, 128, 3, 9}));
}

TEST_F(RegistryModeTest, RequestIsAckedOnlyAfterTheRegistryBindsIt) {
  engine_.on_registry_lease(T0, granted(ip(10, 128, 3, 9), kMac1, LeaseState::Offered, T0 + 60));
  auto a =
      send(1, dhcp_frame(kMac1, 3, kAny, kAll, kAny, true, cat({opt_addr(50, ip(10, 128, 3, 9)), opt_addr(54, kGw)})));
  EXPECT_EQ(a.kind, FrameAction::Kind::None);
  auto asks = engine_.take_lease_asks();
  ASSERT_EQ(asks.size(), 1u);
  EXPECT_EQ(asks[0].kind, LeaseAsk::Kind::Bind);
  EXPECT_EQ(asks[0].address, ip(10, 128, 3, 9));
  auto ack = engine_.on_registry_lease(T0, granted(ip(10, 128, 3, 9), kMac1, LeaseState::Bound, T0 + 3600));
  ASSERT_EQ(ack.kind, FrameAction::Kind::WriteToTap);
  EXPECT_EQ(reply_options(out(ack))[53], Bytes{5});
  EXPECT_EQ(engine_.attachment(1)->ip, ip(10, 128, 3, 9));
  EXPECT_TRUE(engine_.take_lease_asks().empty());  // no redundant refresh
}

TEST_F(RegistryModeTest, RenewalsAreAnsweredWhileTheRegistryIsAway) {
  engine_.on_registry_lease(T0, granted(ip(10, 128, 3, 9), kMac1, LeaseState::Bound, T0 + 3600));
  Ipv4Addr a9 = ip(10, 128, 3, 9);
  auto a = send(1, dhcp_frame(kMac1, 3, a9, kGw, a9, false), T0 + 1800);
  ASSERT_EQ(a.kind, FrameAction::Kind::WriteToTap);
  EXPECT_EQ(reply_options(out(a))[53], Bytes{5});
  auto asks = engine_.take_lease_asks();
  ASSERT_EQ(asks.size(), 1u);  // and the registry hears of it when it can
  EXPECT_EQ(asks[0].kind, LeaseAsk::Kind::Bind);
}

// With short leases (10 s) every renewal the host answers itself must
// still refresh the registry's copy, or the registry lets it lapse and
// tells every node so while the VM keeps renewing. (The host once judged
// "just granted by the registry" from its own copy, which its own renewals
// keep fresh: with a lease time of 20 s or less it never refreshed.)
TEST(RegistryModeShortLeases, EveryRenewalRefreshesTheRegistrysCopy) {
  NetworkConfig c;
  c.lease_time = 10;
  HostEngine engine(c);
  engine.add_attachment(1, "vm1", std::nullopt, T0);
  engine.use_registry("self-node");
  const Ipv4Addr a9 = ip(10, 128, 3, 9);
  Lease l;
  l.address = a9;
  l.mac = kMac1;
  l.vm = "vm1";
  l.node = "self-node";
  l.state = LeaseState::Bound;
  l.expiry = T0 + c.hold_time();
  engine.on_registry_lease(T0, l);  // granted now
  Bytes frame;
  auto renew = [&](UnixTime now) {
    frame = ethernet(kGwMac, kMac1, 0x0800, ipv4(a9, kGw, 17, udp(68, 67, dhcp(3, 7, kMac1, a9, false, {}))));
    return engine.on_tap_frame(now, 1, ByteSpan(frame.data(), frame.size()));
  };
  // The ACK right after the grant needs no refresh ...
  ASSERT_EQ(renew(T0).kind, FrameAction::Kind::WriteToTap);
  EXPECT_TRUE(engine.take_lease_asks().empty());
  // ... but each renewal at half the lease does, for as long as it goes on.
  for (UnixTime t = T0 + 5; t <= T0 + 30; t += 5) {
    ASSERT_EQ(renew(t).kind, FrameAction::Kind::WriteToTap) << t - T0;
    auto asks = engine.take_lease_asks();
    ASSERT_EQ(asks.size(), 1u) << "renewal at +" << t - T0 << " s did not refresh the registry";
    EXPECT_EQ(asks[0].kind, LeaseAsk::Kind::Bind);
    l.expiry = t + c.hold_time();  // the registry's answer
    engine.on_registry_lease(t, l);
  }
}

// busybox udhcpc keeps a lease shorter than 30 s for 30 s and renews
// after 15 s. With lease_time = 10 such a VM must stay bound between its
// renewals, and its renewal at 15 s must be answered here even while the
// rendezvous is unreachable. (The host once kept the lease for exactly
// lease_time: the VM's traffic was dropped for 5 s of every 15, and a
// renewal during a rendezvous outage went unanswered until the client
// gave the address up and started over with DISCOVER.)
TEST(RegistryModeShortLeases, AClientThatRenewsLateStaysBoundAndIsAnsweredHere) {
  NetworkConfig c;
  c.lease_time = 10;
  HostEngine engine(c);
  engine.add_attachment(1, "vm1", std::nullopt, T0);
  engine.use_registry("self-node");
  const Ipv4Addr a9 = ip(10, 128, 3, 9);
  Lease l;
  l.address = a9;
  l.mac = kMac1;
  l.vm = "vm1";
  l.node = "self-node";
  l.state = LeaseState::Bound;
  l.expiry = T0 + 30;  // what the registry grants (it holds a short lease 30 s)
  engine.on_registry_lease(T0, l);
  Bytes frame;
  auto renew = [&](UnixTime now) {
    frame = ethernet(kGwMac, kMac1, 0x0800, ipv4(a9, kGw, 17, udp(68, 67, dhcp(3, 7, kMac1, a9, false, {}))));
    return engine.on_tap_frame(now, 1, ByteSpan(frame.data(), frame.size()));
  };
  Bytes ping = ethernet(kGwMac, kMac1, 0x0800, ipv4(a9, kGw, 1, icmp_echo(1, 1, {})));
  auto send_ping = [&](UnixTime now) { return engine.on_tap_frame(now, 1, ByteSpan(ping.data(), ping.size())); };
  ASSERT_EQ(renew(T0).kind, FrameAction::Kind::WriteToTap);
  // From here on the registry answers nothing (the rendezvous is away).
  for (UnixTime t = T0 + 15; t <= T0 + 60; t += 15) {
    // Between renewals, past lease_time: still the VM's.
    EXPECT_EQ(send_ping(t - 3).kind, FrameAction::Kind::WriteToTap) << "ping at +" << t - 3 - T0 << " s";
    EXPECT_EQ(engine.attachment(1)->ip, a9);
    ASSERT_EQ(renew(t).kind, FrameAction::Kind::WriteToTap) << "renewal at +" << t - T0 << " s not answered";
  }
}

// The registry's copy of a lease this node holds may lapse while the
// refreshes are cut off (a NAT flush, a rendezvous restart). When word of
// that arrives, the VM still holds the lease here: it keeps it, and the
// host asserts it again instead of cutting the VM off.
TEST_F(RegistryModeTest, ALapsedRegistryCopyOfALeaseHeldHereIsAssertedAgain) {
  const Ipv4Addr a9 = ip(10, 128, 3, 9);
  engine_.on_registry_lease(T0, granted(a9, kMac1, LeaseState::Bound, T0 + 3600));
  ASSERT_EQ(send(1, dhcp_frame(kMac1, 3, a9, kGw, a9, false), T0 + 10).kind, FrameAction::Kind::WriteToTap);
  ASSERT_EQ(engine_.attachment(1)->ip, a9);
  engine_.take_lease_asks();
  // The registry says its copy ended (it never heard the refresh).
  engine_.on_registry_lease(T0 + 20, granted(a9, kMac1, LeaseState::Bound, T0 + 15));
  EXPECT_EQ(engine_.attachment(1)->ip, a9);
  ASSERT_NE(engine_.leases().find_active(a9, T0 + 20), nullptr);
  auto asks = engine_.take_lease_asks();
  ASSERT_EQ(asks.size(), 1u);
  EXPECT_EQ(asks[0].kind, LeaseAsk::Kind::Bind);
  EXPECT_EQ(asks[0].address, a9);
  // Traffic from the VM still passes.
  Bytes ping = ethernet(kGwMac, kMac1, 0x0800, ipv4(a9, kGw, 1, icmp_echo(1, 1, {})));
  EXPECT_EQ(send(1, ping, T0 + 21).kind, FrameAction::Kind::WriteToTap);
  // But a lease the registry gave to another VM is taken away at once.
  engine_.on_registry_lease(T0 + 22, granted(a9, kMac2, LeaseState::Bound, T0 + 3600, "other-node"));
  EXPECT_FALSE(engine_.attachment(1)->ip);
}

// A VM that migrated here (its lease names another node) is not bound
// from this host's copy of the registry: the registry is asked to move the
// lease, and the grant binds it. (The host once bound it at once; every
// other node kept sending to the old node and dropped the VM's packets
// from here, until the VM's next DHCP exchange.)
TEST_F(RegistryModeTest, AMigratedVmsFirstFrameMovesItsLeaseHere) {
  const Ipv4Addr a9 = ip(10, 128, 3, 9);
  engine_.on_registry_lease(T0, granted(a9, kMac1, LeaseState::Bound, T0 + 3600, "node-a"));
  engine_.take_lease_asks();
  Bytes ping = ethernet(kGwMac, kMac1, 0x0800, ipv4(a9, kGw, 1, icmp_echo(1, 1, {})));
  EXPECT_EQ(send(1, ping, T0 + 1).kind, FrameAction::Kind::Drop);
  EXPECT_FALSE(engine_.attachment(1)->ip);
  auto asks = engine_.take_lease_asks();
  ASSERT_GE(asks.size(), 1u);
  EXPECT_EQ(asks[0].kind, LeaseAsk::Kind::Bind);
  EXPECT_EQ(asks[0].mac, kMac1);
  EXPECT_EQ(asks[0].vm, "vm1");
  EXPECT_EQ(asks[0].address, a9);
  EXPECT_FALSE(asks[0].learned);
  engine_.on_registry_lease(T0 + 1, granted(a9, kMac1, LeaseState::Bound, T0 + 3600));
  EXPECT_EQ(engine_.attachment(1)->ip, a9);
  EXPECT_EQ(send(1, ping, T0 + 1).kind, FrameAction::Kind::WriteToTap);
}

// A silent VM: attached here while its lease names another node, it gets
// its MAC from the lease and the move is asked for at once, so traffic
// for it is delivered here before it sends anything.
TEST_F(RegistryModeTest, AttachingAMigratedVmMovesItsLeaseBeforeItSpeaks) {
  const Ipv4Addr a9 = ip(10, 128, 3, 9);
  Lease elsewhere = granted(a9, kMac1, LeaseState::Bound, T0 + 3600, "node-a");
  elsewhere.vm = "moved";
  engine_.on_registry_lease(T0, elsewhere);
  engine_.take_lease_asks();
  engine_.add_attachment(7, "moved", std::nullopt, T0 + 1);
  EXPECT_EQ(engine_.attachment(7)->mac, kMac1);
  auto asks = engine_.take_lease_asks();
  ASSERT_EQ(asks.size(), 1u);
  EXPECT_EQ(asks[0].kind, LeaseAsk::Kind::Bind);
  EXPECT_EQ(asks[0].address, a9);
  EXPECT_EQ(asks[0].vm, "moved");
  Lease here = elsewhere;
  here.node = "self-node";
  engine_.on_registry_lease(T0 + 1, here);
  EXPECT_EQ(engine_.attachment(7)->ip, a9);
  // Another VM name attached here gets nothing of it.
  engine_.add_attachment(8, "other", std::nullopt, T0 + 1);
  EXPECT_FALSE(engine_.attachment(8)->mac);
  EXPECT_TRUE(engine_.take_lease_asks().empty());
}

// A migrated VM's ARP for the gateway, sent before the registry's grant
// of the move arrives, is answered: its sender address is the VM's own
// lease (same MAC, same VM name). (It was dropped as spoofed, and the VM
// waited a full ARP retry, 1 s on Linux, after the lease had moved.)
// Its IP packets still wait for the grant.
TEST_F(RegistryModeTest, AMigratedVmsArpIsAnsweredWhileItsMoveIsAskedFor) {
  const Ipv4Addr a9 = ip(10, 128, 3, 9);
  Lease elsewhere = granted(a9, kMac1, LeaseState::Bound, T0 + 3600, "node-a");
  elsewhere.vm = "moved";
  engine_.on_registry_lease(T0, elsewhere);
  engine_.take_lease_asks();
  engine_.add_attachment(7, "moved", std::nullopt, T0 + 1);
  auto a = send(7, ethernet(kBcast, kMac1, 0x0806, arp(1, kMac1, a9, MacAddr{}, kGw)), T0 + 1);
  ASSERT_EQ(a.kind, FrameAction::Kind::WriteToTap);
  Bytes f = out(a);
  EXPECT_EQ(Bytes(f.begin() + 22, f.begin() + 32), cat({Bytes{0x02, 0x77, 0x6e, 0, 0, 1}, addr_bytes(kGw)}));
  EXPECT_FALSE(engine_.attachment(7)->ip);
  Bytes ping = ethernet(kGwMac, kMac1, 0x0800, ipv4(a9, kGw, 1, icmp_echo(1, 1, {})));
  EXPECT_EQ(send(7, ping, T0 + 1).reason, DropReason::AwaitingRegistry);
  // Another VM name presenting an address leased elsewhere gets nothing.
  auto other = send(2, ethernet(kBcast, kMac2, 0x0806, arp(1, kMac2, a9, MacAddr{}, kGw)), T0 + 1);
  EXPECT_EQ(other.kind, FrameAction::Kind::Drop);
  EXPECT_EQ(other.reason, DropReason::SpoofedIp);
}

// An attachment removed before its asks left (the daemon's attach failed
// to bring the VIF up, or it was detached at once) takes them along: the
// registry must not move a VM's lease to a node where the VM is not.
TEST_F(RegistryModeTest, ARemovedAttachmentsMoveIsNotAskedFor) {
  const Ipv4Addr a9 = ip(10, 128, 3, 9);
  Lease elsewhere = granted(a9, kMac1, LeaseState::Bound, T0 + 3600, "node-a");
  elsewhere.vm = "moved";
  engine_.on_registry_lease(T0, elsewhere);
  engine_.take_lease_asks();
  engine_.add_attachment(7, "moved", std::nullopt, T0 + 1);
  // Another VM's ask queued meanwhile still goes out.
  send(1, dhcp_frame(kMac2, 1, kAny, kAll, kAny, true));
  engine_.remove_attachment(7);
  auto left = engine_.take_lease_asks();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].kind, LeaseAsk::Kind::Offer);
  EXPECT_EQ(left[0].vm, "vm1");
  // Attached again, it asks again.
  engine_.add_attachment(8, "moved", std::nullopt, T0 + 2);
  auto asks = engine_.take_lease_asks();
  ASSERT_EQ(asks.size(), 1u);
  EXPECT_EQ(asks[0].kind, LeaseAsk::Kind::Bind);
  EXPECT_EQ(asks[0].address, a9);
}

TEST_F(RegistryModeTest, RefusalTurnsAWaitingRequestIntoANak) {
  send(1, dhcp_frame(kMac1, 3, kAny, kAll, kAny, false, opt_addr(50, ip(10, 128, 3, 9))));
  auto nak = engine_.on_registry_refusal(T0, kMac1);
  ASSERT_EQ(nak.kind, FrameAction::Kind::WriteToTap);
  EXPECT_EQ(reply_options(out(nak))[53], Bytes{6});
}

TEST_F(RegistryModeTest, StaticAddressesAreLearnedThroughTheRegistry) {
  Ipv4Addr st = ip(10, 128, 0, 50);
  Bytes ping = ethernet(kGwMac, kMac1, 0x0800, ipv4(st, kGw, 1, icmp_echo(1, 1, {})));
  EXPECT_EQ(send(1, ping).reason, DropReason::AwaitingRegistry);
  auto asks = engine_.take_lease_asks();
  ASSERT_EQ(asks.size(), 1u);
  EXPECT_TRUE(asks[0].learned);
  EXPECT_EQ(asks[0].address, st);
  engine_.on_registry_lease(T0, granted(st, kMac1, LeaseState::Bound, T0 + 3600));
  EXPECT_EQ(send(1, ping).kind, FrameAction::Kind::WriteToTap);  // the gateway answers now
}

TEST_F(RegistryModeTest, ALeaseMovedToAnotherNodeEndsTheLocalBinding) {
  Ipv4Addr a9 = ip(10, 128, 3, 9);
  engine_.on_registry_lease(T0, granted(a9, kMac1, LeaseState::Bound, T0 + 3600));
  engine_.add_attachment(1, "vm1", kMac1, T0);
  engine_.on_registry_lease(T0, granted(a9, kMac1, LeaseState::Bound, T0 + 3600));
  ASSERT_EQ(engine_.attachment(1)->ip, a9);
  engine_.on_registry_lease(T0 + 5, granted(a9, kMac1, LeaseState::Bound, T0 + 3600, "other-node"));
  EXPECT_FALSE(engine_.attachment(1)->ip.has_value());
}
}  // namespace
}  // namespace wownet

namespace wownet {
namespace {
TEST(LeaseTableTest, ALapsedLeaseDoesNotTakeBackANameSomeoneElseNowHolds) {
  LeaseTable t(*Ipv4Prefix::parse("10.128.0.0/9"), kGw);
  t.set_now(T0);
  t.put(ip(10, 128, 0, 2), kMac1, "vm1", "web", T0 + 10, LeaseState::Bound, LeaseOrigin::Dhcp);
  t.set_now(T0 + 20);  // vm1's lease lapsed; vm2 takes the name
  t.put(ip(10, 128, 0, 3), kMac2, "vm2", "web", T0 + 3600, LeaseState::Bound, LeaseOrigin::Dhcp);
  t.put(ip(10, 128, 0, 2), kMac1, "vm1", "", T0 + 3600, LeaseState::Bound, LeaseOrigin::Dhcp);  // vm1 renews
  EXPECT_EQ(t.find(ip(10, 128, 0, 2))->host_name, "");
  EXPECT_EQ(t.find_host_name("web"), ip(10, 128, 0, 3));
}
}  // namespace
}  // namespace wownet

// IP fragments and the ban on DHCP between VMs: the ports live in the first
// fragment only (RFC 1858 §3, RFC 3128), so that is where the engine decides.
namespace wownet {
namespace {
class FragmentTest : public HostEngineTest {
 protected:
  FragmentTest() {
    a1_ = lease(1, kMac1);
    a2_ = lease(2, kMac2);
  }
  // Bytes [from, to) of `datagram` as a fragment from vm1 to vm2.
  Bytes fragment(const Bytes& datagram, std::size_t from, std::size_t to, std::uint16_t id, bool more) {
    Bytes part(datagram.begin() + long(from), datagram.begin() + long(to));
    auto flags_offset = std::uint16_t((more ? 0x2000 : 0) | (from / 8));
    return ipv4_fragment(a1_, a2_, 17, id, flags_offset, part);
  }
  FrameAction send_fragment(const Bytes& packet, UnixTime now = T0) {
    return send(1, ethernet(kGwMac, kMac1, 0x0800, packet), now);
  }
  std::uint64_t dropped(DropReason r) const { return engine_.attachment(1)->counters.drops[std::size_t(r)]; }
  static Bytes dhcp_offer() {
    Bytes offer = dhcp(2, 0x77, kMac2, kAny, false);
    offer[0] = 2;  // BOOTREPLY
    return offer;
  }

  Ipv4Addr a1_, a2_;
};

TEST_F(FragmentTest, DhcpReplyAsASingleFirstFragmentIsDropped) {
  // MF=1, offset 0: the whole reply in what claims to be a first fragment.
  // A client's raw socket filter skips only fragments with an offset, so it
  // would read this one.
  Bytes offer = dhcp_offer();
  auto a = send_fragment(ipv4_fragment(a1_, a2_, 17, 0x0101, 0x2000, udp(67, 68, offer)));
  EXPECT_EQ(a.kind, FrameAction::Kind::Drop);
  EXPECT_EQ(a.reason, DropReason::DhcpServerMessage);
  // Either DHCP port on either side.
  EXPECT_EQ(send_fragment(ipv4_fragment(a1_, a2_, 17, 0x0102, 0x2000, udp(40000, 68, offer))).reason,
            DropReason::DhcpServerMessage);
  EXPECT_EQ(send_fragment(ipv4_fragment(a1_, a2_, 17, 0x0103, 0x2000, udp(68, 40000, offer))).reason,
            DropReason::DhcpServerMessage);
  EXPECT_EQ(send_fragment(ipv4_fragment(a1_, a2_, 17, 0x0104, 0x2000, udp(40000, 67, offer))).reason,
            DropReason::DhcpServerMessage);
  EXPECT_EQ(dropped(DropReason::DhcpServerMessage), 4u);
  EXPECT_EQ(engine_.counters().forwarded, 0u);
}

TEST_F(FragmentTest, DhcpReplySplitIntoFragmentsIsDroppedWhole) {
  Bytes datagram = udp(67, 68, dhcp_offer());
  ASSERT_GT(datagram.size(), 200u);
  auto head = send_fragment(fragment(datagram, 0, 24, 0x0201, true));
  EXPECT_EQ(head.reason, DropReason::DhcpServerMessage);
  // The rest of that datagram carries no ports, but belongs to the dropped head.
  auto middle = send_fragment(fragment(datagram, 24, 200, 0x0201, true));
  EXPECT_EQ(middle.kind, FrameAction::Kind::Drop);
  EXPECT_EQ(middle.reason, DropReason::Fragment);
  auto last = send_fragment(fragment(datagram, 200, datagram.size(), 0x0201, false), T0 + 2);
  EXPECT_EQ(last.reason, DropReason::Fragment);
  EXPECT_EQ(dropped(DropReason::Fragment), 2u);
  EXPECT_EQ(engine_.counters().forwarded, 0u);
  EXPECT_EQ(to_string(DropReason::Fragment), std::string("fragment"));
}

TEST_F(FragmentTest, FirstFragmentTooShortForTheUdpHeaderIsMalformed) {
  // RFC 1858 §3.1 tiny fragments: no ports to check, so no way through.
  Bytes datagram = udp(67, 68, dhcp_offer());
  EXPECT_EQ(send_fragment(fragment(datagram, 0, 0, 0x0301, true)).reason, DropReason::Malformed);
  EXPECT_EQ(send_fragment(ipv4_fragment(a1_, a2_, 17, 0x0302, 0x2000, Bytes{0, 67, 0, 68})).reason,
            DropReason::Malformed);
  EXPECT_EQ(send_fragment(fragment(datagram, 8, datagram.size(), 0x0302, false)).reason, DropReason::Fragment);
  EXPECT_EQ(dropped(DropReason::Malformed), 2u);
  EXPECT_EQ(engine_.counters().forwarded, 0u);
}

TEST_F(FragmentTest, LargeUdpDatagramBetweenVmsStillFlowsInFragments) {
  Bytes data(1200, 0);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = std::uint8_t(i * 7);
  Bytes datagram = udp(40000, 5001, data);  // 1208 bytes
  const std::size_t cuts[] = {0, 512, 1024, datagram.size()};
  for (int i = 0; i < 3; ++i) {
    Bytes packet = fragment(datagram, cuts[i], cuts[i + 1], 0x0401, i < 2);
    auto a = send_fragment(packet);
    ASSERT_EQ(a.kind, FrameAction::Kind::WriteToTap) << i;
    EXPECT_EQ(a.to, 2u);
    EXPECT_EQ(out(a), ethernet(kMac2, kGwMac, 0x0800, packet)) << i;
  }
  // Out of order (the last fragment first) is fine too.
  Bytes tail = fragment(datagram, 1024, datagram.size(), 0x0402, false);
  EXPECT_EQ(send_fragment(tail).to, 2u);
  EXPECT_EQ(send_fragment(fragment(datagram, 0, 1024, 0x0402, true)).to, 2u);
  EXPECT_EQ(engine_.counters().forwarded, 5u);
  EXPECT_EQ(engine_.attachment(1)->counters.total_drops(), 0u);
}

TEST_F(FragmentTest, ADroppedFirstFragmentIsRememberedBrieflyAndOnlyForItsDatagram) {
  Bytes dhcp_datagram = udp(67, 68, dhcp_offer());
  EXPECT_EQ(send_fragment(fragment(dhcp_datagram, 0, 24, 0x0501, true)).reason, DropReason::DhcpServerMessage);
  Bytes data(64, 0x5a);
  Bytes datagram = udp(40000, 5001, data);
  // Another IP ID, another destination or another protocol is another datagram.
  EXPECT_EQ(send_fragment(fragment(datagram, 16, datagram.size(), 0x0502, false)).to, 2u);
  Bytes to_gateway = ipv4_fragment(a1_, kGw, 17, 0x0501, 2, Bytes(16, 0));
  EXPECT_EQ(send_fragment(to_gateway).reason, DropReason::GatewayService);
  EXPECT_EQ(send_fragment(ipv4_fragment(a1_, a2_, 1, 0x0501, 2, Bytes(16, 0))).to, 2u);
  // A new datagram that reuses the ID, head first, goes through whole.
  EXPECT_EQ(send_fragment(fragment(datagram, 0, 16, 0x0501, true), T0 + 1).to, 2u);
  EXPECT_EQ(send_fragment(fragment(datagram, 16, datagram.size(), 0x0501, false), T0 + 1).to, 2u);
  // The memory is short: a straggler long after is no longer attributed.
  EXPECT_EQ(send_fragment(fragment(dhcp_datagram, 0, 24, 0x0503, true)).reason, DropReason::DhcpServerMessage);
  EXPECT_EQ(send_fragment(fragment(dhcp_datagram, 24, 64, 0x0503, true), T0 + 5).reason, DropReason::Fragment);
  EXPECT_EQ(send_fragment(fragment(dhcp_datagram, 64, 96, 0x0503, true), T0 + 120).to, 2u);
}

TEST_F(FragmentTest, UnfragmentedDhcpBetweenVmsIsDroppedWhicheverPortIsUsed) {
  // A client accepts a reply by its destination port 68, whatever the source port.
  Bytes offer = dhcp_offer();
  EXPECT_EQ(send(1, ethernet(kGwMac, kMac1, 0x0800, ipv4(a1_, a2_, 17, udp(40000, 68, offer)))).reason,
            DropReason::DhcpServerMessage);
  EXPECT_EQ(send(1, ethernet(kGwMac, kMac1, 0x0800, ipv4(a1_, a2_, 17, udp(68, 67, offer)))).reason,
            DropReason::DhcpServerMessage);
  EXPECT_EQ(send(1, ethernet(kGwMac, kMac1, 0x0800, ipv4(a1_, a2_, 17, udp(68, 5001, offer)))).reason,
            DropReason::DhcpServerMessage);
  // Other UDP between VMs is switched as before; DHCP with the gateway is served.
  EXPECT_EQ(send(1, ethernet(kGwMac, kMac1, 0x0800, ipv4(a1_, a2_, 17, udp(40000, 5001, offer)))).to, 2u);
  EXPECT_EQ(reply_options(out(send(1, dhcp_frame(kMac1, 3, a1_, kGw, a1_, false), T0 + 1)))[53], Bytes{5});
}
}  // namespace
}  // namespace wownet

// A lease's binding (address, host name, MAC) is its VM's, by VM name, until
// it expires: detaching the VM does not free it for another VM name.
namespace wownet {
namespace {
const MacAddr kMacX{{0x52, 0x54, 0x00, 0x00, 0x00, 0x03}};

class MacReservationTest : public HostEngineTest {
 protected:
  // vm1 on attachment 1 leases 10.128.0.2 as "alpha", then is detached.
  Ipv4Addr lease_alpha_and_detach() {
    send(1, dhcp_frame(kMac1, 1, kAny, kAll, kAny, true));
    auto ack = send(1, dhcp_frame(kMac1, 3, kAny, kAll, kAny, true,
                                  cat({opt_addr(50, ip(10, 128, 0, 2)), opt_addr(54, kGw), opt_str(12, "alpha")})));
    EXPECT_EQ(reply_options(out(ack))[53], Bytes{5});
    engine_.remove_attachment(1);
    return ip(10, 128, 0, 2);
  }
  std::uint64_t dropped(AttachmentId id, DropReason r) const {
    return engine_.attachment(id)->counters.drops[std::size_t(r)];
  }
};

TEST_F(MacReservationTest, AnotherVmNamePresentingADetachedVmsMacIsRefused) {
  Ipv4Addr a1 = lease_alpha_and_detach();
  engine_.add_attachment(3, "intruder", std::nullopt, T0 + 10);
  EXPECT_EQ(send(3, dhcp_frame(kMac1, 1, kAny, kAll, kAny, true), T0 + 10).reason, DropReason::SpoofedMac);
  EXPECT_EQ(send(3, dhcp_frame(kMac1, 3, a1, kGw, a1, false), T0 + 10).reason, DropReason::SpoofedMac);
  EXPECT_EQ(send(3, ethernet(kBcast, kMac1, 0x0806, arp(1, kMac1, a1, MacAddr{}, kGw)), T0 + 10).reason,
            DropReason::SpoofedMac);
  EXPECT_EQ(send(3, ethernet(kGwMac, kMac1, 0x0800, ipv4(a1, kGw, 1, icmp_echo(1, 1, {}))), T0 + 10).reason,
            DropReason::SpoofedMac);
  EXPECT_EQ(dropped(3, DropReason::SpoofedMac), 4u);
  EXPECT_FALSE(engine_.attachment(3)->mac.has_value());
  EXPECT_FALSE(engine_.attachment(3)->ip.has_value());
  const Lease* l = engine_.leases().find(a1);
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->vm, "vm1");
  EXPECT_EQ(l->host_name, "alpha");
  EXPECT_EQ(l->expiry, T0 + 3600);
  // The real vm1, attached again, gets its address and name back.
  engine_.add_attachment(1, "vm1", std::nullopt, T0 + 20);
  EXPECT_EQ(lease(1, kMac1, T0 + 20), a1);
  EXPECT_EQ(engine_.attachment(1)->ip, a1);
  EXPECT_EQ(engine_.leases().find(a1)->host_name, "alpha");
  engine_.leases().set_now(T0 + 20);
  EXPECT_EQ(engine_.leases().find_host_name("alpha"), a1);
  // And the intruder still gets nowhere with that MAC.
  EXPECT_EQ(send(3, dhcp_frame(kMac1, 1, kAny, kAll, kAny, true), T0 + 30).reason, DropReason::SpoofedMac);
}

TEST_F(MacReservationTest, AfterTheLeaseExpiredTheMacServesANewVmWithoutTheOldName) {
  Ipv4Addr a1 = lease_alpha_and_detach();
  engine_.add_attachment(3, "vm3", std::nullopt, T0 + 3600);
  engine_.on_timer(T0 + 3600);
  auto offer = send(3, dhcp_frame(kMac1, 1, kAny, kAll, kAny, true), T0 + 3600);
  ASSERT_EQ(offer.kind, FrameAction::Kind::WriteToTap);
  Ipv4Addr got = lease(3, kMac1, T0 + 3600);
  EXPECT_EQ(engine_.attachment(3)->mac, kMac1);
  EXPECT_EQ(engine_.attachment(3)->ip, got);
  const Lease* l = engine_.leases().find_by_mac(kMac1);
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->vm, "vm3");
  // vm1's host name went with vm1's lease; vm3 answers to its automatic name.
  EXPECT_EQ(l->host_name, "");
  EXPECT_EQ(reply_options(out(offer))[12], (Bytes{'C', '1', '2', '8', '0', '0', '0', '0', '0', '2'}));
  EXPECT_EQ(got, a1);  // RFC 2131 §4.3.1: the client's (chaddr's) previous address
}

TEST_F(MacReservationTest, ARestoredAttachmentDoesNotTakeAnotherVmsLeasedMac) {
  Ipv4Addr a1 = lease(1, kMac1);
  auto saved = engine_.leases().snapshot();
  HostEngine fresh(make_config());
  fresh.leases().restore(saved);
  fresh.add_attachment(2, "vm2", kMac1, T0 + 10);
  EXPECT_FALSE(fresh.attachment(2)->mac.has_value());
  Bytes f = dhcp_frame(kMac1, 1, kAny, kAll, kAny, true);
  EXPECT_EQ(fresh.on_tap_frame(T0 + 10, 2, ByteSpan(f.data(), f.size())).reason, DropReason::SpoofedMac);
  EXPECT_EQ(fresh.leases().find(a1)->vm, "vm1");
}

TEST(DhcpServerTest, AMacWhoseLeaseIsAnotherVmsIsNotServed) {
  NetworkConfig c;
  c.lease_time = 3600;
  const Ipv4Addr a1 = ip(10, 128, 0, 2);
  for (bool registry : {false, true}) {
    SCOPED_TRACE(registry ? "registry mode" : "local");
    LeaseTable t(c.network, c.gateway);
    DhcpServer s(c, t);
    if (registry) s.use_registry("self-node");
    t.set_now(T0);
    t.put(a1, kMac1, "vm1", "alpha", T0 + 3600, LeaseState::Bound, LeaseOrigin::Dhcp, registry ? "self-node" : "");
    std::array<std::uint8_t, 2048> buf{};
    const Bytes messages[] = {
        dhcp(1, 1, kMac1, kAny, true),                                              // DISCOVER
        dhcp(3, 2, kMac1, kAny, true, opt_addr(50, a1)),                            // REQUEST, INIT-REBOOT
        dhcp(3, 3, kMac1, kAny, true, cat({opt_addr(50, a1), opt_addr(54, kGw)})),  // REQUEST, SELECTING
        dhcp(3, 4, kMac1, a1, false),                                               // REQUEST, RENEWING
        dhcp(3, 5, kMac1, kAny, true, cat({opt_addr(50, a1), opt_str(12, "evil")})),
        dhcp(7, 6, kMac1, a1, false),                      // RELEASE
        dhcp(4, 7, kMac1, kAny, false, opt_addr(50, a1)),  // DECLINE
        dhcp(8, 8, kMac1, a1, false),                      // INFORM
    };
    for (const Bytes& m : messages) {
      auto msg = parse_dhcp(m);
      ASSERT_TRUE(msg.has_value());
      DhcpOutcome o = s.on_client_message(T0 + 10, *msg, kMac1, "vm2", ByteSpan(buf.data(), buf.size()));
      EXPECT_EQ(o.reply_size, 0u) << int(m[242]);
      EXPECT_FALSE(o.bound.has_value());
      EXPECT_FALSE(o.released);
      EXPECT_FALSE(o.ask.has_value());
    }
    const Lease* l = t.find(a1);
    ASSERT_NE(l, nullptr);
    EXPECT_EQ(l->vm, "vm1");
    EXPECT_EQ(l->host_name, "alpha");
    EXPECT_EQ(l->state, LeaseState::Bound);
    EXPECT_EQ(l->expiry, T0 + 3600);
    // vm1 itself is served.
    auto discover = parse_dhcp(dhcp(1, 9, kMac1, kAny, true));
    EXPECT_GT(s.on_client_message(T0 + 10, *discover, kMac1, "vm1", ByteSpan(buf.data(), buf.size())).reply_size, 0u);
  }
}

TEST(LeaseTableTest, ALeaseTakenOverAfterExpiryDoesNotInheritTheOldVmsHostName) {
  LeaseTable t(*Ipv4Prefix::parse("10.128.0.0/9"), kGw);
  t.set_now(T0);
  t.put(ip(10, 128, 0, 2), kMac1, "vm1", "alpha", T0 + 100, LeaseState::Bound, LeaseOrigin::Dhcp);
  t.set_now(T0 + 200);
  // The same VM renewing late keeps its name.
  t.put(ip(10, 128, 0, 2), kMac1, "vm1", "", T0 + 300, LeaseState::Bound, LeaseOrigin::Dhcp);
  EXPECT_EQ(t.find(ip(10, 128, 0, 2))->host_name, "alpha");
  // Another VM with that MAC, after expiry, does not.
  t.set_now(T0 + 400);
  t.put(ip(10, 128, 0, 2), kMac1, "vm2", "", T0 + 500, LeaseState::Bound, LeaseOrigin::Dhcp);
  EXPECT_EQ(t.find(ip(10, 128, 0, 2))->host_name, "");
}

class RegistryMacReservationTest : public MacReservationTest {
 protected:
  RegistryMacReservationTest() { engine_.use_registry("self-node"); }
  static Lease vm1_lease(Ipv4Addr a, std::string node) {
    Lease l;
    l.address = a;
    l.mac = kMac1;
    l.vm = "vm1";
    l.host_name = "alpha";
    l.node = std::move(node);
    l.expiry = T0 + 3600;
    return l;
  }
};

TEST_F(RegistryMacReservationTest, AnotherVmNameCannotUseALeasedMacAndAMigratedVmCan) {
  const Ipv4Addr a9 = ip(10, 128, 3, 9);
  engine_.remove_attachment(1);
  for (const char* node : {"self-node", "other-node"}) {
    SCOPED_TRACE(node);
    engine_.on_registry_lease(T0, vm1_lease(a9, node));
    EXPECT_EQ(send(2, dhcp_frame(kMac1, 1, kAny, kAll, kAny, true)).reason, DropReason::SpoofedMac);
    EXPECT_EQ(send(2, ethernet(kBcast, kMac1, 0x0806, arp(1, kMac1, a9, MacAddr{}, kGw))).reason,
              DropReason::SpoofedMac);
    EXPECT_FALSE(engine_.attachment(2)->mac.has_value());
    EXPECT_TRUE(engine_.take_lease_asks().empty());
  }
  // vm1 migrating here (same name, same MAC) is let in: attaching it asks
  // the registry to move its lease here, its DISCOVER asks for an offer.
  engine_.add_attachment(3, "vm1", std::nullopt, T0);
  EXPECT_EQ(engine_.attachment(3)->mac, kMac1);
  EXPECT_EQ(send(3, dhcp_frame(kMac1, 1, kAny, kAll, kAny, true)).kind, FrameAction::Kind::None);
  auto asks = engine_.take_lease_asks();
  ASSERT_EQ(asks.size(), 2u);
  EXPECT_EQ(asks[0].kind, LeaseAsk::Kind::Bind);
  EXPECT_EQ(asks[0].address, a9);
  EXPECT_EQ(asks[1].kind, LeaseAsk::Kind::Offer);
  EXPECT_EQ(asks[1].vm, "vm1");
}

TEST_F(RegistryMacReservationTest, ALeaseOfAnotherVmNameIsNotBoundToTheAttachmentWithItsMac) {
  // vm2 holds the MAC (no lease yet); the registry then reports vm1's lease
  // of that MAC on this node.
  engine_.add_attachment(2, "vm2", kMac1, T0);
  ASSERT_EQ(engine_.attachment(2)->mac, kMac1);
  const Ipv4Addr a9 = ip(10, 128, 3, 9);
  engine_.on_registry_lease(T0, vm1_lease(a9, "self-node"));
  EXPECT_FALSE(engine_.attachment(2)->ip.has_value());
  engine_.on_agent_host_name(T0, 2, "evil");
  EXPECT_EQ(engine_.leases().find(a9)->host_name, "alpha");
  EXPECT_EQ(send(2, ethernet(kGwMac, kMac1, 0x0800, ipv4(a9, kGw, 1, icmp_echo(1, 1, {})))).reason,
            DropReason::SpoofedIp);
  EXPECT_TRUE(engine_.take_lease_asks().empty());
}
}  // namespace
}  // namespace wownet
