// DTLS 1.2 session driver: see dtls.h for the cookie and timer design.
#include "crypto/dtls.h"

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <deque>
#include <utility>

#include "core/bytes.h"

namespace wownet::crypto {
namespace detail {

// Private owning wrappers (pki's ossl.h is deliberately not a dependency).
// In `detail`, not an anonymous namespace, because the session and context
// cores (declared in dtls.h) hold them.
template <auto Free>
struct DtlsFree {
  template <class T>
  void operator()(T* p) const {
    Free(p);
  }
};
using DtlsSslCtxHandle = std::unique_ptr<SSL_CTX, DtlsFree<SSL_CTX_free>>;
using DtlsSslHandle = std::unique_ptr<SSL, DtlsFree<SSL_free>>;
using DtlsBioAddrHandle = std::unique_ptr<BIO_ADDR, DtlsFree<BIO_ADDR_free>>;
using DtlsMacHandle = std::unique_ptr<EVP_MAC, DtlsFree<EVP_MAC_free>>;

// State shared by a context and the sessions created from it.
struct DtlsContextShared {
  DtlsSslCtxHandle ctx;
  DtlsMacHandle hmac;
  // Cookies are checked against the current secret and the previous one.
  std::array<std::uint8_t, 32> cookie_secret{};
  std::array<std::uint8_t, 32> previous_cookie_secret{};
  bool has_previous_secret = false;
  DtlsTimers timers;

  ~DtlsContextShared() {
    OPENSSL_cleanse(cookie_secret.data(), cookie_secret.size());
    OPENSSL_cleanse(previous_cookie_secret.data(), previous_cookie_secret.size());
  }
};

}  // namespace detail

namespace {

using BioHandle = std::unique_ptr<BIO, detail::DtlsFree<BIO_free>>;
using X509Handle = std::unique_ptr<X509, detail::DtlsFree<X509_free>>;
using PkeyHandle = std::unique_ptr<EVP_PKEY, detail::DtlsFree<EVP_PKEY_free>>;
using SslHandle = detail::DtlsSslHandle;
using ContextShared = detail::DtlsContextShared;

using Datagram = std::vector<std::uint8_t>;

constexpr std::size_t kRecordHeaderSize = 13;
constexpr std::size_t kHandshakeHeaderSize = 12;
constexpr std::uint8_t kContentHandshake = 22;
constexpr std::uint8_t kHandshakeClientHello = 1;
constexpr std::size_t kCookieSize = 32;
constexpr std::size_t kMaxQueuedDatagrams = 512;
constexpr std::size_t kMaxQueuedMessages = 1024;
constexpr std::size_t kMaxRecordPlaintext = 16384;
// How often an established server re-sends its last flight on request.
constexpr int kMaxFinalFlightResends = 8;
// OpenSSL's own (wall-clock) retransmission timer is pinned at one hour, so
// it never fires during a handshake bounded by DtlsTimers::handshake_timeout_ms.
constexpr unsigned int kPinnedOpensslTimerUs = 3'600'000'000u;
constexpr char kCipherList[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:"
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305";
constexpr char kGroups[] = "X25519:P-256:P-384";
constexpr char kCookieDomain[] = "wownet dtls cookie v1|";

// ---------------------------------------------------------------------------
// A BIO that is a FIFO of whole datagrams: each BIO_write is one datagram,
// each BIO_read returns one datagram (truncated to the buffer, like recv).

using DatagramQueue = std::deque<Datagram>;

DatagramQueue& queue_of(BIO* bio) { return *static_cast<DatagramQueue*>(BIO_get_data(bio)); }

int queue_bio_write(BIO* bio, const char* data, int len) {
  BIO_clear_retry_flags(bio);
  if (len < 0 || (len > 0 && data == nullptr)) return -1;
  auto& queue = queue_of(bio);
  if (queue.size() >= kMaxQueuedDatagrams) return len;  // full: dropped, as a congested link would
  try {
    const auto* p = reinterpret_cast<const std::uint8_t*>(data);
    queue.emplace_back(p, p + len);
  } catch (...) {
    return -1;
  }
  return len;
}

int queue_bio_read(BIO* bio, char* out, int len) {
  BIO_clear_retry_flags(bio);
  auto& queue = queue_of(bio);
  if (queue.empty()) {
    BIO_set_retry_read(bio);
    return -1;
  }
  if (len <= 0 || out == nullptr) return 0;
  const auto n = std::min(queue.front().size(), static_cast<std::size_t>(len));
  std::memcpy(out, queue.front().data(), n);
  queue.pop_front();
  return static_cast<int>(n);
}

long queue_bio_ctrl(BIO* bio, int cmd, long, void*) {
  switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_PENDING: return queue_of(bio).empty() ? 0 : static_cast<long>(queue_of(bio).front().size());
    case BIO_CTRL_WPENDING: return 0;  // every write is already a whole datagram
    case BIO_CTRL_DGRAM_QUERY_MTU:
    case BIO_CTRL_DGRAM_GET_FALLBACK_MTU: return static_cast<long>(kDtlsMtu);
    default: return 0;  // no peer address, no MTU overhead, no socket timeouts
  }
}

int queue_bio_create(BIO* bio) {
  try {
    BIO_set_data(bio, new DatagramQueue);
  } catch (...) {
    return 0;
  }
  BIO_set_init(bio, 1);
  return 1;
}

int queue_bio_destroy(BIO* bio) {
  if (bio == nullptr) return 0;
  delete static_cast<DatagramQueue*>(BIO_get_data(bio));
  BIO_set_data(bio, nullptr);
  BIO_set_init(bio, 0);
  return 1;
}

BIO_METHOD* queue_bio_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "wownet datagram queue");
    if (m == nullptr) return m;
    BIO_meth_set_write(m, queue_bio_write);
    BIO_meth_set_read(m, queue_bio_read);
    BIO_meth_set_ctrl(m, queue_bio_ctrl);
    BIO_meth_set_create(m, queue_bio_create);
    BIO_meth_set_destroy(m, queue_bio_destroy);
    return m;
  }();
  return method;
}

