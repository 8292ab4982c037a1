// What a host keeps on its own disk: its attachments and its own leases
// only (LeaseTable's own records, HostEngine::own_state_version), and the
// group commit of the replies that report them (DurableReplies).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/durable_replies.h"
#include "host_engine_fixture.h"

namespace wownet::engine_test {
namespace {

Lease lease_of(Ipv4Addr a, MacAddr mac, const std::string& node, UnixTime expiry = T0 + 3600) {
  Lease l;
  l.address = a;
  l.mac = mac;
  l.vm = "vm-" + a.to_string();
  l.node = node;
  l.state = LeaseState::Bound;
  l.expiry = expiry;
  return l;
}

MacAddr mac_n(int i) { return MacAddr{{0x52, 0x54, 0x00, 0x00, std::uint8_t(i >> 8), std::uint8_t(i)}}; }

TEST(OwnLeases, OnlyTheHostsOwnRecordsAreKept) {
  LeaseTable t(Ipv4Prefix{ip(10, 128, 0, 0), 16}, ip(10, 128, 0, 1));
  t.set_own_node("self");
  for (int i = 0; i < 100; ++i) t.apply(lease_of(ip(10, 128, 1, std::uint8_t(i + 2)), mac_n(i), "other-node"));
  t.apply(lease_of(ip(10, 128, 2, 5), mac_n(500), "self"));
  t.apply(lease_of(ip(10, 128, 2, 6), mac_n(501), "self"));
  ASSERT_EQ(t.size(), 102u);
  const auto own = t.own_leases();
  ASSERT_EQ(own.size(), 2u);
  EXPECT_EQ(own[0].address, ip(10, 128, 2, 5));
  EXPECT_EQ(own[1].address, ip(10, 128, 2, 6));
}

TEST(OwnLeases, OtherNodesChangesDoNotMoveTheOwnVersion) {
  LeaseTable t(Ipv4Prefix{ip(10, 128, 0, 0), 16}, ip(10, 128, 0, 1));
  t.set_own_node("self");
  const auto v0 = t.own_version();
  t.apply(lease_of(ip(10, 128, 1, 2), mac_n(1), "other-node"));
  t.apply(lease_of(ip(10, 128, 1, 2), mac_n(1), "other-node", T0 + 7200));
  t.forget(ip(10, 128, 1, 2));
  EXPECT_EQ(t.own_version(), v0);

  t.apply(lease_of(ip(10, 128, 2, 5), mac_n(2), "self"));
  const auto v1 = t.own_version();
  EXPECT_GT(v1, v0);
  // Renewed here: only the expiry moves.
  const auto e1 = t.own_expiry_version();
  t.put(ip(10, 128, 2, 5), mac_n(2), "vm-10.128.2.5", "", T0 + 9000, LeaseState::Bound, LeaseOrigin::Dhcp, "self");
  EXPECT_EQ(t.own_version(), v1);
  EXPECT_GT(t.own_expiry_version(), e1);
  // The VM moved away: its lease now names another node, and leaves the
  // own records (a change to save).
  t.apply(lease_of(ip(10, 128, 2, 5), mac_n(2), "other-node"));
  EXPECT_GT(t.own_version(), v1);
  EXPECT_TRUE(t.own_leases().empty());
}

TEST(OwnLeases, StandaloneOwnsEveryRecordWithoutANode) {
  LeaseTable t(Ipv4Prefix{ip(10, 128, 0, 0), 16}, ip(10, 128, 0, 1));
  t.put(ip(10, 128, 0, 5), mac_n(1), "a", "", T0 + 60, LeaseState::Offered, LeaseOrigin::Dhcp);
  t.decline(ip(10, 128, 0, 6), T0 + 60);
  EXPECT_EQ(t.own_leases().size(), 2u);
  t.expire(T0 + 61);
  EXPECT_TRUE(t.own_leases().empty());
}

class OwnStateTest : public HostEngineTest {};

TEST_F(OwnStateTest, RegistryModeOwnStateIgnoresOtherNodesLeases) {
  engine_.use_registry("self-node");
  const auto v0 = engine_.own_state_version();
  const auto all0 = engine_.state_version();
  for (int i = 0; i < 50; ++i)
    engine_.on_registry_lease(T0, lease_of(ip(10, 128, 4, std::uint8_t(i + 2)), mac_n(i), "node-b"));
  EXPECT_GT(engine_.state_version(), all0);
  EXPECT_EQ(engine_.own_state_version(), v0);
  engine_.on_registry_lease(T0, lease_of(ip(10, 128, 5, 5), kMac1, "self-node"));
  EXPECT_GT(engine_.own_state_version(), v0);
  EXPECT_EQ(engine_.leases().own_leases().size(), 1u);
}

TEST(DurableReplies, OneSaveForAllRepliesOfATurnAndNoneBeforeIt) {
  DurableReplies r;
  std::vector<std::string> events;
  const std::uint8_t frame[3] = {1, 2, 3};
  EXPECT_TRUE(r.hold(1, ConstByteSpan(frame, 3)));
  for (std::uint32_t to = 2; to <= 5; ++to) EXPECT_FALSE(r.hold(to, ConstByteSpan(frame, 1 + to % 3)));
  EXPECT_EQ(r.held(), 5u);
  const std::size_t n = r.flush(
      [&] {
        events.push_back("save");
        return true;
      },
      [&](std::uint32_t to, ConstByteSpan f) {
        events.push_back("write " + std::to_string(to) + "/" + std::to_string(f.size()));
      });
  EXPECT_EQ(n, 5u);
  EXPECT_EQ(events,
            (std::vector<std::string>{"save", "write 1/3", "write 2/3", "write 3/1", "write 4/2", "write 5/3"}));
  EXPECT_EQ(r.counters().saves, 1u);
  EXPECT_EQ(r.counters().replies, 5u);
  EXPECT_EQ(r.held(), 0u);
  // The next reply starts a new batch.
  EXPECT_TRUE(r.hold(1, ConstByteSpan(frame, 3)));
}

TEST(DurableReplies, AFailedSaveSendsNothing) {
  DurableReplies r;
  const std::uint8_t frame[2] = {9, 9};
  r.hold(1, ConstByteSpan(frame, 2));
  r.hold(2, ConstByteSpan(frame, 2));
  int writes = 0;
  EXPECT_EQ(r.flush([] { return false; }, [&](std::uint32_t, ConstByteSpan) { ++writes; }), 0u);
  EXPECT_EQ(writes, 0);
  EXPECT_EQ(r.counters().dropped, 2u);
  EXPECT_EQ(r.held(), 0u);
}

TEST(DurableReplies, HeldFramesAreCopies) {
  DurableReplies r;
  std::uint8_t frame[4] = {1, 2, 3, 4};
  r.hold(7, ConstByteSpan(frame, 4));
  frame[0] = 0xff;  // the engine reuses its reply buffer
  std::vector<std::uint8_t> got;
  r.flush([] { return true; }, [&](std::uint32_t, ConstByteSpan f) { got.assign(f.begin(), f.end()); });
  EXPECT_EQ(got, (std::vector<std::uint8_t>{1, 2, 3, 4}));
}

}  // namespace
}  // namespace wownet::engine_test
