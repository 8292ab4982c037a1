// DtlsContext: the SSL_CTX for our identity and the cookie exchange of
// RFC 6347 §4.2.1 (see dtls.h).
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <cstring>
#include <utility>

#include "crypto/dtls.h"
#include "crypto/dtls_internal.h"

namespace wownet::crypto {
namespace {

using detail::DtlsSslOwner;
using detail::openssl_error_text;
using BioHandle = std::unique_ptr<BIO, detail::DtlsFree<BIO_free>>;
using X509Handle = std::unique_ptr<X509, detail::DtlsFree<X509_free>>;
using PkeyHandle = std::unique_ptr<EVP_PKEY, detail::DtlsFree<EVP_PKEY_free>>;
using ContextShared = detail::DtlsContextShared;

constexpr std::size_t kCookieSize = 32;
constexpr char kCipherList[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:"
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305";
constexpr char kGroups[] = "X25519:P-256:P-384";
constexpr char kCookieDomain[] = "wownet dtls cookie v1|";

// HMAC-SHA256(secret, domain || peer address). Runs inside OpenSSL: no throw.
bool compute_cookie(EVP_MAC* hmac, const std::array<std::uint8_t, 32>& secret, const std::string& peer_address,
                    std::array<std::uint8_t, kCookieSize>& out) {
  unsigned char md[EVP_MAX_MD_SIZE];
  std::size_t md_len = 0;
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(hmac);
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0), OSSL_PARAM_construct_end()};
  const bool ok =
      ctx != nullptr && EVP_MAC_init(ctx, secret.data(), secret.size(), params) == 1 &&
      EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(kCookieDomain), sizeof kCookieDomain - 1) == 1 &&
      EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(peer_address.data()), peer_address.size()) == 1 &&
      EVP_MAC_final(ctx, md, &md_len, sizeof md) == 1 && md_len == kCookieSize;
  EVP_MAC_CTX_free(ctx);
  if (ok) std::memcpy(out.data(), md, kCookieSize);
  return ok;
}

int generate_cookie_cb(SSL* ssl, unsigned char* cookie, unsigned int* cookie_len) {
  const DtlsSslOwner* owner = detail::owner_of(ssl);
  std::array<std::uint8_t, kCookieSize> mac{};
  if (owner == nullptr ||
      !compute_cookie(owner->shared->hmac.get(), owner->shared->cookie_secret, owner->peer_address, mac))
    return 0;
  std::memcpy(cookie, mac.data(), mac.size());
  *cookie_len = static_cast<unsigned int>(mac.size());
  return 1;
}

int verify_cookie_cb(SSL* ssl, const unsigned char* cookie, unsigned int cookie_len) {
  const DtlsSslOwner* owner = detail::owner_of(ssl);
  if (owner == nullptr || cookie_len != kCookieSize) return 0;
  const auto matches = [&](const std::array<std::uint8_t, 32>& secret) {
    std::array<std::uint8_t, kCookieSize> mac{};
    return compute_cookie(owner->shared->hmac.get(), secret, owner->peer_address, mac) &&
           CRYPTO_memcmp(cookie, mac.data(), mac.size()) == 0;
  };
  const auto& shared = *owner->shared;
  return matches(shared.cookie_secret) || (shared.has_previous_secret && matches(shared.previous_cookie_secret)) ? 1
                                                                                                                 : 0;
}

// PEM password callback: no password (never prompt on a terminal).
int no_password_cb(char*, int, int, void*) { return 0; }

// Loads our certificate (plus any chain certs after it) and key into ctx.
bool load_identity(SSL_CTX* ctx, const DtlsIdentity& identity, std::string& error) {
  BioHandle cert_bio(BIO_new_mem_buf(identity.cert_pem.data(), static_cast<int>(identity.cert_pem.size())));
  X509Handle leaf(cert_bio ? PEM_read_bio_X509(cert_bio.get(), nullptr, no_password_cb, nullptr) : nullptr);
  if (!leaf || SSL_CTX_use_certificate(ctx, leaf.get()) != 1) {
    error = "cannot load certificate: " + openssl_error_text();
    return false;
  }
  while (X509* extra = PEM_read_bio_X509(cert_bio.get(), nullptr, no_password_cb, nullptr)) {
    if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
      X509_free(extra);
      error = "cannot add chain certificate: " + openssl_error_text();
      return false;
    }
  }
  ERR_clear_error();  // the loop ends on "no start line"
  BioHandle key_bio(BIO_new_mem_buf(identity.key_pem.data(), static_cast<int>(identity.key_pem.size())));
  PkeyHandle key(key_bio ? PEM_read_bio_PrivateKey(key_bio.get(), nullptr, no_password_cb, nullptr) : nullptr);
  if (!key || SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    error = "cannot load private key matching the certificate: " + openssl_error_text();
    return false;
  }
  return true;
}

