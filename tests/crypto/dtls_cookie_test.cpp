// DTLS session driver: the stateless cookie exchange, ClientHello
// recognition, garbage, bad identities and contexts.
#include "dtls_fixture.h"

namespace wownet::crypto::dtls_test {
namespace {

TEST_F(DtlsTest, CookieExchangeKeepsNoStateUntilTheCookieIsValid) {
  auto client = DtlsSession::client(*client_ctx_, kServerAddr, verifier(), kT0);
  Bytes hello;
  ASSERT_TRUE(client->take_datagram(hello));
  ASSERT_TRUE(is_handshake_type(hello, 1));

  // A first ClientHello (empty cookie) gets a HelloVerifyRequest, no session.
  Bytes reply;
  auto session = DtlsSession::server(*server_ctx_, kClientAddr, hello, verifier(), kT0, reply);
  EXPECT_EQ(session, nullptr);
  ASSERT_TRUE(is_handshake_type(reply, 3));
  EXPECT_LE(reply.size(), hello.size() + 64);  // no amplification beyond the cookie
  EXPECT_EQ(server_ctx_->stats().hello_verify_sent, 1u);
  EXPECT_EQ(server_ctx_->stats().sessions_accepted, 0u);

  // A flood of spoofed first hellos: each answered statelessly, none kept.
  for (int i = 0; i < 500; ++i) {
    Bytes r;
    const std::string addr = "203.0.113." + std::to_string(i % 250) + ":" + std::to_string(1000 + i);
    EXPECT_EQ(DtlsSession::server(*server_ctx_, addr, hello, verifier(), kT0, r), nullptr);
    EXPECT_TRUE(is_handshake_type(r, 3));
  }
  EXPECT_EQ(server_ctx_->stats().hello_verify_sent, 501u);
  EXPECT_EQ(server_ctx_->stats().sessions_accepted, 0u);

  // The client answers with the cookie.
  client->on_datagram(reply, kT0);
  Bytes hello2;
  ASSERT_TRUE(client->take_datagram(hello2));
  ASSERT_TRUE(is_handshake_type(hello2, 1));
  EXPECT_GT(hello2.size(), hello.size());

  // The cookie is bound to the address it was issued to.
  Bytes r2;
  EXPECT_EQ(DtlsSession::server(*server_ctx_, "192.0.2.99:4000", hello2, verifier(), kT0, r2), nullptr);
  EXPECT_TRUE(is_handshake_type(r2, 3));
  // ... and to this context's secret.
  auto other_ctx = make_context(server_cert_.identity);
  EXPECT_EQ(DtlsSession::server(*other_ctx, kClientAddr, hello2, verifier(), kT0, r2), nullptr);
  EXPECT_TRUE(is_handshake_type(r2, 3));

  // From the right address it creates the session, which answers at once.
  session = DtlsSession::server(*server_ctx_, kClientAddr, hello2, verifier(), kT0, r2);
  ASSERT_NE(session, nullptr);
  EXPECT_TRUE(r2.empty());
  EXPECT_EQ(server_ctx_->stats().sessions_accepted, 1u);
  EXPECT_EQ(session->state(), DtlsSession::State::Handshaking);
  Bytes server_hello;
  ASSERT_TRUE(session->take_datagram(server_hello));
  EXPECT_TRUE(is_handshake_type(server_hello, 2));
  // The handshake completes from here on.
  client->on_datagram(server_hello, kT0);
  shuttle(*client, *session, kT0);
  EXPECT_EQ(client->state(), DtlsSession::State::Established) << client->failure_reason();
  EXPECT_EQ(session->state(), DtlsSession::State::Established) << session->failure_reason();
}

TEST_F(DtlsTest, CookieSecretRotation) {
  auto client = DtlsSession::client(*client_ctx_, kServerAddr, verifier(), kT0);
  Bytes hello, reply;
  ASSERT_TRUE(client->take_datagram(hello));
  ASSERT_EQ(DtlsSession::server(*server_ctx_, kClientAddr, hello, verifier(), kT0, reply), nullptr);
  client->on_datagram(reply, kT0);
  Bytes hello2;
  ASSERT_TRUE(client->take_datagram(hello2));
  // One rotation: the cookie is still accepted. Two: it is not.
  ASSERT_TRUE(server_ctx_->rotate_cookie_secret());
  auto accepted = DtlsSession::server(*server_ctx_, kClientAddr, hello2, verifier(), kT0, reply);
  EXPECT_NE(accepted, nullptr);
  EXPECT_TRUE(reply.empty());
  ASSERT_TRUE(server_ctx_->rotate_cookie_secret());
  EXPECT_EQ(DtlsSession::server(*server_ctx_, kClientAddr, hello2, verifier(), kT0, reply), nullptr);
  EXPECT_TRUE(is_handshake_type(reply, 3));
  // (An OpenSSL client ignores a second HelloVerifyRequest, so a cookie
  // must outlive a handshake: rotate far less often than handshake_timeout_ms.)
  Pipe pipe(*client_ctx_, *server_ctx_, verifier(), verifier());
  pipe.run();
  EXPECT_TRUE(pipe.established()) << pipe.client().failure_reason();
}

TEST_F(DtlsTest, ClientHelloRecognition) {
  auto pipe = established_pipe();
  EXPECT_TRUE(is_dtls_client_hello(pipe->log[Pipe::kToServer].at(0)));
  EXPECT_TRUE(is_dtls_client_hello(pipe->log[Pipe::kToServer].at(1)));
  EXPECT_FALSE(is_dtls_client_hello(pipe->log[Pipe::kToServer].at(2)));
  EXPECT_FALSE(is_dtls_client_hello(pipe->log[Pipe::kToClient].at(0)));
  EXPECT_FALSE(is_dtls_client_hello(Bytes{}));
  EXPECT_FALSE(is_dtls_client_hello(Bytes{4, 0, 0, 0}));  // a data channel packet
  // Repeats of the hellos that built the session are not a restart ...
  DtlsSession& server = *pipe->server();
  EXPECT_FALSE(server.is_new_client_hello(pipe->log[Pipe::kToServer].at(0)));
  EXPECT_FALSE(server.is_new_client_hello(pipe->log[Pipe::kToServer].at(1)));
  EXPECT_FALSE(server.is_new_client_hello(pipe->log[Pipe::kToServer].at(2)));
  EXPECT_FALSE(pipe->client().is_new_client_hello(pipe->log[Pipe::kToServer].at(0)));
  // ... and the session ignores them.
  server.on_datagram(pipe->log[Pipe::kToServer].at(1), kT0 + 5);
  EXPECT_EQ(server.state(), DtlsSession::State::Established);
  // A restarted peer's hello is; the io layer then replaces the session.
  auto restarted = DtlsSession::client(*client_ctx_, kServerAddr, verifier(), kT0 + 10);
  Bytes hello, reply;
  ASSERT_TRUE(restarted->take_datagram(hello));
  EXPECT_TRUE(server.is_new_client_hello(hello));
  EXPECT_EQ(DtlsSession::server(*server_ctx_, kClientAddr, hello, verifier(), kT0 + 10, reply), nullptr);
  restarted->on_datagram(reply, kT0 + 10);
  ASSERT_TRUE(restarted->take_datagram(hello));
  EXPECT_TRUE(server.is_new_client_hello(hello));
  auto replacement = DtlsSession::server(*server_ctx_, kClientAddr, hello, verifier(), kT0 + 10, reply);
  ASSERT_NE(replacement, nullptr);
  shuttle(*restarted, *replacement, kT0 + 10);
  EXPECT_EQ(replacement->state(), DtlsSession::State::Established);
  EXPECT_EQ(replacement->peer_id(), server.peer_id());
}

TEST_F(DtlsTest, ContextIgnoresNonHellos) {
  Bytes reply;
  const std::vector<Bytes> junk = {
      {},
      {0x16},
      {0x17, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},                   // empty app data record
      {0x16, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1},                // epoch 1
      {0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2},                // not a ClientHello
      {0x16, 0x03, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1},                // TLS, not DTLS
      {0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 200, 1, 0, 0, 0, 0},  // length overruns
  };
  for (const auto& j : junk)
    EXPECT_EQ(DtlsSession::server(*server_ctx_, kClientAddr, j, verifier(), kT0, reply), nullptr);
  EXPECT_TRUE(reply.empty());
  EXPECT_EQ(server_ctx_->stats().hellos_ignored, junk.size());
  EXPECT_EQ(server_ctx_->stats().hello_verify_sent, 0u);
}

// Deterministic fuzzing: random datagrams and mutations of real ones, fed to
// the context and to established and handshaking sessions.
Bytes mutate(const Bytes& in, std::mt19937& rng) {
  Bytes d = in;
  switch (rng() % 4) {
    case 0:  // flip a few bits
      for (int n = 1 + int(rng() % 4); n > 0 && !d.empty(); --n) d[rng() % d.size()] ^= std::uint8_t(1u << (rng() % 8));
      break;
    case 1:  // truncate
      d.resize(d.empty() ? 0 : rng() % d.size());
      break;
    case 2:  // overwrite a byte
      if (!d.empty()) d[rng() % d.size()] = std::uint8_t(rng());
      break;
    default:  // append junk
      for (int n = int(rng() % 40); n > 0; --n) d.push_back(std::uint8_t(rng()));
  }
  return d;
}

Bytes random_datagram(std::mt19937& rng) {
  Bytes d(rng() % 300);
  for (auto& b : d) b = std::uint8_t(rng());
  if (!d.empty() && rng() % 2 == 0 && d.size() >= 13) {  // make it look like DTLS
    d[0] = std::uint8_t(20 + rng() % 4);
    d[1] = 0xfe;
    d[2] = 0xfd;
    d[11] = std::uint8_t((d.size() - 13) >> 8);
    d[12] = std::uint8_t(d.size() - 13);
  }
  return d;
}

TEST_F(DtlsTest, GarbageIsIgnoredWithoutCrashing) {
  std::mt19937 rng(12345);
  auto pipe = established_pipe();
  ASSERT_TRUE(pipe->client().send(Bytes{1, 2, 3}));
  ASSERT_TRUE(pipe->server()->send(Bytes{4, 5, 6}));
  pipe->pump();
  std::vector<Bytes> corpus;
  for (const auto& dir : pipe->log) corpus.insert(corpus.end(), dir.begin(), dir.end());
  const Bytes first_hello = pipe->log[Pipe::kToServer].at(0);

  Bytes sink;
  for (int i = 0; i < 3000; ++i) {
    const Bytes d = i % 2 == 0 ? random_datagram(rng) : mutate(corpus[rng() % corpus.size()], rng);
    const std::int64_t now = kT0 + i;
    pipe->client().on_datagram(d, now);
    pipe->server()->on_datagram(d, now);
    Bytes reply;
    auto s = DtlsSession::server(*server_ctx_, "203.0.113.5:" + std::to_string(i), d, verifier(), now, reply);
    EXPECT_EQ(s, nullptr);  // nothing here carries a cookie valid for that address
    const Bytes m = mutate(first_hello, rng);
    s = DtlsSession::server(*server_ctx_, kClientAddr, m, verifier(), now, reply);
    EXPECT_EQ(s, nullptr);
  }
  // Mutated records never carry a valid MAC: the sessions are unharmed.
  EXPECT_EQ(pipe->client().state(), DtlsSession::State::Established) << pipe->client().failure_reason();
  EXPECT_EQ(pipe->server()->state(), DtlsSession::State::Established) << pipe->server()->failure_reason();
  EXPECT_GT(pipe->client().stats().ignored_datagrams, 1000u);
  EXPECT_GT(server_ctx_->stats().hellos_ignored, 1000u);
  Bytes got;
  while (pipe->client().receive(got)) EXPECT_EQ(got, (Bytes{4, 5, 6}));
  while (pipe->server()->receive(got)) EXPECT_EQ(got, (Bytes{1, 2, 3}));
  // Drain whatever the sessions answered (e.g. repeated last flights).
  while (pipe->client().take_datagram(sink)) {
  }
  while (pipe->server()->take_datagram(sink)) {
  }
  ASSERT_TRUE(pipe->client().send(Bytes{7}));
  ASSERT_TRUE(pipe->server()->send(Bytes{8}));
  pipe->pump();
  ASSERT_TRUE(pipe->server()->receive(got));
  EXPECT_EQ(got, Bytes{7});
  ASSERT_TRUE(pipe->client().receive(got));
  EXPECT_EQ(got, Bytes{8});

  // A handshaking session may fail on forged handshake records, but never crashes.
  for (int round = 0; round < 50; ++round) {
    auto client = DtlsSession::client(*client_ctx_, kServerAddr, verifier(), kT0);
    for (int i = 0; i < 40; ++i) {
      client->on_datagram(i % 2 == 0 ? random_datagram(rng) : mutate(corpus[rng() % corpus.size()], rng), kT0 + i);
      while (client->take_datagram(sink)) {
      }
    }
    client->on_timeout(kT0 + 100000);
    EXPECT_NE(client->state(), DtlsSession::State::Established);
  }
}

TEST(DtlsContextTest, RejectsBadIdentity) {
  std::string error;
  EXPECT_EQ(DtlsContext::create(DtlsIdentity{"not pem", "not pem", ""}, error), nullptr);
  EXPECT_NE(error.find("certificate"), std::string::npos) << error;
  TestCa ca("ca");
  auto a = ca.issue("a");
  auto b = ca.issue("b");
  EXPECT_EQ(DtlsContext::create(DtlsIdentity{a.identity.cert_pem, b.identity.key_pem, ""}, error), nullptr);
  EXPECT_NE(error.find("private key"), std::string::npos) << error;
  EXPECT_EQ(DtlsContext::create(DtlsIdentity{a.identity.cert_pem, "", ""}, error), nullptr);
  EXPECT_EQ(DtlsContext::create(DtlsIdentity{a.identity.cert_pem, a.identity.key_pem, "junk"}, error), nullptr);
  EXPECT_NE(error.find("ca_pem"), std::string::npos) << error;
  DtlsTimers bad;
  bad.initial_retransmit_ms = 0;
  EXPECT_EQ(DtlsContext::create(a.identity, error, bad), nullptr);
  EXPECT_NE(DtlsContext::create(a.identity, error), nullptr) << error;
}

TEST_F(DtlsTest, SessionsOutliveTheirContext) {
  auto client_ctx = make_context(client_cert_.identity);
  auto server_ctx = make_context(server_cert_.identity);
  // Lose the server's first flight so that the handshake is mid-way when
  // both contexts go away.
  auto pipe =
      std::make_unique<Pipe>(*client_ctx, *server_ctx, verifier(), verifier(),
                             [](Pipe::Direction dir, int i, const Bytes&) { return dir == Pipe::kToClient && i == 1; });
  pipe->pump();
  ASSERT_NE(pipe->server(), nullptr);
  ASSERT_EQ(pipe->server()->state(), DtlsSession::State::Handshaking);
  client_ctx.reset();
  server_ctx.reset();
  pipe->run();
  EXPECT_TRUE(pipe->established()) << pipe->client().failure_reason();
  ASSERT_TRUE(pipe->client().send(Bytes{42}));
  pipe->pump();
  Bytes got;
  ASSERT_TRUE(pipe->server()->receive(got));
  EXPECT_EQ(got, Bytes{42});
}

}  // namespace
}  // namespace wownet::crypto::dtls_test
