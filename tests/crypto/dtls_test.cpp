// DTLS session driver: two sessions wired back to back in memory, literal
// times, throwaway EC P-256 CAs and certificates made inside the test.
#include "crypto/dtls.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace wownet::crypto {
namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr std::int64_t kT0 = 1'750'000'000'000;  // ms, literal "now" of every test
constexpr long kT0s = static_cast<long>(kT0 / 1000);
constexpr long kDay = 86400;
constexpr char kClientAddr[] = "192.0.2.1:4000";
constexpr char kServerAddr[] = "198.51.100.7:4000";

template <auto Free>
struct FreeWith {
  template <class T>
  void operator()(T* p) const {
    Free(p);
  }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, FreeWith<EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, FreeWith<X509_free>>;
using CrlPtr = std::unique_ptr<X509_CRL, FreeWith<X509_CRL_free>>;
using BioPtr = std::unique_ptr<BIO, FreeWith<BIO_free>>;
using StorePtr = std::unique_ptr<X509_STORE, FreeWith<X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, FreeWith<X509_STORE_CTX_free>>;

// ---------------------------------------------------------------------------
// Throwaway PKI

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(len));
}

std::string cert_pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  return bio_text(bio.get());
}

std::string key_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  return bio_text(bio.get());
}

void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  ASSERT_NE(ext, nullptr);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// A certificate for `key`, signed by issuer (self-signed if issuer is null).
X509Ptr make_cert(const std::string& cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, long serial,
                  long not_before, long not_after, bool ca) {
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
  ASN1_TIME_set(X509_getm_notBefore(cert.get()), not_before);
  ASN1_TIME_set(X509_getm_notAfter(cert.get()), not_after);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name);
  X509* signer = issuer != nullptr ? issuer : cert.get();
  add_ext(cert.get(), signer, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  add_ext(cert.get(), signer, NID_key_usage, ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
  X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256());
  return cert;
}

// Lowercase hex of the first 16 bytes of SHA-256 over the SubjectPublicKeyInfo.
std::string node_id_of(X509* cert) {
  unsigned char* der = nullptr;
  const int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
  unsigned char digest[32];
  unsigned int digest_len = 0;
  EVP_Digest(der, static_cast<std::size_t>(len), digest, &digest_len, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (int i = 0; i < 16; ++i) {
    id += kHex[digest[i] >> 4];
    id += kHex[digest[i] & 15];
  }
  return id;
}

struct TestCa {
  PkeyPtr key;
  X509Ptr cert;
  long next_serial = 100;

  explicit TestCa(const std::string& name)
      : key(EVP_EC_gen("P-256")),
        cert(make_cert(name, key.get(), nullptr, nullptr, 1, kT0s - kDay, kT0s + 3650 * kDay, true)) {}

  struct Issued {
    DtlsIdentity identity;
    X509Ptr cert;
    long serial = 0;
  };
  // A node certificate valid [kT0 + from_days, kT0 + to_days].
  Issued issue(const std::string& cn, long from_days = -1, long to_days = 365) {
    PkeyPtr node_key(EVP_EC_gen("P-256"));
    Issued out;
    out.serial = next_serial++;
    out.cert = make_cert(cn, node_key.get(), cert.get(), key.get(), out.serial, kT0s + from_days * kDay,
                         kT0s + to_days * kDay, false);
    out.identity = DtlsIdentity{cert_pem(out.cert.get()), key_pem(node_key.get()), cert_pem(cert.get())};
    return out;
  }

  // A CRL valid around kT0 revoking `serials`.
  CrlPtr crl(const std::vector<long>& serials) {
    CrlPtr crl(X509_CRL_new());
    X509_CRL_set_version(crl.get(), 1);
    X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(cert.get()));
    ASN1_TIME* t = ASN1_TIME_new();
    ASN1_TIME_set(t, kT0s - kDay);
    X509_CRL_set1_lastUpdate(crl.get(), t);
    ASN1_TIME_set(t, kT0s + 30 * kDay);
    X509_CRL_set1_nextUpdate(crl.get(), t);
    for (long serial : serials) {
      X509_REVOKED* revoked = X509_REVOKED_new();
      ASN1_INTEGER* s = ASN1_INTEGER_new();
      ASN1_INTEGER_set(s, serial);
      X509_REVOKED_set_serialNumber(revoked, s);
      ASN1_TIME_set(t, kT0s - 3600);
      X509_REVOKED_set_revocationDate(revoked, t);
      X509_CRL_add0_revoked(crl.get(), revoked);
      ASN1_INTEGER_free(s);
    }
    ASN1_TIME_free(t);
    X509_CRL_sort(crl.get());
    X509_CRL_sign(crl.get(), key.get(), EVP_sha256());
    return crl;
  }
};

