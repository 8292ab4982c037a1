// Deterministic fuzzing of the registry (fixed seed): random control
// messages with random field values from random nodes, sessions coming and
// going, timers. After every step: nothing outside the network is leased,
// no node took over another node's held lease, messages go only where they
// may; regularly: the store holds exactly the in-memory table.
#include <google/protobuf/stubs/logging.h>
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "registry/registry.h"
#include "registry_test_util.h"

namespace wownet::registry::test {
namespace {

class Fuzzer {
 public:
  explicit Fuzzer(std::uint64_t seed) : rng_(seed) {}

  std::uint64_t below(std::uint64_t n) { return rng_() % n; }
  bool chance(int percent) { return below(100) < std::uint64_t(percent); }
  template <typename T>
  const T& pick(const std::vector<T>& v) {
    return v[below(v.size())];
  }

  std::string bytes(std::size_t max) {
    std::string s(below(max + 1), '\0');
    for (char& c : s) c = char(below(256));
    return s;
  }

  std::string mac() {
    if (chance(85)) {
      char buf[18];
      std::snprintf(buf, sizeof buf, "52:54:00:00:00:%02x", unsigned(below(48)));
      return buf;
    }
    static const std::vector<std::string> bad = {"",
                                                 "garbage",
                                                 "00:00:00:00:00:00",
                                                 "01:00:5e:00:00:01",
                                                 "ff:ff:ff:ff:ff:ff",
                                                 "52:54:00:00:00",
                                                 "52:54:00:00:00:01:02",
                                                 "52-54-00-00-00-01",
                                                 "52:54:00:00:00:0g"};
    return chance(70) ? pick(bad) : bytes(20);
  }

  std::string address() {
    if (chance(80)) return "10.128.0." + std::to_string(below(70));  // /26 plus some beyond
    static const std::vector<std::string> other = {"",        "10.128.0.1",   "10.128.0.63",    "10.0.0.1",
                                                   "1.2.3.4", "10.128.0.256", "10.128.0",       "0.0.0.0",
                                                   "::1",     "10.128.0.5 ",  "255.255.255.255"};
    return chance(80) ? pick(other) : bytes(16);
  }

  std::string vm() {
    static const std::vector<std::string> good = {"web", "db", "", "cache", "vm-\xc3\xa9"};
    static const std::vector<std::string> bad = {std::string("\xff\xfe"), std::string(300, 'x'), std::string("a\0b", 3),
                                                 "tab\there"};
    if (chance(85)) return pick(good);
    return chance(60) ? pick(bad) : bytes(40);
  }

  std::string host_name() {
    static const std::vector<std::string> names = {
        "", "web", "db", "WEB.example.org", "gateway", "c128000005", "---", "a-b", "x.y", "Cache"};
    return chance(90) ? pick(names) : bytes(70);
  }

  ov::NodeMessage message() {
    ov::NodeMessage m;
    m.set_request_id(below(4) == 0 ? 0 : rng_());
    switch (below(12)) {
      case 0:
      case 1:
      case 2:
      case 3:
      case 4: {
        ov::LeaseRequest* r = m.mutable_lease_request();
        r->set_kind(chance(95) ? (chance(50) ? ov::LeaseRequest::OFFER : ov::LeaseRequest::BIND)
                               : static_cast<ov::LeaseRequest::Kind>(below(10)));
        r->set_mac(mac());
        r->set_vm(vm());
        r->set_host_name(host_name());
        if (chance(70)) r->set_requested_address(address());
        r->set_learned(chance(20));
        break;
      }
      case 5:
      case 6: {
        ov::LeaseRelease* r = m.mutable_lease_release();
        r->set_address(address());
        r->set_mac(mac());
        r->set_declined(chance(30));
        break;
      }
      case 7: m.mutable_resolve()->set_address(address()); break;
      case 8: {
        ov::Register* r = m.mutable_register_();
        for (std::uint64_t i = below(20); i > 0; --i) {
          ov::Endpoint* e = r->add_local_endpoints();
          e->set_address(chance(80) ? "192.168.0." + std::to_string(below(300)) : bytes(10));
          e->set_port(std::uint32_t(chance(90) ? below(70000) : rng_()));
        }
        break;
      }
      case 9: m.mutable_keepalive(); break;
      case 10: m.mutable_lease_update()->add_leases()->set_address(address()); break;
      default: break;  // no body
    }
    return m;
  }

