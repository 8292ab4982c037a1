// Group commit of the registry on SQLite: every request handled in one turn
// of the loop is written in one transaction, and no reply (nor push) leaves
// before that transaction is on disk.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <string>

#include "registry/registry.h"
#include "registry/registry_store.h"
#include "registry_test_util.h"

namespace wownet::registry::test {
namespace {

std::string mac_of(int i) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "52:54:00:00:%02x:%02x", (i >> 8) & 0xff, i & 0xff);
  return buf;
}

std::size_t replies_in(const std::vector<Outgoing>& out) {
  std::size_t n = 0;
  for (const Outgoing& o : out) n += o.message.has_lease_reply();
  return n;
}

// A rendezvous' registry on a SQLite file, in group mode, with two hosts up.
struct Grouped {
  TempDir dir;
  std::unique_ptr<RegistryStore> store;
  std::unique_ptr<Registry> reg;

  Grouped() {
    std::string error;
    store = RegistryStore::open(dir.file("registry.db"), error);
    EXPECT_TRUE(store) << error;
    reg = std::make_unique<Registry>(NetworkConfig{}, store.get());
    reg->group_commits();
    EXPECT_TRUE(reg->restore(kT0, error)) << error;
    std::vector<Outgoing> out;
    reg->on_node_up(kT0, "node-a", "a", "198.51.100.1", 1, out);
    reg->on_node_up(kT0, "node-b", "b", "198.51.100.2", 1, out);
  }

  std::vector<Lease> on_disk() {
    std::vector<Lease> leases;
    std::vector<NodeInfo> nodes;
    std::string crl, error;
    EXPECT_TRUE(store->load(leases, nodes, crl, error)) << error;
    return leases;
  }
};

TEST(RegistryGroupCommit, RequestsOfOneTurnAreOneTransaction) {
  Grouped g;
  const std::uint64_t commits_before = g.store->commits();
  std::vector<Outgoing> out;
  constexpr int kRequests = 50;
  for (int i = 0; i < kRequests; ++i)
    g.reg->on_message(kT0 + 1, "node-a", offer(std::uint64_t(i + 1), mac_of(i), "vm" + std::to_string(i)), out);
  // Nothing is written, and nothing leaves, before the turn ends.
  EXPECT_EQ(g.store->commits(), commits_before);
  EXPECT_EQ(replies_in(out), 0u);
  EXPECT_TRUE(updates_to(out, "node-b").empty());
  EXPECT_EQ(g.reg->replies_held(), std::size_t(kRequests));
  EXPECT_TRUE(g.on_disk().empty());

  g.reg->commit_group(kT0 + 1, out);
  EXPECT_EQ(g.store->commits(), commits_before + 1);
  EXPECT_EQ(replies_in(out), std::size_t(kRequests));
  for (const Outgoing& o : out) {
    if (o.message.has_lease_reply()) {
      EXPECT_TRUE(o.message.lease_reply().ok()) << o.message.lease_reply().reason();
    }
  }
  EXPECT_EQ(updates_to(out, "node-b").size(), std::size_t(kRequests));
  EXPECT_EQ(g.on_disk().size(), std::size_t(kRequests));
  EXPECT_EQ(g.reg->counters().group_commits, 1u);
  EXPECT_EQ(g.reg->counters().group_replies, std::uint64_t(kRequests));
  EXPECT_EQ(g.reg->replies_held(), 0u);

  // An empty turn writes nothing.
  out.clear();
  g.reg->commit_group(kT0 + 1, out);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(g.store->commits(), commits_before + 1);
}

TEST(RegistryGroupCommit, WithoutGroupModeEveryRequestIsItsOwnTransaction) {
  // The behaviour group mode replaces (and keeps for callers that do not
  // ask for it): one transaction and reply per request.
  TempDir dir;
  std::string error;
  auto store = RegistryStore::open(dir.file("registry.db"), error);
  ASSERT_TRUE(store) << error;
  Registry reg(NetworkConfig{}, store.get());
  ASSERT_TRUE(reg.restore(kT0, error)) << error;
  std::vector<Outgoing> out;
  reg.on_node_up(kT0, "node-a", "a", "198.51.100.1", 1, out);
  const std::uint64_t commits_before = store->commits();
  out.clear();
  for (int i = 0; i < 10; ++i) reg.on_message(kT0 + 1, "node-a", offer(std::uint64_t(i + 1), mac_of(i), "vm"), out);
  EXPECT_EQ(store->commits(), commits_before + 10);
  EXPECT_EQ(replies_in(out), 10u);
}

