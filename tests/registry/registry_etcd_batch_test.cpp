// The registry's etcd backend batches: the commits queued in one turn (one
// flush) share txns within etcd's operation limit, and a lost compare in a
// shared txn costs only the commit that lost it (the others are sent again
// alone, unchanged).
#include <gtest/gtest.h>

#include <set>

#include "fake_etcd.h"
#include "registry/registry_etcd.h"
#include "registry_test_util.h"

namespace wownet::registry::test {
namespace {

std::string mac_of(int i) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "52:54:00:01:%02x:%02x", (i >> 8) & 0xff, i & 0xff);
  return buf;
}

class RegistryEtcdBatchTest : public ::testing::Test {
 protected:
  RegistryEtcdBatchTest() : kv_(etcd_), reg_(NetworkConfig{}, nullptr) {
    reg_.share_commits();
    reg_.set_self("rdv", "rdv", {});
    shared_ = std::make_unique<SharedRegistry>(
        reg_, kv_, "/wownet/", [] { return kT0; },
        [this](std::vector<Outgoing>& o) {
          for (auto& m : o) out_.push_back(std::move(m));
        });
    shared_->start();
    etcd_.run();
    reg_.on_node_up(kT0, "host", "host", "198.51.100.1", 7700, out_);
    shared_->flush();
    etcd_.run();
    out_.clear();
    etcd_.txn_sizes.clear();
  }
  // One turn: every request handled, then one flush.
  void turn(const std::vector<ov::NodeMessage>& requests) {
    for (const auto& m : requests) reg_.on_message(kT0, "host", m, out_);
    shared_->flush();
  }
  std::vector<ov::LeaseReply> replies() {
    std::vector<ov::LeaseReply> r;
    for (const Outgoing& o : out_)
      if (o.message.has_lease_reply()) r.push_back(o.message.lease_reply());
    out_.clear();
    return r;
  }

  FakeEtcd etcd_;
  FakeEtcd::Client kv_;
  Registry reg_;
  std::unique_ptr<SharedRegistry> shared_;
  std::vector<Outgoing> out_;
};

TEST_F(RegistryEtcdBatchTest, CommitsOfOneTurnShareOneTxn) {
  std::vector<ov::NodeMessage> requests;
  for (int i = 0; i < 20; ++i) requests.push_back(offer(std::uint64_t(i + 1), mac_of(i), "vm" + std::to_string(i)));
  turn(requests);
  EXPECT_TRUE(replies().empty());  // nothing before etcd has it
  ASSERT_EQ(etcd_.txn_sizes.size(), 1u);
  EXPECT_EQ(etcd_.txn_sizes[0], 40u);  // lease and MAC index of each
  etcd_.run();
  auto r = replies();
  ASSERT_EQ(r.size(), 20u);
  std::set<std::string> addresses;
  for (const auto& x : r) {
    ASSERT_TRUE(x.ok()) << x.reason();
    addresses.insert(x.lease().address());
  }
  EXPECT_EQ(addresses.size(), 20u);
  EXPECT_EQ(shared_->counters().txns, 1u);
}

TEST_F(RegistryEtcdBatchTest, ATxnStaysWithinEtcdsOperationLimit) {
  std::vector<ov::NodeMessage> requests;
  for (int i = 0; i < 100; ++i)
    requests.push_back(offer(std::uint64_t(i + 1), mac_of(i), "vm" + std::to_string(i), "name" + std::to_string(i)));
  turn(requests);
  ASSERT_GE(etcd_.txn_sizes.size(), 3u);  // 300 writes
  std::size_t total = 0;
  for (std::size_t n : etcd_.txn_sizes) {
    EXPECT_LE(n, SharedRegistry::kMaxTxnOps);
    total += n;
  }
  EXPECT_EQ(total, 300u);
  etcd_.run();
  auto r = replies();
  ASSERT_EQ(r.size(), 100u);
  for (const auto& x : r) EXPECT_TRUE(x.ok()) << x.reason();
}

TEST_F(RegistryEtcdBatchTest, ALostCompareCostsOnlyTheCommitThatLostIt) {
  // Another writer took 10.128.0.2 (the first address) unseen by us.
  Lease taken;
  taken.address = *Ipv4Addr::parse("10.128.0.2");
  taken.mac = *MacAddr::parse("52:54:00:00:ff:01");
  taken.vm = "other";
  taken.node = "elsewhere";
  taken.expiry = kT0 + 3600;
  etcd_.put_direct("/wownet/lease/10.128.0.2", encode_lease_value(taken));
  std::vector<ov::NodeMessage> requests;
  for (int i = 0; i < 5; ++i) requests.push_back(offer(std::uint64_t(i + 1), mac_of(i), "vm" + std::to_string(i)));
  turn(requests);
  etcd_.run();
  auto r = replies();
  ASSERT_EQ(r.size(), 5u);
  std::set<std::string> addresses;
  for (const auto& x : r) {
    ASSERT_TRUE(x.ok()) << x.reason();
    EXPECT_NE(x.lease().address(), "10.128.0.2");
    addresses.insert(x.lease().address());
  }
  EXPECT_EQ(addresses.size(), 5u);
  // One commit lost (and was handled again); the four others were not
  // counted as conflicts, only sent again.
  EXPECT_EQ(reg_.counters().commit_conflicts, 1u);
  EXPECT_EQ(reg_.counters().commit_retries, 1u);
  ASSERT_TRUE(reg_.leases().find(taken.address));
  EXPECT_EQ(reg_.leases().find(taken.address)->vm, "other");
  // etcd holds the five and the other writer's, each once.
  std::size_t leases = 0;
  for (const auto& [k, e] : etcd_.data()) leases += k.rfind("/wownet/lease/", 0) == 0;
  EXPECT_EQ(leases, 6u);
}

}  // namespace
}  // namespace wownet::registry::test