// The test's certificate policy: chain to `ca` at the session's now_ms (or a
// fixed time), optionally checking a CRL; distinct reasons per failure.
struct VerifierLog {
  std::vector<std::int64_t> times;
};

Verifier make_verifier(X509* ca, X509_CRL* crl = nullptr, std::shared_ptr<VerifierLog> log = nullptr) {
  X509_up_ref(ca);
  std::shared_ptr<X509> ca_ref(ca, X509_free);
  std::shared_ptr<X509_CRL> crl_ref;
  if (crl != nullptr) {
    X509_CRL_up_ref(crl);
    crl_ref.reset(crl, X509_CRL_free);
  }
  return [ca_ref, crl_ref, log](X509* peer, STACK_OF(X509) * chain, std::int64_t now_ms) {
    if (log) log->times.push_back(now_ms);
    StorePtr store(X509_STORE_new());
    X509_STORE_add_cert(store.get(), ca_ref.get());
    if (crl_ref) X509_STORE_add_crl(store.get(), crl_ref.get());
    StoreCtxPtr ctx(X509_STORE_CTX_new());
    X509_STORE_CTX_init(ctx.get(), store.get(), peer, chain);
    X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
    X509_VERIFY_PARAM_set_time(param, static_cast<time_t>(now_ms / 1000));
    if (crl_ref) X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_CRL_CHECK);
    VerifyOutcome out;
    if (X509_verify_cert(ctx.get()) == 1) {
      out.ok = true;
      out.peer_id = node_id_of(peer);
      return out;
    }
    switch (const int err = X509_STORE_CTX_get_error(ctx.get())) {
      case X509_V_ERR_CERT_HAS_EXPIRED:
        out.reason = "peer certificate expired";
        out.alert = VerifyAlert::CertificateExpired;
        break;
      case X509_V_ERR_CERT_NOT_YET_VALID: out.reason = "peer certificate not yet valid"; break;
      case X509_V_ERR_CERT_REVOKED:
        out.reason = "peer certificate revoked";
        out.alert = VerifyAlert::CertificateRevoked;
        break;
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
      case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
      case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        out.reason = "peer certificate from unknown CA";
        out.alert = VerifyAlert::UnknownCa;
        break;
      default: out.reason = std::string("invalid peer certificate: ") + X509_verify_cert_error_string(err);
    }
    return out;
  };
}

std::unique_ptr<DtlsContext> make_context(const DtlsIdentity& identity, const DtlsTimers& timers = {}) {
  std::string error;
  auto ctx = DtlsContext::create(identity, error, timers);
  EXPECT_NE(ctx, nullptr) << error;
  return ctx;
}

// ---------------------------------------------------------------------------
// DTLS record helpers for assertions

struct Record {
  std::uint8_t type;
  std::uint16_t epoch;
  Bytes body;
};

std::vector<Record> records_of(const Bytes& d) {
  std::vector<Record> out;
  std::size_t off = 0;
  while (off + 13 <= d.size()) {
    const std::size_t len = std::size_t(d[off + 11]) << 8 | d[off + 12];
    if (off + 13 + len > d.size()) break;
    out.push_back(Record{d[off], std::uint16_t(d[off + 3] << 8 | d[off + 4]),
                         Bytes(d.begin() + long(off) + 13, d.begin() + long(off + 13 + len))});
    off += 13 + len;
  }
  return out;
}

bool is_handshake_type(const Bytes& d, std::uint8_t msg_type) {
  const auto recs = records_of(d);
  return !recs.empty() && recs[0].type == 22 && recs[0].epoch == 0 && !recs[0].body.empty() &&
         recs[0].body[0] == msg_type;
}

