// DTLS session driver: the certificate policy (other CAs, validity,
// revocation, missing certificates and verifiers).
#include "dtls_fixture.h"

namespace wownet::crypto::dtls_test {
namespace {

// The handshake failed on both sides, the server's reason saying
// `server_reason` and the client's `client_reason`.
void expect_both_fail(Pipe& pipe, const std::string& server_reason, const std::string& client_reason) {
  ASSERT_NE(pipe.server(), nullptr);
  EXPECT_EQ(pipe.server()->state(), DtlsSession::State::Failed);
  EXPECT_NE(pipe.server()->failure_reason().find(server_reason), std::string::npos) << pipe.server()->failure_reason();
  EXPECT_EQ(pipe.client().state(), DtlsSession::State::Failed);
  EXPECT_NE(pipe.client().failure_reason().find(client_reason), std::string::npos) << pipe.client().failure_reason();
}

TEST_F(DtlsTest, ClientFromAnotherCaIsRejected) {
  auto rogue = other_ca_.issue("rogue-node");
  auto rogue_ctx = make_context(rogue.identity);
  Pipe pipe(*rogue_ctx, *server_ctx_, verifier(), verifier());
  pipe.run();
  ASSERT_NO_FATAL_FAILURE(expect_both_fail(pipe, "unknown CA", "alert"));
  EXPECT_NE(pipe.client().failure_reason().find("unknown CA"), std::string::npos) << pipe.client().failure_reason();
  EXPECT_EQ(pipe.now(), kT0);  // the alert arrived, no timeout needed
  EXPECT_TRUE(pipe.server()->peer_id().empty());
  EXPECT_TRUE(pipe.client().peer_id().empty());  // it accepted the server, but the handshake failed
  std::array<std::uint8_t, 32> a{}, b{};
  EXPECT_FALSE(pipe.server()->export_keys(a, b));
}

TEST_F(DtlsTest, ServerFromAnotherCaIsRejectedByTheClient) {
  auto rogue = other_ca_.issue("rogue-server");
  auto rogue_ctx = make_context(rogue.identity);
  Pipe pipe(*client_ctx_, *rogue_ctx, verifier(), verifier());
  pipe.run();
  EXPECT_EQ(pipe.client().state(), DtlsSession::State::Failed);
  EXPECT_NE(pipe.client().failure_reason().find("unknown CA"), std::string::npos) << pipe.client().failure_reason();
  ASSERT_NE(pipe.server(), nullptr);
  EXPECT_EQ(pipe.server()->state(), DtlsSession::State::Failed);
  EXPECT_NE(pipe.server()->failure_reason().find("unknown CA"), std::string::npos) << pipe.server()->failure_reason();
}

TEST_F(DtlsTest, ExpiredClientCertificate) {
  auto old = ca_.issue("old-node", -400, -35);
  auto old_ctx = make_context(old.identity);
  Pipe pipe(*old_ctx, *server_ctx_, verifier(), verifier());
  pipe.run();
  ASSERT_NO_FATAL_FAILURE(expect_both_fail(pipe, "expired", "certificate expired"));
}

TEST_F(DtlsTest, NotYetValidClientCertificate) {
  auto future = ca_.issue("future-node", 10, 400);
  auto future_ctx = make_context(future.identity);
  Pipe pipe(*future_ctx, *server_ctx_, verifier(), verifier());
  pipe.run();
  ASSERT_NO_FATAL_FAILURE(expect_both_fail(pipe, "not yet valid", "bad certificate"));
}

TEST_F(DtlsTest, RevokedClientCertificate) {
  auto crl = ca_.crl({client_cert_.serial});
  Pipe pipe(*client_ctx_, *server_ctx_, verifier(), verifier(crl.get()));
  pipe.run();
  ASSERT_NO_FATAL_FAILURE(expect_both_fail(pipe, "revoked", "certificate revoked"));
}

TEST_F(DtlsTest, RevokedServerCertificate) {
  auto crl = ca_.crl({server_cert_.serial});
  Pipe pipe(*client_ctx_, *server_ctx_, verifier(crl.get()), verifier(crl.get()));
  pipe.run();
  EXPECT_EQ(pipe.client().state(), DtlsSession::State::Failed);
  EXPECT_NE(pipe.client().failure_reason().find("revoked"), std::string::npos) << pipe.client().failure_reason();
  ASSERT_NE(pipe.server(), nullptr);
  EXPECT_EQ(pipe.server()->state(), DtlsSession::State::Failed);
  EXPECT_NE(pipe.server()->failure_reason().find("certificate revoked"), std::string::npos)
      << pipe.server()->failure_reason();
}

TEST_F(DtlsTest, UnrelatedRevocationDoesNotHurt) {
  auto crl = ca_.crl({999});
  Pipe pipe(*client_ctx_, *server_ctx_, verifier(crl.get()), verifier(crl.get()));
  pipe.run();
  EXPECT_TRUE(pipe.established()) << pipe.client().failure_reason();
}

TEST_F(DtlsTest, ClientWithoutCertificateIsRejected) {
  auto anonymous_ctx = make_context(DtlsIdentity{"", "", ""});
  Pipe pipe(*anonymous_ctx, *server_ctx_, verifier(), verifier());
  pipe.run();
  ASSERT_NO_FATAL_FAILURE(expect_both_fail(pipe, "did not return a certificate", "alert"));
}

TEST_F(DtlsTest, MissingVerifierRejects) {
  Pipe pipe(*client_ctx_, *server_ctx_, verifier(), Verifier{});
  pipe.run();
  ASSERT_NE(pipe.server(), nullptr);
  EXPECT_EQ(pipe.server()->state(), DtlsSession::State::Failed);
  EXPECT_NE(pipe.server()->failure_reason().find("no certificate verifier"), std::string::npos);
  EXPECT_EQ(pipe.client().state(), DtlsSession::State::Failed);
}

TEST_F(DtlsTest, ThrowingOrIdlessVerifierRejects) {
  Verifier throwing = [](X509*, STACK_OF(X509)*, std::int64_t) -> VerifyOutcome { throw std::runtime_error("boom"); };
  Pipe pipe(*client_ctx_, *server_ctx_, throwing, verifier());
  pipe.run();
  EXPECT_EQ(pipe.client().state(), DtlsSession::State::Failed);
  EXPECT_NE(pipe.client().failure_reason().find("threw"), std::string::npos) << pipe.client().failure_reason();

  Verifier idless = [](X509*, STACK_OF(X509)*, std::int64_t) { return VerifyOutcome{true, "", "", {}}; };
  Pipe pipe2(*client_ctx_, *server_ctx_, verifier(), idless);
  pipe2.run();
  ASSERT_NE(pipe2.server(), nullptr);
  EXPECT_EQ(pipe2.server()->state(), DtlsSession::State::Failed);
  EXPECT_NE(pipe2.server()->failure_reason().find("no peer id"), std::string::npos);
}

}  // namespace
}  // namespace wownet::crypto::dtls_test
