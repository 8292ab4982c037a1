// One DTLS + data channel session: see session.h and peer_manager.h.
#include "overlay/session.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <utility>

#include "core/bytes.h"
#include "crypto/ossl.h"
#include "proto/overlay.pb.h"

namespace wownet::overlay {
namespace {

using Key = std::array<std::uint8_t, crypto::kDtlsKeySize>;
using SessionState = crypto::DtlsSession::State;

constexpr char kVersion[] = "wownet-overlay/1";
// Hello.request_id flags: the sender has not seen our Hello yet and wants
// it; the sender (the DTLS client) had a keyed session with us when it
// started this handshake, which replaces that one (a rekey).
constexpr std::uint64_t kHelloWantsReply = 1, kHelloReplaces = 2;
constexpr std::size_t kRecordHeader = 13;

// OpenSSL 3.0 fails a DTLS session outright on a protected record too short
// to hold the AEAD's explicit nonce and tag, although anyone can forge one
// (RFC 6347 §4.1.2.7: invalid records should be discarded). Such records
// never come from a genuine peer: the shortest, an alert, takes 2 + 8 + 16
// bytes with AES-GCM and 2 + 16 with ChaCha20-Poly1305.
constexpr std::size_t kMinProtectedRecord = 24;
constexpr std::size_t kMinProtectedRecordChacha = 16;

std::uint64_t load64(const std::uint8_t* p) { return std::uint64_t{load32(p)} << 32 | load32(p + 4); }

ConstByteSpan bytes_of(const std::string& s) { return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}; }

}  // namespace

// The peer certificate a session accepted, kept for recheck().
struct PeerSession::Cert {
  crypto::ossl::X509Ptr cert;
  crypto::ossl::X509StackPtr chain;
  std::string name;  // from name_of, if given
};

PeerSession::PeerSession(const SessionSettings& settings, const UdpEndpoint& endpoint, bool client)
    : settings_(settings), endpoint_(endpoint), client_(client), min_record_(kMinProtectedRecord) {}

PeerSession::~PeerSession() { OPENSSL_cleanse(send_key_.data(), send_key_.size()); }

crypto::Verifier PeerSession::wrap_verifier(const SessionSettings& settings, std::shared_ptr<Cert> holder) {
  return [&settings, holder](X509* cert, STACK_OF(X509) * chain, std::int64_t now_ms) {
    crypto::VerifyOutcome o;
    if (!settings.verify) {
      o.reason = "no certificate verifier configured";
      return o;
    }
    o = settings.verify(cert, chain, now_ms);
    if (o.ok && cert != nullptr) {
      X509_up_ref(cert);
      holder->cert.reset(cert);
      holder->chain.reset(chain != nullptr ? X509_chain_up_ref(chain) : nullptr);
      if (settings.name_of) holder->name = settings.name_of(cert);
    }
    return o;
  };
}

std::unique_ptr<PeerSession> PeerSession::client(const SessionSettings& settings, const UdpEndpoint& endpoint,
                                                 std::string target_node, bool replaces, std::int64_t now_ms) {
  auto cert = std::make_shared<Cert>();
  auto dtls =
      crypto::DtlsSession::client(*settings.context, endpoint.to_string(), wrap_verifier(settings, cert), now_ms);
  if (!dtls) return nullptr;
  std::unique_ptr<PeerSession> s(new PeerSession(settings, endpoint, true));
  s->dtls_ = std::move(dtls);
  s->cert_ = std::move(cert);
  s->target_node_ = std::move(target_node);
  s->replaces_ = replaces;
  s->created_ms_ = now_ms;
  return s;
}

std::unique_ptr<PeerSession> PeerSession::server(const SessionSettings& settings, const UdpEndpoint& from,
                                                 ConstByteSpan client_hello, std::int64_t now_ms,
                                                 std::vector<std::uint8_t>& reply) {
  auto cert = std::make_shared<Cert>();
  auto dtls = crypto::DtlsSession::server(*settings.context, from.to_string(), client_hello,
                                          wrap_verifier(settings, cert), now_ms, reply);
  if (!dtls) return nullptr;
  std::unique_ptr<PeerSession> s(new PeerSession(settings, from, false));
  s->dtls_ = std::move(dtls);
  s->cert_ = std::move(cert);
  s->created_ms_ = now_ms;
  return s;
}

bool PeerSession::handshaking() const { return !dead_ && dtls_->state() == SessionState::Handshaking; }

bool PeerSession::is_new_client_hello(ConstByteSpan datagram) const { return dtls_->is_new_client_hello(datagram); }

// ---------------------------------------------------------------------------
// DTLS

void PeerSession::start(std::int64_t now_ms, SessionHost& host) {
  if (client_ && dtls_->take_datagram(dtls_buffer_)) {  // our ClientHello
    client_random_ = client_hello_random(dtls_buffer_);
    host.send_datagram(endpoint_, dtls_buffer_);
  }
  pump(now_ms, host);
}

