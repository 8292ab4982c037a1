// PeerManager, the basics: handshake and delivery, queues, bad data packets,
// control messages, keepalives, dead peers, measurements, rekeying.
#include "peer_manager_fixture.h"

namespace wownet::overlay::test {
namespace {

TEST_F(PeerManagerTest, EndpointText) {
  const UdpEndpoint e{Ipv4Addr::from_octets(10, 1, 2, 3), 4789};
  EXPECT_EQ(e.to_string(), "10.1.2.3:4789");
  EXPECT_EQ(UdpEndpoint::parse("10.1.2.3:4789"), e);
  EXPECT_FALSE(UdpEndpoint::parse("10.1.2.3"));
  EXPECT_FALSE(UdpEndpoint::parse("10.1.2.3:65536"));
  EXPECT_FALSE(UdpEndpoint::parse("10.1.2.3:"));
  EXPECT_FALSE(UdpEndpoint::parse("10.1.2.3:01"));
  EXPECT_FALSE(UdpEndpoint::parse("10.1.2:1"));
}

TEST_F(PeerManagerTest, QueuedPacketHandshakeAndDelivery) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  const Bytes p = packet(42, 100);

  // No endpoint known: false (the caller asks the registry) and counted,
  // but the packet waits for the answer instead of being lost.
  const Bytes early = packet(41, 100);
  EXPECT_FALSE(a.send(b, early));
  EXPECT_EQ(a.pm->counters().no_endpoint, 1u);
  EXPECT_TRUE(net_.log.empty());

  a.knows(b);
  ASSERT_TRUE(a.send(b, p));
  ASSERT_EQ(net_.log.size(), 1u);  // the ClientHello, nothing else yet
  EXPECT_TRUE(crypto::is_dtls_client_hello(net_.log[0].bytes));
  EXPECT_TRUE(b.delivered.empty());
  net_.deliver();  // no timer needed

  ASSERT_EQ(b.delivered.size(), 2u);
  EXPECT_EQ(b.delivered[0].node_id, a.id);
  EXPECT_EQ(b.delivered[0].packet, early);
  EXPECT_EQ(b.delivered[0].offset, 16u);
  EXPECT_EQ(b.delivered[1].packet, p);
  EXPECT_EQ(a.pm->counters().queue_drops, 0u);
  ASSERT_NO_FATAL_FAILURE(expect_one_up(a, b, "node-b"));
  ASSERT_NO_FATAL_FAILURE(expect_one_up(b, a, "node-a"));

  // Both ways now; B needs no endpoint for A (the session has one).
  for (std::uint32_t i = 1; i <= 20; ++i) {
    ASSERT_TRUE(a.send(b, packet(i, 40 + i)));
    ASSERT_TRUE(b.send(a, packet(1000 + i, 1400)));
  }
  net_.deliver();
  EXPECT_EQ(b.seqs_from(a).size(), 22u);
  ASSERT_EQ(a.seqs_from(b).size(), 20u);
  EXPECT_EQ(a.seqs_from(b).back(), 1020u);
  EXPECT_EQ(a.delivered.back().packet, packet(1020, 1400));

  const auto sa = a.stats_of(b);
  ASSERT_TRUE(sa);
  EXPECT_TRUE(sa->established);
  EXPECT_EQ(sa->node_name, "node-b");
  EXPECT_EQ(sa->endpoint, b.endpoint);
  EXPECT_EQ(sa->tx_packets, 22u);
  EXPECT_EQ(sa->rx_packets, 20u);
  EXPECT_EQ(sa->rx_bytes, 20u * 1400);
  EXPECT_EQ(sa->last_handshake_ms, kT0);
  EXPECT_EQ(a.pm->counters().handshakes, 1u);
  EXPECT_EQ(b.pm->counters().handshakes, 1u);
  for (const Node* n : {&a, &b}) {
    const auto& c = n->pm->counters();
    EXPECT_EQ(c.malformed + c.unknown_receiver + c.replayed + c.bad_tag + c.handshake_failures + c.queue_drops +
                  c.not_allowed,
              0u);
  }
  EXPECT_TRUE(a.downs.empty());
  EXPECT_TRUE(b.downs.empty());
}

TEST_F(PeerManagerTest, TrafficForAnUnresolvedNodeWaitsForTheRegistryThenIsDropped) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  const std::int64_t wait = PeerConfig{}.resolve_wait_ms;