TEST(RegistryGroupCommit, RepliesThatChangedNothingWaitForTheGroupToo) {
  Grouped g;
  std::vector<Outgoing> out;
  g.reg->on_message(kT0 + 1, "node-a", offer(1, mac_of(1), "web"), out);
  // The same VM asks again in the same turn: its binding is kept as it is
  // (no change of its own), but the answer reports the first, unwritten one.
  g.reg->on_message(kT0 + 1, "node-a", offer(2, mac_of(1), "web"), out);
  EXPECT_EQ(replies_in(out), 0u);
  g.reg->commit_group(kT0 + 1, out);
  EXPECT_EQ(replies_in(out), 2u);
  EXPECT_EQ(g.on_disk().size(), 1u);
}

TEST(RegistryGroupCommit, LocalRequestsJoinTheGroup) {
  Grouped g;
  g.reg->set_self("self-id", "rdv", {});
  std::vector<Outgoing> out;
  g.reg->on_local_message(kT0 + 1, offer(1, mac_of(7), "own"), out);
  g.reg->on_message(kT0 + 1, "node-a", offer(2, mac_of(8), "theirs"), out);
  EXPECT_EQ(replies_in(out), 0u);
  const std::uint64_t commits_before = g.store->commits();
  g.reg->commit_group(kT0 + 1, out);
  EXPECT_EQ(g.store->commits(), commits_before + 1);
  EXPECT_EQ(to(out, "self-id").size(), 1u);
  EXPECT_TRUE(reply_to(out, "node-a").ok());
}

TEST(RegistryGroupCommit, AFailedGroupIsUndoneAndEveryGrantRefused) {
  Grouped g;
  std::vector<Outgoing> out;
  g.reg->on_message(kT0 + 1, "node-a", bind(1, mac_of(1), "kept", "10.128.0.9"), out);
  g.reg->commit_group(kT0 + 1, out);
  ASSERT_TRUE(reply_to(out, "node-a").ok());
  const auto before = g.reg->leases().snapshot();

  // Another connection holds the write lock: the group's commit fails.
  sqlite3* other = nullptr;
  const std::string path = g.dir.file("registry.db");
  ASSERT_EQ(sqlite3_open(path.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
  out.clear();
  for (int i = 2; i <= 4; ++i) g.reg->on_message(kT0 + 2, "node-a", offer(std::uint64_t(i), mac_of(i), "vm"), out);
  g.reg->commit_group(kT0 + 2, out);
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);

  ASSERT_EQ(replies_in(out), 3u);
  for (const Outgoing& o : out) {
    if (!o.message.has_lease_reply()) continue;
    EXPECT_FALSE(o.message.lease_reply().ok());
    EXPECT_NE(o.message.lease_reply().reason().find("registry storage failure"), std::string::npos);
  }
  EXPECT_TRUE(to(out, "node-b").empty());  // nothing announced
  EXPECT_TRUE(same_tables(g.reg->leases().snapshot(), before));
  EXPECT_EQ(g.reg->counters().store_failures, 1u);
  EXPECT_FALSE(g.reg->storage_failed());

  // The next turn works again.
  out.clear();
  g.reg->on_message(kT0 + 3, "node-a", offer(5, mac_of(2), "vm"), out);
  g.reg->commit_group(kT0 + 3, out);
  EXPECT_TRUE(reply_to(out, "node-a").ok());
  EXPECT_EQ(g.on_disk().size(), 2u);
}

TEST(RegistryGroupCommit, ExpiriesAreWrittenWithTheGroupBeforeTheyAreAnnounced) {
  Grouped g;
  std::vector<Outgoing> out;
  g.reg->on_message(kT0 + 1, "node-a", offer(1, mac_of(1), "vm"), out);
  g.reg->commit_group(kT0 + 1, out);
  ASSERT_EQ(g.on_disk().size(), 1u);
  out.clear();
  const UnixTime later = kT0 + 1 + UnixTime(NetworkConfig{}.offer_hold) + 1;
  g.reg->on_timer(later, out);
  EXPECT_TRUE(updates_to(out, "node-b").empty());
  EXPECT_EQ(g.on_disk().size(), 1u);
  g.reg->commit_group(later, out);
  EXPECT_TRUE(g.on_disk().empty());
  EXPECT_EQ(updates_to(out, "node-b").size(), 1u);
}

TEST(RegistryGroupCommit, ANewNodeGetsItsSnapshotOnlyOfWhatIsWritten) {
  Grouped g;
  std::vector<Outgoing> out;
  g.reg->on_message(kT0 + 1, "node-a", offer(1, mac_of(1), "vm"), out);
  // A node whose session comes up in the same turn: the group is written
  // first, so its snapshot holds nothing that could still be lost.
  const std::uint64_t commits_before = g.store->commits();
  g.reg->on_node_up(kT0 + 1, "node-c", "c", "198.51.100.3", 1, out);
  EXPECT_GE(g.store->commits(), commits_before + 1);
  EXPECT_TRUE(reply_to(out, "node-a").ok());
  EXPECT_EQ(g.on_disk().size(), 1u);
}

}  // namespace
}  // namespace wownet::registry::test
