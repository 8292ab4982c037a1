// Registry logic, memory only: allocation across nodes, migration, node
// ownership, release and decline, host names, hole punching (the nodes' side:
// registry_node_test.cpp).
#include "registry/registry.h"

#include <gtest/gtest.h>

#include "registry_fixture.h"
#include "registry_test_util.h"

namespace wownet::registry::test {
namespace {

TEST_F(RegistryTest, OffersAcrossTwoNodesAreDistinctAndCarryTheNode) {
  ov::LeaseReply a = ask("node-a", offer(7, kMac1, "vm-a"));
  ov::LeaseReply b = ask("node-b", offer(8, kMac2, "vm-b"));
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a.lease().address(), "10.128.0.2");  // .1 is the gateway
  EXPECT_EQ(b.lease().address(), "10.128.0.3");
  EXPECT_EQ(a.lease().state(), "offered");
  EXPECT_EQ(a.lease().node_id(), "node-a");
  EXPECT_EQ(a.lease().node_name(), "host-a");
  EXPECT_EQ(a.lease().expiry_unix(), now_ + NetworkConfig{}.offer_hold);
  EXPECT_EQ(b.lease().node_id(), "node-b");

  ov::Lease la = allocate("node-a", kMac1, "vm-a");
  ov::Lease lb = allocate("node-b", kMac2, "vm-b");
  EXPECT_EQ(la.address(), "10.128.0.2");
  EXPECT_EQ(lb.address(), "10.128.0.3");
  EXPECT_EQ(la.state(), "bound");
  EXPECT_EQ(la.expiry_unix(), now_ + NetworkConfig{}.lease_time);
  EXPECT_EQ(reg_.leases().active_count(now_), 2u);
}

TEST_F(RegistryTest, ReplyEchoesRequestId) {
  auto out = send("node-a", offer(4242, kMac1, "vm"));
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out.front().node_id, "node-a");
  EXPECT_EQ(out.front().message.request_id(), 4242u);
  EXPECT_TRUE(out.front().message.has_lease_reply());
}

TEST_F(RegistryTest, RequestedAddressIsHonouredWhenFree) {
  ov::LeaseReply r = ask("node-a", offer(1, kMac1, "vm", "", "10.128.7.9"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.lease().address(), "10.128.7.9");
  // Another MAC asking for it gets the lowest free address instead.
  ov::LeaseReply s = ask("node-b", offer(1, kMac2, "vm", "", "10.128.7.9"));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s.lease().address(), "10.128.0.2");
}

