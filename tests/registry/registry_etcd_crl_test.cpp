// The CRL in the shared registry (SharedRegistry, registry_etcd_crl.cpp)
// against the in-memory etcd: a CRL one rendezvous writes reaches the
// others through their watch and is pushed to their hosts, but only once
// their check (standing in for the trust store: "crl N" is a CRL of the
// network's CA with number N, anything else is not) takes it; an older,
// forged or garbage CRL in etcd is refused (counted once) and answered
// with the CRL in force; two writers at once end on the newer CRL.
#include <gtest/gtest.h>

#include "fake_etcd.h"
#include "registry/registry_etcd.h"
#include "registry_test_util.h"

namespace wownet::registry::test {
namespace {

const std::string kCrlKey = "/wownet/crl";

std::string crl(int number) { return "crl " + std::to_string(number); }

// One rendezvous with one host session, and a check with the trust
// store's rules for CRLs written "crl N".
struct Rendezvous {
  Rendezvous(FakeEtcd& etcd, const std::string& self, const std::string& host, bool with_check = true)
      : kv(etcd), reg(NetworkConfig{}, nullptr), host_id(host) {
    reg.share_commits();
    reg.set_self(self, self, {});
    shared = std::make_unique<SharedRegistry>(
        reg, kv, "/wownet/", [this] { return now; },
        [this](std::vector<Outgoing>& o) {
          for (auto& m : o) out.push_back(std::move(m));
        });
    if (with_check) shared->set_crl_check([this](const std::string& pem) { return check(pem); });
  }
  CrlVerdict check(const std::string& pem) {
    ++checks;
    long n = -1;
    if (pem.rfind("crl ", 0) != 0 || (n = std::strtol(pem.c_str() + 4, nullptr, 10)) <= 0) return CrlVerdict::Refused;
    if (n < in_force) return CrlVerdict::Older;
    if (n == in_force) return CrlVerdict::Same;
    in_force = n;
    return CrlVerdict::Taken;
  }
  // This rendezvous' own CRL file gives CRL `n` (already verified).
  void revoke(int n) {
    in_force = n;
    std::vector<Outgoing> o;
    std::string error;
    ASSERT_TRUE(reg.set_crl(crl(n), o, error)) << error;
    for (auto& m : o) out.push_back(std::move(m));
    shared->flush();
  }
  void up() {
    std::vector<Outgoing> o;
    reg.on_node_up(now, host_id, host_id, "198.51.100.1", 7700, o);
    shared->flush();
    out.clear();
  }
  // The CRLs pushed to the host so far (taken).
  std::vector<std::string> pushed() {
    std::vector<std::string> r;
    for (const Outgoing& o : out)
      if (o.node_id == host_id && o.message.has_crl()) r.push_back(o.message.crl().pem());
    out.clear();
    return r;
  }
  FakeEtcd::Client kv;
  Registry reg;
  std::string host_id;
  UnixTime now = kT0;
  long in_force = -1;
  int checks = 0;
  std::vector<Outgoing> out;
  std::unique_ptr<SharedRegistry> shared;
};

class RegistryEtcdCrlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    a_ = std::make_unique<Rendezvous>(etcd_, "rdv-a", "host-a");
    b_ = std::make_unique<Rendezvous>(etcd_, "rdv-b", "host-b");
    a_->shared->start();
    b_->shared->start();
    etcd_.run();
    ASSERT_TRUE(a_->shared->loaded() && b_->shared->loaded());
    a_->up();
    b_->up();
    etcd_.run();
  }
  std::string etcd_crl() const {
    auto it = etcd_.data().find(kCrlKey);
    return it == etcd_.data().end() ? std::string{} : it->second.value;
  }
  FakeEtcd etcd_;
  std::unique_ptr<Rendezvous> a_, b_;
};

TEST_F(RegistryEtcdCrlTest, ARevocationOnOneRendezvousReachesTheOthersHosts) {
  a_->revoke(2);
  EXPECT_EQ(a_->pushed(), std::vector<std::string>{crl(2)});  // A's own host at once
  etcd_.run();
  EXPECT_EQ(etcd_crl(), crl(2));
  EXPECT_EQ(b_->reg.crl(), crl(2));
  EXPECT_EQ(b_->in_force, 2);
  EXPECT_EQ(b_->pushed(), std::vector<std::string>{crl(2)});
  EXPECT_EQ(b_->shared->counters().crl_taken, 1u);
  // B does not write it back; A does not take its own write from the watch.
  EXPECT_EQ(b_->shared->counters().crl_writes, 0u);
  EXPECT_EQ(a_->shared->counters().crl_writes, 1u);
  EXPECT_EQ(a_->checks, 0);
  EXPECT_TRUE(a_->pushed().empty());
  // A host whose session comes up at B later gets it too.
  std::vector<Outgoing> o;
  b_->reg.on_node_up(kT0, "host-c", "host-c", "198.51.100.3", 7700, o);
  bool got = false;
  for (const Outgoing& m : o) got |= m.node_id == "host-c" && m.message.has_crl() && m.message.crl().pem() == crl(2);
  EXPECT_TRUE(got);
}