  // Answered in time: everything queued goes out once the endpoint is known,
  // without another send to trigger it (the timer starts the handshake).
  EXPECT_FALSE(a.send(b, packet(1)));
  EXPECT_FALSE(a.send(b, packet(2)));
  EXPECT_EQ(a.pm->counters().no_endpoint, 2u);
  EXPECT_EQ(a.pm->next_deadline_ms(), net_.now + wait);
  net_.run_for(wait / 2);
  a.knows(b);
  net_.run_for(100);
  EXPECT_EQ(b.seqs_from(a), (std::vector<std::uint32_t>{1, 2}));
  EXPECT_EQ(a.pm->counters().queue_drops, 0u);

  // Never answered: dropped and counted after resolve_wait_ms, and the
  // node is forgotten (no timer left for it).
  Node& c = node("node-c", ep(3, 6000));
  EXPECT_FALSE(a.send(c, packet(3)));
  net_.run_for(wait - 1);
  EXPECT_EQ(a.pm->counters().queue_drops, 0u);
  net_.run_for(2);
  EXPECT_EQ(a.pm->counters().queue_drops, 1u);
  EXPECT_FALSE(a.stats_of(c)) << "a node nothing refers to any more is forgotten";
  a.knows(c);
  net_.run_for(1000);
  EXPECT_TRUE(c.delivered.empty()) << "dropped traffic must not be sent later";
}

TEST_F(PeerManagerTest, QueueLimitDropsOldest) {
  PeerConfig config;
  config.queue_limit = 4;
  Node& a = node("node-a", ep(1, 4000), config);
  Node& b = node("node-b", ep(2, 5000));
  a.knows(b);
  net_.drop = [](const Datagram&) { return true; };  // nothing gets through yet
  for (std::uint32_t i = 0; i < 10; ++i) ASSERT_TRUE(a.send(b, packet(i)));
  EXPECT_EQ(a.pm->counters().queue_drops, 6u);
  net_.drop = nullptr;
  net_.run_for(1000);  // the ClientHello is retransmitted
  EXPECT_EQ(b.seqs_from(a), (std::vector<std::uint32_t>{6, 7, 8, 9}));
}

TEST_F(PeerManagerTest, BadDataPacketsAreCountedAndDropped) {
  auto [a, b] = established_pair();
  ASSERT_TRUE(a.send_delivered(b, 1));
  const Bytes good = last_data(a, b);
  ASSERT_EQ(b.delivered.size(), 2u);

  inject(b, a.endpoint, good);  // replayed
  EXPECT_EQ(b.pm->counters().replayed, 1u);

  ASSERT_TRUE(a.send(b, packet(2)));
  Bytes flipped = last_data(a, b);  // not delivered yet: the network still holds it
  flipped[20] ^= 0x01;
  inject(b, a.endpoint, flipped);
  EXPECT_EQ(b.pm->counters().bad_tag, 1u);

  inject(b, a.endpoint, Bytes(good.begin(), good.begin() + 20));  // truncated
  EXPECT_EQ(b.pm->counters().malformed, 1u);
  Bytes reserved = good;
  reserved[2] = 1;
  inject(b, a.endpoint, reserved);
  EXPECT_EQ(b.pm->counters().malformed, 2u);
  inject(b, a.endpoint, Bytes{});
  inject(b, a.endpoint, Bytes{0x99, 1, 2, 3});
  EXPECT_EQ(b.pm->counters().malformed, 4u);

  Bytes wrong_index = good;
  wrong_index[7] ^= 0x5a;
  inject(b, a.endpoint, wrong_index);
  EXPECT_EQ(b.pm->counters().unknown_receiver, 1u);

  // DTLS records from an endpoint without a session.
  Bytes record = {23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0};
  inject(b, ep(9, 9), record);
  EXPECT_EQ(b.pm->counters().not_allowed, 1u);

  EXPECT_EQ(b.delivered.size(), 2u);
  net_.deliver();  // the genuine packet 2 still arrives
  ASSERT_TRUE(a.send(b, packet(3)));
  ASSERT_TRUE(b.send_delivered(a, 4));
  EXPECT_EQ(b.seqs_from(a), (std::vector<std::uint32_t>{0, 1, 2, 3}));
  EXPECT_EQ(a.seqs_from(b), (std::vector<std::uint32_t>{4}));
  EXPECT_TRUE(a.downs.empty());
  EXPECT_TRUE(b.downs.empty());
}