 private:
  std::mt19937_64 rng_;
};

bool held(const Lease& l, UnixTime now) { return l.state != LeaseState::Declined && l.expiry > now; }

::testing::AssertionResult table_invariants(const LeaseTable& t, const NetworkConfig& cfg,
                                            const std::set<std::string>& node_ids, UnixTime now) {
  std::set<MacAddr> macs;
  std::set<std::string> names;
  for (const Lease& l : t.snapshot()) {
    if (!cfg.network.is_host(l.address) || l.address == cfg.gateway)
      return ::testing::AssertionFailure() << "record outside the pool: " << l.address.to_string();
    if (l.state == LeaseState::Declined) continue;
    if (l.mac.is_zero() || l.mac.is_multicast()) return ::testing::AssertionFailure() << "bad MAC recorded";
    if (!macs.insert(l.mac).second) return ::testing::AssertionFailure() << "MAC with two records";
    if (!node_ids.count(l.node)) return ::testing::AssertionFailure() << "record of unknown node '" << l.node << "'";
    if (t.find_by_mac(l.mac) != t.find(l.address)) return ::testing::AssertionFailure() << "MAC index inconsistent";
    if (l.active(now) && !l.host_name.empty() && !names.insert(l.host_name).second)
      return ::testing::AssertionFailure() << "host name " << l.host_name << " held twice";
  }
  return ::testing::AssertionSuccess();
}

// No held record of another node changed hands, except a VM that moved
// under its own name to `from`.
::testing::AssertionResult ownership_respected(const std::vector<Lease>& before, const LeaseTable& after,
                                               const std::string& from, UnixTime now) {
  for (const Lease& b : before) {
    if (!held(b, now) || b.node == from) continue;
    const Lease* a = after.find(b.address);
    if (a && same(*a, b)) continue;
    const Lease* moved = after.find_by_mac(b.mac);
    if (moved && moved->node == from && !b.vm.empty() && moved->vm == b.vm) continue;
    return ::testing::AssertionFailure() << from << " changed " << b.node << "'s lease of " << b.address.to_string();
  }
  return ::testing::AssertionSuccess();
}

// No held record's MAC went to another VM name, on any node: a binding is
// its VM's until it expires.
::testing::AssertionResult vm_bindings_respected(const std::vector<Lease>& before, const LeaseTable& after,
                                                 UnixTime now) {
  for (const Lease& b : before) {
    if (!held(b, now)) continue;
    const Lease* a = after.find_by_mac(b.mac);
    if (a && a->vm != b.vm)
      return ::testing::AssertionFailure() << "VM '" << a->vm << "' took the MAC of '" << b.vm << "'";
  }
  return ::testing::AssertionSuccess();
}

TEST(RegistryFuzz, RandomMessagesKeepTheInvariants) {
  google::protobuf::LogSilencer quiet;  // invalid UTF-8 in random strings is logged
  NetworkConfig cfg;
  cfg.network = *Ipv4Prefix::parse("10.128.0.0/26");
  cfg.offer_hold = 30;
  cfg.lease_time = 300;
  cfg.decline_hold = 120;
  std::string error;
  auto store = RegistryStore::open(":memory:", error);
  ASSERT_TRUE(store) << error;
  Registry reg(cfg, store.get());
  ASSERT_TRUE(reg.restore(kT0, error)) << error;
  reg.set_self("self", "rdv", {Endpoint{"192.0.2.1", 4789}});
  const std::vector<std::string> nodes = {"n0", "n1", "n2", "n3"};
  const std::set<std::string> node_ids = {"n0", "n1", "n2", "n3", "self"};
  std::set<std::string> online;
  Fuzzer fz(0x5eed'0f'a11'0caULL);
  UnixTime now = kT0;
  std::vector<Outgoing> out;
  for (std::string n : {"n0", "n1", "n2"}) {
    reg.on_node_up(now, n, n + "-name", "198.51.100.7", 4000, out);
    online.insert(n);
  }
  std::uint64_t ok_replies = 0;
  for (int step = 0; step < 60000; ++step) {
    SCOPED_TRACE(step);
    now += UnixTime(fz.below(4) == 0 ? fz.below(60) : 0);
    out.clear();
    std::uint64_t action = fz.below(100);
    std::vector<Lease> before = reg.leases().snapshot();
    if (action < 3) {
      const std::string& n = fz.pick(nodes);
      if (online.count(n)) {
        reg.on_node_down(now, n);
        online.erase(n);
      } else {
        reg.on_node_up(now, n, n + "-name", "198.51.100.8", 4001, out);
        online.insert(n);
        for (const Outgoing& o : out) ASSERT_EQ(o.node_id, n);
      }
    } else if (action < 8) {
      reg.on_timer(now, out);
      for (const Outgoing& o : out) {
        ASSERT_TRUE(online.count(o.node_id));
        ASSERT_TRUE(o.message.has_lease_update());
      }
    } else if (action < 11) {
      ov::NodeMessage m = fz.message();
      ov::LeaseReply r = m.has_lease_release() ? reg.release_local(now, m.lease_release(), out)
                                               : reg.request_local(now, m.lease_request(), out);
      ok_replies += r.ok();
      ASSERT_TRUE(ownership_respected(before, reg.leases(), "self", now));
      ASSERT_TRUE(vm_bindings_respected(before, reg.leases(), now));
      for (const Outgoing& o : out) ASSERT_TRUE(online.count(o.node_id));
    } else {
      std::string from = fz.chance(95) ? fz.pick(nodes) : "stranger";
      ov::NodeMessage m = fz.message();
      if (action < 14) {
        // Raw bytes, or a valid message with some bytes flipped.
        std::string wire = fz.chance(50) ? fz.bytes(80) : m.SerializeAsString();
        for (std::uint64_t i = fz.below(4); i > 0 && !wire.empty(); --i)
          wire[fz.below(wire.size())] ^= char(1 + fz.below(255));
        if (!m.ParseFromString(wire)) continue;
      }
      reg.on_message(now, from, m, out);
      ASSERT_TRUE(ownership_respected(before, reg.leases(), from, now));
      ASSERT_TRUE(vm_bindings_respected(before, reg.leases(), now));
      bool is_online = online.count(from) > 0;
      for (const Outgoing& o : out) {
        if (o.node_id == from) {
          ASSERT_EQ(o.message.request_id(), m.request_id());
          ok_replies += o.message.has_lease_reply() && o.message.lease_reply().ok();
        } else {
          ASSERT_TRUE(is_online);
          ASSERT_TRUE(online.count(o.node_id)) << o.node_id;
          ASSERT_TRUE(o.message.has_lease_update() || (o.message.has_punch() && m.has_resolve()));
          ASSERT_EQ(o.message.request_id(), 0u);
        }
      }
      if (!is_online) {
        ASSERT_TRUE(same_tables(reg.leases().snapshot(), before));
      }
    }
    ASSERT_TRUE(table_invariants(reg.leases(), cfg, node_ids, now));
    if (step % 250 == 0) {
      std::vector<Lease> stored;
      std::vector<NodeInfo> stored_nodes;
      std::string crl;
      ASSERT_TRUE(store->load(stored, stored_nodes, crl, error)) << error;
      ASSERT_TRUE(same_tables(stored, reg.leases().snapshot()));
    }
  }
  // The run exercised real allocation, not only refusals.
  std::printf("fuzz: %llu ok replies, %llu refused, %zu records\n", static_cast<unsigned long long>(ok_replies),
              static_cast<unsigned long long>(reg.counters().lease_refused), reg.leases().size());
  EXPECT_GT(ok_replies, 2000u);
  EXPECT_GT(reg.counters().lease_refused, 2000u);
  EXPECT_EQ(reg.counters().store_failures, 0u);

  // A restart from the store reproduces the table exactly.
  Registry again(cfg, store.get());
  ASSERT_TRUE(again.restore(now, error)) << error;
  EXPECT_TRUE(same_tables(again.leases().snapshot(), reg.leases().snapshot()));
}

}  // namespace
}  // namespace wownet::registry::test
