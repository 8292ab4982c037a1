// The registry's etcd backend (SharedRegistry) against an in-memory etcd
// with etcd's txn semantics: two rendezvous sharing one registry allocate
// at the same moment without a duplicate address or name, a lost compare
// is retried on fresh records, etcd unavailable refuses cleanly, and
// changes of one rendezvous reach the other's hosts.
#include "registry/registry_etcd.h"

#include <gtest/gtest.h>

#include <set>

#include "fake_etcd.h"
#include "registry_test_util.h"

namespace wownet::registry::test {
namespace {

// One rendezvous on the shared registry, with one host session.
struct Rendezvous {
  Rendezvous(FakeEtcd& etcd, const std::string& self, const std::string& host)
      : kv(etcd), reg(NetworkConfig{}, nullptr), host_id(host) {
    reg.share_commits();
    reg.set_self(self, self, {});
    shared = std::make_unique<SharedRegistry>(
        reg, kv, "/wownet/", [this] { return now; },
        [this](std::vector<Outgoing>& o) {
          for (auto& m : o) out.push_back(std::move(m));
        });
    shared->start();
  }
  void up() {
    std::vector<Outgoing> o;
    reg.on_node_up(now, host_id, host_id, "198.51.100.1", 7700, o);
    shared->flush();
  }
  void send(const ov::NodeMessage& m) {
    std::vector<Outgoing> o;
    reg.on_message(now, host_id, m, o);
    for (auto& x : o) out.push_back(std::move(x));
    shared->flush();
  }
  // Lease replies queued for the host so far (taken).
  std::vector<ov::LeaseReply> replies() {
    std::vector<ov::LeaseReply> r;
    for (const Outgoing& o : out)
      if (o.node_id == host_id && o.message.has_lease_reply()) r.push_back(o.message.lease_reply());
    out.clear();
    return r;
  }
  FakeEtcd::Client kv;
  Registry reg;
  std::string host_id;
  UnixTime now = kT0;
  std::vector<Outgoing> out;
  std::unique_ptr<SharedRegistry> shared;
};

class RegistryEtcdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    a_ = std::make_unique<Rendezvous>(etcd_, "rdv-a", "host-a");
    b_ = std::make_unique<Rendezvous>(etcd_, "rdv-b", "host-b");
    etcd_.run();
    ASSERT_TRUE(a_->shared->loaded());
    ASSERT_TRUE(b_->shared->loaded());
    a_->up();
    b_->up();
    etcd_.run();
    a_->out.clear();
    b_->out.clear();
  }
  // Replies to an offer sent through `r` once etcd has answered.
  std::vector<ov::LeaseReply> offer_and_run(Rendezvous& r, std::uint64_t id, const std::string& mac,
                                            const std::string& vm, const std::string& host_name = {}) {
    r.send(offer(id, mac, vm, host_name));
    etcd_.run();
    return r.replies();
  }
  // Keys under `what` ("lease/", "mac/", "name/") and their values.
  std::map<std::string, std::string> keys(const std::string& what) const {
    std::map<std::string, std::string> r;
    for (const auto& [k, e] : etcd_.data())
      if (k.rfind("/wownet/" + what, 0) == 0) r[k.substr(8 + what.size())] = e.value;
    return r;
  }
  FakeEtcd etcd_;
  std::unique_ptr<Rendezvous> a_, b_;
};

