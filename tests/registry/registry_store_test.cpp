// Durability of the registry: SQLite store round trips, restart without
// shutdown (objects dropped, and a real SIGKILL right after a reply),
// foreign, damaged and newer files, and a failed commit undoing the change.
#include "registry/registry_store.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <optional>

#include "registry/registry.h"
#include "registry_test_util.h"

namespace wownet::registry::test {
namespace {

// A registry on the store file at `path`, restored at `t` as hostd starts
// one: `store` is null, or else `restored` false, with `error` saying why
// if opening or restoring failed.
struct StoredRegistry {
  StoredRegistry(const std::string& path, UnixTime t) : store(RegistryStore::open(path, error)) {
    if (!store) return;
    reg.emplace(NetworkConfig{}, store.get());
    restored = reg->restore(t, error);
  }
  std::string error;
  std::unique_ptr<RegistryStore> store;
  std::optional<Registry> reg;  // dropped before the store
  bool restored = false;
};

// Opened and restored; otherwise which step failed and why.
::testing::AssertionResult ready(const StoredRegistry& s) {
  if (!s.store) return ::testing::AssertionFailure() << "cannot open the store: " << s.error;
  if (!s.restored) return ::testing::AssertionFailure() << "cannot restore the registry: " << s.error;
  return ::testing::AssertionSuccess();
}

constexpr const char* kCrl = "-----BEGIN X509 CRL-----\nMIIB\n-----END X509 CRL-----\n";

// A fixed sequence of work touching every kind of state: nodes, endpoints,
// offers, bindings, a migration, a release, a decline, the CRL, a timer.
void run_script(Registry& reg, UnixTime t) {
  std::vector<Outgoing> out;
  std::string error;
  reg.set_self("self-id", "rdv", {});
  reg.on_node_up(t, "node-a", "host-a", "198.51.100.1", 5000, out);
  reg.on_node_up(t, "node-b", "host-b", "198.51.100.2", 5001, out);
  reg.on_message(t, "node-a", register_msg(1, {{"192.168.1.10", 4789}, {"10.0.0.10", 4790}}), out);
  reg.on_message(t, "node-a", offer(2, "52:54:00:00:00:01", "web", "web"), out);
  reg.on_message(t, "node-a", bind(3, "52:54:00:00:00:01", "web", "10.128.0.2", "web"), out);
  reg.on_message(t, "node-b", offer(4, "52:54:00:00:00:02", "db", "db"), out);
  reg.on_message(t, "node-b", bind(5, "52:54:00:00:00:02", "db", "10.128.0.3", "db"), out);
  reg.on_message(t, "node-b", bind(6, "52:54:00:00:00:03", "static", "10.128.9.9", "", true), out);
  reg.on_message(t + 5, "node-a", offer(7, "52:54:00:00:00:04", "gone"), out);
  reg.on_message(t + 5, "node-a", release(8, "10.128.0.4", "52:54:00:00:00:04", true), out);
  reg.on_message(t + 10, "node-b", offer(9, "52:54:00:00:00:01", "web"), out);  // migration to B
  reg.on_message(t + 10, "node-b", release(10, "10.128.9.9", "52:54:00:00:00:03"), out);
  reg.on_message(t + 20, "node-b", offer(11, "52:54:00:00:00:05", "pending"), out);
  reg.request_local(t + 20, bind(0, "52:54:00:00:00:06", "local", "10.128.0.77", "rdvvm").lease_request(), out);
  EXPECT_TRUE(reg.set_crl(kCrl, out, error)) << error;
  reg.on_node_down(t + 30, "node-a");
  reg.on_timer(t + 100, out);  // the offer to 00:05 expires
  reg.on_message(t + 101, "node-b", bind(12, "52:54:00:00:00:02", "db", "10.128.0.3", "db"), out);  // renewal
  for (const Outgoing& o : out) {
    if (o.message.has_lease_reply()) {
      EXPECT_TRUE(o.message.lease_reply().ok()) << o.message.request_id() << ": " << o.message.lease_reply().reason();
    }
  }
}

// The registry state a restart must reproduce.
struct Expected {
  std::vector<Lease> leases;
  std::map<std::string, NodeInfo> nodes;
  std::string crl;
};

Expected expected_after_script(UnixTime t) {
  Registry mem(NetworkConfig{}, nullptr);
  run_script(mem, t);
  Expected e{mem.leases().snapshot(), mem.nodes(), mem.crl()};
  for (auto& [id, n] : e.nodes) n.online = false;  // a restart ends every session
  return e;
}

void expect_restored(const std::string& path, const Expected& e, UnixTime now) {
  StoredRegistry s(path, now);
  ASSERT_TRUE(ready(s));
  Registry& reg = *s.reg;
  EXPECT_TRUE(same_tables(reg.leases().snapshot(), e.leases));
  EXPECT_EQ(reg.nodes(), e.nodes);
  EXPECT_EQ(reg.crl(), e.crl);
  // What is on disk matches what is in memory, too.
  std::vector<Lease> leases;
  std::vector<NodeInfo> nodes;
  std::string crl;
  ASSERT_TRUE(s.store->load(leases, nodes, crl, s.error)) << s.error;
  EXPECT_TRUE(same_tables(leases, e.leases));
  ASSERT_EQ(nodes.size(), e.nodes.size());
  for (const NodeInfo& n : nodes) EXPECT_EQ(n, e.nodes.at(n.id));
}

TEST(RegistryStore, InMemoryRoundTrip) {
  std::string error;
  auto store = RegistryStore::open(":memory:", error);
  ASSERT_TRUE(store) << error;
  Lease l = make_lease("10.128.0.9", "52:54:00:12:34:56", "vm \xc3\xa9", "h", "n", kT0);
  l.state = LeaseState::Offered;
  l.origin = LeaseOrigin::Learned;
  ASSERT_TRUE(store->put_lease(l)) << store->last_error();
  NodeInfo n{"id", "name", {"1.2.3.4", 5}, {{"10.0.0.1", 6}, {"10.0.0.2", 7}}, kT0, true};
  ASSERT_TRUE(store->put_node(n));
  n.local_endpoints.pop_back();  // replaced, not appended
  ASSERT_TRUE(store->put_node(n));
  ASSERT_TRUE(store->put_crl(std::string("pem\0with nul", 12)));
  std::vector<Lease> leases;
  std::vector<NodeInfo> nodes;
  std::string crl;
  ASSERT_TRUE(store->load(leases, nodes, crl, error)) << error;
  ASSERT_EQ(leases.size(), 1u);
  EXPECT_TRUE(same(leases[0], l));
  ASSERT_EQ(nodes.size(), 1u);
  EXPECT_EQ(nodes[0], n);
  EXPECT_EQ(crl, std::string("pem\0with nul", 12));
  ASSERT_TRUE(store->erase_lease(l.address));
  ASSERT_TRUE(store->load(leases, nodes, crl, error));
  EXPECT_TRUE(leases.empty());
}

TEST(RegistryStore, RestartWithoutShutdownKeepsEverything) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string path = dir.file("registry.db");
  std::vector<Lease> before;
  {
    StoredRegistry s(path, kT0);
    ASSERT_TRUE(ready(s));
    run_script(*s.reg, kT0);
    before = s.reg->leases().snapshot();
  }  // dropped with no shutdown call of any kind
  Expected e = expected_after_script(kT0);
  EXPECT_TRUE(same_tables(before, e.leases));
  EXPECT_EQ(e.leases.size(), 5u);
  ASSERT_EQ(e.nodes.size(), 2u);
  EXPECT_EQ(e.nodes.at("node-a").local_endpoints.size(), 2u);
  expect_restored(path, e, kT0 + 200);
  // And again: restoring wrote nothing that changes the state.
  expect_restored(path, e, kT0 + 300);
}

TEST(RegistryStore, SigkillRightAfterTheLastReplyLosesNothing) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string path = dir.file("registry.db");
  GTEST_FLAG_SET(death_test_style, "fast");
  EXPECT_EXIT(
      {
        std::string error;
        auto store = RegistryStore::open(path, error);
        if (!store) _exit(2);
        Registry reg(NetworkConfig{}, store.get());
        if (!reg.restore(kT0, error)) _exit(3);
        run_script(reg, kT0);
        kill(getpid(), SIGKILL);
      },
      ::testing::KilledBySignal(SIGKILL), "");
  // The WAL is still there (nothing was checkpointed at exit): what the
  // restart reads comes through SQLite's recovery.
  EXPECT_TRUE(std::filesystem::exists(path + "-wal"));
  EXPECT_GT(std::filesystem::file_size(path + "-wal"), 0u);
  expect_restored(path, expected_after_script(kT0), kT0 + 200);
}

