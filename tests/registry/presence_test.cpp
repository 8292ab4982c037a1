// Rendezvous and node presence through etcd leases, against the in-memory
// etcd: every rendezvous sees the others and where each node has a
// session; a rendezvous whose lease expires (it died) vanishes with its
// nodes' presence; a lost lease is granted again with every key; a watch
// that stops delivering (half-open connection) is found by the heartbeat
// and replaced; bad keys are counted, not applied.
#include "registry/presence.h"

#include <gtest/gtest.h>

#include "fake_etcd.h"
#include "registry/registry_etcd.h"
#include "registry_test_util.h"

namespace wownet::registry::test {
namespace {

const std::string kHost1(32, 'a'), kHost2(32, 'b');

// A rendezvous on the shared registry with its presence.
struct Rv {
  Rv(FakeEtcd& etcd, const std::string& id) : kv(etcd), reg(NetworkConfig{}, nullptr) {
    reg.share_commits();
    reg.set_self(id, "rv-" + id.substr(0, 1), {});
    shared = std::make_unique<SharedRegistry>(
        reg, kv, "/wownet/", [] { return kT0; }, [](std::vector<Outgoing>&) {});
    presence = std::make_unique<Presence>(
        kv, "/wownet/", [] { return kT0; }, Presence::Options{10, std::chrono::milliseconds(2000), 3});
    presence->set_self(id, "rv-" + id.substr(0, 1), "192.0.2." + std::to_string(id[0] - '0') + ":7700");
    shared->start();
    shared->attach_presence(*presence);
  }
  FakeEtcd::Client kv;
  Registry reg;
  std::unique_ptr<SharedRegistry> shared;
  std::unique_ptr<Presence> presence;
};

const std::string kRv1 = std::string(1, '1') + std::string(31, 'f');
const std::string kRv2 = std::string(1, '2') + std::string(31, 'f');

TEST(PresenceTest, EveryRendezvousSeesTheOthersAndWhereNodesAre) {
  FakeEtcd etcd;
  Rv a(etcd, kRv1);
  etcd.run();  // (the fake replays no history to a watch: b starts after a's first writes)
  Rv b(etcd, kRv2);
  etcd.run();
  ASSERT_TRUE(a.presence->holding());
  ASSERT_EQ(a.presence->others().size(), 1u);
  EXPECT_EQ(a.presence->others().begin()->first, kRv2);
  EXPECT_EQ(a.presence->others().begin()->second.name, "rv-2");
  EXPECT_EQ(a.presence->others().begin()->second.endpoint, "192.0.2.2:7700");
  ASSERT_EQ(b.presence->others().count(kRv1), 1u);

  b.presence->node_up(kHost1);
  etcd.run();
  EXPECT_EQ(a.presence->online_elsewhere(kHost1), std::vector<std::string>{kRv2});
  EXPECT_TRUE(b.presence->online_elsewhere(kHost1).empty());  // its own session is not "elsewhere"
  EXPECT_EQ(etcd.data().count("/wownet/presence/" + kHost1 + "/" + kRv2), 1u);

  b.presence->node_down(kHost1);
  etcd.run();
  EXPECT_TRUE(a.presence->online_elsewhere(kHost1).empty());
  EXPECT_EQ(etcd.data().count("/wownet/presence/" + kHost1 + "/" + kRv2), 0u);
}

TEST(PresenceTest, ARendezvousWhoseLeaseExpiresVanishesWithItsNodes) {
  FakeEtcd etcd;
  Rv a(etcd, kRv1);
  etcd.run();
  auto b = std::make_unique<Rv>(etcd, kRv2);
  etcd.run();
  b->presence->node_up(kHost1);
  b->presence->node_up(kHost2);
  etcd.run();
  ASSERT_EQ(a.presence->online_elsewhere(kHost2).size(), 1u);
  // b dies (kill -9): no more keepalives; etcd ends its lease after the TTL.
  std::int64_t b_lease = 0;
  for (const auto& [id, keys] : etcd.leases())
    if (keys.count("/wownet/rendezvous/" + kRv2)) b_lease = id;
  ASSERT_NE(b_lease, 0);
  EXPECT_EQ(etcd.leases().at(b_lease).size(), 3u);  // its record and two presence keys
  b.reset();
  etcd.expire_lease(b_lease);
  etcd.run();
  EXPECT_TRUE(a.presence->others().empty());
  EXPECT_TRUE(a.presence->online_elsewhere(kHost1).empty());
  EXPECT_TRUE(a.presence->online_elsewhere(kHost2).empty());
}

TEST(PresenceTest, ALostLeaseIsGrantedAgainWithEveryKey) {
  FakeEtcd etcd;
  Rv a(etcd, kRv1);
  etcd.run();
  a.presence->node_up(kHost1);
  etcd.run();
  ASSERT_EQ(etcd.leases().size(), 1u);
  const std::int64_t first = etcd.leases().begin()->first;
  // Cut off from etcd longer than the TTL: etcd drops the lease.
  etcd.expire_lease(first);
  etcd.run();
  EXPECT_EQ(etcd.data().count("/wownet/rendezvous/" + kRv1), 0u);
  etcd.run_timers();  // the next beat: the keepalive answers TTL 0
  etcd.run();
  EXPECT_EQ(a.presence->counters().lost_leases, 1u);
  ASSERT_EQ(etcd.leases().size(), 1u);
  EXPECT_NE(etcd.leases().begin()->first, first);
  EXPECT_EQ(etcd.data().count("/wownet/rendezvous/" + kRv1), 1u);
  EXPECT_EQ(etcd.data().count("/wownet/presence/" + kHost1 + "/" + kRv1), 1u);
}

TEST(PresenceTest, BeatsKeepTheLeaseAliveAndHeartbeatsComeEveryFewBeats) {
  FakeEtcd etcd;
  Rv a(etcd, kRv1);
  etcd.run();
  const std::int64_t record_mod = etcd.data().at("/wownet/rendezvous/" + kRv1).mod;
  etcd.run_timers();  // beat 2
  etcd.run_timers();  // beat 3: heartbeat_every = 3
  EXPECT_EQ(etcd.keepalives(), 2);
  EXPECT_EQ(etcd.grants(), 1);
  EXPECT_GT(etcd.data().at("/wownet/rendezvous/" + kRv1).mod, record_mod);
  EXPECT_EQ(a.presence->counters().watch_stalls, 0u);
}

TEST(PresenceTest, AWatchThatStopsDeliveringIsFoundAndReplaced) {
  FakeEtcd etcd;
  Rv a(etcd, kRv1);
  etcd.run();  // (the fake replays no history to a watch: b starts after a's first writes)
  Rv b(etcd, kRv2);
  etcd.run();
  const auto loads = a.shared->counters().loads;
  etcd.set_watch_delivery(false);  // half-open: no error, no events
  etcd.run_timers();
  etcd.run_timers();  // beat 3 puts a heartbeat the watch never delivers
  etcd.run_timers();  // beat 4 finds it missing
  etcd.set_watch_delivery(true);
  etcd.run();
  EXPECT_GE(a.presence->counters().watch_stalls, 1u);
  EXPECT_GT(a.shared->counters().loads, loads);
  // The fresh watch works: b's node shows up at a.
  b.presence->node_up(kHost1);
  etcd.run();
  EXPECT_EQ(a.presence->online_elsewhere(kHost1), std::vector<std::string>{kRv2});
}

TEST(PresenceTest, APunchReachesTheRendezvousTheNodeHasItsSessionWith) {
  FakeEtcd etcd;
  Rv a(etcd, kRv1);
  etcd.run();
  Rv b(etcd, kRv2);
  etcd.run();
  std::vector<std::pair<std::string, std::string>> at_a, at_b;  // (node, asker)
  a.presence->on_punch([&](const std::string& n, const ov::Punch& p) { at_a.emplace_back(n, p.node_id()); });
  b.presence->on_punch([&](const std::string& n, const ov::Punch& p) { at_b.emplace_back(n, p.node_id()); });
  b.presence->node_up(kHost1);
  etcd.run();
  ov::Punch punch;
  punch.set_node_id(kHost2);
  punch.set_node_name("host2");
  punch.add_endpoints()->set_address("198.51.100.2");
  a.presence->send_punch(kHost1, punch);
  etcd.run();
  ASSERT_EQ(at_b.size(), 1u);
  EXPECT_EQ(at_b[0], std::make_pair(kHost1, kHost2));
  EXPECT_TRUE(at_a.empty());                                                   // host 1 has no session with a
  EXPECT_EQ(etcd.data().count("/wownet/punch/" + kHost1 + "/" + kHost2), 0u);  // not kept
  EXPECT_EQ(b.presence->counters().punches_passed, 1u);
  // A punch whose asker is not the key's is refused.
  etcd.put_direct("/wownet/punch/" + kHost1 + "/" + kHost2, R"({"node_id":"forged"})");
  etcd.run();
  EXPECT_EQ(at_b.size(), 1u);
  EXPECT_EQ(b.presence->bad_keys(), 1u);
}

TEST(PresenceTest, AResolveOfANodeOnlineElsewhereIsPunchedThere) {
  Registry reg(NetworkConfig{}, nullptr);
  reg.set_self(std::string(32, 'r'), "rv", {});
  std::vector<Outgoing> out;
  reg.on_node_up(kT0, kHost1, "host1", "198.51.100.1", 7700, out);
  reg.on_node_up(kT0, kHost2, "host2", "198.51.100.2", 7700, out);
  reg.on_node_down(kT0, kHost2);  // its session is with another rendezvous now
  reg.set_online_elsewhere([](const std::string& id) { return id == kHost2; });
  out.clear();
  ov::NodeMessage m;
  m.mutable_resolve()->set_node_id(kHost2);
  reg.on_message(kT0, kHost1, m, out);
  const Outgoing* punch = nullptr;
  const Outgoing* reply = nullptr;
  for (const Outgoing& o : out) (o.message.has_punch() ? punch : reply) = &o;
  ASSERT_NE(punch, nullptr);
  EXPECT_TRUE(punch->elsewhere);
  EXPECT_EQ(punch->node_id, kHost2);
  EXPECT_EQ(punch->message.punch().node_id(), kHost1);
  ASSERT_NE(reply, nullptr);
  EXPECT_FALSE(reply->elsewhere);
  EXPECT_TRUE(reply->message.resolved().punched());
  // Offline everywhere: no punch.
  reg.set_online_elsewhere([](const std::string&) { return false; });
  out.clear();
  reg.on_message(kT0 + 2, kHost1, m, out);
  for (const Outgoing& o : out) EXPECT_FALSE(o.message.has_punch());
}

TEST(PresenceTest, BadKeysAreCountedNotApplied) {
  FakeEtcd etcd;
  Rv a(etcd, kRv1);
  etcd.run();
  etcd.put_direct("/wownet/rendezvous/" + kRv2, "not json");
  etcd.put_direct("/wownet/rendezvous/" + kRv2 + "x", R"({"id":"someone else"})");
  etcd.put_direct("/wownet/presence/" + kHost1, "{}");
  etcd.put_direct("/wownet/presence//" + kRv2, "{}");
  etcd.run();
  EXPECT_TRUE(a.presence->others().empty());
  EXPECT_TRUE(a.presence->online_elsewhere(kHost1).empty());
  EXPECT_EQ(a.presence->bad_keys(), 4u);
}

}  // namespace
}  // namespace wownet::registry::test