// ---------------------------------------------------------------------------
// DTLS record framing (RFC 6347 §4.1), just enough to sanity-check datagrams.

struct RecordView {
  std::uint8_t type = 0;
  std::uint16_t epoch = 0;
  ConstByteSpan body;
};

// Calls f(record) for each record; false unless `data` is a non-empty run of
// well-framed DTLS records (content type 20..23, version 0xFE.., lengths fit).
template <class F>
bool for_each_record(ConstByteSpan data, F&& f) {
  if (data.empty()) return false;
  std::size_t off = 0;
  while (off < data.size()) {
    if (data.size() - off < kRecordHeaderSize) return false;
    const std::uint8_t* h = data.data() + off;
    if (h[0] < 20 || h[0] > 23 || h[1] != 0xfe) return false;
    const std::size_t length = load16(h + 11);
    if (length > data.size() - off - kRecordHeaderSize) return false;
    f(RecordView{h[0], load16(h + 3), data.subspan(off + kRecordHeaderSize, length)});
    off += kRecordHeaderSize + length;
  }
  return true;
}

// True if the datagram's first record is an epoch-0 handshake record that
// starts a ClientHello.
bool looks_like_client_hello(ConstByteSpan data) {
  bool first = true, hello = false;
  const bool framed = for_each_record(data, [&](const RecordView& r) {
    if (first)
      hello = r.type == kContentHandshake && r.epoch == 0 && r.body.size() >= kHandshakeHeaderSize &&
              r.body[0] == kHandshakeClientHello;
    first = false;
  });
  return framed && hello;
}

// The 32-byte random of a ClientHello whose first fragment is in the
// datagram's first record; nullopt if there is none.
std::optional<std::array<std::uint8_t, 32>> client_hello_random(ConstByteSpan data) {
  std::optional<std::array<std::uint8_t, 32>> random;
  bool first = true;
  const bool framed = for_each_record(data, [&](const RecordView& r) {
    constexpr std::size_t kRandomOffset = kHandshakeHeaderSize + 2;  // after client_version
    if (first && r.type == kContentHandshake && r.epoch == 0 && r.body.size() >= kRandomOffset + 32 &&
        r.body[0] == kHandshakeClientHello && r.body[6] == 0 && r.body[7] == 0 && r.body[8] == 0) {
      random.emplace();
      std::copy_n(r.body.begin() + kRandomOffset, 32, random->begin());
    }
    first = false;
  });
  return framed ? random : std::nullopt;
}