// Adds the names of the certificates in ca_pem to the CertificateRequest.
bool load_ca_names(SSL_CTX* ctx, const std::string& ca_pem, std::string& error) {
  BioHandle bio(BIO_new_mem_buf(ca_pem.data(), static_cast<int>(ca_pem.size())));
  int count = 0;
  while (bio) {
    X509Handle ca(PEM_read_bio_X509(bio.get(), nullptr, no_password_cb, nullptr));
    if (!ca) break;
    if (SSL_CTX_add_client_CA(ctx, ca.get()) != 1) {
      error = "cannot add CA name: " + openssl_error_text();
      return false;
    }
    ++count;
  }
  ERR_clear_error();
  if (count == 0) {
    error = "ca_pem holds no certificate";
    return false;
  }
  return true;
}

}  // namespace

DtlsContext::DtlsContext(std::unique_ptr<detail::DtlsContextCore> core) : core_(std::move(core)) {}
DtlsContext::~DtlsContext() = default;

const DtlsContext::Stats& DtlsContext::stats() const { return core_->stats; }

bool DtlsContext::rotate_cookie_secret() {
  auto& shared = *core_->shared;
  std::array<std::uint8_t, 32> fresh{};
  if (RAND_bytes(fresh.data(), static_cast<int>(fresh.size())) != 1) {
    ERR_clear_error();
    return false;
  }
  shared.previous_cookie_secret = shared.cookie_secret;
  shared.has_previous_secret = true;
  shared.cookie_secret = fresh;
  OPENSSL_cleanse(fresh.data(), fresh.size());
  return true;
}

std::unique_ptr<DtlsContext> DtlsContext::create(const DtlsIdentity& identity, std::string& error,
                                                 const DtlsTimers& timers) {
  error.clear();
  ERR_clear_error();
  if (timers.initial_retransmit_ms <= 0 || timers.max_retransmit_ms < timers.initial_retransmit_ms ||
      timers.handshake_timeout_ms <= 0) {
    error = "invalid DTLS timers";
    return nullptr;
  }
  if (identity.cert_pem.empty() != identity.key_pem.empty()) {
    error = "certificate and private key must be given together";
    return nullptr;
  }
  if (detail::queue_bio_method() == nullptr) {
    error = "cannot create the datagram BIO method";
    return nullptr;
  }
  std::unique_ptr<detail::DtlsContextCore> core;
  try {
    core = std::make_unique<detail::DtlsContextCore>();
    core->shared = std::make_shared<ContextShared>();
  } catch (...) {
    error = "out of memory";
    return nullptr;
  }
  ContextShared& shared = *core->shared;
  shared.timers = timers;
  shared.ctx.reset(SSL_CTX_new(DTLS_method()));
  SSL_CTX* ctx = shared.ctx.get();
  const auto fail = [&](const std::string& what) {
    error = what + (openssl_error_text().empty() ? "" : ": " + openssl_error_text());
    ERR_clear_error();
    return nullptr;
  };
  if (ctx == nullptr) return fail("cannot create SSL_CTX");
  if (SSL_CTX_set_min_proto_version(ctx, DTLS1_2_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, DTLS1_2_VERSION) != 1)
    return fail("cannot restrict to DTLS 1.2");
  if (SSL_CTX_set_cipher_list(ctx, kCipherList) != 1) return fail("cannot set cipher suites");
  if (SSL_CTX_set1_groups_list(ctx, kGroups) != 1) return fail("cannot set key exchange groups");
  SSL_CTX_set_options(ctx, SSL_OP_NO_QUERY_MTU | SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  static constexpr unsigned char kSessionIdContext[] = "wownet-dtls";
  SSL_CTX_set_session_id_context(ctx, kSessionIdContext, sizeof kSessionIdContext - 1);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_cert_verify_callback(ctx, detail::cert_verify_cb, nullptr);
  SSL_CTX_set_cookie_generate_cb(ctx, generate_cookie_cb);
  SSL_CTX_set_cookie_verify_cb(ctx, verify_cookie_cb);
  if (!identity.cert_pem.empty() && !load_identity(ctx, identity, error)) return nullptr;
  if (!identity.ca_pem.empty() && !load_ca_names(ctx, identity.ca_pem, error)) return nullptr;
  if (RAND_bytes(shared.cookie_secret.data(), static_cast<int>(shared.cookie_secret.size())) != 1)
    return fail("cannot generate cookie secret");
  shared.hmac.reset(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
  if (!shared.hmac) return fail("cannot fetch HMAC");
  core->listener_owner.shared = core->shared;
  core->listen_addr.reset(BIO_ADDR_new());
  if (!core->listen_addr) return fail("cannot allocate BIO_ADDR");
  ERR_clear_error();
  try {
    return std::unique_ptr<DtlsContext>(new DtlsContext(std::move(core)));
  } catch (...) {
    error = "out of memory";
    return nullptr;
  }
}

}  // namespace wownet::crypto
