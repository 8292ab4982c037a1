// PeerManager handshakes: simultaneous opens, certificates refused or
// revoked, NAT rebinding, connect(), loss, restarts, a mesh of three, the
// next endpoint after a failure.
#include "peer_manager_fixture.h"

namespace wownet::overlay::test {
namespace {

TEST_F(PeerManagerTest, SimultaneousConnectBothWays) {
  for (int round = 0; round < 8; ++round) {
    SCOPED_TRACE(round);
    nodes_.clear();
    net_.log.clear();
    net_.duplicate = round % 2 ? [](const Datagram&) { return true; } : std::function<bool(const Datagram&)>();
    Node& a = node("node-a" + std::to_string(round), ep(1, std::uint16_t(4000 + round)));
    Node& b = node("node-b" + std::to_string(round), ep(2, std::uint16_t(5000 + round)));
    a.knows(b);
    b.knows(a);
    ASSERT_TRUE(a.send(b, packet(1)));
    ASSERT_TRUE(b.send(a, packet(2)));
    net_.run_for(3'000);
    EXPECT_EQ(b.seqs_from(a), std::vector<std::uint32_t>{1});
    EXPECT_EQ(a.seqs_from(b), std::vector<std::uint32_t>{2});
    ASSERT_EQ(a.ups.size(), 1u);
    ASSERT_EQ(b.ups.size(), 1u);
    EXPECT_EQ(a.ups[0].node_id, b.id);
    EXPECT_EQ(b.ups[0].node_id, a.id);
    EXPECT_EQ(a.pm->counters().handshake_failures + b.pm->counters().handshake_failures, 0u);
    // The two handshakes met: only the one with the larger client random went on.
    EXPECT_EQ(a.pm->counters().handshakes, 1u);
    EXPECT_EQ(b.pm->counters().handshakes, 1u);
    for (std::uint32_t i = 10; i < 20; ++i) {
      ASSERT_TRUE(a.send(b, packet(i)));
      ASSERT_TRUE(b.send(a, packet(i + 100)));
    }
    net_.run_for(60'000);  // past every retirement
    for (std::uint32_t i = 20; i < 30; ++i) {
      ASSERT_TRUE(a.send(b, packet(i)));
      ASSERT_TRUE(b.send(a, packet(i + 100)));
    }
    net_.deliver();
    EXPECT_EQ(b.seqs_from(a).size(), 21u);
    EXPECT_EQ(a.seqs_from(b).size(), 21u);
    EXPECT_TRUE(a.downs.empty());
    EXPECT_TRUE(b.downs.empty());
  }
}

// A and B on one LAN behind one NAT: A reaches B at its LAN address, B
// reaches A at its public address (hairpinned). Two handshakes over two
// endpoint pairs both complete; both sides must settle on the same session.
TEST_F(PeerManagerTest, SimultaneousOverDifferentPaths) {
  for (int round = 0; round < 6; ++round) {
    SCOPED_TRACE(round);
    nodes_.clear();
    net_.log.clear();
    const UdpEndpoint a_lan = ep(1, std::uint16_t(4000 + round)), b_lan = ep(2, std::uint16_t(5000 + round));
    const UdpEndpoint a_pub{Ipv4Addr::from_octets(203, 0, 113, 1), std::uint16_t(40000 + round)};
    const UdpEndpoint b_pub{Ipv4Addr::from_octets(203, 0, 113, 1), std::uint16_t(50000 + round)};
    net_.router = [=](const UdpEndpoint& from,
                      const UdpEndpoint& to) -> std::optional<std::pair<UdpEndpoint, UdpEndpoint>> {
      const auto pub_of = [&](const UdpEndpoint& e) { return e == a_lan ? a_pub : b_pub; };
      if (to == a_pub) return std::pair{a_lan, pub_of(from)};
      if (to == b_pub) return std::pair{b_lan, pub_of(from)};
      return std::pair{to, from};
    };
    Node& a = node("a" + std::to_string(round), a_lan);
    Node& b = node("b" + std::to_string(round), b_lan);
    a.pm->set_endpoints(b.id, {b_lan});
    b.pm->set_endpoints(a.id, {a_pub});
    ASSERT_TRUE(a.send(b, packet(1)));
    ASSERT_TRUE(b.send(a, packet(2)));
    net_.run_for(2'000);
    EXPECT_EQ(b.seqs_from(a), std::vector<std::uint32_t>{1});
    EXPECT_EQ(a.seqs_from(b), std::vector<std::uint32_t>{2});
    // Both handshakes completed; one session survives, the same on both sides.
    EXPECT_EQ(a.pm->counters().handshakes, 2u);
    EXPECT_EQ(b.pm->counters().handshakes, 2u);
    net_.run_for(60'000);
    for (std::uint32_t i = 10; i < 20; ++i) {
      ASSERT_TRUE(a.send(b, packet(i)));
      ASSERT_TRUE(b.send(a, packet(i + 100)));
    }
    net_.deliver();
    EXPECT_EQ(b.seqs_from(a).size(), 11u);
    EXPECT_EQ(a.seqs_from(b).size(), 11u);
    EXPECT_EQ(a.ups.size(), 1u);
    EXPECT_EQ(b.ups.size(), 1u);
    EXPECT_TRUE(a.downs.empty());
    EXPECT_TRUE(b.downs.empty());
    EXPECT_EQ(a.pm->counters().unknown_receiver + b.pm->counters().unknown_receiver, 0u);
  }
  net_.router = nullptr;
}

TEST_F(PeerManagerTest, CertificateFromAnotherCaNeverComesUp) {
  const std::string other_ca = root_ + "/other-ca";
  ASSERT_TRUE(crypto::ca_init(other_ca, "other CA", 3650, kT0s).ok);
  Node& a = node("node-a", ep(1, 4000));
  Node& m = node("mallory", ep(6, 6000), {}, other_ca);
  m.knows(a);
  ASSERT_TRUE(m.send(a, packet(1)));
  net_.run_for(20'000);
  EXPECT_TRUE(a.ups.empty());
  EXPECT_TRUE(m.ups.empty());
  EXPECT_TRUE(a.delivered.empty());
  EXPECT_GE(a.pm->counters().handshake_failures, 1u);
  // M keeps trying for its queued packet, but no more often than retry_after_ms.
  const auto failures = m.pm->counters().handshake_failures;
  EXPECT_GE(failures, 5u);
  EXPECT_LE(failures, 11u);
  const auto st = m.stats_of(a);
  ASSERT_TRUE(st);
  EXPECT_FALSE(st->established);
  EXPECT_FALSE(st->last_error.empty());
  // A reached M the other way round fails the same way.
  a.knows(m);
  ASSERT_TRUE(a.send(m, packet(2)));
  net_.run_for(2'000);
  EXPECT_TRUE(a.ups.empty());
  EXPECT_TRUE(m.delivered.empty());
}

TEST_F(PeerManagerTest, RevokedPeerGoesDownOnRecheck) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  Node& c = node("node-c", ep(3, 6000));
  establish(a, b);
  establish(a, c);
  net_.run_for(1'000);

  // Nothing changed: recheck keeps everyone.
  a.pm->recheck(net_.now, a.out());
  EXPECT_TRUE(a.downs.empty());

  ASSERT_TRUE(crypto::ca_revoke(ca_, identities_["node-b"].cert_file, kT0s + 1).ok);
  std::string error;
  ASSERT_TRUE(a.trust->update_crl(slurp(ca_ + "/crl.pem"), error)) << error;
  a.pm->recheck(net_.now, a.out());
  ASSERT_EQ(a.downs.size(), 1u);
  EXPECT_EQ(a.downs[0].node_id, b.id);
  EXPECT_NE(a.downs[0].reason.find("revoked"), std::string::npos) << a.downs[0].reason;
  EXPECT_FALSE(a.is_up(b));
  EXPECT_TRUE(a.is_up(c));
  net_.deliver();  // A's close_notify takes B's side down too
  ASSERT_EQ(b.downs.size(), 1u);
  EXPECT_EQ(b.downs[0].node_id, a.id);

  // B cannot come back; C is unaffected.
  const auto failures = a.pm->counters().handshake_failures;
  b.knows(a);
  ASSERT_TRUE(b.send(a, packet(5)));
  net_.run_for(3'000);
  EXPECT_FALSE(a.is_up(b));
  EXPECT_GT(a.pm->counters().handshake_failures, failures);
  EXPECT_TRUE(a.seqs_from(b).empty());
  ASSERT_TRUE(c.send_delivered(a, 6));
  EXPECT_EQ(a.seqs_from(c), std::vector<std::uint32_t>{6});
}

TEST_F(PeerManagerTest, NatRebindingMovesThePeer) {
  auto [a, b] = established_pair();
  // B's NAT picks a new public port; the old mapping is gone.
  const UdpEndpoint b_new = ep(2, 5999);
  rebind(b, b_new);
  ASSERT_TRUE(b.send_delivered(a, 10));
  EXPECT_EQ(a.seqs_from(b), std::vector<std::uint32_t>{10});
  EXPECT_EQ(a.stats_of(b)->endpoint, b_new);
  ASSERT_TRUE(a.send_delivered(b, 11));
  EXPECT_EQ(b.seqs_from(a).back(), 11u);
  EXPECT_EQ(net_.log.back().to, b_new);
  // Control and keepalives follow as well; the session stays up.
  net_.run_for(60'000);
  EXPECT_TRUE(a.downs.empty());
  EXPECT_TRUE(b.downs.empty());
  ASSERT_TRUE(a.send_delivered(b, 12));
  EXPECT_EQ(b.seqs_from(a).back(), 12u);
  // A stale (replayed) packet from the old port does not move it back.
  net_.router = nullptr;
}

TEST_F(PeerManagerTest, ConnectLearnsNodeIdAndKeepsTheSession) {
  Node& a = node("node-a", ep(1, 4000));
  Node& r = node("rendezvous", ep(8, 7000));
  a.pm->connect(net_.now, r.endpoint, a.out());
  a.pm->connect(net_.now, r.endpoint, a.out());  // idempotent
  net_.deliver();
  ASSERT_NO_FATAL_FAILURE(expect_one_up(a, r, "rendezvous"));
  ASSERT_EQ(r.ups.size(), 1u);
  EXPECT_EQ(r.ups[0].node_id, a.id);
  EXPECT_EQ(a.pm->counters().handshakes, 1u);

  NodeMessage reg;
  reg.mutable_register_();
  ASSERT_TRUE(a.send_control(r, reg));
  net_.deliver();
  ASSERT_EQ(r.controls.size(), 1u);
  EXPECT_TRUE(r.controls[0].second.has_register_());

  // The rendezvous disappears for a while: A notices, then reconnects by itself.
  net_.drop = [&](const Datagram& d) { return d.from == r.endpoint || d.to == r.endpoint; };
  net_.run_for(60'000);
  ASSERT_EQ(a.downs.size(), 1u);
  net_.drop = nullptr;
  net_.run_for(15'000);
  ASSERT_EQ(a.ups.size(), 2u);
  EXPECT_EQ(a.ups[1].node_id, r.id);

  // disconnect() stops the reconnecting.
  a.pm->disconnect(r.endpoint);
  net_.drop = [&](const Datagram& d) { return d.from == r.endpoint || d.to == r.endpoint; };
  net_.run_for(60'000);
  ASSERT_EQ(a.downs.size(), 2u);
  net_.drop = nullptr;
  const auto handshakes = a.pm->counters().handshakes;
  net_.run_for(30'000);
  EXPECT_EQ(a.pm->counters().handshakes, handshakes);
}

TEST_F(PeerManagerTest, LossyNetworkStillComesUp) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  a.knows(b);
  std::mt19937 rng(99);
  int dropped = 0;
  net_.drop = [&](const Datagram&) {
    const bool d = rng() % 3 == 0;
    dropped += d;
    return d;
  };
  net_.duplicate = [&](const Datagram&) { return rng() % 5 == 0; };
  ASSERT_TRUE(a.send(b, packet(1)));
  net_.run_for(10'000);
  EXPECT_GT(dropped, 0);
  net_.drop = nullptr;
  net_.duplicate = nullptr;
  net_.run_for(10'000);
  EXPECT_TRUE(a.is_up(b));
  EXPECT_TRUE(b.is_up(a));
  ASSERT_TRUE(a.send(b, packet(2)));
  ASSERT_TRUE(b.send_delivered(a, 3));
  EXPECT_EQ(b.seqs_from(a).back(), 2u);
  EXPECT_EQ(a.seqs_from(b).back(), 3u);
}

TEST_F(PeerManagerTest, LostHellosAreRepeated) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  a.knows(b);
  // Drop the first three application-data records (the Hellos) each way.
  int dropped_ab = 0, dropped_ba = 0;
  net_.drop = [&](const Datagram& d) {
    if (d.bytes.empty() || d.bytes[0] != 23) return false;
    int& n = d.from == a.endpoint ? dropped_ab : dropped_ba;
    return n++ < 3;
  };
  ASSERT_TRUE(a.send_delivered(b, 1));
  EXPECT_FALSE(a.is_up(b));
  net_.run_for(20'000);
  EXPECT_TRUE(a.is_up(b));
  EXPECT_TRUE(b.is_up(a));
  EXPECT_EQ(b.seqs_from(a), std::vector<std::uint32_t>{1});
  EXPECT_EQ(a.pm->counters().handshake_failures + b.pm->counters().handshake_failures, 0u);
}

TEST_F(PeerManagerTest, PeerRestartReplacesTheSession) {
  Node& a = node("node-a", ep(1, 4000));
  Node* b = &node("node-b", ep(2, 5000));
  establish(a, *b);
  net_.run_for(20'000);
  // B restarts: same identity and endpoint, no memory of the session.
  const Identity ib = identities_["node-b"];
  const std::string b_id = b->id;
  nodes_.pop_back();
  nodes_.push_back(std::make_unique<Node>(net_, "node-b", ep(2, 5000), ib.dtls, trust(ca_), PeerConfig{}, 4242, b_id));
  b = nodes_.back().get();
  b->knows(a);
  ASSERT_TRUE(b->send(a, packet(5)));
  net_.deliver();
  EXPECT_EQ(a.seqs_from(*b), std::vector<std::uint32_t>{5});
  ASSERT_TRUE(a.send(*b, packet(6)));
  net_.deliver();
  EXPECT_EQ(b->seqs_from(a), std::vector<std::uint32_t>{6});
  net_.run_for(60'000);
  ASSERT_TRUE(a.send(*b, packet(7)));
  net_.deliver();
  EXPECT_EQ(b->seqs_from(a).back(), 7u);
  EXPECT_TRUE(a.downs.empty());
}

TEST_F(PeerManagerTest, ThreeNodesMesh) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  Node& c = node("node-c", ep(3, 6000));
  for (Node* x : {&a, &b, &c}) {
    for (Node* y : {&a, &b, &c})
      if (x != y) x->knows(*y);
  }
  std::uint32_t seq = 0;
  for (int i = 0; i < 5; ++i) {
    for (Node* x : {&a, &b, &c}) {
      for (Node* y : {&a, &b, &c}) {
        if (x == y) continue;
        ASSERT_TRUE(x->send(*y, packet(seq++)));
      }
    }
  }
  net_.run_for(5'000);
  for (Node* x : {&a, &b, &c}) {
    EXPECT_EQ(x->delivered.size(), 10u) << x->name;
    EXPECT_EQ(x->ups.size(), 2u) << x->name;
  }
  const auto peers = a.pm->peers();
  ASSERT_EQ(peers.size(), 2u);
  EXPECT_TRUE(peers[0].established && peers[1].established);
}

// A hand-driven DTLS client with a valid certificate that speaks raw bytes.

TEST_F(PeerManagerTest, NextEndpointAfterFailedHandshake) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  Node& c = node("node-c", ep(3, 6000));
  // The registry lists a dead endpoint first, then C's (stale), then B's.
  a.pm->set_endpoints(b.id, {ep(2, 1), c.endpoint, b.endpoint});
  ASSERT_TRUE(a.send(b, packet(1)));
  net_.run_for(11'000);  // the first handshake times out after 10 s
  EXPECT_EQ(a.pm->counters().handshake_failures, 1u);
  EXPECT_TRUE(b.delivered.empty());
  net_.run_for(2'000);  // retry_after_ms later: C answers, as C
  ASSERT_EQ(a.ups.size(), 1u);
  EXPECT_EQ(a.ups[0].node_id, c.id);
  EXPECT_NE(a.stats_of(b)->last_error.find("answered as node " + c.id), std::string::npos) << a.stats_of(b)->last_error;
  EXPECT_TRUE(c.delivered.empty());  // B's packet is not C's
  net_.run_for(2'000);               // then B's own endpoint
  ASSERT_EQ(a.ups.size(), 2u);
  EXPECT_EQ(a.ups[1].node_id, b.id);
  EXPECT_EQ(b.seqs_from(a), std::vector<std::uint32_t>{1});
  EXPECT_EQ(a.stats_of(b)->endpoint, b.endpoint);
}

}  // namespace
}  // namespace wownet::overlay::test
