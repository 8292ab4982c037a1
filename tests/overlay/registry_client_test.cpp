// The host's registry client without sockets: asks in, SendControl actions
// out (decoded here to check them), time as milliseconds.
#include "overlay/registry_client.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "proto/overlay.pb.h"

namespace wownet::overlay {
namespace {

const std::string kRv1(32, '1'), kRv2(32, '2');

LeaseAsk offer(std::uint8_t mac_last, const std::string& vm) {
  LeaseAsk a;
  a.kind = LeaseAsk::Kind::Offer;
  a.mac = *MacAddr::parse("52:54:00:00:00:0" + std::to_string(mac_last));
  a.vm = vm;
  return a;
}

struct Sent {
  std::string to;
  NodeMessage message;
};
std::vector<Sent> sent(const Actions& out) {
  std::vector<Sent> v;
  for (const auto& a : out) {
    const auto* s = std::get_if<SendControl>(&a);
    if (!s) continue;
    Sent x{s->node_id, {}};
    EXPECT_TRUE(x.message.ParseFromString(s->message));
    v.push_back(std::move(x));
  }
  return v;
}

TEST(RegistryClientTest, RequestsWaitForARendezvousThenGoOut) {
  RegistryClient c;
  Actions out;
  c.ask(0, offer(1, "a"), out);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(c.pending(), 1u);
  c.on_rendezvous_up(10, kRv1, out);
  auto s = sent(out);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].to, kRv1);
  EXPECT_EQ(s[0].message.lease_request().mac(), "52:54:00:00:00:01");
  EXPECT_EQ(s[0].message.lease_request().vm(), "a");
  EXPECT_EQ(s[0].message.lease_request().kind(), LeaseRequest::OFFER);
}

// Two VMs asking at once each get a request of their own, and an answered
// request is never sent again (a request id taken from a moved-from message
// once filed every request under id 0: answered ones were re-sent every 3 s
// and concurrent asks overwrote each other).
TEST(RegistryClientTest, ConcurrentAsksHaveTheirOwnIdsAndAnAnsweredOneIsNotSentAgain) {
  RegistryClient c;
  Actions out;
  c.on_rendezvous_up(0, kRv1, out);
  c.ask(100, offer(1, "a"), out);
  c.ask(100, offer(2, "b"), out);
  auto s = sent(out);
  ASSERT_EQ(s.size(), 2u);
  const std::uint64_t id_a = s[0].message.request_id(), id_b = s[1].message.request_id();
  EXPECT_NE(id_a, 0u);
  EXPECT_NE(id_b, 0u);
  EXPECT_NE(id_a, id_b);
  EXPECT_EQ(c.pending(), 2u);
  EXPECT_EQ(c.on_answer(id_a), MacAddr::parse("52:54:00:00:00:01"));
  EXPECT_FALSE(c.on_answer(id_a));  // answered once
  out.clear();
  c.on_timer(100 + 3000, out);
  s = sent(out);
  ASSERT_EQ(s.size(), 1u);  // only b's, still unanswered
  EXPECT_EQ(s[0].message.request_id(), id_b);
  EXPECT_EQ(s[0].message.lease_request().vm(), "b");
  EXPECT_EQ(c.counters().retries, 1u);
}

TEST(RegistryClientTest, ANewerAskOfTheSameVmReplacesTheOlderOneOfItsKind) {
  RegistryClient c;
  Actions out;
  c.on_rendezvous_up(0, kRv1, out);
  const auto first = c.ask(0, offer(1, "a"), out);
  LeaseAsk bind = offer(1, "a");
  bind.kind = LeaseAsk::Kind::Bind;
  const auto second = c.ask(1, bind, out);
  LeaseAsk release = offer(1, "a");
  release.kind = LeaseAsk::Kind::Release;
  c.ask(2, release, out);  // a release is of the other kind: both stay
  EXPECT_EQ(c.pending(), 2u);
  EXPECT_FALSE(c.on_answer(first));
  EXPECT_TRUE(c.on_answer(second));
  EXPECT_EQ(c.counters().replaced, 1u);
}

