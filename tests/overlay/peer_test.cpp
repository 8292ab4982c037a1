// Peer: endpoint rotation, the queue and its limit, retry bookkeeping and
// the choice of the sending session, without sessions or sockets.
#include "overlay/peer.h"

#include <gtest/gtest.h>

#include <vector>

namespace wownet::overlay {
namespace {

UdpEndpoint ep(std::uint8_t last, std::uint16_t port = 4000) {
  return UdpEndpoint{Ipv4Addr::from_octets(192, 0, 2, last), port};
}

TEST(PeerTest, DirectBeatsRelayedWhicheverCameFirst) {
  const Peer::Candidate direct{false, 1000, false, 1}, relayed{true, 90'000, false, 9};
  EXPECT_FALSE(Peer::newcomer_wins(direct, relayed));
  EXPECT_TRUE(Peer::newcomer_wins(relayed, direct));
}

TEST(PeerTest, NewerWinsUnlessSimultaneousThenRekeyThenLargerTag) {
  const Peer::Candidate old{false, 1000, false, 50};
  EXPECT_TRUE(Peer::newcomer_wins(old, {false, 1000 + Peer::kSimultaneousWindowMs, false, 1}));
  EXPECT_FALSE(Peer::newcomer_wins(old, {false, 2000, false, 49}));  // simultaneous, smaller tag
  EXPECT_TRUE(Peer::newcomer_wins(old, {false, 2000, false, 51}));
  EXPECT_TRUE(Peer::newcomer_wins(old, {false, 2000, true, 1}));  // the rekey wins
  EXPECT_FALSE(Peer::newcomer_wins({false, 1000, true, 1}, {false, 2000, false, 99}));
}

TEST(PeerTest, EndpointsInTurnThenTheLastReached) {
  Peer p("n");
  EXPECT_FALSE(p.next_endpoint());
  p.endpoints = {ep(1), ep(2)};
  p.last_endpoint = ep(3);
  EXPECT_EQ(p.next_endpoint(), ep(1));
  p.note_failed_path(ep(1), "timeout", 100, 2000);
  EXPECT_EQ(p.retry_at_ms, 2100);
  EXPECT_EQ(p.last_error, "timeout");
  EXPECT_EQ(p.next_endpoint(), ep(2));
  p.note_failed_path(ep(2), "timeout", 200, 2000);
  EXPECT_EQ(p.next_endpoint(), ep(3));
  p.note_failed_path(ep(3), "timeout", 300, 2000);
  EXPECT_EQ(p.next_endpoint(), ep(1));
  p.forget_endpoints();
  EXPECT_FALSE(p.next_endpoint());
}

TEST(PeerTest, RelayedFailureKeepsTheDirectRotation) {
  Peer p("n");
  p.endpoints = {ep(1), ep(2)};
  p.note_failed_path(UdpEndpoint{Ipv4Addr::from_octets(0, 0, 0, 7), 1}, "relay down", 100, 2000);
  EXPECT_EQ(p.relay_retry_at_ms, 2100);
  EXPECT_EQ(p.retry_at_ms, kLongAgo);
  EXPECT_EQ(p.next_endpoint(), ep(1));
}

TEST(PeerTest, QueueDropsTheOldestBeyondItsLimit) {
  Peer p("n");
  const std::vector<std::uint8_t> a{1}, b{2}, c{3};
  EXPECT_EQ(p.enqueue(false, a, 2, 500), 0u);
  EXPECT_EQ(p.waiting_since_ms, 500);
  EXPECT_EQ(p.enqueue(true, b, 2, 600), 0u);
  EXPECT_EQ(p.enqueue(false, c, 2, 700), 1u);
  ASSERT_EQ(p.queue.size(), 2u);
  EXPECT_EQ(p.queue.front().bytes, b);
  EXPECT_TRUE(p.queue.front().control);
  EXPECT_EQ(p.waiting_since_ms, 500);
  EXPECT_EQ(p.enqueue(false, a, 0, 800), 1u);  // no queue at all
  EXPECT_EQ(p.queue.size(), 2u);
}

TEST(PeerTest, QueueHoldsAtMostItsByteLimit) {
  Peer p("n");
  const std::vector<std::uint8_t> frame(64 * 1024, 7);  // an offload frame
  std::size_t dropped = 0;
  for (int i = 0; i < 100; ++i) dropped += p.enqueue(false, frame, 128, 500 + i);
  EXPECT_EQ(p.queue.size(), Peer::kQueueByteLimit / frame.size());
  EXPECT_EQ(dropped, 100 - p.queue.size());
  const std::vector<std::uint8_t> huge(Peer::kQueueByteLimit + 1, 1);
  EXPECT_EQ(p.enqueue(false, huge, 128, 700), 1u);
  EXPECT_EQ(p.queue.size(), Peer::kQueueByteLimit / frame.size());
}

TEST(PeerTest, UnusedOnlyWhenNothingRefersToIt) {
  Peer p("n");
  EXPECT_TRUE(p.unused());
  p.relay = UdpEndpoint{Ipv4Addr::from_octets(0, 0, 0, 7), 1};
  EXPECT_FALSE(p.unused());
  p.relay.reset();
  p.sessions = 1;
  EXPECT_FALSE(p.unused());
}

}  // namespace
}  // namespace wownet::overlay