TEST_F(RegistryTest, SameMacGetsItsAddressBack) {
  ov::Lease first = allocate("node-a", kMac1, "vm-a");
  now_ += 10;
  ASSERT_TRUE(ask("node-a", release(3, first.address(), kMac1)).ok());
  // Others allocate meanwhile; the released address stays remembered.
  allocate("node-b", kMac2, "vm-b");
  now_ += 5 * 3600;  // long after every lease expired
  allocate("node-b", kMac3, "vm-c");
  ov::LeaseReply again = ask("node-a", offer(4, kMac1, "vm-a"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.lease().address(), first.address());
}

TEST_F(RegistryTest, MigratedVmKeepsItsAddressOnTheNewNode) {
  ov::Lease on_a = allocate("node-a", kMac1, "web");
  now_ += 100;
  // The VM is live-migrated to B and asks again (DISCOVER, then REQUEST).
  auto out = send("node-b", offer(5, kMac1, "web"));
  ov::LeaseReply o = reply_to(out, "node-b");
  ASSERT_TRUE(o.ok()) << o.reason();
  EXPECT_EQ(o.lease().address(), on_a.address());
  EXPECT_EQ(o.lease().node_id(), "node-b");
  EXPECT_EQ(o.lease().state(), "bound");
  // A hears that the lease moved.
  auto to_a = updates_to(out, "node-a");
  ASSERT_EQ(to_a.size(), 1u);
  EXPECT_EQ(to_a[0].node_id(), "node-b");
  ov::LeaseReply b = ask("node-b", bind(6, kMac1, "web", on_a.address()));
  ASSERT_TRUE(b.ok()) << b.reason();
  EXPECT_EQ(b.lease().node_id(), "node-b");
  // A no longer holds it and may not release it.
  EXPECT_FALSE(ask("node-a", release(7, on_a.address(), kMac1)).ok());
  EXPECT_TRUE(reg_.leases().find_active(*Ipv4Addr::parse(on_a.address()), now_));
}

TEST_F(RegistryTest, LearnedBindAfterMigrationMovesTheLease) {
  ov::Lease on_a = allocate("node-a", kMac1, "web");
  ov::LeaseReply b = ask("node-b", bind(3, kMac1, "web", on_a.address(), "", true));
  ASSERT_TRUE(b.ok()) << b.reason();
  EXPECT_EQ(b.lease().node_id(), "node-b");
  EXPECT_EQ(b.lease().origin(), "dhcp");  // renewing a DHCP lease keeps its origin
}

TEST_F(RegistryTest, SameMacUnderAnotherVmNameCannotTakeAnActiveLease) {
  ov::Lease on_a = allocate("node-a", kMac1, "web");
  ov::LeaseReply o = ask("node-b", offer(3, kMac1, "clone"));
  EXPECT_FALSE(o.ok());
  EXPECT_FALSE(ask("node-b", bind(4, kMac1, "clone", on_a.address())).ok());
  EXPECT_FALSE(ask("node-b", bind(5, kMac1, "clone", "10.128.9.9")).ok());
  EXPECT_EQ(reg_.leases().find_by_mac(*MacAddr::parse(kMac1))->node, "node-a");
  // Once A's lease has expired the MAC is free to move.
  now_ += NetworkConfig{}.lease_time + 1;
  ov::LeaseReply later = ask("node-b", offer(6, kMac1, "clone"));
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(later.lease().address(), on_a.address());
  EXPECT_EQ(later.lease().node_id(), "node-b");
}

TEST_F(RegistryTest, BindOfAnotherNodesActiveAddressIsRefused) {
  ov::Lease on_a = allocate("node-a", kMac1, "vm-a");
  ov::LeaseReply r = ask("node-b", bind(3, kMac2, "vm-b", on_a.address()));
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.reason(), "address in use");
  ov::LeaseReply learned = ask("node-b", bind(4, kMac2, "vm-b", on_a.address(), "", true));
  EXPECT_FALSE(learned.ok());
  // An offer reserved on A is also out of reach.
  ov::LeaseReply o = ask("node-a", offer(5, kMac3, "vm-c"));
  ASSERT_TRUE(o.ok());
  EXPECT_FALSE(ask("node-b", bind(6, kMac2, "vm-b", o.lease().address())).ok());
  const Lease* l = reg_.leases().find(*Ipv4Addr::parse(on_a.address()));
  ASSERT_TRUE(l);
  EXPECT_EQ(l->node, "node-a");
  EXPECT_EQ(l->mac, *MacAddr::parse(kMac1));
}

TEST_F(RegistryTest, LearnedStaticBind) {
  ov::LeaseReply r = ask("node-a", bind(1, kMac1, "static-vm", "10.128.44.5", "", true));
  ASSERT_TRUE(r.ok()) << r.reason();
  EXPECT_EQ(r.lease().origin(), "learned");
  EXPECT_EQ(r.lease().state(), "bound");
  EXPECT_EQ(r.lease().expiry_unix(), now_ + NetworkConfig{}.lease_time);
  EXPECT_EQ(r.lease().node_id(), "node-a");
  // A learned address is never "offered".
  EXPECT_FALSE(ask("node-a", lease_request(2, ov::LeaseRequest::OFFER, kMac2, "x", "", "", true)).ok());
}