// First OpenSSL error on this thread's queue as text ("" if none).
std::string openssl_error_text() {
  const unsigned long e = ERR_peek_error();
  if (e == 0) return {};
  const char* reason = ERR_reason_error_string(e);
  if (reason != nullptr) return reason;
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

}  // namespace

namespace detail {

// What an SSL's app data points to: the cookie callbacks need the secret and
// the peer address; the verify and info callbacks need the session.
struct DtlsSslOwner {
  std::shared_ptr<const DtlsContextShared> shared;
  std::string peer_address;
  DtlsSessionCore* session = nullptr;  // null for the listener
};

struct DtlsContextCore {
  std::shared_ptr<DtlsContextShared> shared;
  DtlsSslOwner listener_owner;
  DtlsSslHandle listener;  // after listener_owner: freed first
  DtlsBioAddrHandle listen_addr;
  DtlsContext::Stats stats;
};

struct DtlsSessionCore {
  using State = DtlsSession::State;

  DtlsSslOwner owner;
  DtlsSslHandle ssl;  // after owner: freed first
  Verifier verifier;
  bool client = false;
  State state = State::Handshaking;
  std::string failure_reason;
  std::string peer_id;
  std::int64_t now_ms = 0;  // time of the call being processed

  // Filled by the callbacks during SSL calls.
  bool peer_verified = false;
  bool verify_rejected = false;
  std::string verify_reason;
  int alert_received = -1;  // fatal alert description, -1 if none
  int alert_sent = -1;

  // Retransmission (see dtls.h).
  std::vector<Datagram> flight;        // last handshake flight, while Handshaking
  std::vector<Datagram> final_flight;  // server: last flight, re-sent on demand
  int final_flight_resends = 0;
  std::int64_t retransmit_interval_ms = 0;
  std::int64_t retransmit_at_ms = 0;
  std::int64_t handshake_deadline_ms = 0;

  std::deque<Datagram> outbound;
  std::deque<Datagram> received;
  std::vector<std::uint8_t> read_buffer;
  DtlsSession::Stats stats;

  const DtlsTimers& timers() const { return owner.shared->timers; }
  DatagramQueue& ssl_in() { return queue_of(SSL_get_rbio(ssl.get())); }
  DatagramQueue& ssl_out() { return queue_of(SSL_get_wbio(ssl.get())); }

  void fail(std::string reason) {
    if (state == State::Failed || state == State::Closed) return;
    if (state == State::Handshaking) peer_id.clear();  // accepted certificate, but no completed handshake
    state = State::Failed;
    failure_reason = std::move(reason);
    flight.clear();
    final_flight.clear();
  }

  // Reason for a failed SSL call; reads (does not clear) the error queue.
  std::string describe_failure(const char* what) const {
    if (verify_rejected) return "peer certificate rejected: " + verify_reason;
    if (alert_received >= 0) return std::string("received fatal alert: ") + SSL_alert_desc_string_long(alert_received);
    std::string text = std::string(what) + " failed";
    const std::string err = openssl_error_text();
    if (!err.empty()) text += ": " + err;
    if (alert_sent >= 0) text += std::string(" (sent alert: ") + SSL_alert_desc_string_long(alert_sent) + ")";
    return text;
  }

  void enqueue(const Datagram& d) {
    if (outbound.size() >= kMaxQueuedDatagrams) return;
    outbound.push_back(d);
    ++stats.datagrams_out;
  }

  // Moves what OpenSSL wrote to the outbound queue. After a handshake step,
  // that output is the new flight to retransmit (or the server's last one).
  void collect_output(bool handshake_step) {
    auto& out = ssl_out();
    if (out.empty()) return;
    // OpenSSL writes one record per BIO_write; pack records up to the MTU.
    std::vector<Datagram> fresh;
    for (auto& record : out) {
      if (!fresh.empty() && fresh.back().size() + record.size() <= kDtlsMtu) {
        fresh.back().insert(fresh.back().end(), record.begin(), record.end());
      } else {
        fresh.push_back(std::move(record));
      }
    }
    out.clear();
    if (handshake_step && state == State::Handshaking) {
      flight = fresh;
      retransmit_interval_ms = timers().initial_retransmit_ms;
      retransmit_at_ms = now_ms + retransmit_interval_ms;
    } else if (handshake_step && state == State::Established && !client) {
      final_flight = fresh;
    }
    for (const auto& d : fresh) enqueue(d);
  }

