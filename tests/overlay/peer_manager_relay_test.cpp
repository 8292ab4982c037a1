// PeerManager over relayed paths (RelayTest: A and B reach each other
// through relay names 0.0.0.x), forgotten endpoints and rebinding of a
// control-only session.
#include "peer_manager_fixture.h"

namespace wownet::overlay::test {
namespace {

TEST_F(RelayTest, RelayAfterDirectFailsThenDirectTakesOver) {
  EXPECT_TRUE(b_via_relay.relayed());
  EXPECT_FALSE(ep(1, 1).relayed());
  auto [a, b] = relayed_pair();
  ASSERT_TRUE(a.send(b, packet(1)));
  // The direct handshake gets no answer; the relay is not tried before
  // relay_after_ms.
  net_.run_for(2'900);
  EXPECT_FALSE(a.is_up(b));
  EXPECT_EQ(relayed_datagrams, 0u);
  net_.run_for(200);
  ASSERT_TRUE(a.is_up(b));
  EXPECT_TRUE(a.stats_of(b)->relayed);
  EXPECT_TRUE(b.stats_of(a)->relayed);
  EXPECT_EQ(a.stats_of(b)->endpoint, b_via_relay);
  EXPECT_EQ(b.seqs_from(a), std::vector<std::uint32_t>{1});
  ASSERT_TRUE(b.send_delivered(a, 2));
  EXPECT_EQ(a.seqs_from(b), std::vector<std::uint32_t>{2});
  EXPECT_EQ(net_.log.back().to, a_via_relay);

  // The first direct handshake runs out; no other starts by itself.
  net_.run_for(12'000);
  EXPECT_TRUE(a.stats_of(b)->relayed);
  // The direct path opens (the far NAT was asked to open): it takes over on
  // both sides and the relayed session is retired.
  direct_blocked = false;
  EXPECT_TRUE(a.pm->try_direct(net_.now, b.id, a.out()));
  net_.deliver();
  EXPECT_FALSE(a.stats_of(b)->relayed);
  EXPECT_FALSE(b.stats_of(a)->relayed);
  EXPECT_FALSE(a.pm->try_direct(net_.now, b.id, a.out())) << "direct already keyed";
  const std::size_t relayed_before = relayed_datagrams;
  ASSERT_TRUE(a.send(b, packet(3)));
  ASSERT_TRUE(b.send_delivered(a, 4));
  EXPECT_EQ(b.seqs_from(a).back(), 3u);
  EXPECT_EQ(a.seqs_from(b).back(), 4u);
  EXPECT_EQ(relayed_datagrams, relayed_before) << "data went through the relay";
  net_.run_for(60'000);
  EXPECT_TRUE(a.downs.empty());
  EXPECT_TRUE(a.is_up(b));
  EXPECT_FALSE(a.stats_of(b)->relayed);
  // The relay going away does not disturb the direct session.
  const std::size_t after_retire = relayed_datagrams;
  net_.run_for(60'000);
  EXPECT_EQ(relayed_datagrams, after_retire) << "the retired relayed session is still used";
  EXPECT_TRUE(a.downs.empty());
  EXPECT_TRUE(b.downs.empty());
}

TEST_F(RelayTest, SlowDirectPathStillTakesOverOnceItOpens) {
  auto [a, b] = relayed_pair();
  ASSERT_TRUE(a.send(b, packet(1)));
  net_.run_for(3'500);
  ASSERT_TRUE(a.is_up(b));
  EXPECT_TRUE(a.stats_of(b)->relayed);
  // The direct handshake that was under way goes on and, once the path
  // opens, replaces the relayed session.
  direct_blocked = false;
  net_.run_for(8'000);
  EXPECT_FALSE(a.stats_of(b)->relayed);
  EXPECT_FALSE(b.stats_of(a)->relayed);
  EXPECT_TRUE(a.downs.empty());
}

TEST_F(RelayTest, NoDirectEndpointGoesThroughTheRelayAtOnce) {
  auto [a, b] = relayed_pair(false);
  ASSERT_TRUE(a.send_delivered(b, 1));
  ASSERT_TRUE(a.is_up(b));
  EXPECT_TRUE(a.stats_of(b)->relayed);
  EXPECT_EQ(b.seqs_from(a), std::vector<std::uint32_t>{1});
  EXPECT_EQ(a.pm->endpoint_of(b.id), b_via_relay);
  EXPECT_EQ(b.pm->node_at(a_via_relay), a.id);
  EXPECT_EQ(b.pm->node_at(a.endpoint), "");
  // No direct endpoint: nothing to try.
  EXPECT_FALSE(a.pm->try_direct(net_.now, b.id, a.out()));
}

TEST_F(RelayTest, RelayedSessionNeverDisplacesADirectOne) {
  auto [a, b] = direct_pair();
  // A relayed session keyed later (e.g. started by the far side before the
  // direct one opened) does not take over.
  a.pm->connect(net_.now, b_via_relay, a.out());
  net_.deliver();
  net_.run_for(1'000);
  EXPECT_FALSE(a.stats_of(b)->relayed);
  EXPECT_FALSE(b.stats_of(a)->relayed);
  const std::size_t before = relayed_datagrams;
  ASSERT_TRUE(a.send(b, packet(5)));
  ASSERT_TRUE(b.send_delivered(a, 6));
  EXPECT_EQ(relayed_datagrams, before);
  EXPECT_EQ(b.seqs_from(a).back(), 5u);
  EXPECT_EQ(a.seqs_from(b).back(), 6u);
}

TEST_F(RelayTest, DirectDiesRelayCarriesOn) {
  auto [a, b] = direct_pair();
  a.pm->set_relay(b.id, b_via_relay);
  // The direct path breaks for good (e.g. a NAT rebinding the far NAT
  // refuses): the session dies, and traffic finds the relay.
  direct_blocked = true;
  const std::int64_t broke = net_.now;
  for (std::uint32_t i = 0; i < 80; ++i) {
    a.send(b, packet(100 + i));
    net_.run_for(500);
  }
  ASSERT_TRUE(a.is_up(b));
  EXPECT_TRUE(a.stats_of(b)->relayed);
  EXPECT_GE(b.seqs_from(a).back(), 100u + 79u - 2u);
  EXPECT_LT(net_.now - broke, 60'000);
}

TEST_F(RelayTest, BrokenDirectPathEndsEarlyWhileSendingAndTheRelayTakesOver) {
  PeerConfig config;
  config.stale_after_ms = 5'000;
  auto [a, b] = direct_pair(config);
  a.pm->set_relay(b.id, b_via_relay);
  // Idle, nothing is stale: keepalives answer each other.
  net_.run_for(30'000);
  EXPECT_TRUE(a.downs.empty());
  // The direct path breaks while A sends: A gives the session up after
  // stale_after_ms, well before dead_after_ms (35 s), and the relay
  // carries the traffic.
  direct_blocked = true;
  const std::int64_t broke = net_.now;
  for (std::uint32_t i = 0; i < 40 && a.downs.empty(); ++i) {
    a.send(b, packet(200 + i));
    net_.run_for(250);
  }
  ASSERT_FALSE(a.downs.empty());
  EXPECT_NE(a.downs[0].reason.find("no answer"), std::string::npos) << a.downs[0].reason;
  EXPECT_LE(a.downs[0].at - broke, 5'500);
  for (std::uint32_t i = 0; i < 40 && !(a.is_up(b) && a.stats_of(b)->relayed); ++i) {
    a.send(b, packet(300 + i));
    net_.run_for(250);
  }
  EXPECT_TRUE(a.stats_of(b)->relayed);
  EXPECT_LT(net_.now - broke, 10'000);
}

TEST_F(PeerManagerTest, ForgottenEndpointsMakeTheCallerResolveAgain) {
  auto [a, b] = established_pair();
  // B goes away; once A's session is dead, A forgets where B was.
  net_.detach(b.endpoint);
  net_.run_for(60'000);
  ASSERT_FALSE(a.downs.empty());
  a.pm->set_endpoints(b.id, {});
  const auto before = a.pm->counters().no_endpoint;
  EXPECT_FALSE(a.send(b, packet(1))) << "the last endpoint was kept";
  EXPECT_EQ(a.pm->counters().no_endpoint, before + 1);
}

TEST_F(PeerManagerTest, KeepaliveMovesAControlOnlySessionAfterRebinding) {
  // A session that carries only control messages (a host and its
  // rendezvous) follows the host's new public port: keepalive requests go
  // with an empty data packet, which roams the session.
  auto [a, b] = established_pair();
  const UdpEndpoint a_new = ep(1, 4999);
  rebind(a, a_new);
  net_.run_for(120'000);
  EXPECT_TRUE(a.downs.empty());
  EXPECT_TRUE(b.downs.empty());
  EXPECT_EQ(b.stats_of(a)->endpoint, a_new);
  NodeMessage m;
  m.set_request_id(7);
  m.mutable_resolve()->set_address("10.0.0.1");
  ASSERT_TRUE(b.send_control(a, m));
  net_.deliver();
  ASSERT_FALSE(a.controls.empty());
  EXPECT_EQ(a.controls.back().second.request_id(), 7u);
}

}  // namespace
}  // namespace wownet::overlay::test
