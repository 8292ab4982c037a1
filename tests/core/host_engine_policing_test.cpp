// HostEngine against abuse a VM could try (another VM's MAC, draining the
// pool, names, floods) and IP fragments (the ports live in the first).
#include "host_engine_fixture.h"

namespace wownet::engine_test {
namespace {

// Regression tests for abuse a VM could try.
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

// IP fragments and the ban on DHCP between VMs: the ports live in the first
// fragment only (RFC 1858 §3, RFC 3128), so that is where the engine decides.
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
}  // namespace wownet::engine_test