TEST_F(RegistryEtcdTest, TwoRendezvousAllocatingAtOnceGetDistinctAddressesAndNames) {
  // Four VMs on each side ask at the same moment, two of them (one per
  // side) for the same name; then each binds what it was offered, again
  // all at once (a DHCP DISCOVER then REQUEST).
  auto mac = [](char side, int i) { return std::string("52:54:00:00:0") + side + ":0" + std::to_string(i); };
  auto name = [](char side, int i) { return i == 0 ? std::string("web") : std::string(1, side) + std::to_string(i); };
  for (int i = 0; i < 4; ++i) {
    a_->send(offer(10 + i, mac('a', i), "vm-a" + std::to_string(i), name('a', i)));
    b_->send(offer(20 + i, mac('b', i), "vm-b" + std::to_string(i), name('b', i)));
  }
  // Nothing is answered before etcd has written it.
  EXPECT_TRUE(a_->replies().empty());
  EXPECT_TRUE(b_->replies().empty());
  etcd_.run();
  auto oa = a_->replies(), ob = b_->replies();
  ASSERT_EQ(oa.size(), 4u);
  ASSERT_EQ(ob.size(), 4u);
  std::set<std::string> offered;
  for (const auto* list : {&oa, &ob}) {
    for (const auto& r : *list) {
      ASSERT_TRUE(r.ok()) << r.reason();
      EXPECT_TRUE(offered.insert(r.lease().address()).second) << "duplicate offer " << r.lease().address();
    }
  }
  for (int i = 0; i < 4; ++i) {
    a_->send(bind(30 + i, mac('a', i), "vm-a" + std::to_string(i), oa[i].lease().address(), name('a', i)));
    b_->send(bind(40 + i, mac('b', i), "vm-b" + std::to_string(i), ob[i].lease().address(), name('b', i)));
  }
  etcd_.run();
  auto ra = a_->replies(), rb = b_->replies();
  ASSERT_EQ(ra.size(), 4u);
  ASSERT_EQ(rb.size(), 4u);
  std::set<std::string> addresses, names;
  int web = 0;
  for (const auto* list : {&ra, &rb}) {
    for (const auto& r : *list) {
      ASSERT_TRUE(r.ok()) << r.reason();
      EXPECT_TRUE(addresses.insert(r.lease().address()).second) << "duplicate " << r.lease().address();
      if (!r.lease().host_name().empty()) {
        EXPECT_TRUE(names.insert(r.lease().host_name()).second) << "duplicate name " << r.lease().host_name();
      }
      web += r.lease().host_name() == "web";
    }
  }
  EXPECT_EQ(web, 1);
  EXPECT_GT(a_->reg.counters().commit_conflicts + b_->reg.counters().commit_conflicts, 0u);
  // etcd itself: 8 bound leases with distinct names, each MAC and name
  // index a copy of its lease.
  auto leases = keys("lease/"), macs = keys("mac/"), etcd_names = keys("name/");
  EXPECT_EQ(leases.size(), 8u);
  EXPECT_EQ(macs.size(), 8u);
  std::set<std::string> bound_names;
  for (const auto& [addr, value] : leases) {
    auto l = decode_lease_value(value);
    ASSERT_TRUE(l);
    EXPECT_EQ(l->state, LeaseState::Bound);
    ASSERT_TRUE(macs.count(l->mac.to_string()));
    EXPECT_EQ(macs.at(l->mac.to_string()), value);
    if (!l->host_name.empty()) {
      EXPECT_TRUE(bound_names.insert(l->host_name).second) << l->host_name;
      EXPECT_EQ(etcd_names.at(l->host_name), value);
    }
  }
  EXPECT_EQ(bound_names.size(), 7u);
  // Each rendezvous knows all eight, as etcd has them.
  for (Rendezvous* r : {a_.get(), b_.get()}) {
    EXPECT_EQ(r->reg.leases().size(), 8u);
    for (const auto& [addr, value] : leases) {
      const Lease* mine = r->reg.leases().find(*Ipv4Addr::parse(addr));
      ASSERT_TRUE(mine);
      EXPECT_TRUE(same_lease(*mine, *decode_lease_value(value))) << addr;
    }
  }
}

TEST_F(RegistryEtcdTest, ALostCompareIsRetriedOnFreshRecords) {
  // Another writer takes 10.128.0.2 before A's transaction, unseen by A.
  const Lease taken = make_lease("10.128.0.2", "52:54:00:00:ff:01", "other", "", "elsewhere", kT0 + 3600);
  etcd_.put_direct("/wownet/lease/10.128.0.2", encode_lease_value(taken));
  auto r = offer_and_run(*a_, 1, "52:54:00:00:0a:01", "vm-1");
  ASSERT_EQ(r.size(), 1u);
  ASSERT_TRUE(r[0].ok()) << r[0].reason();
  EXPECT_EQ(r[0].lease().address(), "10.128.0.3");
  EXPECT_EQ(a_->reg.counters().commit_conflicts, 1u);
  EXPECT_EQ(a_->reg.counters().commit_retries, 1u);
  ASSERT_TRUE(a_->reg.leases().find(taken.address));
  EXPECT_EQ(a_->reg.leases().find(taken.address)->vm, "other");
}

TEST_F(RegistryEtcdTest, EndlessConflictsAreRefusedAfterBoundedRetries) {
  int n = 0;
  etcd_.before_txn = [&] {
    // Someone always changes the MAC index first.
    etcd_.put_direct("/wownet/mac/52:54:00:00:0a:01", "10.128.9." + std::to_string(++n));
  };
  auto r = offer_and_run(*a_, 1, "52:54:00:00:0a:01", "vm-1");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_FALSE(r[0].ok());
  EXPECT_NE(r[0].reason().find("busy"), std::string::npos) << r[0].reason();
  EXPECT_EQ(n, kMaxCommitAttempts);
  EXPECT_EQ(keys("lease/").size(), 0u);
  EXPECT_EQ(a_->reg.leases().size(), 0u);  // undone
}

TEST_F(RegistryEtcdTest, EtcdUnavailableRefusesCleanlyAndRecovers) {
  etcd_.set_available(false);
  auto r = offer_and_run(*a_, 1, "52:54:00:00:0a:01", "vm-1");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_FALSE(r[0].ok());
  EXPECT_NE(r[0].reason().find("unavailable"), std::string::npos) << r[0].reason();
  EXPECT_EQ(a_->reg.leases().size(), 0u);
  EXPECT_FALSE(a_->shared->reachable());
  etcd_.set_available(true);
  etcd_.run_timers();  // the watches reload and follow again
  r = offer_and_run(*a_, 2, "52:54:00:00:0a:01", "vm-1");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_TRUE(r[0].ok()) << r[0].reason();
  EXPECT_TRUE(a_->shared->reachable());
}