// Moves datagrams between two sessions until both are quiet.
void shuttle(DtlsSession& a, DtlsSession& b, std::int64_t now) {
  for (bool moved = true; moved;) {
    moved = false;
    Bytes d;
    while (a.take_datagram(d)) {
      b.on_datagram(d, now);
      moved = true;
    }
    while (b.take_datagram(d)) {
      a.on_datagram(d, now);
      moved = true;
    }
  }
}

// ---------------------------------------------------------------------------
// Pipe: a client session and a server context (and, once the cookie checks
// out, its session), moving datagrams between them at a literal clock.

class Pipe {
 public:
  enum Direction { kToServer = 0, kToClient = 1 };
  // Returns true to drop the datagram; `index` counts per direction from 0.
  using DropFn = std::function<bool(Direction, int index, const Bytes&)>;

  Pipe(DtlsContext& client_ctx, DtlsContext& server_ctx, Verifier client_verifier, Verifier server_verifier,
       DropFn drop = nullptr)
      : server_ctx_(server_ctx), server_verifier_(std::move(server_verifier)), drop_(std::move(drop)) {
    client_ = DtlsSession::client(client_ctx, kServerAddr, std::move(client_verifier), now_);
  }

  DtlsSession& client() { return *client_; }
  DtlsSession* server() { return server_.get(); }
  std::int64_t now() const { return now_; }
  int delivered(Direction d) const { return delivered_[d]; }
  std::vector<Bytes> log[2];  // every datagram offered, per direction

  // Moves datagrams both ways until neither side has anything to send.
  void pump() {
    for (bool moved = true; moved;) {
      moved = false;
      Bytes d;
      while (client_->take_datagram(d)) {
        moved = true;
        if (!pass(kToServer, d)) continue;
        if (server_) {
          server_->on_datagram(d, now_);
        } else {
          Bytes reply;
          server_ = DtlsSession::server(server_ctx_, kClientAddr, d, server_verifier_, now_, reply);
          if (!reply.empty() && pass(kToClient, reply)) client_->on_datagram(reply, now_);
        }
      }
      while (server_ && server_->take_datagram(d)) {
        moved = true;
        if (pass(kToClient, d)) client_->on_datagram(d, now_);
      }
    }
  }

  // Jumps the clock to the earliest armed timer and fires it; false if none.
  bool tick() {
    std::optional<std::int64_t> next = client_->next_timeout_ms();
    if (server_) {
      const auto s = server_->next_timeout_ms();
      if (s && (!next || *s < *next)) next = s;
    }
    if (!next) return false;
    now_ = std::max(now_, *next);
    client_->on_timeout(now_);
    if (server_) server_->on_timeout(now_);
    pump();
    return true;
  }

  bool settled() const {
    const auto done = [](const DtlsSession* s) {
      return s != nullptr && s->state() != DtlsSession::State::Handshaking;
    };
    return done(client_.get()) && (done(server_.get()) || client_->state() != DtlsSession::State::Handshaking);
  }

  // Pumps and fires timers until both sides leave Handshaking (or no timer).
  void run() {
    pump();
    while (!settled() && tick()) {
    }
    pump();
  }

  bool established() const {
    return client_->state() == DtlsSession::State::Established && server_ &&
           server_->state() == DtlsSession::State::Established;
  }

 private:
  bool pass(Direction dir, const Bytes& d) {
    log[dir].push_back(d);
    const int index = offered_[dir]++;
    if (drop_ && drop_(dir, index, d)) return false;
    ++delivered_[dir];
    return true;
  }

  DtlsContext& server_ctx_;
  Verifier server_verifier_;
  DropFn drop_;
  std::int64_t now_ = kT0;
  std::unique_ptr<DtlsSession> client_;
  std::unique_ptr<DtlsSession> server_;
  int offered_[2] = {0, 0};
  int delivered_[2] = {0, 0};
};

// ---------------------------------------------------------------------------

class DtlsTest : public ::testing::Test {
 protected:
  DtlsTest()
      : ca_("wownet test CA"),
        other_ca_("some other CA"),
        client_cert_(ca_.issue("client-node")),
        server_cert_(ca_.issue("server-node")),
        client_ctx_(make_context(client_cert_.identity)),
        server_ctx_(make_context(server_cert_.identity)) {}