TEST_F(PeerManagerTest, ControlMessagesRoundTrip) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  a.knows(b);

  NodeMessage resolve;
  resolve.set_request_id(7);
  resolve.mutable_resolve()->set_address("10.0.0.9");
  ASSERT_TRUE(a.send_control(b, resolve));  // queued until the session is keyed
  net_.deliver();
  ASSERT_EQ(b.controls.size(), 1u);
  EXPECT_EQ(b.controls[0].first, a.id);
  EXPECT_EQ(b.controls[0].second.request_id(), 7u);
  EXPECT_EQ(b.controls[0].second.resolve().address(), "10.0.0.9");

  NodeMessage resolved;
  resolved.set_request_id(7);
  resolved.mutable_resolved()->set_address("10.0.0.9");
  resolved.mutable_resolved()->set_node_id("x");
  ASSERT_TRUE(b.send_control(a, resolved));
  net_.deliver();
  ASSERT_EQ(a.controls.size(), 1u);
  EXPECT_EQ(a.controls[0].first, b.id);
  EXPECT_EQ(a.controls[0].second.resolved().node_id(), "x");

  // Hello and Keepalive are the layer's own; oversized messages do not fit.
  NodeMessage hello;
  hello.mutable_hello()->set_node_name("evil");
  EXPECT_FALSE(a.send_control(b, hello));
  NodeMessage big;
  big.mutable_crl()->set_pem(std::string(crypto::kDtlsMaxMessage, 'x'));
  EXPECT_FALSE(a.send_control(b, big));
  EXPECT_EQ(a.controls.size(), 1u);
  EXPECT_EQ(b.controls.size(), 1u);
}

