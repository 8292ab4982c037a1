// HostEngine in registry mode: addresses come from the rendezvous nodes.
#include "host_engine_fixture.h"

namespace wownet::engine_test {
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
  // VM "moved", whose lease of `a` (MAC kMac1) names node-a, is attached
  // here as attachment 7 at T0 + 1; returns that lease. Asks queued before
  // the attachment are taken.
  Lease attach_migrated(Ipv4Addr a) {
    Lease elsewhere = granted(a, kMac1, LeaseState::Bound, T0 + 3600, "node-a");
    elsewhere.vm = "moved";
    engine_.on_registry_lease(T0, elsewhere);
    engine_.take_lease_asks();
    engine_.add_attachment(7, "moved", std::nullopt, T0 + 1);
    return elsewhere;
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

// Registry mode with short leases (10 s): vm1 on attachment 1 and the
// registry's copy of its lease of a9_.
class RegistryModeShortLeases : public ::testing::Test {
 protected:
  RegistryModeShortLeases() : engine_(config_) {
    engine_.add_attachment(1, "vm1", std::nullopt, T0);
    engine_.use_registry("self-node");
    lease_.address = a9_;
    lease_.mac = kMac1;
    lease_.vm = "vm1";
    lease_.node = "self-node";
    lease_.state = LeaseState::Bound;
  }
  static NetworkConfig short_leases() {
    NetworkConfig c;
    c.lease_time = 10;
    return c;
  }
  // vm1 renews its lease of a9_ (a DHCPREQUEST to the gateway) at `now`.
  FrameAction renew(UnixTime now) {
    frame_ = ethernet(kGwMac, kMac1, 0x0800, ipv4(a9_, kGw, 17, udp(68, 67, dhcp(3, 7, kMac1, a9_, false, {}))));
    return engine_.on_tap_frame(now, 1, ByteSpan(frame_.data(), frame_.size()));
  }

  const NetworkConfig config_ = short_leases();
  HostEngine engine_;
  const Ipv4Addr a9_ = ip(10, 128, 3, 9);
  Lease lease_;  // the registry's copy, bound to this node
  Bytes frame_;
};

// With short leases (10 s) every renewal the host answers itself must
// still refresh the registry's copy, or the registry lets it lapse and
// tells every node so while the VM keeps renewing. (The host once judged
// "just granted by the registry" from its own copy, which its own renewals
// keep fresh: with a lease time of 20 s or less it never refreshed.)
TEST_F(RegistryModeShortLeases, EveryRenewalRefreshesTheRegistrysCopy) {
  lease_.expiry = T0 + config_.hold_time();
  engine_.on_registry_lease(T0, lease_);  // granted now
  // The ACK right after the grant needs no refresh ...
  ASSERT_EQ(renew(T0).kind, FrameAction::Kind::WriteToTap);
  EXPECT_TRUE(engine_.take_lease_asks().empty());
  // ... but each renewal at half the lease does, for as long as it goes on.
  for (UnixTime t = T0 + 5; t <= T0 + 30; t += 5) {
    ASSERT_EQ(renew(t).kind, FrameAction::Kind::WriteToTap) << t - T0;
    auto asks = engine_.take_lease_asks();
    ASSERT_EQ(asks.size(), 1u) << "renewal at +" << t - T0 << " s did not refresh the registry";
    EXPECT_EQ(asks[0].kind, LeaseAsk::Kind::Bind);
    lease_.expiry = t + config_.hold_time();  // the registry's answer
    engine_.on_registry_lease(t, lease_);
  }
}

// busybox udhcpc keeps a lease shorter than 30 s for 30 s and renews
// after 15 s. With lease_time = 10 such a VM must stay bound between its
// renewals, and its renewal at 15 s must be answered here even while the
// rendezvous is unreachable. (The host once kept the lease for exactly
// lease_time: the VM's traffic was dropped for 5 s of every 15, and a
// renewal during a rendezvous outage went unanswered until the client
// gave the address up and started over with DISCOVER.)
TEST_F(RegistryModeShortLeases, AClientThatRenewsLateStaysBoundAndIsAnsweredHere) {
  lease_.expiry = T0 + 30;  // what the registry grants (it holds a short lease 30 s)
  engine_.on_registry_lease(T0, lease_);
  Bytes ping = ethernet(kGwMac, kMac1, 0x0800, ipv4(a9_, kGw, 1, icmp_echo(1, 1, {})));
  auto send_ping = [&](UnixTime now) { return engine_.on_tap_frame(now, 1, ByteSpan(ping.data(), ping.size())); };
  ASSERT_EQ(renew(T0).kind, FrameAction::Kind::WriteToTap);
  // From here on the registry answers nothing (the rendezvous is away).
  for (UnixTime t = T0 + 15; t <= T0 + 60; t += 15) {
    // Between renewals, past lease_time: still the VM's.
    EXPECT_EQ(send_ping(t - 3).kind, FrameAction::Kind::WriteToTap) << "ping at +" << t - 3 - T0 << " s";
    EXPECT_EQ(engine_.attachment(1)->ip, a9_);
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
  Lease elsewhere = attach_migrated(a9);
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
  Lease elsewhere = attach_migrated(a9);
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
  Lease elsewhere = attach_migrated(a9);
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
}  // namespace wownet::engine_test
