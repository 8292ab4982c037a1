// A host with several rendezvous: a rendezvous that leaves a request
// unanswered for suspect_after_ms while saying nothing else is judged
// silent (a killed node looks alive to its sessions for up to
// dead_after), its requests go to the next one at once and new requests
// and resolves go there first, until it speaks again.
#include <gtest/gtest.h>

#include "overlay/registry_client.h"
#include "proto/overlay.pb.h"

namespace wownet::overlay {
namespace {

const std::string kRv1(32, '1'), kRv2(32, '2'), kRv3(32, '3');

LeaseAsk offer(std::uint8_t mac_last) {
  LeaseAsk a;
  a.kind = LeaseAsk::Kind::Offer;
  a.mac = *MacAddr::parse("52:54:00:00:00:0" + std::to_string(mac_last));
  a.vm = "vm" + std::to_string(mac_last);
  return a;
}

struct Sent {
  std::string to;
  NodeMessage message;
};
std::vector<Sent> take(Actions& out) {
  std::vector<Sent> v;
  for (const auto& a : out) {
    const auto* s = std::get_if<SendControl>(&a);
    if (!s) continue;
    Sent x{s->node_id, {}};
    EXPECT_TRUE(x.message.ParseFromString(s->message));
    v.push_back(std::move(x));
  }
  out.clear();
  return v;
}

RegistryClient two_up(Actions& out) {
  RegistryClient c;  // retry 3 s, suspect after 1 s
  c.on_rendezvous_up(0, kRv1, out);
  c.on_rendezvous_up(0, kRv2, out);
  return c;
}

TEST(RegistryFailoverTest, ASilentRendezvousIsSuspectedAndItsRequestsMoveAtOnce) {
  Actions out;
  RegistryClient c = two_up(out);
  c.ask(100, offer(1), out);
  auto s = take(out);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].to, kRv1);
  EXPECT_LE(c.next_deadline_ms(), 1100);
  c.on_timer(1099, out);
  EXPECT_TRUE(take(out).empty());
  c.on_timer(1100, out);  // a second of silence, not the 3 s retry
  s = take(out);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].to, kRv2);
  EXPECT_TRUE(c.suspected(kRv1));
  EXPECT_EQ(c.current(), kRv2);
  EXPECT_EQ(c.counters().failovers, 1u);
  // New requests and resolves go to the live one first.
  c.ask(1200, offer(2), out);
  EXPECT_TRUE(c.resolve(1200, std::string(32, 'e'), std::nullopt, out));
  s = take(out);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].to, kRv2);
  EXPECT_EQ(s[1].to, kRv2);
}

TEST(RegistryFailoverTest, AnUnansweredResolveMakesARendezvousSuspectToo) {
  Actions out;
  RegistryClient c = two_up(out);
  const std::string node(32, 'e');
  EXPECT_TRUE(c.resolve(0, node, std::nullopt, out));
  EXPECT_EQ(take(out).at(0).to, kRv1);
  c.on_timer(999, out);
  EXPECT_FALSE(c.suspected(kRv1));
  c.on_timer(1000, out);
  EXPECT_TRUE(c.suspected(kRv1));
  EXPECT_TRUE(c.resolve(1000, node, std::nullopt, out));  // the next packet asks again
  EXPECT_EQ(take(out).at(0).to, kRv2);
  // An answered one does not.
  c.on_heard(1100, kRv1);
  EXPECT_TRUE(c.resolve(2000, node, std::nullopt, out));
  EXPECT_EQ(take(out).at(0).to, kRv1);
  c.on_heard(2100, kRv1);
  c.on_timer(3500, out);
  EXPECT_FALSE(c.suspected(kRv1));
}

TEST(RegistryFailoverTest, ARendezvousThatSpeaksAfterTheRequestIsNotSuspected) {
  Actions out;
  RegistryClient c = two_up(out);
  c.ask(0, offer(1), out);
  c.ask(0, offer(2), out);
  auto s = take(out);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(c.on_answer(s[0].message.request_id()), MacAddr::parse("52:54:00:00:00:01"));
  c.on_heard(500, kRv1);  // it answers: the other request is only slow
  c.on_timer(1500, out);
  EXPECT_TRUE(take(out).empty());
  EXPECT_FALSE(c.suspected(kRv1));
  c.on_timer(3000, out);  // the ordinary retry, to the next one
  s = take(out);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].to, kRv2);
  EXPECT_EQ(c.counters().failovers, 0u);
}

TEST(RegistryFailoverTest, ASuspectThatSpeaksAgainIsPreferredAgain) {
  Actions out;
  RegistryClient c = two_up(out);
  c.ask(0, offer(1), out);
  c.on_timer(1000, out);
  ASSERT_TRUE(c.suspected(kRv1));
  take(out);
  c.on_heard(1500, kRv1);
  EXPECT_FALSE(c.suspected(kRv1));
  EXPECT_EQ(c.current(), kRv1);
  c.ask(1600, offer(2), out);
  auto s = take(out);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].to, kRv1);
}

TEST(RegistryFailoverTest, WithOneRendezvousSilenceOnlyMeansTheOrdinaryRetry) {
  RegistryClient c;
  Actions out;
  c.on_rendezvous_up(0, kRv1, out);
  c.ask(0, offer(1), out);
  take(out);
  c.on_timer(1000, out);
  c.on_timer(2999, out);
  EXPECT_TRUE(take(out).empty());
  EXPECT_FALSE(c.suspected(kRv1));
  c.on_timer(3000, out);
  auto s = take(out);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].to, kRv1);
}

TEST(RegistryFailoverTest, WhenEveryRendezvousIsSilentRequestsStillGoOut) {
  Actions out;
  RegistryClient c;
  for (const auto* r : {&kRv1, &kRv2, &kRv3}) c.on_rendezvous_up(0, *r, out);
  c.ask(0, offer(1), out);
  EXPECT_EQ(take(out).at(0).to, kRv1);
  std::vector<std::string> order;
  for (std::int64_t t = 0; t <= 3000; t += 100) {
    c.on_timer(t, out);
    for (auto& s : take(out)) order.push_back(s.to);
  }
  // rv1 at 0 (ask), then each silent one hands over after a second.
  ASSERT_EQ(order.size(), 3u);
  EXPECT_EQ(order[0], kRv2);
  EXPECT_EQ(order[1], kRv3);
  EXPECT_EQ(order[2], kRv1);  // all suspected: the one suspected longest ago
  EXPECT_EQ(c.pending(), 1u);
}

TEST(RegistryFailoverTest, ARendezvousThatGoesDownHandsItsRequestsOverAtTheNextTimer) {
  Actions out;
  RegistryClient c = two_up(out);
  c.ask(0, offer(1), out);
  take(out);
  c.on_rendezvous_down(kRv1);
  c.on_timer(10, out);
  auto s = take(out);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].to, kRv2);
}

TEST(RegistryFailoverTest, ARendezvousComingUpWhileTheOthersAreSilentTakesTheWaitingRequests) {
  Actions out;
  RegistryClient c;
  c.on_rendezvous_up(0, kRv1, out);
  c.on_rendezvous_up(0, kRv2, out);
  c.ask(0, offer(1), out);
  c.on_timer(1000, out);  // rv1 silent: to rv2
  c.on_timer(2000, out);  // rv2 silent too: back to rv1
  take(out);
  c.on_rendezvous_up(2100, kRv3, out);
  auto s = take(out);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].to, kRv3);
  EXPECT_EQ(c.current(), kRv3);
}

}  // namespace
}  // namespace wownet::overlay
