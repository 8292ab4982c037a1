// Registry logic, memory only: the nodes' side (Register and Resolve,
// updates pushed to the other nodes, errors, snapshots on node up, timers,
// pool exhaustion).
#include "registry_fixture.h"

namespace wownet::registry::test {
namespace {

TEST_F(RegistryTest, RegisterRecordsEndpointsAndResolveReturnsThem) {
  auto out = send("node-a", register_msg(11, {{"192.168.1.10", 4789}, {"10.0.0.10", 4790}}));
  ASSERT_EQ(out.size(), 1u);
  ASSERT_TRUE(out[0].message.has_registered());
  EXPECT_EQ(out[0].message.request_id(), 11u);
  EXPECT_EQ(out[0].message.registered().node_id(), "node-a");
  EXPECT_EQ(out[0].message.registered().reflexive().address(), "198.51.100.1");
  EXPECT_EQ(out[0].message.registered().reflexive().port(), 5000u);
  const NodeInfo* n = reg_.node("node-a");
  ASSERT_TRUE(n);
  ASSERT_EQ(n->local_endpoints.size(), 2u);

  ov::Lease a = allocate("node-a", kMac1, "vm-a");
  auto r = send("node-b", resolve(12, a.address()));
  // The answer to node-b, and a punch to node-a so it sends toward node-b.
  ASSERT_EQ(r.size(), 2u);
  ASSERT_TRUE(r[0].message.has_punch());
  EXPECT_EQ(r[0].node_id, "node-a");
  EXPECT_EQ(r[0].message.punch().node_id(), "node-b");
  ASSERT_TRUE(r[1].message.has_resolved());
  EXPECT_EQ(r[1].node_id, "node-b");
  EXPECT_EQ(r[1].message.request_id(), 12u);
  const ov::Resolved& res = r[1].message.resolved();
  EXPECT_EQ(res.address(), a.address());
  EXPECT_EQ(res.node_id(), "node-a");
  EXPECT_EQ(res.node_name(), "host-a");
  ASSERT_EQ(res.endpoints_size(), 3);
  EXPECT_EQ(res.endpoints(0).address(), "198.51.100.1");  // reflexive first
  EXPECT_EQ(res.endpoints(1).address(), "192.168.1.10");
  EXPECT_EQ(res.endpoints(2).port(), 4790u);
}

TEST_F(RegistryTest, RegisterWithBadEndpointsIsAnError) {
  auto out = send("node-a", register_msg(1, {{"not-an-address", 1}}));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].message.has_error());
  out = send("node-a", register_msg(1, {{"192.168.1.1", 0}}));
  EXPECT_TRUE(out[0].message.has_error());
  std::vector<Endpoint> many(kMaxLocalEndpoints + 1, Endpoint{"192.168.1.1", 1});
  out = send("node-a", register_msg(1, many));
  EXPECT_TRUE(out[0].message.has_error());
}

TEST_F(RegistryTest, ResolveOfUnknownOrInactiveAddressIsAnError) {
  for (const char* a : {"10.128.0.2", "garbage", "", "10.0.0.1"}) {
    auto out = send("node-b", resolve(9, a));
    ASSERT_EQ(out.size(), 1u);
    EXPECT_TRUE(out[0].message.has_error()) << a;
    EXPECT_EQ(out[0].message.request_id(), 9u);
  }
  ov::LeaseReply o = ask("node-a", offer(1, kMac1, "vm"));  // offered, not bound
  EXPECT_TRUE(send("node-b", resolve(9, o.lease().address()))[0].message.has_error());
}

TEST_F(RegistryTest, ResolveOfTheRendezvousOwnVm) {
  std::vector<Outgoing> out;
  ov::LeaseReply r = reg_.request_local(now_, bind(0, kMac1, "local-vm", "10.128.1.1").lease_request(), out);
  ASSERT_TRUE(r.ok()) << r.reason();
  EXPECT_EQ(r.lease().node_id(), "self-id");
  EXPECT_EQ(r.lease().node_name(), "rdv");
  EXPECT_EQ(updates_to(out, "node-a").size(), 1u);
  EXPECT_EQ(updates_to(out, "node-b").size(), 1u);
  auto res = send("node-a", resolve(3, "10.128.1.1"));
  ASSERT_TRUE(res[0].message.has_resolved());
  EXPECT_EQ(res[0].message.resolved().node_id(), "self-id");
  ASSERT_EQ(res[0].message.resolved().endpoints_size(), 1);
  EXPECT_EQ(res[0].message.resolved().endpoints(0).port(), 4789u);
  // Remote nodes cannot release it; the rendezvous can.
  EXPECT_FALSE(ask("node-a", release(4, "10.128.1.1", kMac1)).ok());
  EXPECT_TRUE(reg_.release_local(now_, release(0, "10.128.1.1", kMac1).lease_release(), out).ok());
}