void PeerSession::on_dtls(std::int64_t now_ms, ConstByteSpan datagram, SessionHost& host) {
  if (dead_) return;
  dtls_->on_datagram(datagram, now_ms);
  pump(now_ms, host);
}

void PeerSession::flush(SessionHost& host) {
  while (dtls_->take_datagram(dtls_buffer_)) host.send_datagram(endpoint_, dtls_buffer_);
}

// After any call into the DTLS session: sends its output and acts on what changed.
void PeerSession::pump(std::int64_t now_ms, SessionHost& host) {
  if (dead_) return;
  flush(host);
  if (!established_ && dtls_->state() == SessionState::Established) {
    on_established(now_ms, host);
  } else if (established_) {
    std::vector<std::uint8_t> message;
    while (!dead_ && dtls_->receive(message)) handle_message(now_ms, message, false, host);
  }
  if (dead_) return;
  flush(host);
  const SessionState st = dtls_->state();
  if (st == SessionState::Failed || st == SessionState::Closed) {
    const std::string& r = dtls_->failure_reason();
    end(r.empty() ? std::string("session closed") : r, host);
  }
}

void PeerSession::end(const std::string& reason, SessionHost& host) {
  if (dead_) return;
  host.on_ended(*this, reason);
  dead_ = true;
}

void PeerSession::close(const std::string& reason, SessionHost& host) {
  if (dead_) return;
  dtls_->close();
  flush(host);
  end(reason, host);
}

void PeerSession::on_established(std::int64_t now_ms, SessionHost& host) {
  established_ = true;
  node_id_ = dtls_->peer_id();
  last_rx_ms_ = last_tx_ms_ = now_ms;
  if (dtls_->cipher().find("CHACHA20") != std::string::npos) min_record_ = kMinProtectedRecordChacha;

  my_index_ = host.on_established(*this);
  if (dead_) return;
  Key c2s{}, s2c{};
  if (!dtls_->export_keys(c2s, s2c)) {
    close("cannot export data channel keys", host);
    return;
  }
  tag_ = load64(c2s.data());
  send_key_ = client_ ? c2s : s2c;
  const Key& receive_key = client_ ? s2c : c2s;
  bool ok = true;
  try {
    opener_.emplace(settings_.config.cipher, receive_key, my_index_);
  } catch (...) {
    ok = false;
  }
  OPENSSL_cleanse(c2s.data(), c2s.size());
  OPENSSL_cleanse(s2c.data(), s2c.size());
  if (!ok) {
    close("cannot set up the data channel", host);
    return;
  }

  // Messages that came with the handshake (usually the peer's Hello) are
  // read first, so that our Hello knows whether to ask for an answer.
  std::vector<std::vector<std::uint8_t>> early;
  std::vector<std::uint8_t> message;
  bool have_hello = false;
  while (dtls_->receive(message)) {
    NodeMessage m;
    if (m.ParseFromArray(message.data(), static_cast<int>(message.size())) && m.has_hello()) have_hello = true;
    early.push_back(std::move(message));
  }
  send_hello(now_ms, !have_hello, host);
  hello_interval_ms_ = std::max<std::int64_t>(settings_.config.hello_retry_ms, 1);
  hello_retry_at_ms_ = now_ms + hello_interval_ms_;
  for (const auto& m : early) {
    if (dead_) return;
    handle_message(now_ms, m, true, host);
  }
}

// ---------------------------------------------------------------------------
// Control messages

bool PeerSession::send_message(std::int64_t now_ms, ConstByteSpan message, SessionHost& host) {
  if (dead_ || !dtls_->send(message)) return false;
  last_tx_ms_ = now_ms;
  flush(host);
  return true;
}

bool PeerSession::send_node_message(std::int64_t now_ms, const NodeMessage& m, SessionHost& host) {
  std::string bytes;
  if (!m.SerializeToString(&bytes)) return false;
  return send_message(now_ms, bytes_of(bytes), host);
}

void PeerSession::send_hello(std::int64_t now_ms, bool wants_reply, SessionHost& host) {
  NodeMessage m;
  m.set_request_id((wants_reply ? kHelloWantsReply : 0) | (client_ && replaces_ ? kHelloReplaces : 0));
  Hello* h = m.mutable_hello();
  h->set_node_name(settings_.self_name);
  h->set_receiver_index(my_index_);
  h->set_cipher(std::string(crypto::to_string(settings_.config.cipher)));
  h->set_version(kVersion);
  send_node_message(now_ms, m, host);
}