  void drive_handshake() {
    ERR_clear_error();
    const int r = SSL_do_handshake(ssl.get());
    if (r == 1) {
      if (peer_verified && !peer_id.empty()) {
        state = State::Established;
        flight.clear();
      } else {
        fail("handshake completed without an accepted peer certificate");
      }
    } else {
      const int err = SSL_get_error(ssl.get(), r);
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) fail(describe_failure("handshake"));
    }
    ERR_clear_error();
    collect_output(true);
    if (state == State::Established) read_application();
  }

  void read_application() {
    if (read_buffer.empty()) read_buffer.resize(kMaxRecordPlaintext);
    for (;;) {
      ERR_clear_error();
      const int n = SSL_read(ssl.get(), read_buffer.data(), static_cast<int>(read_buffer.size()));
      if (n > 0) {
        final_flight.clear();  // the peer sends data: it has our last flight
        if (received.size() >= kMaxQueuedMessages) {
          ++stats.dropped_messages;
        } else {
          received.emplace_back(read_buffer.begin(), read_buffer.begin() + n);
        }
        continue;
      }
      const int err = SSL_get_error(ssl.get(), n);
      if (err == SSL_ERROR_ZERO_RETURN) {
        state = State::Closed;
        failure_reason = "peer closed the session";
      } else if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
        fail(describe_failure("read"));
      }
      break;
    }
    ERR_clear_error();
    collect_output(false);
  }

  // Runs inside OpenSSL: must not throw.
  int verify_peer(X509_STORE_CTX* store_ctx) noexcept {
    try {
      return run_verifier(store_ctx);
    } catch (...) {  // out of memory while recording the outcome
      verify_rejected = true;
      X509_STORE_CTX_set_error(store_ctx, X509_V_ERR_OUT_OF_MEM);
      return 0;
    }
  }

  int run_verifier(X509_STORE_CTX* store_ctx) {
    X509* leaf = X509_STORE_CTX_get0_cert(store_ctx);
    STACK_OF(X509)* chain = X509_STORE_CTX_get0_untrusted(store_ctx);
    VerifyOutcome outcome;
    if (!verifier) {
      outcome.reason = "no certificate verifier configured";
    } else if (leaf == nullptr) {
      outcome.reason = "no peer certificate";
    } else {
      try {
        outcome = verifier(leaf, chain, now_ms);
      } catch (...) {
        outcome = VerifyOutcome{false, "certificate verifier threw", {}, VerifyAlert::BadCertificate};
      }
      if (outcome.ok && outcome.peer_id.empty()) {
        outcome = VerifyOutcome{false, "certificate verifier gave no peer id", {}, VerifyAlert::BadCertificate};
      }
    }
    if (outcome.ok) {
      peer_verified = true;
      peer_id = std::move(outcome.peer_id);
      X509_STORE_CTX_set_error(store_ctx, X509_V_OK);
      return 1;
    }
    verify_rejected = true;
    verify_reason = outcome.reason.empty() ? std::string("rejected by verifier") : std::move(outcome.reason);
    // OpenSSL turns the verify error into the alert the peer receives.
    int x509_error = X509_V_ERR_CERT_REJECTED;  // bad_certificate
    switch (outcome.alert) {
      case VerifyAlert::BadCertificate: break;
      case VerifyAlert::UnknownCa: x509_error = X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY; break;
      case VerifyAlert::CertificateExpired: x509_error = X509_V_ERR_CERT_HAS_EXPIRED; break;
      case VerifyAlert::CertificateRevoked: x509_error = X509_V_ERR_CERT_REVOKED; break;
    }
    X509_STORE_CTX_set_error(store_ctx, x509_error);
    return 0;
  }
};

}  // namespace detail