TEST_F(RegistryTest, UpdatesGoToTheOtherOnlineNodesOnly) {
  up("node-c", "host-c", "198.51.100.3", 5000);
  up("node-d", "host-d", "198.51.100.4", 5000);
  reg_.on_node_down(now_, "node-d");
  auto out = send("node-a", offer(1, kMac1, "vm"));
  EXPECT_EQ(to(out, "node-a").size(), 1u);  // the reply only
  EXPECT_EQ(updates_to(out, "node-a").size(), 0u);
  EXPECT_EQ(updates_to(out, "node-b").size(), 1u);
  EXPECT_EQ(updates_to(out, "node-c").size(), 1u);
  EXPECT_TRUE(to(out, "node-d").empty());
  EXPECT_TRUE(to(out, "self-id").empty());
  for (const Outgoing& o : out) {
    if (o.node_id != "node-a") {
      EXPECT_EQ(o.message.request_id(), 0u);
    }
  }
  EXPECT_EQ(updates_to(out, "node-b")[0].address(), "10.128.0.2");
  // A refused request changes nothing and pushes nothing.
  out = send("node-b", bind(2, kMac2, "vm", "10.128.0.2"));
  EXPECT_EQ(out.size(), 1u);
  // Nor does an OFFER answered from an existing binding.
  allocate("node-a", kMac1, "vm");
  out = send("node-a", offer(3, kMac1, "vm"));
  EXPECT_EQ(out.size(), 1u);
}

TEST_F(RegistryTest, MessagesFromNodesWithoutASessionGetAnError) {
  auto out = send("stranger", offer(1, kMac1, "vm"));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].node_id, "stranger");
  EXPECT_TRUE(out[0].message.has_error());
  reg_.on_node_down(now_, "node-a");
  out = send("node-a", offer(1, kMac1, "vm"));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].message.has_error());
  EXPECT_EQ(reg_.leases().size(), 0u);
}

TEST_F(RegistryTest, UnexpectedMessagesGetAnErrorButErrorsAndKeepalivesDoNot) {
  ov::NodeMessage m;
  m.set_request_id(3);
  EXPECT_TRUE(send("node-a", m)[0].message.has_error());  // empty
  m.mutable_lease_snapshot();
  EXPECT_TRUE(send("node-a", m)[0].message.has_error());
  m.mutable_error()->set_message("x");
  EXPECT_TRUE(send("node-a", m).empty());
  m.mutable_keepalive();
  EXPECT_TRUE(send("node-a", m).empty());
  m.mutable_hello();
  EXPECT_TRUE(send("node-a", m).empty());
}

TEST_F(RegistryTest, NodeUpSendsRegisteredSnapshotAndCrl) {
  std::vector<Outgoing> ignored;
  std::string error;
  ASSERT_TRUE(reg_.set_crl("-----BEGIN X509 CRL-----\n...", ignored, error));
  EXPECT_EQ(to(ignored, "node-a").size(), 1u);
  allocate("node-a", kMac1, "vm");
  auto out = up("node-c", "host-c", "203.0.113.9", 6000);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_TRUE(out[0].message.has_registered());
  EXPECT_EQ(out[0].message.registered().node_id(), "node-c");
  EXPECT_EQ(out[0].message.registered().reflexive().address(), "203.0.113.9");
  ASSERT_TRUE(out[1].message.has_lease_snapshot());
  ASSERT_EQ(out[1].message.lease_snapshot().leases_size(), 1);
  EXPECT_EQ(out[1].message.lease_snapshot().leases(0).node_name(), "host-a");
  ASSERT_TRUE(out[2].message.has_crl());
  EXPECT_EQ(out[2].message.crl().pem(), reg_.crl());
  for (const Outgoing& o : out) EXPECT_EQ(o.node_id, "node-c");
}

