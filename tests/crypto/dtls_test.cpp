// DTLS session driver: two sessions wired back to back in memory, literal
// times. The handshake, exported keys, data, close, loss and retransmission.
#include "dtls_fixture.h"

namespace wownet::crypto::dtls_test {
namespace {

TEST_F(DtlsTest, HandshakeWithMutualAuthAndCookie) {
  auto client_log = std::make_shared<VerifierLog>();
  auto server_log = std::make_shared<VerifierLog>();
  Pipe pipe(*client_ctx_, *server_ctx_, verifier(nullptr, client_log), verifier(nullptr, server_log));
  ASSERT_EQ(pipe.client().state(), DtlsSession::State::Handshaking);
  ASSERT_TRUE(pipe.client().is_client());
  pipe.run();
  ASSERT_TRUE(pipe.established()) << pipe.client().failure_reason() << " / "
                                  << (pipe.server() ? pipe.server()->failure_reason() : "no server");
  EXPECT_EQ(pipe.now(), kT0);  // no timer had to fire
  EXPECT_EQ(pipe.client().peer_id(), node_id_of(server_cert_.cert.get()));
  EXPECT_EQ(pipe.server()->peer_id(), node_id_of(client_cert_.cert.get()));
  EXPECT_EQ(pipe.client().peer_id().size(), 32u);
  EXPECT_FALSE(pipe.server()->is_client());
  EXPECT_EQ(pipe.server()->peer_address(), kClientAddr);
  EXPECT_EQ(pipe.client().peer_address(), kServerAddr);
  EXPECT_TRUE(pipe.client().failure_reason().empty());
  // The verifiers ran once each, at the time passed in.
  EXPECT_EQ(client_log->times, std::vector<std::int64_t>{kT0});
  EXPECT_EQ(server_log->times, std::vector<std::int64_t>{kT0});
  // ECDHE with an AEAD only.
  const std::string cipher = pipe.client().cipher();
  EXPECT_EQ(cipher, pipe.server()->cipher());
  EXPECT_EQ(cipher.rfind("ECDHE-", 0), 0u) << cipher;
  EXPECT_TRUE(cipher.find("GCM") != std::string::npos || cipher.find("CHACHA20") != std::string::npos) << cipher;
  // One HelloVerifyRequest round trip before the server kept any state.
  EXPECT_EQ(server_ctx_->stats().hello_verify_sent, 1u);
  EXPECT_EQ(server_ctx_->stats().sessions_accepted, 1u);
  EXPECT_TRUE(is_handshake_type(pipe.log[Pipe::kToClient].at(0), 3));  // hello_verify_request
  // Handshake datagrams respect the MTU; no timers once established.
  for (const auto& dir : pipe.log)
    for (const auto& d : dir) EXPECT_LE(d.size(), kDtlsMtu);
  EXPECT_FALSE(pipe.client().next_timeout_ms());
  EXPECT_FALSE(pipe.server()->next_timeout_ms());
  EXPECT_EQ(pipe.client().stats().retransmitted_flights, 0u);
}

TEST_F(DtlsTest, ExportedKeysMatchCrosswiseAndDifferPerDirection) {
  auto pipe = established_pipe();
  std::array<std::uint8_t, 32> c_c2s{}, c_s2c{}, s_c2s{}, s_s2c{};
  ASSERT_TRUE(pipe->client().export_keys(c_c2s, c_s2c));
  ASSERT_TRUE(pipe->server()->export_keys(s_c2s, s_s2c));
  EXPECT_EQ(c_c2s, s_c2s);
  EXPECT_EQ(c_s2c, s_s2c);
  EXPECT_NE(c_c2s, c_s2c);
  EXPECT_NE(c_c2s, (std::array<std::uint8_t, 32>{}));
  // Stable per session, fresh per handshake.
  std::array<std::uint8_t, 32> again{}, again2{};
  ASSERT_TRUE(pipe->client().export_keys(again, again2));
  EXPECT_EQ(again, c_c2s);
  auto other = established_pipe();
  ASSERT_TRUE(other->client().export_keys(again, again2));
  EXPECT_NE(again, c_c2s);
  EXPECT_NE(again2, c_s2c);
}

TEST_F(DtlsTest, ExportAndSendRefusedBeforeEstablished) {
  Pipe pipe(*client_ctx_, *server_ctx_, verifier(), verifier());
  std::array<std::uint8_t, 32> a{}, b{};
  EXPECT_FALSE(pipe.client().export_keys(a, b));
  const Bytes msg{1, 2, 3};
  EXPECT_FALSE(pipe.client().send(msg));
  EXPECT_TRUE(pipe.client().cipher().empty());
}

TEST_F(DtlsTest, ApplicationDataBothWays) {
  auto pipe = established_pipe();
  DtlsSession& client = pipe->client();
  DtlsSession& server = *pipe->server();
  std::vector<Bytes> sent;
  for (std::size_t size : {std::size_t{1}, std::size_t{17}, std::size_t{500}, kDtlsMaxMessage}) {
    Bytes m(size);
    for (std::size_t i = 0; i < size; ++i) m[i] = std::uint8_t(i * 7 + size);
    sent.push_back(m);
    ASSERT_TRUE(client.send(m));
  }
  EXPECT_FALSE(client.send(Bytes(kDtlsMaxMessage + 1, 0)));
  EXPECT_FALSE(client.send(Bytes{}));
  pipe->pump();
  Bytes got;
  for (const auto& m : sent) {
    ASSERT_TRUE(server.receive(got));
    EXPECT_EQ(got, m);
  }
  EXPECT_FALSE(server.receive(got));

  const Bytes reply{'p', 'o', 'n', 'g'};
  ASSERT_TRUE(server.send(reply));
  pipe->pump();
  ASSERT_TRUE(client.receive(got));
  EXPECT_EQ(got, reply);
  // Records on the wire are encrypted epoch-1 application data.
  const auto recs = records_of(pipe->log[Pipe::kToClient].back());
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].type, 23);
  EXPECT_EQ(recs[0].epoch, 1);
  EXPECT_EQ(std::search(recs[0].body.begin(), recs[0].body.end(), reply.begin(), reply.end()), recs[0].body.end());
}

