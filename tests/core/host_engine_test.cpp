// HostEngine: DHCP, ARP, ICMP, policing, learning and switching, fed with
// hand-built frames at literal times.
#include "host_engine_fixture.h"

namespace wownet::engine_test {
namespace {

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
  auto fresh = restarted(engine_);
  fresh->add_attachment(1, "vm1", kMac1, T0 + 10);
  EXPECT_EQ(fresh->attachment(1)->ip, a1);
  fresh->add_attachment(2, "vm2", std::nullopt, T0 + 10);
  Bytes f = ethernet(kGwMac, kMac2, 0x0800, ipv4(a1, kGw, 1, icmp_echo(1, 1, {})));
  EXPECT_EQ(fresh->on_tap_frame(T0 + 10, 2, ByteSpan(f.data(), f.size())).reason, DropReason::SpoofedIp);
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
}  // namespace wownet::engine_test