TEST_F(RegistryEtcdCrlTest, GarbageInEtcdIsRefusedOnceAndReplacedByTheCrlInForce) {
  a_->revoke(2);
  etcd_.run();
  a_->pushed();
  b_->pushed();
  const int checks = b_->checks;
  for (const std::string& bad : {std::string("junk\x01\xff", 6), std::string(), std::string("forged 9")}) {
    etcd_.put_direct(kCrlKey, bad);
    etcd_.run();
    EXPECT_EQ(etcd_crl(), crl(2)) << "bad value left in etcd: " << bad;
  }
  EXPECT_EQ(a_->reg.crl(), crl(2));
  EXPECT_EQ(b_->reg.crl(), crl(2));
  EXPECT_TRUE(b_->pushed().empty());
  EXPECT_TRUE(a_->pushed().empty());
  // The same garbage again: refused without asking the check (and so
  // without another log line) and not counted again.
  const auto refused = b_->shared->counters().crl_refused;
  const int checks_before = b_->checks;
  etcd_.put_direct(kCrlKey, "forged 9");
  etcd_.run();
  EXPECT_EQ(b_->checks, checks_before);
  EXPECT_EQ(b_->shared->counters().crl_refused, refused);
  EXPECT_GT(b_->checks, checks);
  EXPECT_EQ(etcd_crl(), crl(2));
}

TEST_F(RegistryEtcdCrlTest, AnOlderCrlInEtcdIsNotTakenAndOursGoesBack) {
  a_->revoke(3);
  etcd_.run();
  b_->pushed();
  etcd_.put_direct(kCrlKey, crl(2));  // a rollback: it would un-revoke
  etcd_.run();
  EXPECT_EQ(a_->in_force, 3);
  EXPECT_EQ(b_->in_force, 3);
  EXPECT_EQ(b_->reg.crl(), crl(3));
  EXPECT_TRUE(b_->pushed().empty());
  EXPECT_EQ(etcd_crl(), crl(3));
  // A deleted key comes back too.
  etcdserverpb::TxnRequest del;
  del.add_success()->mutable_request_delete_range()->set_key(kCrlKey);
  a_->kv.txn(del, [](const std::string&, etcdserverpb::TxnResponse&&) {});
  etcd_.run();
  EXPECT_EQ(etcd_crl(), crl(3));
}

TEST_F(RegistryEtcdCrlTest, TwoRevocationsAtOnceEndOnTheNewerCrl) {
  a_->revoke(4);
  b_->revoke(3);
  etcd_.run();
  EXPECT_EQ(etcd_crl(), crl(4));
  EXPECT_EQ(a_->reg.crl(), crl(4));
  EXPECT_EQ(b_->reg.crl(), crl(4));
  EXPECT_EQ(b_->in_force, 4);
  const auto pushed_b = b_->pushed();
  ASSERT_FALSE(pushed_b.empty());
  EXPECT_EQ(pushed_b.back(), crl(4));
  // And the other order of arrival.
  b_->revoke(6);
  a_->revoke(5);
  etcd_.run();
  EXPECT_EQ(etcd_crl(), crl(6));
  EXPECT_EQ(a_->reg.crl(), crl(6));
  EXPECT_EQ(b_->reg.crl(), crl(6));
}

TEST_F(RegistryEtcdCrlTest, AWriteWhileEtcdIsDownIsRetriedUntilItIsBack) {
  etcd_.set_available(false);
  a_->revoke(2);
  etcd_.run();
  EXPECT_EQ(etcd_crl(), "");
  EXPECT_EQ(a_->reg.crl(), crl(2));  // in force here regardless
  etcd_.run_timers();
  EXPECT_EQ(etcd_crl(), "");
  etcd_.set_available(true);
  for (int i = 0; i < 3; ++i) etcd_.run_timers();
  EXPECT_EQ(etcd_crl(), crl(2));
  EXPECT_EQ(b_->reg.crl(), crl(2));
  EXPECT_EQ(b_->in_force, 2);
}

TEST(RegistryEtcdCrlLoad, ACrlLoadedFromEtcdIsCheckedBeforeItIsHeld) {
  FakeEtcd etcd;
  etcd.put_direct(kCrlKey, "forged 7");
  Rendezvous r(etcd, "rdv-c", "host-c");
  r.shared->start();
  etcd.run();
  ASSERT_TRUE(r.shared->loaded());
  EXPECT_EQ(r.reg.crl(), "");  // not held unchecked
  EXPECT_EQ(r.shared->counters().crl_refused, 1u);

  etcd.put_direct(kCrlKey, crl(7));
  etcd.run();
  EXPECT_EQ(r.reg.crl(), crl(7));
  EXPECT_EQ(r.in_force, 7);
}

TEST(RegistryEtcdCrlLoad, ARestartedRendezvousWithAnOlderFileTakesEtcdsNewerCrl) {
  FakeEtcd etcd;
  etcd.put_direct(kCrlKey, crl(5));
  Rendezvous r(etcd, "rdv-c", "host-c");
  // Its CRL file is older (CRL 2): set before the registry is loaded.
  r.revoke(2);
  r.shared->start();
  etcd.run();
  EXPECT_EQ(r.reg.crl(), crl(5));
  EXPECT_EQ(r.in_force, 5);
  EXPECT_EQ(etcd.data().at(kCrlKey).value, crl(5));
}

TEST(RegistryEtcdCrlLoad, WithoutACheckNoCrlFromEtcdIsTaken) {
  FakeEtcd etcd;
  etcd.put_direct(kCrlKey, crl(3));
  Rendezvous r(etcd, "rdv-c", "host-c", false);
  r.shared->start();
  etcd.run();
  EXPECT_EQ(r.reg.crl(), "");
  EXPECT_EQ(r.shared->counters().crl_refused, 1u);
}

}  // namespace
}  // namespace wownet::registry::test