namespace {

using detail::DtlsSessionCore;
using detail::DtlsSslOwner;

DtlsSslOwner* owner_of(const SSL* ssl) { return static_cast<DtlsSslOwner*>(SSL_get_app_data(ssl)); }

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
  const DtlsSslOwner* owner = owner_of(ssl);
  std::array<std::uint8_t, kCookieSize> mac{};
  if (owner == nullptr ||
      !compute_cookie(owner->shared->hmac.get(), owner->shared->cookie_secret, owner->peer_address, mac))
    return 0;
  std::memcpy(cookie, mac.data(), mac.size());
  *cookie_len = static_cast<unsigned int>(mac.size());
  return 1;
}

int verify_cookie_cb(SSL* ssl, const unsigned char* cookie, unsigned int cookie_len) {
  const DtlsSslOwner* owner = owner_of(ssl);
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

int cert_verify_cb(X509_STORE_CTX* store_ctx, void*) {
  auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store_ctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
  DtlsSslOwner* owner = ssl != nullptr ? owner_of(ssl) : nullptr;
  if (owner == nullptr || owner->session == nullptr) {
    X509_STORE_CTX_set_error(store_ctx, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  }
  return owner->session->verify_peer(store_ctx);
}

void info_cb(const SSL* ssl, int where, int ret) {
  if ((where & SSL_CB_ALERT) == 0) return;
  DtlsSslOwner* owner = owner_of(ssl);
  if (owner == nullptr || owner->session == nullptr) return;
  if ((ret >> 8) != SSL3_AL_FATAL) return;
  ((where & SSL_CB_READ) != 0 ? owner->session->alert_received : owner->session->alert_sent) = ret & 0xff;
}

unsigned int pinned_timer_cb(SSL*, unsigned int) { return kPinnedOpensslTimerUs; }

// A new SSL on the context with datagram-queue BIOs; null on failure.
SslHandle new_ssl(SSL_CTX* ctx, DtlsSslOwner* owner) {
  SslHandle ssl(SSL_new(ctx));
  if (!ssl) return nullptr;
  BIO* rbio = BIO_new(queue_bio_method());
  BIO* wbio = BIO_new(queue_bio_method());
  if (rbio == nullptr || wbio == nullptr) {
    BIO_free(rbio);
    BIO_free(wbio);
    return nullptr;
  }
  SSL_set_bio(ssl.get(), rbio, wbio);
  if (SSL_set_mtu(ssl.get(), static_cast<long>(kDtlsMtu)) <= 0) return nullptr;  // returns the MTU set
  DTLS_set_timer_cb(ssl.get(), pinned_timer_cb);
  SSL_set_info_callback(ssl.get(), info_cb);
  SSL_set_app_data(ssl.get(), owner);
  return ssl;
}

std::unique_ptr<DtlsSessionCore> new_session_core(const std::shared_ptr<ContextShared>& shared,
                                                  std::string peer_address, Verifier verifier, bool client,
                                                  std::int64_t now_ms) {
  auto core = std::make_unique<DtlsSessionCore>();
  core->owner.shared = shared;
  core->owner.peer_address = std::move(peer_address);
  core->owner.session = core.get();
  core->verifier = std::move(verifier);
  core->client = client;
  core->now_ms = now_ms;
  core->handshake_deadline_ms = now_ms + shared->timers.handshake_timeout_ms;
  return core;
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

bool is_dtls_client_hello(ConstByteSpan datagram) { return looks_like_client_hello(datagram); }

// ---------------------------------------------------------------------------
// DtlsContext

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
  if (queue_bio_method() == nullptr) {
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
  SSL_CTX_set_cert_verify_callback(ctx, cert_verify_cb, nullptr);
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

// ---------------------------------------------------------------------------
// DtlsSession

DtlsSession::DtlsSession(std::unique_ptr<detail::DtlsSessionCore> core) : core_(std::move(core)) {}
DtlsSession::~DtlsSession() = default;

std::unique_ptr<DtlsSession> DtlsSession::client(DtlsContext& context, std::string peer_address, Verifier verifier,
                                                 std::int64_t now_ms) {
  try {
    auto core = new_session_core(context.core_->shared, std::move(peer_address), std::move(verifier), true, now_ms);
    core->ssl = new_ssl(context.core_->shared->ctx.get(), &core->owner);
    if (!core->ssl) {
      ERR_clear_error();
      return nullptr;
    }
    SSL_set_connect_state(core->ssl.get());
    core->drive_handshake();
    return std::unique_ptr<DtlsSession>(new DtlsSession(std::move(core)));
  } catch (...) {
    ERR_clear_error();
    return nullptr;
  }
}

std::unique_ptr<DtlsSession> DtlsSession::server(DtlsContext& context, std::string peer_address, ConstByteSpan datagram,
                                                 Verifier verifier, std::int64_t now_ms,
                                                 std::vector<std::uint8_t>& reply) {
  reply.clear();
  auto& ctx = *context.core_;
  if (!looks_like_client_hello(datagram)) {
    ++ctx.stats.hellos_ignored;
    return nullptr;
  }
  try {
    if (!ctx.listener) {
      ctx.listener = new_ssl(ctx.shared->ctx.get(), &ctx.listener_owner);
      if (!ctx.listener) {
        ERR_clear_error();
        ++ctx.stats.hellos_ignored;
        return nullptr;
      }
      SSL_set_accept_state(ctx.listener.get());
    }
    ctx.listener_owner.peer_address = peer_address;
    SSL* listener = ctx.listener.get();
    queue_of(SSL_get_rbio(listener)).emplace_back(datagram.begin(), datagram.end());
    ERR_clear_error();
    const int r = DTLSv1_listen(listener, ctx.listen_addr.get());
    ERR_clear_error();
    ctx.listener_owner.peer_address.clear();
    queue_of(SSL_get_rbio(listener)).clear();
    auto& out = queue_of(SSL_get_wbio(listener));
    if (r == 0 && !out.empty()) {
      reply = std::move(out.front());
      ++ctx.stats.hello_verify_sent;
    }
    out.clear();
    if (r <= 0) {
      if (reply.empty()) ++ctx.stats.hellos_ignored;
      if (r < 0) ctx.listener.reset();  // unknown state: start afresh next time
      return nullptr;
    }
    // Valid cookie: the listener, primed by DTLSv1_listen, becomes the session.
    auto core = new_session_core(ctx.shared, std::move(peer_address), std::move(verifier), false, now_ms);
    core->ssl = std::move(ctx.listener);
    SSL_set_app_data(core->ssl.get(), &core->owner);
    ++ctx.stats.sessions_accepted;
    core->drive_handshake();
    return std::unique_ptr<DtlsSession>(new DtlsSession(std::move(core)));
  } catch (...) {
    ERR_clear_error();
    ctx.listener.reset();
    reply.clear();
    return nullptr;
  }
}

void DtlsSession::on_datagram(ConstByteSpan data, std::int64_t now_ms) {
  auto& c = *core_;
  ++c.stats.datagrams_in;
  if (c.state == State::Failed || c.state == State::Closed) {
    ++c.stats.ignored_datagrams;
    return;
  }
  bool peer_finished_again = false;  // an epoch >= 1 handshake record: the peer repeats its Finished
  if (!for_each_record(data, [&](const RecordView& r) {
        if (r.type == kContentHandshake && r.epoch >= 1) peer_finished_again = true;
      })) {
    ++c.stats.ignored_datagrams;
    return;
  }
  c.now_ms = now_ms;
  try {
    c.ssl_in().emplace_back(data.begin(), data.end());
    if (c.state == State::Handshaking) {
      c.drive_handshake();
    } else {
      if (peer_finished_again && !c.final_flight.empty() && c.final_flight_resends < kMaxFinalFlightResends) {
        ++c.final_flight_resends;
        for (const auto& d : c.final_flight) c.enqueue(d);
        ++c.stats.retransmitted_flights;
      }
      c.read_application();
    }
  } catch (...) {
    c.fail("out of memory");
  }
  c.ssl_in().clear();
}

bool DtlsSession::take_datagram(std::vector<std::uint8_t>& out) {
  auto& q = core_->outbound;
  if (q.empty()) return false;
  out = std::move(q.front());
  q.pop_front();
  return true;
}

std::optional<std::int64_t> DtlsSession::next_timeout_ms() const {
  const auto& c = *core_;
  if (c.state != State::Handshaking) return std::nullopt;
  std::int64_t t = c.handshake_deadline_ms;
  if (!c.flight.empty()) t = std::min(t, c.retransmit_at_ms);
  return t;
}

void DtlsSession::on_timeout(std::int64_t now_ms) {
  auto& c = *core_;
  if (c.state != State::Handshaking) return;
  c.now_ms = now_ms;
  if (now_ms >= c.handshake_deadline_ms) {
    c.fail("handshake timed out after " + std::to_string(c.timers().handshake_timeout_ms) + " ms (" +
           std::to_string(c.stats.retransmitted_flights) + " retransmissions)");
    return;
  }
  if (c.flight.empty() || now_ms < c.retransmit_at_ms) return;
  for (const auto& d : c.flight) c.enqueue(d);
  ++c.stats.retransmitted_flights;
  c.retransmit_interval_ms = std::min(c.retransmit_interval_ms * 2, c.timers().max_retransmit_ms);
  c.retransmit_at_ms = now_ms + c.retransmit_interval_ms;
}

DtlsSession::State DtlsSession::state() const { return core_->state; }
bool DtlsSession::is_client() const { return core_->client; }
const std::string& DtlsSession::peer_address() const { return core_->owner.peer_address; }
const std::string& DtlsSession::failure_reason() const { return core_->failure_reason; }
const std::string& DtlsSession::peer_id() const { return core_->peer_id; }
const DtlsSession::Stats& DtlsSession::stats() const { return core_->stats; }

bool DtlsSession::is_new_client_hello(ConstByteSpan datagram) const {
  if (core_->client) return false;
  const auto random = client_hello_random(datagram);
  if (!random) return false;
  std::array<std::uint8_t, 32> ours{};
  if (SSL_get_client_random(core_->ssl.get(), ours.data(), ours.size()) != ours.size()) return true;
  return CRYPTO_memcmp(random->data(), ours.data(), ours.size()) != 0;
}

std::string DtlsSession::cipher() const {
  if (core_->state != State::Established) return {};
  const SSL_CIPHER* cipher = SSL_get_current_cipher(core_->ssl.get());
  return cipher != nullptr ? SSL_CIPHER_get_name(cipher) : "";
}

bool DtlsSession::export_keys(std::span<std::uint8_t, kDtlsKeySize> client_to_server,
                              std::span<std::uint8_t, kDtlsKeySize> server_to_client) {
  if (core_->state != State::Established) return false;
  std::array<std::uint8_t, 2 * kDtlsKeySize> material{};
  ERR_clear_error();
  const bool ok = SSL_export_keying_material(core_->ssl.get(), material.data(), material.size(), kDtlsExporterLabel,
                                             sizeof kDtlsExporterLabel - 1, nullptr, 0, 0) == 1;
  ERR_clear_error();
  if (ok) {
    std::copy_n(material.begin(), kDtlsKeySize, client_to_server.begin());
    std::copy_n(material.begin() + kDtlsKeySize, kDtlsKeySize, server_to_client.begin());
  }
  OPENSSL_cleanse(material.data(), material.size());
  return ok;
}

bool DtlsSession::send(ConstByteSpan message) {
  auto& c = *core_;
  if (c.state != State::Established || message.empty() || message.size() > kDtlsMaxMessage) return false;
  ERR_clear_error();
  const int n = SSL_write(c.ssl.get(), message.data(), static_cast<int>(message.size()));
  if (n != static_cast<int>(message.size())) {
    const int err = SSL_get_error(c.ssl.get(), n);
    if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) c.fail(c.describe_failure("write"));
    ERR_clear_error();
    c.collect_output(false);
    return false;
  }
  ERR_clear_error();
  try {
    c.collect_output(false);
  } catch (...) {
    c.fail("out of memory");
    return false;
  }
  return true;
}

bool DtlsSession::receive(std::vector<std::uint8_t>& message) {
  auto& q = core_->received;
  if (q.empty()) return false;
  message = std::move(q.front());
  q.pop_front();
  return true;
}

void DtlsSession::close() {
  auto& c = *core_;
  if (c.state == State::Failed || c.state == State::Closed) return;
  ERR_clear_error();
  SSL_shutdown(c.ssl.get());
  ERR_clear_error();
  c.state = State::Closed;
  c.failure_reason = "closed locally";
  c.flight.clear();
  c.final_flight.clear();
  try {
    c.collect_output(false);
  } catch (...) {
  }
}

}  // namespace wownet::crypto