// A short DHCP lease is held at least NetworkConfig::kMinHold seconds
// (clients such as busybox udhcpc keep it that long); a learned address,
// renewed by traffic, for lease_time.
TEST(RegistryShortLeases, ADhcpBindIsHeldAtLeastTheMinimumHold) {
  NetworkConfig c;
  c.lease_time = 10;
  Registry reg(c, nullptr);
  std::vector<Outgoing> out;
  reg.on_node_up(kT0, "node-a", "host-a", "198.51.100.1", 5000, out);
  auto ask = [&](const ov::NodeMessage& m) {
    out.clear();
    reg.on_message(kT0, "node-a", m, out);
    return reply_to(out, "node-a");
  };
  ov::LeaseReply dhcp = ask(bind(1, kMac1, "vm-a", "10.128.0.9", ""));
  ASSERT_TRUE(dhcp.ok()) << dhcp.reason();
  EXPECT_EQ(dhcp.lease().expiry_unix(), kT0 + NetworkConfig::kMinHold);
  ov::LeaseReply learned = ask(bind(2, kMac2, "vm-b", "10.128.0.10", "", true));
  ASSERT_TRUE(learned.ok()) << learned.reason();
  EXPECT_EQ(learned.lease().expiry_unix(), kT0 + 10);
}

TEST_F(RegistryTest, BindRefusesAddressesNoVmMayHold) {
  EXPECT_FALSE(ask("node-a", bind(1, kMac1, "vm", "10.128.0.1")).ok());      // gateway
  EXPECT_FALSE(ask("node-a", bind(1, kMac1, "vm", "10.128.0.0")).ok());      // network
  EXPECT_FALSE(ask("node-a", bind(1, kMac1, "vm", "10.255.255.255")).ok());  // broadcast
  EXPECT_FALSE(ask("node-a", bind(1, kMac1, "vm", "10.0.0.5")).ok());        // outside
  EXPECT_FALSE(ask("node-a", bind(1, kMac1, "vm", "")).ok());                // none
  EXPECT_EQ(reg_.leases().size(), 0u);
}

TEST_F(RegistryTest, MalformedRequestsAreRefusedWithAReason) {
  for (const char* mac :
       {"", "nonsense", "52:54:00:00:00", "00:00:00:00:00:00", "01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff"}) {
    ov::LeaseReply r = ask("node-a", offer(1, mac, "vm"));
    EXPECT_FALSE(r.ok()) << mac;
    EXPECT_FALSE(r.reason().empty());
  }
  EXPECT_EQ(ask("node-a", offer(1, kMac1, "vm", "", "10.0.0.1")).reason(), "requested address outside the network");
  EXPECT_EQ(ask("node-a", offer(1, kMac1, "vm", "", "10.128.0.300")).reason(), "malformed requested address");
  EXPECT_FALSE(ask("node-a", offer(1, kMac1, std::string("bad\xff", 4))).ok());
  EXPECT_FALSE(ask("node-a", offer(1, kMac1, std::string("a\nb"))).ok());
  EXPECT_FALSE(ask("node-a", offer(1, kMac1, std::string(300, 'v'))).ok());
  EXPECT_TRUE(ask("node-a", offer(1, kMac1, "vm-\xc3\xa9t\xc3\xa9")).ok());  // UTF-8 is fine
  auto m = offer(1, kMac2, "vm");
  m.mutable_lease_request()->set_kind(static_cast<ov::LeaseRequest::Kind>(9));
  EXPECT_FALSE(ask("node-a", m).ok());
  EXPECT_FALSE(ask("node-a", release(1, "garbage", kMac1)).ok());
  EXPECT_EQ(reg_.counters().lease_refused, 13u);
}

TEST_F(RegistryTest, ReleaseOnlyByTheOwningNode) {
  ov::Lease on_a = allocate("node-a", kMac1, "vm-a");
  ov::LeaseReply by_b = ask("node-b", release(3, on_a.address(), kMac1));
  EXPECT_FALSE(by_b.ok());
  EXPECT_TRUE(reg_.leases().find_active(*Ipv4Addr::parse(on_a.address()), now_));
  EXPECT_FALSE(ask("node-a", release(4, on_a.address(), kMac2)).ok());        // wrong MAC
  EXPECT_FALSE(ask("node-b", release(5, on_a.address(), kMac1, true)).ok());  // nor decline it

  now_ += 30;
  auto out = send("node-a", release(6, on_a.address(), kMac1));
  ov::LeaseReply r = reply_to(out, "node-a");
  ASSERT_TRUE(r.ok()) << r.reason();
  EXPECT_EQ(r.lease().expiry_unix(), now_);
  EXPECT_FALSE(reg_.leases().find_active(*Ipv4Addr::parse(on_a.address()), now_));
  auto to_b = updates_to(out, "node-b");
  ASSERT_EQ(to_b.size(), 1u);
  EXPECT_EQ(to_b[0].expiry_unix(), now_);
  // Released twice: nothing to release.
  EXPECT_FALSE(ask("node-a", release(7, on_a.address(), kMac1)).ok());
}

