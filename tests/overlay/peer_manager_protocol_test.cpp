// PeerManager against a hand-driven peer and hostile input: protocol checks
// on Hello and keepalives, names from certificates, fuzzed and forged
// datagrams, deadline consistency.
#include "peer_manager_fixture.h"

namespace wownet::overlay::test {
namespace {

class RawPeer {
 public:
  RawPeer(FakeNetwork& net, UdpEndpoint at, UdpEndpoint to, const crypto::DtlsIdentity& identity,
          std::shared_ptr<crypto::TrustStore> trust)
      : net_(net), at_(at), to_(to) {
    std::string error;
    ctx_ = crypto::DtlsContext::create(identity, error);
    EXPECT_NE(ctx_, nullptr) << error;
    session = DtlsSession::client(*ctx_, to.to_string(), make_verifier(std::move(trust)), net.now);
    net.attach(at, FakeNetwork::Participant{[this](const UdpEndpoint&, Bytes& d) {
                                              if (d[0] == 4) {
                                                data.push_back(d);
                                                return;
                                              }
                                              session->on_datagram(d, net_.now);
                                              flush();
                                            },
                                            nullptr, nullptr});
    flush();
  }
  ~RawPeer() { net_.detach(at_); }
  void flush() {
    Bytes d;
    while (session->take_datagram(d)) net_.send(at_, to_, d);
    Bytes m;
    while (session->receive(m)) {
      NodeMessage msg;
      EXPECT_TRUE(msg.ParseFromArray(m.data(), int(m.size())));
      messages.push_back(msg);
    }
  }
  void send(const std::string& bytes) {
    ASSERT_TRUE(session->send(ConstByteSpan(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size())));
    flush();
  }
  void send(const NodeMessage& m) { send(m.SerializeAsString()); }

  std::unique_ptr<DtlsSession> session;
  std::vector<NodeMessage> messages;
  std::vector<Bytes> data;