void PeerSession::send_keepalive(std::int64_t now_ms, SessionHost& host) {
  const std::uint64_t id = 2 * keepalive_seq_++ + (client_ ? 1 : 2);
  last_keepalive_ms_ = now_ms;
  keepalive_outstanding_ = id;
  keepalive_sent_ms_ = now_ms;
  // An empty data packet first: it moves the session on the peer's side
  // if our address changed (DTLS records alone do not).
  if (keyed()) {
    std::array<std::uint8_t, crypto::kDataOverhead> empty{};
    const std::size_t n = sealer_->seal(ConstByteSpan(), empty);
    if (n != 0) host.send_datagram(endpoint_, ConstByteSpan(empty.data(), n));
  }
  NodeMessage m;
  m.set_request_id(id);
  m.mutable_keepalive();
  send_node_message(now_ms, m, host);
}

// `hello_answered`: our Hello just went out without asking for an answer.
void PeerSession::handle_message(std::int64_t now_ms, ConstByteSpan bytes, bool hello_answered, SessionHost& host) {
  NodeMessage m;
  if (bytes.empty() || !m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    host.tally(SessionHost::Tally::Malformed);
    return;
  }
  last_rx_ms_ = now_ms;
  switch (m.body_case()) {
    case NodeMessage::kHello: on_hello(now_ms, m, hello_answered, host); break;
    case NodeMessage::kKeepalive:
      peer_has_hello_ = true;  // the peer keepalives keyed sessions only
      on_keepalive(now_ms, m, host);
      break;
    case NodeMessage::BODY_NOT_SET: host.tally(SessionHost::Tally::Malformed); break;
    default:
      peer_has_hello_ = true;  // the peer sends control on keyed sessions only
      host.on_control(*this, m);
      break;
  }
}

void PeerSession::on_hello(std::int64_t now_ms, const NodeMessage& m, bool hello_answered, SessionHost& host) {
  const Hello& h = m.hello();
  const auto cipher = crypto::parse_cipher(h.cipher());
  if (!keyed()) {
    if (!cipher) {
      host.tally(SessionHost::Tally::NotAllowed);
      close("peer wants unsupported cipher '" + h.cipher().substr(0, 32) + "'", host);
      return;
    }
    try {
      sealer_.emplace(*cipher, send_key_, h.receiver_index());
    } catch (...) {
      close("cannot set up the data channel", host);
      return;
    }
    OPENSSL_cleanse(send_key_.data(), send_key_.size());
    keyed_ms_ = now_ms;
    last_keepalive_ms_ = kLongAgo;
    if (!client_) replaces_ = (m.request_id() & kHelloReplaces) != 0;
    peer_name_ = settings_.name_of && cert_ && !cert_->name.empty() ? cert_->name : h.node_name();
    host.on_keyed(*this);
    if (dead_) return;
  } else if (h.receiver_index() != sealer_->peer_receiver_index() || cipher != sealer_->cipher()) {
    host.tally(SessionHost::Tally::NotAllowed);  // a session's Hello never changes
    return;
  }
  if ((m.request_id() & kHelloWantsReply) == 0) {
    peer_has_hello_ = true;
  } else if (!hello_answered) {
    send_hello(now_ms, false, host);
  }
}

void PeerSession::on_keepalive(std::int64_t now_ms, const NodeMessage& m, SessionHost& host) {
  const std::uint64_t id = m.request_id();
  if (id == 0) return;
  const bool ours = (id & 1) == (client_ ? 1u : 0u);
  if (ours) {
    if (id == keepalive_outstanding_) {
      keepalive_outstanding_ = 0;
      host.on_rtt(*this, now_ms - keepalive_sent_ms_);
    }
    return;
  }
  NodeMessage reply;
  reply.set_request_id(id);
  reply.mutable_keepalive();
  send_node_message(now_ms, reply, host);
}

// ---------------------------------------------------------------------------
// Timers

std::int64_t PeerSession::stale_due(bool sending) const {
  if (settings_.config.stale_after_ms <= 0 || !keyed() || !sending || last_tx_ms_ <= last_rx_ms_) return kNever;
  return last_rx_ms_ + settings_.config.stale_after_ms;
}

std::int64_t PeerSession::keepalive_due() const {
  const std::int64_t every = settings_.config.keepalive_ms;
  return std::max(last_keepalive_ms_ == kLongAgo ? keyed_ms_ : last_keepalive_ms_ + every,
                  std::min(last_rx_ms_, last_tx_ms_) + every);
}