  Verifier verifier(X509_CRL* crl = nullptr, std::shared_ptr<VerifierLog> log = nullptr) {
    return make_verifier(ca_.cert.get(), crl, std::move(log));
  }

  std::unique_ptr<Pipe> established_pipe() {
    auto pipe = std::make_unique<Pipe>(*client_ctx_, *server_ctx_, verifier(), verifier());
    pipe->run();
    EXPECT_TRUE(pipe->established()) << pipe->client().failure_reason();
    return pipe;
  }

  TestCa ca_;
  TestCa other_ca_;
  TestCa::Issued client_cert_;
  TestCa::Issued server_cert_;
  std::unique_ptr<DtlsContext> client_ctx_;
  std::unique_ptr<DtlsContext> server_ctx_;
};

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

TEST_F(DtlsTest, ClientFromAnotherCaIsRejected) {
  auto rogue = other_ca_.issue("rogue-node");
  auto rogue_ctx = make_context(rogue.identity);
  Pipe pipe(*rogue_ctx, *server_ctx_, verifier(), verifier());
  pipe.run();
  ASSERT_NE(pipe.server(), nullptr);
  EXPECT_EQ(pipe.server()->state(), DtlsSession::State::Failed);
  EXPECT_NE(pipe.server()->failure_reason().find("unknown CA"), std::string::npos) << pipe.server()->failure_reason();
  EXPECT_EQ(pipe.client().state(), DtlsSession::State::Failed);
  EXPECT_NE(pipe.client().failure_reason().find("alert"), std::string::npos) << pipe.client().failure_reason();
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
  ASSERT_NE(pipe.server(), nullptr);
  EXPECT_EQ(pipe.server()->state(), DtlsSession::State::Failed);
  EXPECT_NE(pipe.server()->failure_reason().find("expired"), std::string::npos) << pipe.server()->failure_reason();
  EXPECT_EQ(pipe.client().state(), DtlsSession::State::Failed);
  EXPECT_NE(pipe.client().failure_reason().find("certificate expired"), std::string::npos)
      << pipe.client().failure_reason();
}

TEST_F(DtlsTest, NotYetValidClientCertificate) {
  auto future = ca_.issue("future-node", 10, 400);
  auto future_ctx = make_context(future.identity);
  Pipe pipe(*future_ctx, *server_ctx_, verifier(), verifier());
  pipe.run();
  ASSERT_NE(pipe.server(), nullptr);
  EXPECT_EQ(pipe.server()->state(), DtlsSession::State::Failed);
  EXPECT_NE(pipe.server()->failure_reason().find("not yet valid"), std::string::npos)
      << pipe.server()->failure_reason();
  EXPECT_EQ(pipe.client().state(), DtlsSession::State::Failed);
  EXPECT_NE(pipe.client().failure_reason().find("bad certificate"), std::string::npos)
      << pipe.client().failure_reason();
}

TEST_F(DtlsTest, RevokedClientCertificate) {
  auto crl = ca_.crl({client_cert_.serial});
  Pipe pipe(*client_ctx_, *server_ctx_, verifier(), verifier(crl.get()));
  pipe.run();
  ASSERT_NE(pipe.server(), nullptr);
  EXPECT_EQ(pipe.server()->state(), DtlsSession::State::Failed);
  EXPECT_NE(pipe.server()->failure_reason().find("revoked"), std::string::npos) << pipe.server()->failure_reason();
  EXPECT_EQ(pipe.client().state(), DtlsSession::State::Failed);
  EXPECT_NE(pipe.client().failure_reason().find("certificate revoked"), std::string::npos)
      << pipe.client().failure_reason();
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
  ASSERT_NE(pipe.server(), nullptr);
  EXPECT_EQ(pipe.server()->state(), DtlsSession::State::Failed);
  EXPECT_NE(pipe.server()->failure_reason().find("did not return a certificate"), std::string::npos)
      << pipe.server()->failure_reason();
  EXPECT_EQ(pipe.client().state(), DtlsSession::State::Failed);
  EXPECT_NE(pipe.client().failure_reason().find("alert"), std::string::npos) << pipe.client().failure_reason();
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
}  // namespace wownet::crypto
