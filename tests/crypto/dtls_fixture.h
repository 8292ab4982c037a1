// The harness of the DTLS tests: a throwaway PKI made with OpenSSL in
// memory, record helpers for assertions, Pipe (a client session and a server
// context wired back to back, literal times) and the DtlsTest fixture. In a
// named namespace so that gtest sees one fixture in every dtls_*_test.cpp.
#pragma once

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

namespace wownet::crypto::dtls_test {

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

inline std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(len));
}

inline std::string cert_pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  return bio_text(bio.get());
}

inline std::string key_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  return bio_text(bio.get());
}

inline void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  ASSERT_NE(ext, nullptr);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// A certificate for `key`, signed by issuer (self-signed if issuer is null).
inline X509Ptr make_cert(const std::string& cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, long serial,
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
inline std::string node_id_of(X509* cert) {
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

inline Verifier make_verifier(X509* ca, X509_CRL* crl = nullptr, std::shared_ptr<VerifierLog> log = nullptr) {
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

inline std::unique_ptr<DtlsContext> make_context(const DtlsIdentity& identity, const DtlsTimers& timers = {}) {
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

inline std::vector<Record> records_of(const Bytes& d) {
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

inline bool is_handshake_type(const Bytes& d, std::uint8_t msg_type) {
  const auto recs = records_of(d);
  return !recs.empty() && recs[0].type == 22 && recs[0].epoch == 0 && !recs[0].body.empty() &&
         recs[0].body[0] == msg_type;
}

// Moves datagrams between two sessions until both are quiet.
inline void shuttle(DtlsSession& a, DtlsSession& b, std::int64_t now) {
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

}  // namespace wownet::crypto::dtls_test