TEST_F(DtlsTest, CloseNotifyClosesThePeer) {
  auto pipe = established_pipe();
  pipe->client().close();
  EXPECT_EQ(pipe->client().state(), DtlsSession::State::Closed);
  pipe->pump();
  EXPECT_EQ(pipe->server()->state(), DtlsSession::State::Closed);
  EXPECT_EQ(pipe->server()->failure_reason(), "peer closed the session");
  EXPECT_FALSE(pipe->server()->send(Bytes{1}));
  EXPECT_FALSE(pipe->client().send(Bytes{1}));
}

// Drops chosen datagrams; the handshake must still finish on retransmission
// timers fired at advancing literal times.
struct LossCase {
  const char* name;
  Pipe::DropFn drop;
};

class DtlsLossTest : public DtlsTest, public ::testing::WithParamInterface<int> {};

bool has_record(const Bytes& d, int type, int min_epoch) {
  for (const auto& r : records_of(d))
    if (r.type == type && r.epoch >= min_epoch) return true;
  return false;
}

std::vector<LossCase> loss_cases() {
  using D = Pipe::Direction;
  return {
      {"first ClientHello", [](D dir, int i, const Bytes&) { return dir == Pipe::kToServer && i == 0; }},
      {"HelloVerifyRequest", [](D dir, int i, const Bytes&) { return dir == Pipe::kToClient && i == 0; }},
      {"ClientHello with cookie", [](D dir, int i, const Bytes&) { return dir == Pipe::kToServer && i == 1; }},
      {"server's first flight, twice",
       [n = std::make_shared<int>(0)](D dir, int, const Bytes& d) {
         return dir == Pipe::kToClient && is_handshake_type(d, 2) && (*n)++ < 2;
       }},
      {"client's second flight, twice",
       [n = std::make_shared<int>(0)](D dir, int, const Bytes& d) {
         return dir == Pipe::kToServer && !is_handshake_type(d, 1) && (*n)++ < 2;
       }},
      {"server's last flight (ChangeCipherSpec, Finished)",
       [n = std::make_shared<int>(0)](D dir, int, const Bytes& d) {
         return dir == Pipe::kToClient && (has_record(d, 20, 0) || has_record(d, 22, 1)) && (*n)++ < 2;
       }},
      {"every third datagram", [](D, int i, const Bytes&) { return i % 3 == 0; }},
      {"random 30% (seed 7)",
       [rng = std::make_shared<std::mt19937>(7)](D, int, const Bytes&) { return (*rng)() % 10 < 3; }},
  };
}