TEST(RegistryClientTest, UnansweredRequestsAreRetriedOnTheNextRendezvousThenGivenUp) {
  RegistryClient c(RegistryClient::Options{1000, 3, 16, 1000});
  Actions out;
  c.on_rendezvous_up(0, kRv1, out);
  c.on_rendezvous_up(0, kRv2, out);
  c.ask(0, offer(1, "a"), out);
  EXPECT_EQ(c.next_deadline_ms(), 1000);
  c.on_timer(999, out);
  c.on_timer(1000, out);
  c.on_timer(2000, out);
  auto s = sent(out);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].to, kRv1);
  EXPECT_EQ(s[1].to, kRv2);
  EXPECT_EQ(s[2].to, kRv1);
  out.clear();
  c.on_timer(3000, out);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(c.pending(), 0u);
  EXPECT_EQ(c.counters().given_up, 1u);
  EXPECT_EQ(c.next_deadline_ms(), RegistryClient::kNever);
}

TEST(RegistryClientTest, ARendezvousThatGoesDownIsNoLongerAsked) {
  RegistryClient c;
  Actions out;
  c.on_rendezvous_up(0, kRv1, out);
  c.on_rendezvous_up(0, kRv2, out);
  EXPECT_TRUE(c.is_rendezvous(kRv2));
  c.on_rendezvous_down(kRv1);
  EXPECT_FALSE(c.is_rendezvous(kRv1));
  EXPECT_EQ(c.current(), kRv2);
  c.ask(0, offer(1, "a"), out);
  auto s = sent(out);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].to, kRv2);
  c.on_rendezvous_down(kRv2);
  out.clear();
  c.on_timer(10'000, out);  // nobody to ask: it waits, and counts no try
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(c.pending(), 1u);
}

// A boot storm: every VM's request goes out at once (many in flight, none
// waiting for another's answer); answers in any order each end their own
// request, and the retry timer re-sends only the ones still unanswered.
TEST(RegistryClientTest, ManyRequestsAreInFlightAtOnceAndOnlyUnansweredOnesAreRetried) {
  RegistryClient c;
  Actions out;
  c.on_rendezvous_up(0, kRv1, out);
  constexpr int kVms = 1000;
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < kVms; ++i) {
    LeaseAsk a;
    a.kind = LeaseAsk::Kind::Offer;
    a.mac = MacAddr{{0x52, 0x54, 0x00, 0x01, std::uint8_t(i >> 8), std::uint8_t(i)}};
    a.vm = "vm" + std::to_string(i);
    ids.push_back(c.ask(10, a, out));
  }
  EXPECT_EQ(sent(out).size(), std::size_t(kVms));
  EXPECT_EQ(c.pending(), std::size_t(kVms));
  // Answers come back in reverse order, all but every tenth.
  for (int i = kVms - 1; i >= 0; --i) {
    if (i % 10 == 0) continue;
    EXPECT_TRUE(c.on_answer(ids[std::size_t(i)]));
  }
  EXPECT_EQ(c.pending(), std::size_t(kVms / 10));
  out.clear();
  c.on_timer(10 + 3000, out);
  auto s = sent(out);
  ASSERT_EQ(s.size(), std::size_t(kVms / 10));
  for (const Sent& x : s) {
    const auto at = std::find(ids.begin(), ids.end(), x.message.request_id()) - ids.begin();
    EXPECT_EQ(at % 10, 0) << "answered request " << at << " sent again";
  }
  EXPECT_EQ(c.counters().replaced, 0u);
}

TEST(RegistryClientTest, PendingRequestsAreBounded) {
  RegistryClient c(RegistryClient::Options{3000, 10, 4, 1000});
  Actions out;
  for (std::uint8_t i = 1; i <= 6; ++i) c.ask(0, offer(i, "vm" + std::to_string(i)), out);
  EXPECT_EQ(c.pending(), 4u);
  EXPECT_EQ(c.counters().given_up, 2u);
}

TEST(RegistryClientTest, ResolvesAreThrottledPerNodeAndAddress) {
  RegistryClient c;
  Actions out;
  const std::string node(32, 'e');
  EXPECT_FALSE(c.resolve(0, node, Ipv4Addr{0x0a800005}, out));  // no rendezvous yet
  c.on_rendezvous_up(0, kRv1, out);
  EXPECT_TRUE(c.resolve(0, node, Ipv4Addr{0x0a800005}, out));
  EXPECT_FALSE(c.resolve(500, node, Ipv4Addr{0x0a800005}, out));
  EXPECT_TRUE(c.resolve(500, node, std::nullopt, out));  // by node: its own throttle
  EXPECT_TRUE(c.resolve(1000, node, Ipv4Addr{0x0a800005}, out));
  auto s = sent(out);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].message.resolve().address(), "10.128.0.5");
  EXPECT_EQ(s[1].message.resolve().node_id(), node);
  EXPECT_EQ(c.counters().resolves, 3u);
}

}  // namespace
}  // namespace wownet::overlay