bool PeerSession::on_timer(std::int64_t now_ms, bool sending, SessionHost& host) {
  if (dead_) return false;
  if (!established_) {
    const auto t = dtls_->next_timeout_ms();
    if (t && *t <= now_ms) dtls_->on_timeout(now_ms);
    pump(now_ms, host);
    return false;
  }
  pump(now_ms, host);
  if (dead_) return false;
  const PeerConfig& config = settings_.config;
  if ((!keyed() || !peer_has_hello_) && now_ms >= hello_retry_at_ms_) {
    send_hello(now_ms, true, host);
    hello_interval_ms_ = std::min(2 * hello_interval_ms_, std::max(config.keepalive_ms, config.hello_retry_ms));
    hello_retry_at_ms_ = now_ms + std::max<std::int64_t>(hello_interval_ms_, 1);
    if (dead_) return false;
  }
  if (now_ms - last_rx_ms_ >= config.dead_after_ms) {
    end("no traffic for " + std::to_string(now_ms - last_rx_ms_) + " ms", host);
    return false;
  }
  if (stale_due(sending) <= now_ms) {
    end("no answer for " + std::to_string(now_ms - last_rx_ms_) + " ms", host);
    return false;
  }
  return keyed();
}

std::int64_t PeerSession::next_deadline(bool sending) const {
  if (dead_) return kNever;
  if (!established_) return dtls_->next_timeout_ms().value_or(kNever);
  std::int64_t t = last_rx_ms_ + settings_.config.dead_after_ms;
  if (!keyed() || !peer_has_hello_) t = std::min(t, hello_retry_at_ms_);
  if (!keyed()) return t;
  t = std::min(t, stale_due(sending));
  t = std::min(t, retire_at_ms);
  if (retire_at_ms == kNever) t = std::min(t, keepalive_due());
  return t;
}

// ---------------------------------------------------------------------------
// Data channel

std::size_t PeerSession::seal(std::int64_t now_ms, ConstByteSpan packet, ByteSpan buffer) {
  if (dead_ || !keyed()) return 0;
  const std::size_t n = sealer_->seal(packet, buffer);
  if (n != 0) last_tx_ms_ = now_ms;
  return n;
}

crypto::DataOpener::OpenResult PeerSession::open(std::int64_t now_ms, ByteSpan datagram) {
  if (!opener_) return {crypto::DataOpener::OpenResult::Error::WrongReceiver, 0};
  const auto r = opener_->open(datagram, datagram.subspan(crypto::kDataHeaderSize));
  if (r.error == crypto::DataOpener::OpenResult::Error::None) {
    last_rx_ms_ = now_ms;
    peer_has_hello_ = true;  // it used our receiver index
  }
  return r;
}

bool PeerSession::is_newest(ConstByteSpan datagram) const {
  return opener_ && datagram.size() >= crypto::kDataHeaderSize &&
         load64(datagram.data() + 8) == opener_->replay_window().highest();
}

bool PeerSession::wants_rekey() const { return keyed() && sealer_->should_rekey(settings_.config.rekey_after_packets); }

std::optional<crypto::VerifyOutcome> PeerSession::recheck(std::int64_t now_ms) const {
  if (dead_ || !cert_ || !cert_->cert) return std::nullopt;
  crypto::VerifyOutcome o;
  try {
    if (settings_.verify) o = settings_.verify(cert_->cert.get(), cert_->chain.get(), now_ms);
  } catch (...) {
    o = crypto::VerifyOutcome{};
  }
  return o;
}

// ---------------------------------------------------------------------------
// Simultaneous handshakes and record framing

bool PeerSession::yields_to(ConstByteSpan client_hello) const {
  const auto theirs = client_hello_random(client_hello);
  return theirs && client_random_ && *theirs > *client_random_;
}

// 13-byte record header, 12-byte handshake header, 2-byte client_version,
// then 32 random bytes.
std::optional<PeerSession::ClientRandom> PeerSession::client_hello_random(ConstByteSpan d) {
  constexpr std::size_t kHandshakeHeader = 12, kRandomAt = kRecordHeader + kHandshakeHeader + 2;
  if (d.size() < kRandomAt + 32 || d[0] != 22 || d[3] != 0 || d[4] != 0 || d[kRecordHeader] != 1) return std::nullopt;
  if (load16(d.data() + 11) < kHandshakeHeader + 2 + 32) return std::nullopt;
  if ((d[kRecordHeader + 6] | d[kRecordHeader + 7] | d[kRecordHeader + 8]) != 0) return std::nullopt;  // offset 0
  ClientRandom r;
  std::copy_n(d.begin() + kRandomAt, r.size(), r.begin());
  return r;
}

std::optional<std::size_t> PeerSession::shortest_protected_record(ConstByteSpan d) {
  std::size_t shortest = SIZE_MAX;
  for (std::size_t off = 0; off < d.size();) {
    if (d.size() - off < kRecordHeader) return std::nullopt;
    const std::size_t length = load16(d.data() + off + 11);
    if (length > d.size() - off - kRecordHeader) return std::nullopt;
    if (load16(d.data() + off + 3) != 0) shortest = std::min(shortest, length);
    off += kRecordHeader + length;
  }
  return shortest;
}

}  // namespace wownet::overlay