TEST_P(DtlsLossTest, HandshakeSurvivesLoss) {
  const LossCase c = loss_cases().at(static_cast<std::size_t>(GetParam()));
  SCOPED_TRACE(c.name);
  Pipe pipe(*client_ctx_, *server_ctx_, verifier(), verifier(), c.drop);
  pipe.run();
  ASSERT_TRUE(pipe.established()) << pipe.client().failure_reason() << " / "
                                  << (pipe.server() ? pipe.server()->failure_reason() : "no server");
  EXPECT_GE(pipe.now(), kT0 + 1000);  // at least one retransmission timer fired
  EXPECT_LT(pipe.now(), kT0 + 10000);
  const auto retransmissions =
      pipe.client().stats().retransmitted_flights + pipe.server()->stats().retransmitted_flights;
  EXPECT_GE(retransmissions, 1u);
  // Both ends still agree on keys and talk.
  std::array<std::uint8_t, 32> a{}, b{}, c2{}, d{};
  ASSERT_TRUE(pipe.client().export_keys(a, b));
  ASSERT_TRUE(pipe.server()->export_keys(c2, d));
  EXPECT_EQ(a, c2);
  EXPECT_EQ(b, d);
}

INSTANTIATE_TEST_SUITE_P(Loss, DtlsLossTest, ::testing::Range(0, static_cast<int>(loss_cases().size())));

TEST_F(DtlsTest, LastFlightLossIsRepairedByTheServer) {
  // The server is established after its last flight; if that flight is lost,
  // only the client's repeated Finished can make the server send it again.
  int dropped = 0;
  Pipe pipe(*client_ctx_, *server_ctx_, verifier(), verifier(), [&](Pipe::Direction dir, int, const Bytes& d) {
    return dir == Pipe::kToClient && has_record(d, 22, 1) && dropped++ == 0;
  });
  pipe.pump();
  ASSERT_NE(pipe.server(), nullptr);
  EXPECT_EQ(pipe.server()->state(), DtlsSession::State::Established);
  EXPECT_EQ(pipe.client().state(), DtlsSession::State::Handshaking);
  ASSERT_EQ(pipe.client().next_timeout_ms(), kT0 + 1000);
  ASSERT_TRUE(pipe.tick());
  EXPECT_EQ(pipe.now(), kT0 + 1000);
  EXPECT_TRUE(pipe.established()) << pipe.client().failure_reason();
  EXPECT_EQ(pipe.server()->stats().retransmitted_flights, 1u);
}

TEST_F(DtlsTest, RetransmissionBackoffAndGivingUp) {
  auto client = DtlsSession::client(*client_ctx_, kServerAddr, verifier(), kT0);
  Bytes d;
  ASSERT_TRUE(client->take_datagram(d));
  EXPECT_TRUE(is_handshake_type(d, 1));
  const Bytes first_hello = d;
  EXPECT_FALSE(client->take_datagram(d));
  // Nothing ever comes back: 1 s, then 2 s, then 4 s later; fail at 10 s.
  std::vector<std::int64_t> fired;
  while (auto t = client->next_timeout_ms()) {
    ASSERT_LE(*t, kT0 + 10000);
    client->on_timeout(*t - 1);  // early: nothing happens
    EXPECT_FALSE(client->take_datagram(d));
    client->on_timeout(*t);
    if (client->take_datagram(d)) {
      fired.push_back(*t - kT0);
      EXPECT_EQ(d, first_hello);  // byte for byte
    }
  }
  EXPECT_EQ(fired, (std::vector<std::int64_t>{1000, 3000, 7000}));
  EXPECT_EQ(client->state(), DtlsSession::State::Failed);
  EXPECT_NE(client->failure_reason().find("timed out"), std::string::npos) << client->failure_reason();
  EXPECT_EQ(client->stats().retransmitted_flights, 3u);
  // A failed session ignores further input.
  client->on_datagram(first_hello, kT0 + 20000);
  EXPECT_EQ(client->stats().ignored_datagrams, 1u);
}

TEST_F(DtlsTest, ServerSessionGivesUpWhenClientVanishes) {
  DtlsTimers timers;
  timers.handshake_timeout_ms = 5000;
  auto server_ctx = make_context(server_cert_.identity, timers);
  Pipe pipe(*client_ctx_, *server_ctx, verifier(), verifier(),
            [](Pipe::Direction dir, int i, const Bytes&) { return dir == Pipe::kToServer && i >= 2; });
  pipe.pump();
  ASSERT_NE(pipe.server(), nullptr);
  while (pipe.server()->state() == DtlsSession::State::Handshaking && pipe.tick()) {
  }
  EXPECT_EQ(pipe.server()->state(), DtlsSession::State::Failed);
  EXPECT_EQ(pipe.now(), kT0 + 5000);
  EXPECT_GE(pipe.server()->stats().retransmitted_flights, 2u);
}

}  // namespace
}  // namespace wownet::crypto::dtls_test
