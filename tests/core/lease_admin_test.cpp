// Lease administration in the core: reservations (by MAC, by VM name, with
// a host name), leases the admin ends, static names in the lease table's
// name rules and in the DNS zone.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/lease_table.h"
#include "host_engine_fixture.h"

namespace wownet::engine_test {
namespace {

const Ipv4Prefix kNet = *Ipv4Prefix::parse("10.128.0.0/9");
const MacAddr kMac3{{0x52, 0x54, 0x00, 0x00, 0x00, 0x03}};

Reservation by_mac(Ipv4Addr a, MacAddr m, std::string name = {}) { return Reservation{a, m, {}, std::move(name)}; }
Reservation by_vm(Ipv4Addr a, std::string vm, std::string name = {}) {
  return Reservation{a, std::nullopt, std::move(vm), std::move(name)};
}

TEST(LeaseReservationTest, AMacReservationIsThatMacsAndNobodyElses) {
  LeaseTable t(kNet, kGw);
  t.set_reservations({by_mac(ip(10, 128, 0, 50), kMac1)});
  // The reserved MAC gets its address though lower ones are free.
  EXPECT_EQ(t.choose(kMac1, std::nullopt, T0, "vm1"), ip(10, 128, 0, 50));
  // Asked for something else, it still gets only the reserved one.
  EXPECT_EQ(t.choose(kMac1, ip(10, 128, 0, 9), T0, "vm1"), ip(10, 128, 0, 50));
  EXPECT_FALSE(t.is_available(ip(10, 128, 0, 9), kMac1, T0, "vm1"));
  // Another MAC never gets it, asked for or not.
  EXPECT_FALSE(t.is_available(ip(10, 128, 0, 50), kMac2, T0, "vm2"));
  EXPECT_EQ(t.choose(kMac2, ip(10, 128, 0, 50), T0, "vm2"), ip(10, 128, 0, 2));
}

TEST(LeaseReservationTest, AReservedAddressIsSkippedWhenThePoolIsScanned) {
  LeaseTable t(*Ipv4Prefix::parse("10.0.0.0/29"), Ipv4Addr::from_octets(10, 0, 0, 1));
  t.set_reservations({by_mac(Ipv4Addr::from_octets(10, 0, 0, 2), kMac1)});
  // .2 is reserved: others get .3 to .6, then nothing.
  for (int i = 3; i <= 6; ++i) {
    MacAddr m{{0x52, 0x54, 0x00, 0x00, 0x01, std::uint8_t(i)}};
    auto a = t.choose(m, std::nullopt, T0);
    ASSERT_TRUE(a);
    EXPECT_EQ(*a, Ipv4Addr::from_octets(10, 0, 0, std::uint8_t(i)));
    t.put(*a, m, "", "", T0 + 10, LeaseState::Bound, LeaseOrigin::Dhcp);
  }
  EXPECT_FALSE(t.choose(kMac2, std::nullopt, T0));
  // Expired leases are reused, never the reserved address.
  EXPECT_EQ(t.choose(kMac2, std::nullopt, T0 + 20), Ipv4Addr::from_octets(10, 0, 0, 3));
  EXPECT_EQ(t.choose(kMac1, std::nullopt, T0 + 20), Ipv4Addr::from_octets(10, 0, 0, 2));
}

TEST(LeaseReservationTest, AVmReservationFollowsTheVmNameWhateverItsMac) {
  LeaseTable t(kNet, kGw);
  t.set_reservations({by_vm(ip(10, 128, 0, 60), "db")});
  EXPECT_EQ(t.choose(kMac1, std::nullopt, T0, "db"), ip(10, 128, 0, 60));
  EXPECT_EQ(t.choose(kMac2, std::nullopt, T0, "db"), ip(10, 128, 0, 60));
  EXPECT_FALSE(t.is_available(ip(10, 128, 0, 60), kMac1, T0, "web"));
  EXPECT_FALSE(t.is_available(ip(10, 128, 0, 60), kMac1, T0));  // a VM of no name is not "db"
}

TEST(LeaseReservationTest, TheReservedNameOverridesTheClientsAndIsNobodyElses) {
  LeaseTable t(kNet, kGw);
  t.set_reservations({by_mac(ip(10, 128, 0, 50), kMac1, "fileserver")});
  t.set_now(T0);
  const Lease& l = t.put(ip(10, 128, 0, 50), kMac1, "vm1", "myname", T0 + 60, LeaseState::Bound, LeaseOrigin::Dhcp);
  EXPECT_EQ(l.host_name, "fileserver");
  // The VM's agent cannot rename it either.
  EXPECT_FALSE(t.set_host_name(ip(10, 128, 0, 50), "other"));
  EXPECT_EQ(t.find(ip(10, 128, 0, 50))->host_name, "fileserver");
  // Another VM cannot take the name.
  EXPECT_FALSE(t.name_available("fileserver", kMac2, T0, "vm2"));
  const Lease& o = t.put(ip(10, 128, 0, 7), kMac2, "vm2", "fileserver", T0 + 60, LeaseState::Bound, LeaseOrigin::Dhcp);
  EXPECT_EQ(o.host_name, "");
  EXPECT_EQ(t.find_host_name("fileserver"), ip(10, 128, 0, 50));
}

TEST(LeaseReservationTest, StaticNamesAreNoLeasesToTake) {
  LeaseTable t(kNet, kGw);
  t.set_static_names({"printer"});
  t.set_now(T0);
  EXPECT_FALSE(t.name_available("printer", kMac1, T0, "vm1"));
  const Lease& l = t.put(ip(10, 128, 0, 5), kMac1, "vm1", "printer", T0 + 60, LeaseState::Bound, LeaseOrigin::Dhcp);
  EXPECT_EQ(l.host_name, "");
}

TEST(LeaseReservationTest, ConflictsWithNewReservationsAreEnded) {
  LeaseTable t(kNet, kGw);
  t.set_now(T0);
  // Before the reservations: MAC 1 holds .5, MAC 2 holds .50 (soon reserved
  // for MAC 1), MAC 3 holds .7 under the name "fileserver".
  t.put(ip(10, 128, 0, 5), kMac1, "vm1", "", T0 + 600, LeaseState::Bound, LeaseOrigin::Dhcp);
  t.put(ip(10, 128, 0, 50), kMac2, "vm2", "", T0 + 600, LeaseState::Bound, LeaseOrigin::Dhcp);
  t.put(ip(10, 128, 0, 7), kMac3, "vm3", "fileserver", T0 + 600, LeaseState::Bound, LeaseOrigin::Dhcp);
  t.set_reservations({by_mac(ip(10, 128, 0, 50), kMac1, "fileserver")});
  auto changed = t.revoke_reservation_conflicts(T0 + 1, true);
  std::sort(changed.begin(), changed.end());
  EXPECT_EQ(changed, (std::vector<Ipv4Addr>{ip(10, 128, 0, 5), ip(10, 128, 0, 7), ip(10, 128, 0, 50)}));
  EXPECT_FALSE(t.find_active(ip(10, 128, 0, 5), T0 + 1));
  EXPECT_FALSE(t.find_active(ip(10, 128, 0, 50), T0 + 1));
  EXPECT_EQ(t.find(ip(10, 128, 0, 7))->host_name, "");  // kept, without the reserved name
  EXPECT_TRUE(t.find_active(ip(10, 128, 0, 7), T0 + 1));
  // The reserved MAC may now take its address, and not renew its old one.
  EXPECT_EQ(t.choose(kMac1, ip(10, 128, 0, 5), T0 + 1, "vm1"), ip(10, 128, 0, 50));
  EXPECT_FALSE(t.is_available(ip(10, 128, 0, 5), kMac1, T0 + 1, "vm1"));
  // Nothing left to end.
  EXPECT_TRUE(t.revoke_reservation_conflicts(T0 + 1, true).empty());
}

TEST(LeaseReservationTest, WithoutEndingLeasesConflictsLastUntilTheirRenewal) {
  LeaseTable t(kNet, kGw);
  t.set_now(T0);
  t.put(ip(10, 128, 0, 5), kMac1, "vm1", "", T0 + 600, LeaseState::Bound, LeaseOrigin::Dhcp);
  t.put(ip(10, 128, 0, 50), kMac2, "vm2", "", T0 + 600, LeaseState::Bound, LeaseOrigin::Dhcp);
  t.set_reservations({by_mac(ip(10, 128, 0, 50), kMac1)});
  EXPECT_TRUE(t.revoke_reservation_conflicts(T0 + 1, false).empty());
  EXPECT_TRUE(t.find_active(ip(10, 128, 0, 5), T0 + 1));
  EXPECT_TRUE(t.find_active(ip(10, 128, 0, 50), T0 + 1));
  // Neither may renew what it holds.
  EXPECT_FALSE(t.is_available(ip(10, 128, 0, 5), kMac1, T0 + 1, "vm1"));
  EXPECT_FALSE(t.is_available(ip(10, 128, 0, 50), kMac2, T0 + 1, "vm2"));
  // The reserved address is not given while MAC 2 holds it.
  EXPECT_FALSE(t.choose(kMac1, std::nullopt, T0 + 1, "vm1"));
}

TEST(LeaseReservationTest, RevokeEndsTheRecordAndTheMacsClaim) {
  LeaseTable t(kNet, kGw);
  t.set_now(T0);
  t.put(ip(10, 128, 0, 5), kMac1, "vm1", "web", T0 + 600, LeaseState::Bound, LeaseOrigin::Dhcp);
  const auto v = t.version();
  EXPECT_FALSE(t.revoke(ip(10, 128, 0, 6), T0));
  ASSERT_TRUE(t.revoke(ip(10, 128, 0, 5), T0 + 10));
  EXPECT_GT(t.version(), v);
  EXPECT_FALSE(t.find_active(ip(10, 128, 0, 5), T0 + 10));
  EXPECT_FALSE(t.find_host_name("web"));
  EXPECT_FALSE(t.revoke(ip(10, 128, 0, 5), T0 + 10));  // already ended
  t.expire(T0 + 10);
  EXPECT_EQ(t.find(ip(10, 128, 0, 5)), nullptr);
  EXPECT_EQ(t.find_by_mac(kMac1), nullptr);
  // A DHCPRELEASE, by contrast, keeps the record for its MAC.
  t.put(ip(10, 128, 0, 5), kMac1, "vm1", "", T0 + 600, LeaseState::Bound, LeaseOrigin::Dhcp);
  ASSERT_TRUE(t.release(ip(10, 128, 0, 5), kMac1, T0 + 20));
  t.expire(T0 + 20);
  EXPECT_NE(t.find_by_mac(kMac1), nullptr);
}

// --- the engine ------------------------------------------------------------

class EngineReservationTest : public HostEngineTest {
 protected:
  // A DHCPREQUEST from `mac` renewing `addr` (RENEWING: ciaddr, unicast).
  FrameAction renew(AttachmentId att, MacAddr mac, Ipv4Addr addr, UnixTime now) {
    return send(att, dhcp_frame(mac, 3, addr, kGw, addr, false), now);
  }
};

TEST_F(EngineReservationTest, AReservedMacGetsItsAddressAndNameOverDhcp) {
  NetworkConfig c = make_config();
  c.reservations = {by_mac(ip(10, 128, 0, 50), kMac1, "fileserver")};
  engine_.update_live_settings(c);
  EXPECT_EQ(lease(1, kMac1), ip(10, 128, 0, 50));
  EXPECT_EQ(lease(2, kMac2), ip(10, 128, 0, 2));
  ASSERT_TRUE(engine_.attachment(1)->ip);
  EXPECT_EQ(*engine_.attachment(1)->ip, ip(10, 128, 0, 50));
  const Lease* l = engine_.leases().find(ip(10, 128, 0, 50));
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->host_name, "fileserver");
}

TEST_F(EngineReservationTest, AReservationAddedLaterMovesTheVmAtItsNextRequest) {
  const Ipv4Addr before = lease(1, kMac1);
  ASSERT_EQ(before, ip(10, 128, 0, 2));
  NetworkConfig c = make_config();
  c.reservations = {by_vm(ip(10, 128, 0, 60), "vm1")};
  engine_.update_live_settings(c);
  EXPECT_TRUE(engine_.apply_reservations(T0 + 5).empty());
  EXPECT_TRUE(engine_.attachment(1)->ip);  // until its next request
  // Its renewal of the old address is refused (RFC 2131 §4.3.2: NAK), so
  // the client starts over and gets the reserved one.
  auto nak = renew(1, kMac1, before, T0 + 6);
  ASSERT_EQ(nak.kind, FrameAction::Kind::WriteToTap);
  EXPECT_EQ(reply_options(out(nak))[53], Bytes{6});
  EXPECT_EQ(lease(1, kMac1, T0 + 7), ip(10, 128, 0, 60));
}

TEST_F(EngineReservationTest, AnAdminReleaseUnbindsTheVm) {
  NetworkConfig c = make_config();
  c.learn_static = false;
  engine_.update_live_settings(c);
  const Ipv4Addr a = lease(1, kMac1);
  ASSERT_TRUE(engine_.attachment(1)->ip);
  const auto v = engine_.state_version();
  EXPECT_FALSE(engine_.revoke_lease(T0 + 5, ip(10, 128, 0, 99)));
  ASSERT_TRUE(engine_.revoke_lease(T0 + 5, a));
  EXPECT_GT(engine_.state_version(), v);  // worth saving
  EXPECT_EQ(engine_.leases().find(a), nullptr);
  EXPECT_FALSE(engine_.attachment(1)->ip);
  // Its traffic from the address is no longer its own.
  auto ping = send(1, ethernet(kGwMac, kMac1, 0x0800, ipv4(a, kGw, 1, Bytes{8, 0, 0, 0, 0, 0, 0, 0})), T0 + 6);
  EXPECT_EQ(ping.kind, FrameAction::Kind::Drop);
  EXPECT_EQ(ping.reason, DropReason::SpoofedIp);
}

TEST_F(EngineReservationTest, StaticNamesReachTheZoneAndTheLeaseTable) {
  NetworkConfig c = make_config();
  c.static_names = {StaticName{"printer", ip(10, 128, 0, 40)}};
  engine_.update_live_settings(c);
  EXPECT_EQ(engine_.zone().static_address("printer"), ip(10, 128, 0, 40));
  EXPECT_FALSE(engine_.leases().name_available("printer", kMac1, T0, "vm1"));
}

}  // namespace
}  // namespace wownet::engine_test