TEST_F(RegistryTest, LargeSnapshotIsSplitIntoMessagesThatFitTheBudget) {
  for (int i = 0; i < 240; ++i) {
    char mac[18];
    std::snprintf(mac, sizeof mac, "52:54:00:00:01:%02x", i);
    ov::LeaseReply r =
        ask(i % 2 ? "node-a" : "node-b",
            bind(1, mac, "vm-" + std::to_string(i), "10.128.1." + std::to_string(i + 1), "host" + std::to_string(i)));
    ASSERT_TRUE(r.ok()) << r.reason();
  }
  auto out = up("node-c", "host-c", "203.0.113.9", 6000);
  std::size_t leases = 0;
  bool first = true;
  for (const Outgoing& o : out) {
    if (o.message.has_registered() || o.message.has_crl()) continue;
    EXPECT_LE(o.message.ByteSizeLong(), kMaxLeaseMessageBytes);
    EXPECT_EQ(o.message.has_lease_snapshot(), first);
    EXPECT_EQ(o.message.has_lease_update(), !first);
    leases += std::size_t(first ? o.message.lease_snapshot().leases_size() : o.message.lease_update().leases_size());
    first = false;
  }
  EXPECT_EQ(leases, reg_.leases().size());
  EXPECT_GT(out.size(), 10u);
}

TEST_F(RegistryTest, EmptyTableStillSendsAnEmptySnapshot) {
  auto out = up("node-c", "host-c", "203.0.113.9", 6000);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(out[1].message.has_lease_snapshot());
  EXPECT_EQ(out[1].message.lease_snapshot().leases_size(), 0);
}

TEST_F(RegistryTest, TimerExpiresOffersAndAnnouncesExpiredLeases) {
  ov::LeaseReply o = ask("node-a", offer(1, kMac1, "vm-a"));
  ov::Lease bound = allocate("node-b", kMac2, "vm-b");
  EXPECT_EQ(reg_.next_deadline(), now_ + NetworkConfig{}.offer_hold);
  now_ += NetworkConfig{}.offer_hold - 1;
  std::vector<Outgoing> out;
  reg_.on_timer(now_, out);
  EXPECT_TRUE(out.empty());
  now_ += 1;
  reg_.on_timer(now_, out);
  EXPECT_EQ(reg_.leases().find(*Ipv4Addr::parse(o.lease().address())), nullptr);
  ASSERT_EQ(updates_to(out, "node-a").size(), 1u);
  EXPECT_EQ(updates_to(out, "node-a")[0].state(), "offered");
  EXPECT_EQ(updates_to(out, "node-b").size(), 1u);

  out.clear();
  now_ = bound.expiry_unix();
  EXPECT_EQ(reg_.next_deadline(), now_);
  reg_.on_timer(now_, out);
  ASSERT_EQ(updates_to(out, "node-a").size(), 1u);
  EXPECT_EQ(updates_to(out, "node-a")[0].address(), bound.address());
  // Expired bound leases are remembered for their MAC.
  const Lease* l = reg_.leases().find(*Ipv4Addr::parse(bound.address()));
  ASSERT_TRUE(l);
  EXPECT_EQ(l->mac, *MacAddr::parse(kMac2));
  out.clear();
  reg_.on_timer(now_ + 1000, out);
  EXPECT_TRUE(out.empty());
}

TEST_F(RegistryTest, RenewalIsPushedSoOtherNodesKeepRouting) {
  ov::Lease a = allocate("node-a", kMac1, "vm-a");
  now_ += 1800;
  auto out = send("node-a", bind(3, kMac1, "vm-a", a.address()));
  ASSERT_TRUE(reply_to(out, "node-a").ok());
  auto to_b = updates_to(out, "node-b");
  ASSERT_EQ(to_b.size(), 1u);
  EXPECT_EQ(to_b[0].expiry_unix(), now_ + NetworkConfig{}.lease_time);
}

TEST_F(RegistryTest, PoolExhaustion) {
  NetworkConfig small;
  small.network = *Ipv4Prefix::parse("10.128.0.0/29");  // .1 gateway, .2-.6 for VMs
  Registry r(small, nullptr);
  std::vector<Outgoing> out;
  r.on_node_up(now_, "n", "n", "198.51.100.1", 1, out);
  for (int i = 0; i < 5; ++i) {
    out.clear();
    r.on_message(now_, "n", offer(1, "52:54:00:00:01:0" + std::to_string(i), "vm"), out);
    ASSERT_TRUE(reply_to(out, "n").ok());
  }
  out.clear();
  r.on_message(now_, "n", offer(1, "52:54:00:00:02:00", "vm"), out);
  EXPECT_EQ(reply_to(out, "n").reason(), "address pool exhausted");
}

}  // namespace
}  // namespace wownet::registry::test