TEST_F(PeerManagerTest, KeepalivesHoldIdleSessionAndSilentPeerGoesDown) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  establish(a, b);
  std::size_t before = net_.log.size();
  net_.run_for(120'000);  // idle for two minutes, well past dead_after_ms
  EXPECT_TRUE(a.downs.empty());
  EXPECT_TRUE(b.downs.empty());
  EXPECT_TRUE(a.is_up(b));
  // Keepalives flowed (a few per keepalive_ms, plus two rekeys), not a flood.
  const std::size_t sent = net_.log.size() - before;
  EXPECT_GE(sent, 12u);
  EXPECT_LE(sent, 100u);
  EXPECT_GE(a.stats_of(b)->rtt_ms, 0);  // zero-latency network

  // B falls silent: A notices after dead_after_ms and reports it.
  net_.drop = [&](const Datagram& d) { return d.from == b.endpoint; };
  net_.run_for(40'000);
  ASSERT_EQ(a.downs.size(), 1u);
  EXPECT_EQ(a.downs[0].node_id, b.id);
  EXPECT_NE(a.downs[0].reason.find("no traffic"), std::string::npos) << a.downs[0].reason;
  EXPECT_FALSE(a.is_up(b));
  // B heard A's keepalives until A gave up, then nothing: it goes down too.
  EXPECT_TRUE(b.downs.empty());
  net_.run_for(40'000);
  ASSERT_EQ(b.downs.size(), 1u);
  EXPECT_EQ(b.downs[0].node_id, a.id);

  // After the partition heals, traffic brings the session back.
  net_.drop = nullptr;
  ASSERT_TRUE(a.send(b, packet(77)));
  net_.run_for(5'000);
  EXPECT_TRUE(a.is_up(b));
  EXPECT_EQ(b.seqs_from(a).back(), 77u);
  EXPECT_EQ(a.ups.size(), 2u);
}

TEST_F(PeerManagerTest, HandshakeTimesAndRoundTripsAreMeasured) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  net_.latency_ms = 20;
  const std::int64_t start = net_.now;
  establish(a, b);
  const auto& ha = a.pm->counters().handshake_ms;
  // A started the session: one handshake, timed from its ClientHello to keyed.
  ASSERT_EQ(ha.count, 1u);
  EXPECT_EQ(ha.sum_ms, a.stats_of(b)->last_handshake_ms - start);
  EXPECT_GE(ha.sum_ms, 4 * 20);  // at least two round trips (DTLS, then Hello)
  std::uint64_t in_buckets = 0;
  for (auto n : ha.buckets) in_buckets += n;
  EXPECT_EQ(in_buckets, 1u);
  EXPECT_EQ(b.pm->counters().handshake_ms.count, 0u);  // B only answered
  EXPECT_EQ(a.pm->counters().rtt_ms.count, 0u);
  EXPECT_EQ(a.pm->keyed_sessions(), 1u);
  EXPECT_EQ(b.pm->keyed_sessions(), 1u);

  // Idle: keepalives flow (sent by whichever side's timer fires first)
  // and the sender times each answered one.
  net_.run_for(60'000);
  std::uint64_t answered = 0;
  for (const Node* n : {&a, &b}) {
    const auto& r = n->pm->counters().rtt_ms;
    answered += r.count;
    EXPECT_GE(r.sum_ms, std::int64_t(r.count) * 2 * 20);                       // at least a round trip each
    EXPECT_EQ(r.buckets[0] + r.buckets[1] + r.buckets[2] + r.buckets[3], 0u);  // none at or under 10 ms
  }
  EXPECT_GE(answered, 2u);
  EXPECT_GE(std::max(a.stats_of(b)->rtt_ms, b.stats_of(a)->rtt_ms), 40);
}

TEST(LatencyHistogram, BucketsAreInclusiveUpperBounds) {
  LatencyHistogram h;
  h.add(-5);     // as 0: first bucket
  h.add(1);      // le 1
  h.add(2);      // le 2
  h.add(3);      // le 5
  h.add(30000);  // le 30000, the highest bound
  h.add(30001);  // above every bound
  EXPECT_EQ(h.count, 6u);
  EXPECT_EQ(h.sum_ms, 0 + 1 + 2 + 3 + 30000 + 30001);
  EXPECT_EQ(h.buckets[0], 2u);
  EXPECT_EQ(h.buckets[1], 1u);
  EXPECT_EQ(h.buckets[2], 1u);
  EXPECT_EQ(h.buckets[LatencyHistogram::kBoundsMs.size() - 1], 1u);
  EXPECT_EQ(h.buckets.back(), 1u);
}

TEST_F(PeerManagerTest, SilentPeerIsDroppedAfterDeadAfterMs) {
  PeerConfig config;
  config.keepalive_ms = 1'000;
  config.dead_after_ms = 5'000;
  Node& a = node("node-a", ep(1, 4000), config);
  Node& b = node("node-b", ep(2, 5000), config);
  establish(a, b);
  const std::int64_t t0 = net_.now;
  net_.drop = [&](const Datagram& d) { return d.from == b.endpoint; };
  net_.run_for(10'000);
  ASSERT_EQ(a.downs.size(), 1u);
  // The last thing A heard from B was at t0 (nothing after): down at t0 + 5 s.
  EXPECT_EQ(a.downs[0].at, t0 + 5'000);
  const auto stats = a.stats_of(b);
  ASSERT_TRUE(stats);
  EXPECT_FALSE(stats->established);
  EXPECT_NE(stats->last_error.find("no traffic for 5000 ms"), std::string::npos) << stats->last_error;
  // B, which kept hearing A's keepalives until then, goes down 5 s after A's last one.
  ASSERT_EQ(b.downs.size(), 1u);
  EXPECT_LE(b.downs[0].at, t0 + 10'000);
}

TEST_F(PeerManagerTest, RekeyWithoutPacketLoss) {
  PeerConfig config;
  config.rekey_after_ms = 30'000;
  Node& a = node("node-a", ep(1, 4000), config);
  Node& b = node("node-b", ep(2, 5000), config);
  establish(a, b);
  const std::int64_t start = net_.now;
  std::uint32_t seq = 1;
  std::set<std::uint32_t> sent_ab, sent_ba;
  while (net_.now < start + 100'000) {
    ASSERT_TRUE(a.send(b, packet(seq)));
    sent_ab.insert(seq++);
    ASSERT_TRUE(b.send(a, packet(seq)));
    sent_ba.insert(seq++);
    net_.run_for(100);
  }
  net_.run_for(1'000);
  const auto got_ab = b.seqs_from(a);
  const auto got_ba = a.seqs_from(b);
  EXPECT_EQ(std::set<std::uint32_t>(got_ab.begin() + 1, got_ab.end()), sent_ab);
  EXPECT_EQ(got_ab.size() - 1, sent_ab.size());  // no duplicates either
  EXPECT_EQ(std::set<std::uint32_t>(got_ba.begin(), got_ba.end()), sent_ba);
  EXPECT_EQ(got_ba.size(), sent_ba.size());
  // Three rekeys (at 30, 60 and 90 s), started by A, the original initiator.
  EXPECT_EQ(a.pm->counters().handshakes, 4u);
  EXPECT_EQ(b.pm->counters().handshakes, 4u);
  EXPECT_EQ(a.stats_of(b)->last_handshake_ms, start + 90'000);
  std::size_t client_hellos_from_b = 0;
  for (const auto& d : net_.log)
    if (d.from == b.endpoint && crypto::is_dtls_client_hello(d.bytes)) ++client_hellos_from_b;
  EXPECT_EQ(client_hellos_from_b, 0u);
  EXPECT_TRUE(a.downs.empty());
  EXPECT_TRUE(b.downs.empty());
  EXPECT_EQ(a.ups.size(), 1u);
  for (const Node* n : {&a, &b}) {
    const auto& c = n->pm->counters();
    EXPECT_EQ(c.unknown_receiver + c.replayed + c.bad_tag + c.handshake_failures + c.malformed, 0u);
  }
  // Old sessions were retired: data goes to the newest receiver index only.
  ASSERT_TRUE(a.send(b, packet(999999)));
  const Bytes d = last_data(a, b);
  const auto index = crypto::DataOpener::peek_receiver_index(d);
  ASSERT_TRUE(index);
  std::set<std::uint32_t> indices;
  for (const auto& g : net_.log)
    if (g.from == a.endpoint && !g.bytes.empty() && g.bytes[0] == 4 && g.bytes.size() >= 32)
      indices.insert(*crypto::DataOpener::peek_receiver_index(g.bytes));
  EXPECT_EQ(indices.size(), 4u);
}

TEST_F(PeerManagerTest, RekeyAfterPacketCount) {
  PeerConfig config;
  config.rekey_after_packets = 50;
  Node& a = node("node-a", ep(1, 4000), config);
  Node& b = node("node-b", ep(2, 5000), config);
  establish(a, b);
  for (std::uint32_t i = 1; i <= 60; ++i) {
    ASSERT_TRUE(b.send(a, packet(i)));  // B, the DTLS server, hits the limit
    net_.run_for(10);
  }
  EXPECT_EQ(a.pm->counters().handshakes, 2u);
  EXPECT_EQ(a.seqs_from(b).size(), 60u);
  EXPECT_EQ(b.pm->counters().handshake_failures, 0u);
}

TEST_F(PeerManagerTest, CloseAllTellsEveryPeerAtOnce) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  Node& c = node("node-c", ep(3, 6000));
  a.knows(b);
  a.knows(c);
  ASSERT_TRUE(a.send(b, packet(1)));
  ASSERT_TRUE(a.send_delivered(c, 2));
  ASSERT_EQ(b.seqs_from(a).size(), 1u);
  ASSERT_EQ(c.seqs_from(a).size(), 1u);

  // a shuts down: b and c end their sessions as soon as the close_notify
  // arrives, long before dead_after_ms of silence would.
  a.pm->close_all(net_.now, a.out());
  EXPECT_EQ(a.downs.size(), 2u);
  net_.deliver();
  ASSERT_EQ(b.downs.size(), 1u);
  EXPECT_EQ(b.downs[0].node_id, a.id);
  EXPECT_EQ(b.downs[0].at, net_.now);
  ASSERT_EQ(c.downs.size(), 1u);
  EXPECT_EQ(c.downs[0].node_id, a.id);
  EXPECT_EQ(a.pm->keyed_sessions(), 0u);
}

}  // namespace
}  // namespace wownet::overlay::test