TEST_F(RegistryTest, DeclineTakesTheAddressOutOfThePoolForAWhile) {
  ov::LeaseReply o = ask("node-a", offer(1, kMac1, "vm-a"));
  ASSERT_TRUE(o.ok());
  auto out = send("node-a", release(2, o.lease().address(), kMac1, true));
  ov::LeaseReply d = reply_to(out, "node-a");
  ASSERT_TRUE(d.ok()) << d.reason();
  EXPECT_EQ(d.lease().state(), "declined");
  EXPECT_EQ(updates_to(out, "node-b").size(), 1u);
  // Neither this MAC nor another gets it now.
  ov::LeaseReply again = ask("node-a", offer(3, kMac1, "vm-a"));
  ov::LeaseReply other = ask("node-b", offer(4, kMac2, "vm-b", "", o.lease().address()));
  EXPECT_NE(again.lease().address(), o.lease().address());
  EXPECT_NE(other.lease().address(), o.lease().address());
  EXPECT_FALSE(ask("node-b", bind(5, kMac3, "vm-c", o.lease().address())).ok());
  // After the hold the timer drops it and every online node hears of it.
  now_ += NetworkConfig{}.decline_hold;
  EXPECT_LE(reg_.next_deadline(), now_);
  std::vector<Outgoing> timer_out;
  reg_.on_timer(now_, timer_out);
  EXPECT_EQ(reg_.leases().find(*Ipv4Addr::parse(o.lease().address())), nullptr);
  EXPECT_FALSE(updates_to(timer_out, "node-a").empty());
  EXPECT_FALSE(updates_to(timer_out, "node-b").empty());
  EXPECT_TRUE(ask("node-b", bind(6, kMac3, "vm-c", o.lease().address())).ok());
}

TEST_F(RegistryTest, HostNameConflictAcrossNodes) {
  ov::Lease a = allocate("node-a", kMac1, "vm-a", "web");
  EXPECT_EQ(a.host_name(), "web");
  ov::LeaseReply o = ask("node-b", offer(1, kMac2, "vm-b", "web"));
  ASSERT_TRUE(o.ok());
  ov::LeaseReply b = ask("node-b", bind(2, kMac2, "vm-b", o.lease().address(), "WEB.example"));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b.lease().host_name(), "");  // the first claimant keeps it
  EXPECT_EQ(b.reason(), "host name not available");
  // Reserved names are refused.
  EXPECT_EQ(ask("node-b", bind(3, kMac2, "vm-b", o.lease().address(), "gateway")).lease().host_name(), "");
  EXPECT_EQ(ask("node-b", bind(4, kMac2, "vm-b", o.lease().address(), "c128000005")).lease().host_name(), "");
  // Once A's lease is gone the name is free.
  ASSERT_TRUE(ask("node-a", release(5, a.address(), kMac1)).ok());
  EXPECT_EQ(ask("node-b", bind(6, kMac2, "vm-b", o.lease().address(), "web")).lease().host_name(), "web");
}

TEST_F(RegistryTest, RevivedLeaseDoesNotTakeBackANameSomeoneElseHolds) {
  ov::Lease a = allocate("node-a", kMac1, "vm-a", "cache");
  now_ = a.expiry_unix() + 1;  // A's lease lapses; B's VM claims the name
  ov::Lease b = allocate("node-b", kMac2, "vm-b", "cache");
  EXPECT_EQ(b.host_name(), "cache");
  // A's VM comes back to its remembered address without asking for a name.
  ov::LeaseReply r = ask("node-a", bind(3, kMac1, "vm-a", a.address()));
  ASSERT_TRUE(r.ok()) << r.reason();
  EXPECT_EQ(r.lease().host_name(), "");
  EXPECT_EQ(reg_.leases().find(*Ipv4Addr::parse(a.address()))->host_name, "");
  EXPECT_EQ(reg_.leases().find(*Ipv4Addr::parse(b.address()))->host_name, "cache");
}