 private:
  FakeNetwork& net_;
  UdpEndpoint at_, to_;
  std::unique_ptr<crypto::DtlsContext> ctx_;
};

TEST_F(PeerManagerTest, RawPeerProtocolChecks) {
  Node& a = node("node-a", ep(1, 4000));
  const Identity ir = identity("raw", ca_);
  RawPeer raw(net_, ep(5, 5555), a.endpoint, ir.dtls, trust(ca_));
  net_.deliver();
  ASSERT_EQ(raw.session->state(), DtlsSession::State::Established) << raw.session->failure_reason();
  // A's Hello arrived, asking for ours.
  ASSERT_EQ(raw.messages.size(), 1u);
  ASSERT_TRUE(raw.messages[0].has_hello());
  EXPECT_EQ(raw.messages[0].request_id(), 1u);
  EXPECT_EQ(raw.messages[0].hello().node_name(), "node-a");
  EXPECT_EQ(raw.messages[0].hello().cipher(), "aes-256-gcm");
  const std::uint32_t a_index = raw.messages[0].hello().receiver_index();

  // Garbage instead of a NodeMessage; a message with no body.
  raw.send(std::string("\xff\xff\xff\xff", 4));
  net_.deliver();
  EXPECT_EQ(a.pm->counters().malformed, 1u);
  NodeMessage empty;
  empty.set_request_id(5);
  raw.send(empty);
  net_.deliver();
  EXPECT_EQ(a.pm->counters().malformed, 2u);

  // Control before Hello is delivered (the peer is authenticated), but the
  // node is not up until its Hello.
  NodeMessage err;
  err.mutable_error()->set_message("hi");
  raw.send(err);
  net_.deliver();
  ASSERT_EQ(a.controls.size(), 1u);
  EXPECT_EQ(a.controls[0].first, ir.id);
  EXPECT_TRUE(a.ups.empty());

  // Our Hello: ChaCha20 for packets to us, receiver index 77, answer wanted.
  NodeMessage hello;
  hello.set_request_id(1);
  hello.mutable_hello()->set_node_name("raw");
  hello.mutable_hello()->set_receiver_index(77);
  hello.mutable_hello()->set_cipher("chacha20-poly1305");
  raw.send(hello);
  net_.deliver();
  ASSERT_EQ(a.ups.size(), 1u);
  EXPECT_EQ(a.ups[0].node_id, ir.id);
  EXPECT_EQ(a.ups[0].node_name, "raw");
  EXPECT_EQ(a.ups[0].endpoint, ep(5, 5555));
  ASSERT_EQ(raw.messages.size(), 2u);  // A answered with its Hello, wanting nothing back
  EXPECT_EQ(raw.messages[1].request_id(), 0u);
  EXPECT_EQ(raw.messages[1].hello().receiver_index(), a_index);

  // The data channel interoperates with DataSealer/DataOpener on the exported keys.
  std::array<std::uint8_t, 32> c2s{}, s2c{};
  ASSERT_TRUE(raw.session->export_keys(c2s, s2c));
  crypto::DataOpener opener(crypto::Cipher::ChaCha20Poly1305, s2c, 77);
  crypto::DataSealer sealer(crypto::Cipher::Aes256Gcm, c2s, a_index);
  ASSERT_TRUE(a.pm->send_packet(net_.now, ir.id, packet(8), a.out()));
  net_.deliver();
  ASSERT_EQ(raw.data.size(), 1u);
  Bytes plain(raw.data[0].size());
  const auto r = opener.open(raw.data[0], plain);
  ASSERT_EQ(r.error, crypto::DataOpener::OpenResult::Error::None);
  plain.resize(r.size);
  EXPECT_EQ(plain, packet(8));
  const Bytes p9 = packet(9);
  Bytes sealed(p9.size() + crypto::kDataOverhead);
  ASSERT_EQ(sealer.seal(p9, sealed), sealed.size());
  inject(a, ep(5, 5555), sealed);
  ASSERT_EQ(a.delivered.size(), 1u);
  EXPECT_EQ(a.delivered[0].packet, p9);
  // An empty data packet is a keepalive: accepted, not delivered.
  Bytes ka(crypto::kDataOverhead);
  ASSERT_EQ(sealer.seal({}, ka), ka.size());
  inject(a, ep(5, 5555), ka);
  EXPECT_EQ(a.delivered.size(), 1u);
  EXPECT_EQ(a.pm->counters().bad_tag + a.pm->counters().replayed, 0u);

  // A keepalive request is echoed with its id.
  NodeMessage ping;
  ping.set_request_id(41);  // odd: from the DTLS client
  ping.mutable_keepalive();
  raw.send(ping);
  net_.deliver();
  ASSERT_EQ(raw.messages.size(), 3u);
  EXPECT_TRUE(raw.messages[2].has_keepalive());
  EXPECT_EQ(raw.messages[2].request_id(), 41u);

  // A changed Hello is refused.
  hello.mutable_hello()->set_receiver_index(78);
  raw.send(hello);
  net_.deliver();
  EXPECT_EQ(a.pm->counters().not_allowed, 1u);
}

TEST_F(PeerManagerTest, HelloWithUnknownCipherIsRefused) {
  Node& a = node("node-a", ep(1, 4000));
  const Identity ir = identity("raw", ca_);
  RawPeer raw(net_, ep(5, 5555), a.endpoint, ir.dtls, trust(ca_));
  net_.deliver();
  NodeMessage hello;
  hello.mutable_hello()->set_node_name("raw");
  hello.mutable_hello()->set_receiver_index(1);
  hello.mutable_hello()->set_cipher("rot13");
  raw.send(hello);
  net_.deliver();
  EXPECT_TRUE(a.ups.empty());
  EXPECT_EQ(a.pm->counters().not_allowed, 1u);
  EXPECT_EQ(a.pm->counters().handshake_failures, 1u);
  EXPECT_EQ(raw.session->state(), DtlsSession::State::Closed);
}

TEST_F(PeerManagerTest, NodeNameFromCertificate) {
  Node& a = node("node-a", ep(1, 4000));
  const Identity ib = identity("node-b", ca_);
  // B claims another name in its Hello; A takes names from certificates.
  auto trust_a = trust(ca_);
  PeerManager pm(SessionSettings{&*a.ctx,
                                 make_verifier(trust_a),
                                 [&](X509* cert) { return trust_a->check(cert, nullptr, kT0s).node_name; },
                                 "node-a",
                                 {}},
                 [] { return 5u; });
  a.pm.reset();  // replaced by pm at A's endpoint
  Node& b = *nodes_.emplace_back(
      std::make_unique<Node>(net_, "liar", ep(2, 5000), ib.dtls, trust(ca_), PeerConfig{}, 3, ib.id));
  b.pm->set_endpoints(a.id, {a.endpoint});
  net_.attach(a.endpoint, FakeNetwork::Participant{
                              [&](const UdpEndpoint& from, Bytes& d) { pm.on_datagram(net_.now, from, d, a.out()); },
                              [&] { return pm.next_deadline_ms(); }, [&] { pm.on_timer(net_.now, a.out()); }});
  ASSERT_TRUE(b.send_delivered(a, 1));
  ASSERT_EQ(a.ups.size(), 1u);
  EXPECT_EQ(a.ups[0].node_name, "node-b");
  ASSERT_EQ(b.ups.size(), 1u);
  EXPECT_EQ(b.ups[0].node_name, "node-a");
  net_.detach(a.endpoint);
}

TEST_F(PeerManagerTest, FuzzedDatagramsAreCountedNotFatal) {
  auto [a, b] = established_pair();
  for (std::uint32_t i = 1; i < 20; ++i) {
    ASSERT_TRUE(a.send(b, packet(i)));
    ASSERT_TRUE(b.send(a, packet(i)));
  }
  NodeMessage m;
  m.mutable_resolve()->set_address("10.0.0.1");
  ASSERT_TRUE(b.send_control(a, m));
  net_.deliver();
  std::vector<Bytes> real;
  for (const auto& d : net_.log)
    if (d.to == a.endpoint) real.push_back(d.bytes);
  ASSERT_FALSE(real.empty());
  const std::size_t delivered = a.delivered.size();
  const std::size_t controls = a.controls.size();

  std::mt19937 rng(20240601);
  const int kRounds = 30000;
  for (int i = 0; i < kRounds; ++i) {
    Bytes d;
    switch (rng() % 5) {
      case 0: {  // random bytes
        d.resize(rng() % 200);
        for (auto& x : d) x = std::uint8_t(rng());
        break;
      }
      case 1: {  // random bytes with a plausible first byte
        d.resize(1 + rng() % 200);
        for (auto& x : d) x = std::uint8_t(rng());
        static constexpr std::uint8_t kFirst[] = {4, 20, 21, 22, 23, 24, 25};
        d[0] = kFirst[rng() % 7];
        if (d[0] == 4 && d.size() >= 4) d[1] = d[2] = d[3] = 0;
        break;
      }
      case 2: {  // a real datagram, its record framing kept, mutated inside
        d = real[rng() % real.size()];
        if (d[0] == 4) {
          d[8 + rng() % 8] ^= std::uint8_t(1u << (rng() % 8));
          break;
        }
        for (std::size_t off = 0; off + 13 <= d.size();) {
          const std::size_t len = std::size_t(d[off + 11]) << 8 | d[off + 12];
          switch (rng() % 5) {
            case 0: d[off] = std::uint8_t(20 + rng() % 4); break;         // content type
            case 1: d[off + 4] ^= std::uint8_t(1 + rng() % 3); break;     // epoch
            case 2: d[off + 5 + rng() % 6] = std::uint8_t(rng()); break;  // sequence number
            case 3:
              if (len != 0) d[off + 13 + rng() % len] ^= std::uint8_t(1u << (rng() % 8));  // body
              break;
            default: break;
          }
          off += 13 + len;
        }
        break;
      }
      default: {  // a real datagram, mutated
        d = real[rng() % real.size()];
        const int flips = 1 + int(rng() % 4);
        for (int f = 0; f < flips && !d.empty(); ++f) d[rng() % d.size()] ^= std::uint8_t(1u << (rng() % 8));
        if (rng() % 4 == 0) d.resize(rng() % (d.size() + 1));
        break;
      }
    }
    const UdpEndpoint from = rng() % 2 ? b.endpoint : ep(std::uint8_t(rng()), std::uint16_t(rng()));
    inject(a, from, d);
    if (i % 1000 == 0) net_.deliver();
  }
  net_.deliver();
  const auto& c = a.pm->counters();
  EXPECT_GT(c.malformed, 0u);
  EXPECT_GT(c.unknown_receiver, 0u);
  EXPECT_GT(c.bad_tag + c.replayed, 0u);
  EXPECT_GT(c.not_allowed, 0u);
  EXPECT_EQ(a.delivered.size(), delivered);  // nothing forged got through
  EXPECT_EQ(a.controls.size(), controls);
  // The session still works both ways.
  for (const auto& d : b.downs) ADD_FAILURE() << "b down: " << d.reason;
  for (const auto& d : a.downs) ADD_FAILURE() << "a down: " << d.reason;
  EXPECT_EQ(a.pm->counters().handshakes, 1u);
  ASSERT_TRUE(b.send(a, packet(500)));
  ASSERT_TRUE(a.send(b, packet(501)));
  net_.run_for(1'000);
  EXPECT_EQ(a.seqs_from(b).back(), 500u);
  EXPECT_EQ(b.seqs_from(a).back(), 501u);
  EXPECT_TRUE(a.is_up(b));
}

TEST_F(PeerManagerTest, DeadlinesAreConsistent) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  EXPECT_EQ(a.pm->next_deadline_ms(), PeerManager::kNoDeadline);
  a.knows(b);
  EXPECT_EQ(a.pm->next_deadline_ms(), PeerManager::kNoDeadline);  // nothing to send yet
  net_.drop = [](const Datagram&) { return true; };
  ASSERT_TRUE(a.send(b, packet(1)));
  EXPECT_EQ(a.pm->next_deadline_ms(), net_.now + 1000);  // ClientHello retransmission
  net_.run_for(30'000);                                  // handshakes time out and are retried
  EXPECT_GE(a.pm->counters().handshake_failures, 2u);
  net_.drop = nullptr;
  net_.run_for(15'000);
  EXPECT_EQ(b.seqs_from(a), std::vector<std::uint32_t>{1});
  EXPECT_LE(a.pm->next_deadline_ms(), net_.now + PeerConfig{}.keepalive_ms);
}

// OpenSSL 3.0 ends a DTLS session on a protected record shorter than the
// AEAD's nonce and tag; anyone can forge one from the peer's address. The
// layer does not let them reach the session.
TEST_F(PeerManagerTest, ForgedShortRecordsDoNotKillSessions) {
  auto [a, b] = established_pair();
  for (std::uint8_t type = 20; type <= 23; ++type) {
    for (std::size_t len : {0, 1, 2, 8, 15, 16, 17, 23, 24, 40}) {
      Bytes d = {type, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, std::uint8_t(len)};
      for (std::size_t i = 0; i < len; ++i) d.push_back(std::uint8_t(i * 37 + 1));
      Bytes copy = d;
      inject(a, b.endpoint, d);     // to the DTLS client
      inject(b, a.endpoint, copy);  // to the DTLS server
    }
  }
  net_.deliver();
  EXPECT_TRUE(a.downs.empty());
  EXPECT_TRUE(b.downs.empty());
  ASSERT_TRUE(a.send(b, packet(1)));
  ASSERT_TRUE(b.send(a, packet(2)));
  net_.run_for(60'000);  // keepalives still work
  EXPECT_EQ(b.seqs_from(a).back(), 1u);
  EXPECT_EQ(a.seqs_from(b).back(), 2u);
  EXPECT_TRUE(a.downs.empty());
  EXPECT_TRUE(b.downs.empty());
}

}  // namespace
}  // namespace wownet::overlay::test