TEST(RegistryStore, RestoredNodesAreOfflineAndGetTheSnapshotOnReconnect) {
  TempDir dir;
  const std::string path = dir.file("registry.db");
  {
    StoredRegistry s(path, kT0);
    ASSERT_TRUE(ready(s));
    run_script(*s.reg, kT0);
  }
  StoredRegistry s(path, kT0 + 200);
  ASSERT_TRUE(ready(s));
  Registry& reg = *s.reg;
  for (const auto& [id, n] : reg.nodes()) EXPECT_FALSE(n.online) << id;
  std::vector<Outgoing> out;
  reg.on_node_up(kT0 + 200, "node-b", "host-b", "198.51.100.2", 5001, out);
  ASSERT_GE(out.size(), 3u);
  EXPECT_TRUE(out[0].message.has_registered());
  EXPECT_TRUE(out[1].message.has_lease_snapshot());
  EXPECT_EQ(out.back().message.crl().pem(), kCrl);
  // Allocation continues where it left off: the migrated VM's address on B.
  out.clear();
  reg.on_message(kT0 + 200, "node-b", offer(1, "52:54:00:00:00:01", "web"), out);
  ASSERT_TRUE(reply_to(out, "node-b").ok());
  EXPECT_EQ(reply_to(out, "node-b").lease().address(), "10.128.0.2");
  EXPECT_EQ(reply_to(out, "node-b").lease().node_id(), "node-b");
}

