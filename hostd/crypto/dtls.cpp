// DTLS 1.2 session driver: see dtls.h for the cookie and timer design. The
// context (certificate, cookie secret) is in dtls_context.cpp, the datagram
// BIO and record framing in dtls_datagram.cpp.
#include "crypto/dtls.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <array>
#include <deque>
#include <utility>

#include "crypto/dtls_internal.h"

namespace wownet::crypto {
namespace {

using detail::client_hello_random;
using ContextShared = detail::DtlsContextShared;
using detail::Datagram;
using detail::for_each_record;
using detail::kContentHandshake;
using detail::looks_like_client_hello;
using detail::queue_bio_method;
using detail::queue_of;
using detail::RecordView;
using SslHandle = detail::DtlsSslHandle;

constexpr std::size_t kMaxQueuedMessages = 1024;
constexpr std::size_t kMaxRecordPlaintext = 16384;
// How often an established server re-sends its last flight on request.
constexpr int kMaxFinalFlightResends = 8;
// OpenSSL's own (wall-clock) retransmission timer is pinned at one hour, so
// it never fires during a handshake bounded by DtlsTimers::handshake_timeout_ms.
constexpr unsigned int kPinnedOpensslTimerUs = 3'600'000'000u;

}  // namespace

namespace detail {

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

int cert_verify_cb(X509_STORE_CTX* store_ctx, void*) {
  auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store_ctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
  DtlsSslOwner* owner = ssl != nullptr ? owner_of(ssl) : nullptr;
  if (owner == nullptr || owner->session == nullptr) {
    X509_STORE_CTX_set_error(store_ctx, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  }
  return owner->session->verify_peer(store_ctx);
}

}  // namespace detail

namespace {

using detail::DtlsSessionCore;
using detail::DtlsSslOwner;
using detail::owner_of;

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

}  // namespace

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