TEST(LeaseProto, RoundTrip) {
  Lease l = make_lease("10.128.3.4", "52:54:00:aa:bb:cc", "vm", "web", "node-a", kT0);
  l.state = LeaseState::Bound;
  l.origin = LeaseOrigin::Learned;
  ov::Lease p = lease_to_proto(l, "host-a");
  EXPECT_EQ(p.node_name(), "host-a");
  auto back = lease_from_proto(p);
  ASSERT_TRUE(back);
  EXPECT_TRUE(same(l, *back));
  p.set_state("bogus");
  EXPECT_FALSE(lease_from_proto(p));
  Lease d;
  d.address = l.address;
  d.state = LeaseState::Declined;
  d.expiry = kT0;
  p = lease_to_proto(d, "");
  EXPECT_EQ(p.mac(), "");
  ASSERT_TRUE(lease_from_proto(p));
  EXPECT_TRUE(same(d, *lease_from_proto(p)));
}

}  // namespace
}  // namespace wownet::registry::test

namespace wownet::registry::test {
namespace {
TEST_F(RegistryTest, ResolveCoordinatesHolePunchingAndPrefersLocalEndpointsBehindOneNat) {
  send("node-a", register_msg(1, {{"192.168.1.10", 7700}}));
  send("node-b", register_msg(2, {{"192.168.1.11", 7700}}));
  up("node-c", "host-c", "198.51.100.1", 6000);  // behind the same NAT as node-a
  send("node-c", register_msg(3, {{"192.168.1.12", 7700}}));
  ov::Lease a = allocate("node-a", kMac1, "vm-a");

  // Different NATs: the answer lists the reflexive endpoint first, and
  // node-a is told to send to node-b's reflexive endpoint, then its local one.
  auto r = send("node-b", resolve(10, a.address()));
  ASSERT_EQ(r.size(), 2u);
  const ov::Punch& p = r[0].message.punch();
  ASSERT_EQ(p.endpoints_size(), 2);
  EXPECT_EQ(p.endpoints(0).address(), "198.51.100.2");
  EXPECT_EQ(p.endpoints(1).address(), "192.168.1.11");
  EXPECT_EQ(r[1].message.resolved().endpoints(0).address(), "198.51.100.1");

  // Same NAT (same reflexive address): local endpoints first, both ways.
  auto s = send("node-c", resolve(11, a.address()));
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].node_id, "node-a");
  EXPECT_EQ(s[0].message.punch().endpoints(0).address(), "192.168.1.12");
  EXPECT_EQ(s[1].message.resolved().endpoints(0).address(), "192.168.1.10");
  EXPECT_EQ(s[1].message.resolved().endpoints(1).address(), "198.51.100.1");
}

TEST_F(RegistryTest, ResolveByNodeAfterANatRebindingGivesTheNewEndpoint) {
  reg_.set_relay(true);
  auto ups = up("node-c", "host-c", "198.51.100.3", 6000);
  ASSERT_FALSE(ups.empty());
  ASSERT_TRUE(ups[0].message.has_registered());
  EXPECT_TRUE(ups[0].message.registered().relay());
  // The transport saw node-a's session move (its NAT picked a new port).
  reg_.on_node_moved(now_, "node-a", "198.51.100.1", 5999);
  ov::NodeMessage m;
  m.set_request_id(21);
  m.mutable_resolve()->set_node_id("node-a");
  auto r = send("node-b", m);
  ASSERT_EQ(r.size(), 2u);
  ASSERT_TRUE(r[0].message.has_punch());
  EXPECT_EQ(r[0].node_id, "node-a");
  const ov::Resolved& res = r[1].message.resolved();
  EXPECT_EQ(res.node_id(), "node-a");
  EXPECT_TRUE(res.address().empty());
  EXPECT_TRUE(res.punched());
  EXPECT_TRUE(res.online());
  ASSERT_GE(res.endpoints_size(), 1);
  EXPECT_EQ(res.endpoints(0).port(), 5999u);
  // An unknown node is an error; the rendezvous itself is never punched.
  m.mutable_resolve()->set_node_id("nobody");
  r = send("node-b", m);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_TRUE(r[0].message.has_error());
  m.mutable_resolve()->set_node_id("self-id");
  r = send("node-b", m);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_FALSE(r[0].message.resolved().punched());
  EXPECT_EQ(r[0].message.resolved().endpoints(0).address(), "192.0.2.1");
  // A node that went offline resolves, but is not punched.
  reg_.on_node_down(now_, "node-a");
  m.mutable_resolve()->set_node_id("node-a");
  r = send("node-b", m);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_FALSE(r[0].message.resolved().online());
  EXPECT_FALSE(r[0].message.resolved().punched());
}
}  // namespace
}  // namespace wownet::registry::test