TEST(RegistryStore, GarbageFileIsAClearError) {
  TempDir dir;
  const std::string path = dir.file("registry.db");
  {
    std::ofstream f(path, std::ios::binary);
    for (int i = 0; i < 4096; ++i) f.put(char((i * 131 + 7) & 0xff));
  }
  std::string error;
  EXPECT_FALSE(RegistryStore::open(path, error));
  EXPECT_NE(error.find(path), std::string::npos) << error;
  EXPECT_NE(error.find("not a readable SQLite database"), std::string::npos) << error;
}

TEST(RegistryStore, ForeignSqliteFileIsRefused) {
  TempDir dir;
  const std::string path = dir.file("other.db");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE leases(x); INSERT INTO leases VALUES (1);", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  std::string error;
  EXPECT_FALSE(RegistryStore::open(path, error));
  EXPECT_NE(error.find("not a wownet registry database"), std::string::npos) << error;
}

TEST(RegistryStore, NewerSchemaIsRefused) {
  TempDir dir;
  const std::string path = dir.file("registry.db");
  std::string error;
  ASSERT_TRUE(RegistryStore::open(path, error)) << error;
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 7", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  EXPECT_FALSE(RegistryStore::open(path, error));
  EXPECT_NE(error.find("schema version 7 is newer"), std::string::npos) << error;
}

TEST(RegistryStore, DamagedFileIsAnErrorNotACrash) {
  TempDir dir;
  const std::string path = dir.file("registry.db");
  {
    StoredRegistry s(path, kT0);
    ASSERT_TRUE(ready(s));
    std::vector<Outgoing> out;
    s.reg->on_node_up(kT0, "n", "n", "198.51.100.1", 1, out);
    for (int i = 0; i < 400; ++i) {
      char mac[18];
      std::snprintf(mac, sizeof mac, "52:54:00:00:%02x:%02x", i / 256, i % 256);
      s.reg->on_message(kT0, "n", bind(1, mac, std::string(100, 'v'), "10.128.2." + std::to_string(i % 250 + 1)), out);
    }
  }
  auto size = std::filesystem::file_size(path);
  ASSERT_GT(size, 4u * 4096);
  // Overwrite everything after the first page (the header stays valid).
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096);
    for (std::uintmax_t i = 4096; i < size; ++i) f.put(char((i * 7919) & 0xff));
  }
  std::string error;
  auto store = RegistryStore::open(path, error);
  if (store) {
    Registry reg(NetworkConfig{}, store.get());
    EXPECT_FALSE(reg.restore(kT0, error));
  }
  EXPECT_NE(error.find(path), std::string::npos) << error;
  EXPECT_TRUE(error.find("damaged") != std::string::npos || error.find("malformed") != std::string::npos) << error;
  EXPECT_EQ(error.find("***"), std::string::npos) << error;
}

TEST(RegistryStore, DirectoryThatDoesNotExistIsAnError) {
  std::string error;
  EXPECT_FALSE(RegistryStore::open("/nonexistent-wownet-dir/registry.db", error));
  EXPECT_NE(error.find("cannot open"), std::string::npos) << error;
}

TEST(RegistryStore, FailedCommitUndoesTheChangeAndRefuses) {
  TempDir dir;
  const std::string path = dir.file("registry.db");
  StoredRegistry s(path, kT0);
  ASSERT_TRUE(ready(s));
  Registry& reg = *s.reg;
  std::vector<Outgoing> out;
  reg.on_node_up(kT0, "node-a", "a", "198.51.100.1", 1, out);
  reg.on_node_up(kT0, "node-b", "b", "198.51.100.2", 1, out);
  reg.on_message(kT0, "node-a", bind(1, "52:54:00:00:00:01", "vm", "10.128.0.5"), out);
  ASSERT_TRUE(reply_to(out, "node-a").ok());
  auto before = reg.leases().snapshot();

  // Another connection holds the write lock: the registry's commit fails.
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
  out.clear();
  reg.on_message(kT0 + 1, "node-a", bind(2, "52:54:00:00:00:01", "vm", "10.128.0.6"), out);
  ov::LeaseReply r = reply_to(out, "node-a");
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.reason().find("registry storage failure"), std::string::npos) << r.reason();
  EXPECT_TRUE(to(out, "node-b").empty());  // nothing announced
  EXPECT_TRUE(same_tables(reg.leases().snapshot(), before));
  EXPECT_FALSE(reg.storage_failed());
  EXPECT_EQ(reg.counters().store_failures, 1u);
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);

  out.clear();
  reg.on_message(kT0 + 2, "node-a", bind(3, "52:54:00:00:00:01", "vm", "10.128.0.6"), out);
  EXPECT_TRUE(reply_to(out, "node-a").ok());
  EXPECT_EQ(updates_to(out, "node-b").size(), 1u);
}

}  // namespace
}  // namespace wownet::registry::test
