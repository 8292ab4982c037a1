// NAT traversal's schedule without sockets or sleeps: punches, attempts
// after a punched Resolved, retries while relayed.
#include "overlay/nat_traversal.h"

#include <gtest/gtest.h>

namespace wownet::overlay {
namespace {

const std::string kNode(32, 'b');
const UdpEndpoint kNat{Ipv4Addr{0xcb007101}, 40000}, kLocal{Ipv4Addr{0x0a010002}, 7700};

NatTraversal make(std::uint8_t ttl = 2, std::int64_t retry_ms = 45'000) {
  return NatTraversal({ttl, retry_ms}, [](std::span<std::uint8_t> b) { std::fill(b.begin(), b.end(), 0xab); });
}

TEST(NatTraversalTest, APunchSendsLowTtlProbesToEveryEndpointThenSetsThePath) {
  auto nat = make();
  Actions out;
  nat.on_punch(kNode, {kNat, kLocal}, out);
  ASSERT_EQ(out.size(), 3u);
  for (int i = 0; i < 2; ++i) {
    const auto& probe = std::get<SendDatagram>(out[i]);
    EXPECT_EQ(probe.to, i == 0 ? kNat : kLocal);
    EXPECT_EQ(probe.ttl, 2);
    ASSERT_EQ(probe.bytes.size(), wire::kProbeSize);
    EXPECT_EQ(probe.bytes[0], std::uint8_t(wire::DatagramType::Probe));
    EXPECT_EQ(probe.bytes[16], 0xab);
    EXPECT_EQ(wire::classify(probe.bytes), wire::DatagramType::Probe);
  }
  const auto& path = std::get<SetPeerPath>(out[2]);
  EXPECT_EQ(path.node_id, kNode);
  EXPECT_EQ(path.endpoints, (std::vector<UdpEndpoint>{kNat, kLocal}));
  EXPECT_TRUE(path.offer_relay);
  EXPECT_EQ(nat.probes_sent(), 2u);
}

TEST(NatTraversalTest, NoProbesWithTtlZeroAndAtMostEightEndpoints) {
  auto nat = make(0);
  Actions out;
  std::vector<UdpEndpoint> many(12, kNat);
  nat.on_punch(kNode, many, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(std::get<SetPeerPath>(out[0]).endpoints.size(), NatTraversal::kMaxEndpoints);
  out.clear();
  nat.on_punch(kNode, {}, out);
  EXPECT_TRUE(out.empty());
}

TEST(NatTraversalTest, AnUnpunchedResolveSetsThePathAtOnce) {
  auto nat = make();
  Actions out;
  nat.on_resolved(1000, kNode, {kNat}, false, 20, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(std::get<SetPeerPath>(out[0]).endpoints, std::vector<UdpEndpoint>{kNat});
  EXPECT_EQ(nat.next_deadline_ms(), NatTraversal::kNever);
}

TEST(NatTraversalTest, APunchedResolveWaitsAboutOneRendezvousRoundTrip) {
  auto nat = make();
  Actions out;
  nat.on_resolved(1000, kNode, {kNat}, true, 30, out);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(nat.next_deadline_ms(), 1000 + 30 + 50);
  // The same answer again does not push it back.
  nat.on_resolved(1050, kNode, {kLocal}, true, 30, out);
  EXPECT_EQ(nat.next_deadline_ms(), 1080);
  nat.on_timer(1079, out);
  EXPECT_TRUE(out.empty());
  nat.on_timer(1080, out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(std::get<SetPeerPath>(out[0]).endpoints, std::vector<UdpEndpoint>{kLocal});  // the newest endpoints
  EXPECT_EQ(std::get<TryDirect>(out[1]).node_id, kNode);
  EXPECT_EQ(nat.attempts_waiting(), 0u);
}

TEST(NatTraversalTest, TheWaitIsBoundedAndHasADefault) {
  auto nat = make();
  Actions out;
  nat.on_resolved(0, kNode, {kNat}, true, -1, out);
  EXPECT_EQ(nat.next_deadline_ms(), 100);
  auto slow = make();
  slow.on_resolved(0, kNode, {kNat}, true, 5000, out);
  EXPECT_EQ(slow.next_deadline_ms(), 1000);
  auto fast = make();
  fast.on_resolved(0, kNode, {kNat}, true, 0, out);
  EXPECT_EQ(fast.next_deadline_ms(), 50);
}

TEST(NatTraversalTest, ARelayedPeerAsksForANewPunchBackingOffToEightTimes) {
  auto nat = make(2, 1000);
  Actions out;
  std::vector<NatTraversal::PeerPath> relayed{{kNode, true, true}};
  std::vector<std::int64_t> asked;
  for (std::int64_t t = 0; t <= 40'000; t += 100) {
    out.clear();
    nat.retry_relayed(t, relayed, out);
    if (!out.empty()) {
      EXPECT_EQ(std::get<ResolveNode>(out[0]).node_id, kNode);
      asked.push_back(t);
    }
  }
  // First seen at 0; then after 1, 2, 4 and 8 s, and every 8 s after that.
  EXPECT_EQ(asked, (std::vector<std::int64_t>{1000, 3000, 7000, 15000, 23000, 31000, 39000}));
}

TEST(NatTraversalTest, ADirectPeerStopsTheRetriesAndResetsTheBackOff) {
  auto nat = make(2, 1000);
  Actions out;
  nat.retry_relayed(0, {{kNode, true, true}}, out);
  nat.retry_relayed(1000, {{kNode, true, true}}, out);
  nat.retry_relayed(3000, {{kNode, true, true}}, out);
  EXPECT_EQ(out.size(), 2u);
  out.clear();
  nat.retry_relayed(4000, {{kNode, true, false}}, out);  // direct now
  nat.retry_relayed(100'000, {{kNode, true, false}}, out);
  EXPECT_TRUE(out.empty());
  nat.retry_relayed(200'000, {{kNode, true, true}}, out);  // relayed again: starts over
  nat.retry_relayed(201'000, {{kNode, true, true}}, out);
  ASSERT_EQ(out.size(), 1u);
}

}  // namespace
}  // namespace wownet::overlay