namespace wownet::registry::test {
namespace {

// A lease's binding is its VM's (by name) until it expires, on the VM's own
// node too: a VM detached there and another VM attached with its MAC.
TEST_F(RegistryTest, SameMacUnderAnotherVmNameOnTheSameNodeCannotTakeAnActiveLease) {
  ov::Lease web = allocate("node-a", kMac1, "web", "www");
  ASSERT_EQ(web.host_name(), "www");
  EXPECT_FALSE(ask("node-a", offer(3, kMac1, "intruder")).ok());
  EXPECT_FALSE(ask("node-a", offer(4, kMac1, "intruder", "", web.address())).ok());
  EXPECT_FALSE(ask("node-a", bind(5, kMac1, "intruder", web.address())).ok());
  EXPECT_FALSE(ask("node-a", bind(6, kMac1, "intruder", web.address(), "", true)).ok());
  EXPECT_FALSE(ask("node-a", bind(7, kMac1, "intruder", "10.128.9.9", "", true)).ok());
  // The rendezvous' own VMs follow the same rule.
  std::vector<Outgoing> out;
  EXPECT_FALSE(reg_.request_local(now_, offer(8, kMac1, "intruder").lease_request(), out).ok());
  const Lease* l = reg_.leases().find_by_mac(*MacAddr::parse(kMac1));
  ASSERT_TRUE(l);
  EXPECT_EQ(l->vm, "web");
  EXPECT_EQ(l->host_name, "www");
  EXPECT_EQ(l->address.to_string(), web.address());
  EXPECT_EQ(l->expiry, kT0 + NetworkConfig{}.lease_time);
  // The VM itself, attached again on its node, renews as before.
  now_ += 100;
  ov::LeaseReply again = ask("node-a", bind(9, kMac1, "web", web.address()));
  ASSERT_TRUE(again.ok()) << again.reason();
  EXPECT_EQ(again.lease().host_name(), "www");
  // Once the lease has expired the MAC may serve another VM, without the
  // old VM's host name.
  now_ += NetworkConfig{}.lease_time + 1;
  ov::Lease later = allocate("node-a", kMac1, "intruder");
  EXPECT_EQ(later.vm(), "intruder");
  EXPECT_EQ(later.host_name(), "");
}

TEST_F(RegistryTest, AMigratingVmStillTakesItsLeaseAlongWhileOthersCannot) {
  ov::Lease on_a = allocate("node-a", kMac1, "web", "www");
  EXPECT_FALSE(ask("node-b", offer(3, kMac1, "intruder")).ok());
  EXPECT_FALSE(ask("node-a", offer(4, kMac1, "intruder")).ok());
  ov::LeaseReply moved = ask("node-b", offer(5, kMac1, "web"));
  ASSERT_TRUE(moved.ok()) << moved.reason();
  EXPECT_EQ(moved.lease().address(), on_a.address());
  EXPECT_EQ(moved.lease().node_id(), "node-b");
  EXPECT_EQ(moved.lease().host_name(), "www");
  // Now on B, still no one else's, on either node.
  EXPECT_FALSE(ask("node-b", offer(6, kMac1, "intruder")).ok());
  EXPECT_FALSE(ask("node-a", offer(7, kMac1, "intruder")).ok());
}

}  // namespace
}  // namespace wownet::registry::test