TEST_F(RegistryEtcdTest, ChangesReachTheOtherRendezvousHosts) {
  auto ra = offer_and_run(*a_, 1, "52:54:00:00:0a:01", "vm-1", "alpha");
  ASSERT_EQ(ra.size(), 1u);
  ASSERT_TRUE(ra[0].ok());
  a_->send(bind(2, "52:54:00:00:0a:01", "vm-1", ra[0].lease().address(), "alpha"));
  etcd_.run();
  ASSERT_TRUE(a_->replies().at(0).ok());
  // B learned it through its watch and told its host.
  const Lease* l = b_->reg.leases().find(*Ipv4Addr::parse(ra[0].lease().address()));
  ASSERT_TRUE(l);
  EXPECT_EQ(l->state, LeaseState::Bound);
  EXPECT_EQ(l->node, "host-a");
  bool pushed = false;
  for (const Outgoing& o : b_->out)
    if (o.node_id == "host-b" && o.message.has_lease_update())
      for (const auto& u : o.message.lease_update().leases()) pushed |= u.host_name() == "alpha";
  EXPECT_TRUE(pushed);
  // And B resolves host-a's address to host-a's endpoints (node records are shared).
  ov::Resolved res;
  std::string error;
  ASSERT_TRUE(b_->reg.resolve(kT0, ra[0].lease().address(), res, error)) << error;
  EXPECT_EQ(res.node_id(), "host-a");
  ASSERT_GT(res.endpoints_size(), 0);
  EXPECT_EQ(res.endpoints(0).address(), "198.51.100.1");
  // The same VM at B (it migrated) keeps its address; "alpha" stays its own.
  auto rb = offer_and_run(*b_, 3, "52:54:00:00:0a:01", "vm-1", "alpha");
  ASSERT_EQ(rb.size(), 1u);
  EXPECT_EQ(rb[0].lease().address(), ra[0].lease().address());
  EXPECT_EQ(rb[0].lease().host_name(), "alpha");
}

TEST_F(RegistryEtcdTest, ARestartedRendezvousLoadsTheSharedRegistry) {
  a_->send(offer(1, "52:54:00:00:0a:01", "vm-1", "alpha"));
  etcd_.run();
  ASSERT_TRUE(a_->replies().at(0).ok());
  Rendezvous c(etcd_, "rdv-c", "host-c");
  etcd_.run();
  ASSERT_TRUE(c.shared->loaded());
  EXPECT_EQ(c.reg.leases().size(), 1u);
  EXPECT_TRUE(c.reg.node("host-a"));
  EXPECT_FALSE(c.reg.node("host-a")->online);  // not a session with c
}

TEST_F(RegistryEtcdTest, HostsUpBeforeTheFirstLoadGetTheTableOnceItIsIn) {
  a_->send(offer(1, "52:54:00:00:0a:01", "vm-1", "alpha"));
  etcd_.run();
  ASSERT_TRUE(a_->replies().at(0).ok());
  // A rendezvous that starts while etcd is down: its host comes up first.
  etcd_.set_available(false);
  Rendezvous c(etcd_, "rdv-c", "host-c");
  etcd_.run();
  EXPECT_FALSE(c.shared->loaded());
  c.up();
  c.out.clear();
  etcd_.set_available(true);
  etcd_.run_timers();
  ASSERT_TRUE(c.shared->loaded());
  bool pushed = false;
  for (const Outgoing& o : c.out)
    if (o.node_id == "host-c" && o.message.has_lease_update())
      for (const auto& u : o.message.lease_update().leases()) pushed |= u.host_name() == "alpha";
  EXPECT_TRUE(pushed);
}

TEST(RegistryEtcdValues, RoundTripAndRefuseGarbage) {
  const Lease l = make_lease("10.128.0.9", "52:54:00:00:00:09", "vm", "web", "n", 42);
  auto back = decode_lease_value(encode_lease_value(l));
  ASSERT_TRUE(back);
  EXPECT_TRUE(same_lease(*back, l));
  EXPECT_FALSE(decode_lease_value("{"));
  EXPECT_FALSE(decode_lease_value(R"({"address":"x"})"));
  NodeInfo n{"id", "name", Endpoint{"192.0.2.1", 7700}, {Endpoint{"10.0.0.1", 7700}}, 5, true};
  auto nb = decode_node_value(encode_node_value(n));
  ASSERT_TRUE(nb);
  EXPECT_EQ(*nb, n);
  EXPECT_FALSE(decode_node_value(R"({"id":"x","local_endpoints":["nope"]})"));
}

}  // namespace
}  // namespace wownet::registry::test
