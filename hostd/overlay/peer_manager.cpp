// Node-to-node session layer: see peer_manager.h for the protocol.
#include "overlay/peer_manager.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <deque>
#include <map>
#include <unordered_map>
#include <utility>

#include "core/bytes.h"
#include "crypto/ossl.h"
#include "overlay/index_table.h"

namespace wownet::overlay {
namespace {

using crypto::DtlsSession;
using SessionState = DtlsSession::State;
using Bytes = std::vector<std::uint8_t>;
using Random = std::array<std::uint8_t, 32>;
using Key = std::array<std::uint8_t, crypto::kDtlsKeySize>;

constexpr std::int64_t kNever = PeerManager::kNoDeadline;
constexpr std::int64_t kLongAgo = std::numeric_limits<std::int64_t>::min();
constexpr char kVersion[] = "wownet-overlay/1";
// Hello.request_id flags: the sender has not seen our Hello yet and wants
// it; the sender (the DTLS client) had a keyed session with us when it
// started this handshake, which replaces that one (a rekey).
constexpr std::uint64_t kHelloWantsReply = 1, kHelloReplaces = 2;
// An IPv4 packet of any size fits without growing the seal buffer.
constexpr std::size_t kSealBufferSize = 65535 + crypto::kDataOverhead;
// Server sessions in the handshake at once (each needs a valid cookie, so
// an address the client really owns).
constexpr std::size_t kMaxHandshaking = 1024;
// Two sessions with a node keyed closer together than this are
// simultaneous (a rekey beats a fresh one, else their tag decides);
// otherwise the newer wins (a rekey, or the peer restarted). Rekeying more
// often than this works but may take a few attempts.
constexpr std::int64_t kSimultaneousWindowMs = 5'000;

// The client random of a datagram whose first record holds the start of a
// ClientHello: 13-byte record header, 12-byte handshake header, 2-byte
// client_version, then 32 random bytes.
std::optional<Random> client_hello_random(ConstByteSpan d) {
  constexpr std::size_t kRecordHeader = 13, kHandshakeHeader = 12, kRandomAt = kRecordHeader + kHandshakeHeader + 2;
  if (d.size() < kRandomAt + 32 || d[0] != 22 || d[3] != 0 || d[4] != 0 || d[kRecordHeader] != 1) return std::nullopt;
  if (load16(d.data() + 11) < kHandshakeHeader + 2 + 32) return std::nullopt;
  if ((d[kRecordHeader + 6] | d[kRecordHeader + 7] | d[kRecordHeader + 8]) != 0) return std::nullopt;  // offset 0
  Random r;
  std::copy_n(d.begin() + kRandomAt, r.size(), r.begin());
  return r;
}

// The shortest record in epoch 1 or later in a datagram of DTLS records
// (SIZE_MAX if none); nullopt if the records are not well framed.
std::optional<std::size_t> shortest_protected_record(ConstByteSpan d) {
  constexpr std::size_t kRecordHeader = 13;
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

// OpenSSL 3.0 fails a DTLS session outright on a protected record too short
// to hold the AEAD's explicit nonce and tag, although anyone can forge one
// (RFC 6347 §4.1.2.7: invalid records should be discarded). Such records
// never come from a genuine peer: the shortest, an alert, takes 2 + 8 + 16
// bytes with AES-GCM and 2 + 16 with ChaCha20-Poly1305.
constexpr std::size_t kMinProtectedRecord = 24;
constexpr std::size_t kMinProtectedRecordChacha = 16;

std::uint64_t load64(const std::uint8_t* p) { return std::uint64_t{load32(p)} << 32 | load32(p + 4); }

ConstByteSpan bytes_of(const std::string& s) { return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}; }

// The peer certificate a session accepted, kept for recheck().
struct PeerCert {
  crypto::ossl::X509Ptr cert;
  crypto::ossl::X509StackPtr chain;
  std::string name;  // from node_name_of, if given
};

struct Peer;

// One DTLS session and, once established, its data channel.
struct Session {
  std::unique_ptr<DtlsSession> dtls;
  UdpEndpoint endpoint;     // where its datagrams come from and go to
  bool client = false;      // we started the handshake
  std::string target_node;  // client: the node we meant to reach (empty after connect())
  bool replaces = false;    // a rekey: its client had a keyed session with the peer when starting it
  std::shared_ptr<PeerCert> cert;
  std::optional<Random> client_random;           // client: of our ClientHello (simultaneous-open tie-break)
  std::size_t min_record = kMinProtectedRecord;  // shorter protected records are not offered

  bool established = false;  // DTLS established (our Hello sent)
  bool dead = false;         // ended; removed by sweep()
  std::string node_id;       // verified peer id, from established on
  Peer* peer = nullptr;      // from established on

  std::uint32_t my_index = 0;
  std::uint64_t tag = 0;                     // same on both sides; picks the survivor of simultaneous sessions
  Key send_key{};                            // until the peer's Hello builds the sealer
  std::optional<crypto::DataOpener> opener;  // from established on
  std::optional<crypto::DataSealer> sealer;  // once keyed (peer's Hello received)
  std::int64_t keyed_ms = 0;
  bool peer_has_hello = false;  // evidence that the peer has our Hello
  std::int64_t hello_interval_ms = 0;
  std::int64_t hello_retry_at_ms = kNever;

  std::int64_t last_rx_ms = 0, last_tx_ms = 0;
  std::int64_t last_keepalive_ms = kLongAgo;  // last keepalive request sent
  std::uint64_t keepalive_seq = 0, keepalive_outstanding = 0;
  std::int64_t keepalive_sent_ms = 0;
  std::int64_t retire_at_ms = kNever;

  Session() = default;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() { OPENSSL_cleanse(send_key.data(), send_key.size()); }

  bool keyed() const { return sealer.has_value(); }
  bool handshaking() const { return !dead && dtls->state() == SessionState::Handshaking; }
};

struct Queued {
  bool control = false;
  Bytes bytes;
};

struct Peer {
  std::string node_id, node_name;
  std::vector<UdpEndpoint> endpoints;        // from set_endpoints
  std::optional<UdpEndpoint> relay;          // from set_relay
  std::optional<UdpEndpoint> last_endpoint;  // of the last keyed direct session
  std::size_t next_endpoint = 0;             // which one to try next
  Session* current = nullptr;                // the keyed session we send on
  bool up = false;
  std::deque<Queued> queue;
  std::int64_t retry_at_ms = kLongAgo;        // no new direct handshake before this
  std::int64_t relay_retry_at_ms = kLongAgo;  // no new relayed handshake before this
  std::int64_t waiting_since_ms = kNever;     // traffic queued without a keyed session since
  std::int64_t last_handshake_ms = -1, rtt_ms = -1;
  std::uint64_t tx_packets = 0, tx_bytes = 0, rx_packets = 0, rx_bytes = 0;
  std::string last_error;
  std::size_t sessions = 0;  // sessions whose peer this is (dead ones until swept)
};

struct ConnectTarget {
  UdpEndpoint endpoint;
  std::int64_t retry_at_ms = kLongAgo;
};

}  // namespace

// ---------------------------------------------------------------------------
// UdpEndpoint

// ---------------------------------------------------------------------------
// PeerManager::Impl

struct PeerManager::Impl {
  Impl(crypto::DtlsContext& context, crypto::Verifier verifier, std::string name, PeerConfig cfg,
       std::function<std::uint32_t()> rng, NodeNameOf name_of)
      : ctx(context),
        verify(std::move(verifier)),
        self_name(std::move(name)),
        config(cfg),
        node_name_of(std::move(name_of)),
        by_index(std::move(rng)),
        seal_buffer(kSealBufferSize) {}

  crypto::DtlsContext& ctx;
  crypto::Verifier verify;
  std::string self_name;
  PeerConfig config;
  NodeNameOf node_name_of;

  std::vector<std::unique_ptr<Session>> sessions;  // creation order
  ReceiverIndexTable<Session> by_index;
  std::multimap<UdpEndpoint, Session*> by_endpoint;
  std::map<std::string, Peer, std::less<>> peers;
  std::vector<ConnectTarget> connects;
  Counters counters;
  Bytes seal_buffer;
  Bytes dtls_buffer;

  // The call being processed (set by Scope).
  std::int64_t now = 0;
  PeerOutput* out = nullptr;
  int depth = 0;
  bool sweep_needed = false;

  // Sets the call's time and output; the outermost one sweeps dead sessions
  // at the end, so that no Session or Peer disappears under a caller that a
  // PeerOutput callback re-entered.
  class Scope {
   public:
    Scope(Impl& impl, std::int64_t now_ms, PeerOutput* output)
        : impl_(impl), saved_now_(impl.now), saved_out_(impl.out) {
      impl.now = now_ms;
      impl.out = output;
      ++impl.depth;
    }
    ~Scope() {
      impl_.now = saved_now_;
      impl_.out = saved_out_;
      if (--impl_.depth == 0) impl_.sweep();
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    Impl& impl_;
    std::int64_t saved_now_;
    PeerOutput* saved_out_;
  };

  // -------------------------------------------------------------------------
  // Lookup helpers

  Peer* find_peer(std::string_view id) {
    const auto it = peers.find(id);
    return it == peers.end() ? nullptr : &it->second;
  }

  Peer& peer_entry(std::string_view id) {
    auto it = peers.find(id);
    if (it == peers.end()) {
      it = peers.try_emplace(std::string(id)).first;
      it->second.node_id = it->first;
    }
    return it->second;
  }

  // The session at `ep` that is in the DTLS handshake (there is at most one).
  Session* handshaking_at(const UdpEndpoint& ep) const {
    const auto [lo, hi] = by_endpoint.equal_range(ep);
    for (auto it = lo; it != hi; ++it)
      if (it->second->handshaking()) return it->second;
    return nullptr;
  }

  bool live_at(const UdpEndpoint& ep) const { return by_endpoint.find(ep) != by_endpoint.end(); }

  // A handshake with the node that is not keyed yet: ours to it, or one
  // (either way) past DTLS but still waiting for Hellos.
  bool in_progress(const Peer& p) const { return in_progress(p, false) || in_progress(p, true); }
  // The same, over direct or over relayed paths only.
  bool in_progress(const Peer& p, bool relayed) const {
    for (const auto& s : sessions)
      if (!s->dead && !s->keyed() && s->endpoint.relayed() == relayed &&
          ((s->client && s->target_node == p.node_id) || s->peer == &p))
        return true;
    return false;
  }

  std::size_t handshaking_count() const {
    return static_cast<std::size_t>(
        std::count_if(sessions.begin(), sessions.end(), [](const auto& s) { return s->handshaking(); }));
  }

  // Where the next handshake with the node goes: its endpoints in turn, then
  // the one it was last reached at.
  std::optional<UdpEndpoint> next_endpoint(const Peer& p) const {
    const bool extra = p.last_endpoint && !p.last_endpoint->relayed() &&
                       std::find(p.endpoints.begin(), p.endpoints.end(), *p.last_endpoint) == p.endpoints.end();
    const std::size_t n = p.endpoints.size() + (extra ? 1 : 0);
    if (n == 0) return std::nullopt;
    const std::size_t i = p.next_endpoint % n;
    return i < p.endpoints.size() ? p.endpoints[i] : *p.last_endpoint;
  }

  // When the node's sending session counts as broken: it has sent since it
  // last received, for stale_after_ms.
  std::int64_t stale_due(const Session& s) const {
    if (config.stale_after_ms <= 0 || !s.keyed() || s.peer == nullptr || s.peer->current != &s ||
        s.last_tx_ms <= s.last_rx_ms)
      return kNever;
    return s.last_rx_ms + config.stale_after_ms;
  }

  std::int64_t keepalive_due(const Session& s) const {
    return std::max(s.last_keepalive_ms == kLongAgo ? s.keyed_ms : s.last_keepalive_ms + config.keepalive_ms,
                    std::min(s.last_rx_ms, s.last_tx_ms) + config.keepalive_ms);
  }

  // When a handshake for the node's queued traffic may start; kNever while
  // something else has to finish first.
  std::int64_t handshake_due(const Peer& p) const { return std::min(direct_due(p), relay_due(p)); }

  std::int64_t direct_due(const Peer& p) const {
    if (in_progress(p, false)) return kNever;
    const auto ep = next_endpoint(p);
    if (!ep || handshaking_at(*ep) != nullptr) return kNever;
    return p.retry_at_ms;
  }

  // The relay is tried once traffic has waited relay_after_ms for a direct
  // session, or at once when there is no direct endpoint.
  std::int64_t relay_due(const Peer& p) const {
    if (!p.relay || p.current != nullptr || in_progress(p, true) || handshaking_at(*p.relay) != nullptr) return kNever;
    std::int64_t from = kLongAgo;
    if (next_endpoint(p)) {
      if (p.waiting_since_ms == kNever) return kNever;
      from = p.waiting_since_ms + config.relay_after_ms;
    }
    return std::max(from, p.relay_retry_at_ms);
  }

  // True if a new handshake may replace the node's current session now or
  // once retry_at_ms has passed.
  bool can_rekey(const Peer& p) const {
    return p.current != nullptr && !in_progress(p) && handshaking_at(p.current->endpoint) == nullptr;
  }

  // When the node's current session is due for a time-based rekey (by us:
  // the DTLS client rekeys on time).
  std::int64_t rekey_due(const Peer& p) const {
    if (!can_rekey(p) || !p.current->client) return kNever;
    return std::max(p.current->keyed_ms + config.rekey_after_ms, p.retry_at_ms);
  }

  // -------------------------------------------------------------------------
  // Session bookkeeping

  crypto::Verifier wrap_verifier(std::shared_ptr<PeerCert> holder) {
    return [this, holder](X509* cert, STACK_OF(X509) * chain, std::int64_t now_ms) {
      crypto::VerifyOutcome o;
      if (!verify) {
        o.reason = "no certificate verifier configured";
        return o;
      }
      o = verify(cert, chain, now_ms);
      if (o.ok && cert != nullptr) {
        X509_up_ref(cert);
        holder->cert.reset(cert);
        holder->chain.reset(chain != nullptr ? X509_chain_up_ref(chain) : nullptr);
        if (node_name_of) holder->name = node_name_of(cert);
      }
      return o;
    };
  }

  Session& add_session(std::unique_ptr<DtlsSession> dtls, const UdpEndpoint& ep, bool client, std::string target,
                       std::shared_ptr<PeerCert> cert) {
    auto s = std::make_unique<Session>();
    s->dtls = std::move(dtls);
    s->endpoint = ep;
    s->client = client;
    s->target_node = std::move(target);
    s->cert = std::move(cert);
    Session& ref = *s;
    sessions.push_back(std::move(s));
    by_endpoint.emplace(ep, &ref);
    return ref;
  }

  void unindex_endpoint(Session& s) {
    const auto [lo, hi] = by_endpoint.equal_range(s.endpoint);
    for (auto it = lo; it != hi; ++it) {
      if (it->second == &s) {
        by_endpoint.erase(it);
        return;
      }
    }
  }

  // Takes a session out of service (no output, no callbacks).
  void kill(Session& s) {
    if (s.dead) return;
    s.dead = true;
    sweep_needed = true;
    unindex_endpoint(s);
    if (s.my_index != 0) by_index.release(s.my_index, s);
  }

  // A handshake (ours or the peer's) failed or ended before the session was keyed.
  void note_failure(const Session& s, const std::string& reason) {
    ++counters.handshake_failures;
    if (s.client && !s.target_node.empty()) {
      if (Peer* t = find_peer(s.target_node)) {
        t->last_error = reason;
        if (s.endpoint.relayed()) {
          t->relay_retry_at_ms = now + config.retry_after_ms;
        } else {
          t->retry_at_ms = now + config.retry_after_ms;
          ++t->next_endpoint;
        }
      }
    }
    if (s.peer != nullptr) s.peer->last_error = reason;
    for (auto& t : connects)
      if (t.endpoint == s.endpoint) t.retry_at_ms = now + config.retry_after_ms;
  }

  // Ends a session; a node losing its last keyed session goes down.
  void end_session(Session& s, const std::string& reason) {
    if (s.dead) return;
    kill(s);
    if (!s.keyed()) {
      note_failure(s, reason);
      return;
    }
    Peer& p = *s.peer;
    if (p.current == &s) {
      p.current = nullptr;
      for (const auto& o : sessions) {
        if (!o->dead && o->peer == &p && o->keyed() && (p.current == nullptr || better(*o, *p.current)))
          p.current = o.get();
      }
      if (p.current != nullptr) p.current->retire_at_ms = kNever;
    }
    if (p.current == nullptr && p.up) {
      p.up = false;
      p.last_error = reason;
      out->peer_down(p.node_id, reason);
    }
  }

  // Sends close_notify, then ends the session.
  void close_session(Session& s, const std::string& reason) {
    if (s.dead) return;
    s.dtls->close();
    flush(s);
    end_session(s, reason);
  }

  static std::string failure_text(const Session& s) {
    const std::string& r = s.dtls->failure_reason();
    return r.empty() ? std::string("session closed") : r;
  }

  // -------------------------------------------------------------------------
  // Driving DTLS sessions

  void flush(Session& s) {
    while (s.dtls->take_datagram(dtls_buffer)) out->send_datagram(s.endpoint, dtls_buffer);
  }

  // After any call into a session: sends its output and acts on what changed.
  void pump(Session& s) {
    if (s.dead) return;
    flush(s);
    if (!s.established && s.dtls->state() == SessionState::Established) {
      on_established(s);
    } else if (s.established) {
      Bytes message;
      while (!s.dead && s.dtls->receive(message)) handle_message(s, message, false);
    }
    if (s.dead) return;
    flush(s);
    const SessionState st = s.dtls->state();
    if (st == SessionState::Failed || st == SessionState::Closed) end_session(s, failure_text(s));
  }

  Session* start_client(const UdpEndpoint& ep, const std::string& target, bool replaces = false) {
    auto cert = std::make_shared<PeerCert>();
    auto dtls = DtlsSession::client(ctx, ep.to_string(), wrap_verifier(cert), now);
    if (!dtls) {
      Session failed;  // only for note_failure's bookkeeping
      failed.client = true;
      failed.target_node = target;
      failed.endpoint = ep;
      note_failure(failed, "cannot create a DTLS session");
      return nullptr;
    }
    Session& s = add_session(std::move(dtls), ep, true, target, std::move(cert));
    s.replaces = replaces;
    if (s.dtls->take_datagram(dtls_buffer)) {  // our ClientHello
      s.client_random = client_hello_random(dtls_buffer);
      out->send_datagram(ep, dtls_buffer);
    }
    pump(s);
    return &s;
  }

  // Direct before relayed, then the newer.
  static bool better(const Session& a, const Session& b) {
    if (a.endpoint.relayed() != b.endpoint.relayed()) return !a.endpoint.relayed();
    return a.keyed_ms >= b.keyed_ms;
  }

  void maybe_start_handshake(Peer& p) {
    if (p.current == nullptr && p.waiting_since_ms == kNever && !p.queue.empty()) p.waiting_since_ms = now;
    if (direct_due(p) <= now) {
      if (const auto ep = next_endpoint(p)) start_client(*ep, p.node_id);
    }
    if (relay_due(p) <= now) start_client(*p.relay, p.node_id);
  }

  void start_rekey(Peer& p) {
    if (!can_rekey(p) || now < p.retry_at_ms) return;
    start_client(p.current->endpoint, p.node_id, true);
  }

  void on_established(Session& s) {
    s.established = true;
    ++counters.handshakes;
    s.node_id = s.dtls->peer_id();
    s.last_rx_ms = s.last_tx_ms = now;
    if (s.dtls->cipher().find("CHACHA20") != std::string::npos) s.min_record = kMinProtectedRecordChacha;
    Peer& p = peer_entry(s.node_id);
    s.peer = &p;
    ++p.sessions;
    if (s.client && !s.target_node.empty() && s.target_node != s.node_id) {
      // The registry's endpoint belongs to someone else now: try the next.
      if (Peer* t = find_peer(s.target_node)) {
        t->last_error = "endpoint " + s.endpoint.to_string() + " answered as node " + s.node_id;
        if (s.endpoint.relayed()) {
          t->relay_retry_at_ms = now + config.retry_after_ms;
        } else {
          t->retry_at_ms = now + config.retry_after_ms;
          ++t->next_endpoint;
        }
      }
    }

    Key c2s{}, s2c{};
    if (!s.dtls->export_keys(c2s, s2c)) {
      close_session(s, "cannot export data channel keys");
      return;
    }
    s.tag = load64(c2s.data());
    s.send_key = s.client ? c2s : s2c;
    const Key& receive_key = s.client ? s2c : c2s;
    s.my_index = by_index.allocate(s);
    bool ok = true;
    try {
      s.opener.emplace(config.cipher, receive_key, s.my_index);
    } catch (...) {
      ok = false;
    }
    OPENSSL_cleanse(c2s.data(), c2s.size());
    OPENSSL_cleanse(s2c.data(), s2c.size());
    if (!ok) {
      close_session(s, "cannot set up the data channel");
      return;
    }

    // Messages that came with the handshake (usually the peer's Hello) are
    // read first, so that our Hello knows whether to ask for an answer.
    std::vector<Bytes> early;
    Bytes message;
    bool have_hello = false;
    while (s.dtls->receive(message)) {
      NodeMessage m;
      if (m.ParseFromArray(message.data(), static_cast<int>(message.size())) && m.has_hello()) have_hello = true;
      early.push_back(std::move(message));
    }
    send_hello(s, !have_hello);
    s.hello_interval_ms = std::max<std::int64_t>(config.hello_retry_ms, 1);
    s.hello_retry_at_ms = now + s.hello_interval_ms;
    for (const auto& m : early) {
      if (s.dead) return;
      handle_message(s, m, true);
    }
  }

  bool send_message_bytes(Session& s, ConstByteSpan bytes) {
    if (!s.dtls->send(bytes)) return false;
    s.last_tx_ms = now;
    flush(s);
    return true;
  }

  bool send_message(Session& s, const NodeMessage& m) {
    std::string bytes;
    if (!m.SerializeToString(&bytes)) return false;
    return send_message_bytes(s, bytes_of(bytes));
  }

  void send_hello(Session& s, bool wants_reply) {
    NodeMessage m;
    m.set_request_id((wants_reply ? kHelloWantsReply : 0) | (s.client && s.replaces ? kHelloReplaces : 0));
    Hello* h = m.mutable_hello();
    h->set_node_name(self_name);
    h->set_receiver_index(s.my_index);
    h->set_cipher(std::string(crypto::to_string(config.cipher)));
    h->set_version(kVersion);
    send_message(s, m);
  }

  void send_keepalive(Session& s) {
    const std::uint64_t id = 2 * s.keepalive_seq++ + (s.client ? 1 : 2);
    s.last_keepalive_ms = now;
    s.keepalive_outstanding = id;
    s.keepalive_sent_ms = now;
    // An empty data packet first: it moves the session on the peer's side
    // if our address changed (DTLS records alone do not).
    if (s.keyed()) {
      const std::size_t n = s.sealer->seal(ConstByteSpan(), seal_buffer);
      if (n != 0) out->send_datagram(s.endpoint, ConstByteSpan(seal_buffer.data(), n));
    }
    NodeMessage m;
    m.set_request_id(id);
    m.mutable_keepalive();
    send_message(s, m);
  }

  // `hello_answered`: our Hello just went out without asking for an answer.
  void handle_message(Session& s, ConstByteSpan bytes, bool hello_answered) {
    NodeMessage m;
    if (bytes.empty() || !m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      ++counters.malformed;
      return;
    }
    s.last_rx_ms = now;
    switch (m.body_case()) {
      case NodeMessage::kHello: on_hello(s, m, hello_answered); break;
      case NodeMessage::kKeepalive:
        s.peer_has_hello = true;  // the peer keepalives keyed sessions only
        on_keepalive(s, m);
        break;
      case NodeMessage::BODY_NOT_SET: ++counters.malformed; break;
      default:
        s.peer_has_hello = true;  // the peer sends control on keyed sessions only
        out->deliver_control(s.node_id, m);
        break;
    }
  }

  void on_hello(Session& s, const NodeMessage& m, bool hello_answered) {
    const Hello& h = m.hello();
    const auto cipher = crypto::parse_cipher(h.cipher());
    if (!s.keyed()) {
      if (!cipher) {
        ++counters.not_allowed;
        close_session(s, "peer wants unsupported cipher '" + h.cipher().substr(0, 32) + "'");
        return;
      }
      try {
        s.sealer.emplace(*cipher, s.send_key, h.receiver_index());
      } catch (...) {
        close_session(s, "cannot set up the data channel");
        return;
      }
      OPENSSL_cleanse(s.send_key.data(), s.send_key.size());
      s.keyed_ms = now;
      s.last_keepalive_ms = kLongAgo;
      if (!s.client) s.replaces = (m.request_id() & kHelloReplaces) != 0;
      s.peer->node_name = node_name_of && s.cert && !s.cert->name.empty() ? s.cert->name : h.node_name();
      on_keyed(s);
      if (s.dead) return;
    } else if (h.receiver_index() != s.sealer->peer_receiver_index() || cipher != s.sealer->cipher()) {
      ++counters.not_allowed;  // a session's Hello never changes
      return;
    }
    if ((m.request_id() & kHelloWantsReply) == 0) {
      s.peer_has_hello = true;
    } else if (!hello_answered) {
      send_hello(s, false);
    }
  }

  void on_keyed(Session& s) {
    Peer& p = *s.peer;
    const bool relayed = s.endpoint.relayed();
    p.last_handshake_ms = now;
    p.last_error.clear();
    p.waiting_since_ms = kNever;
    if (relayed) {
      p.relay_retry_at_ms = kLongAgo;
    } else {
      p.last_endpoint = s.endpoint;
      p.retry_at_ms = kLongAgo;
    }
    const auto known = std::find(p.endpoints.begin(), p.endpoints.end(), s.endpoint);
    if (known != p.endpoints.end()) p.next_endpoint = static_cast<std::size_t>(known - p.endpoints.begin());
    for (auto& t : connects)
      if (t.endpoint == s.endpoint) t.retry_at_ms = kLongAgo;

    // A direct session beats a relayed one. Otherwise the newer session
    // takes over; keyed within moments of each other, the rekey beats the
    // fresh session, else the tag decides: both sides know the same flags,
    // tags and paths, so they agree.
    Session* c = p.current;
    bool newer_wins = true;
    if (c != nullptr && c->endpoint.relayed() != relayed) {
      newer_wins = !relayed;
    } else if (c != nullptr && s.keyed_ms - c->keyed_ms < kSimultaneousWindowMs) {
      newer_wins = s.replaces != c->replaces ? s.replaces : s.tag > c->tag;
    }
    if (newer_wins) {
      p.current = &s;
      s.retire_at_ms = kNever;
    }
    for (const auto& o : sessions) {
      if (o->dead || o.get() == p.current) continue;
      if (o->peer == &p && o->keyed() && o->retire_at_ms == kNever) o->retire_at_ms = now + config.retire_after_ms;
      // Our other handshakes with the node are moot, except direct ones
      // while only a relayed session is keyed.
      if (o->client && o->target_node == p.node_id && o->handshaking() &&
          (o->endpoint.relayed() || !p.current->endpoint.relayed()))
        kill(*o);
    }
    flush_queue(p);
    if (!p.up && p.current != nullptr) {
      p.up = true;
      out->peer_up(p.node_id, p.node_name, p.current->endpoint);
    }
  }

  void flush_queue(Peer& p) {
    while (!p.queue.empty() && p.current != nullptr && !p.current->dead) {
      Queued item = std::move(p.queue.front());
      p.queue.pop_front();
      if (item.control) {
        send_message_bytes(*p.current, item.bytes);
      } else {
        seal_and_send(*p.current, item.bytes);
      }
    }
  }

  void on_keepalive(Session& s, const NodeMessage& m) {
    const std::uint64_t id = m.request_id();
    if (id == 0) return;
    const bool ours = (id & 1) == (s.client ? 1u : 0u);
    if (ours) {
      if (id == s.keepalive_outstanding) {
        s.peer->rtt_ms = now - s.keepalive_sent_ms;
        s.keepalive_outstanding = 0;
      }
      return;
    }
    NodeMessage reply;
    reply.set_request_id(id);
    reply.mutable_keepalive();
    send_message(s, reply);
  }

  // -------------------------------------------------------------------------
  // Data channel

  bool seal_and_send(Session& s, ConstByteSpan packet) {
    Peer& p = *s.peer;
    const std::size_t need = packet.size() + crypto::kDataOverhead;
    if (seal_buffer.size() < need) seal_buffer.resize(need);
    const std::size_t n = s.sealer->seal(packet, seal_buffer);
    if (n == 0) return false;
    out->send_datagram(s.endpoint, ConstByteSpan(seal_buffer.data(), n));
    s.last_tx_ms = now;
    ++p.tx_packets;
    p.tx_bytes += packet.size();
    if (s.sealer->should_rekey(config.rekey_after_packets)) start_rekey(p);
    return true;
  }

  void enqueue(Peer& p, bool control, ConstByteSpan bytes) {
    if (config.queue_limit == 0) {
      ++counters.queue_drops;
      return;
    }
    while (p.queue.size() >= config.queue_limit) {
      p.queue.pop_front();
      ++counters.queue_drops;
    }
    p.queue.push_back(Queued{control, Bytes(bytes.begin(), bytes.end())});
    if (p.current == nullptr && p.waiting_since_ms == kNever) p.waiting_since_ms = now;
  }

  // Sends on the node's keyed session, or queues and starts a handshake.
  bool send_or_queue(std::string_view node_id, bool control, ConstByteSpan bytes) {
    Peer* p = find_peer(node_id);
    if (p != nullptr && p->current != nullptr) {
      return control ? send_message_bytes(*p->current, bytes) : seal_and_send(*p->current, bytes);
    }
    if (p == nullptr || (!next_endpoint(*p) && !p->relay && !in_progress(*p))) {
      ++counters.no_endpoint;
      return false;
    }
    enqueue(*p, control, bytes);
    maybe_start_handshake(*p);
    return true;
  }

  // Points the node's sessions that used the peer's old address at its new one.
  void roam(Session& s, const UdpEndpoint& to) {
    const UdpEndpoint from = s.endpoint;
    for (const auto& o : sessions) {
      if (o->dead || o->peer != s.peer || o->endpoint != from) continue;
      unindex_endpoint(*o);
      o->endpoint = to;
      by_endpoint.emplace(to, o.get());
    }
    s.peer->last_endpoint = to;
  }

  void on_data(const UdpEndpoint& from, ByteSpan d) {
    const auto index = crypto::DataOpener::peek_receiver_index(d);
    if (!index) {
      ++counters.malformed;
      return;
    }
    Session* found = by_index.find(*index);
    if (found == nullptr) {
      ++counters.unknown_receiver;
      return;
    }
    Session& s = *found;
    const auto r = s.opener->open(d, d.subspan(crypto::kDataHeaderSize));
    using E = crypto::DataOpener::OpenResult::Error;
    switch (r.error) {
      case E::None: break;
      case E::Replayed: ++counters.replayed; return;
      case E::BadTag: ++counters.bad_tag; return;
      default: ++counters.malformed; return;
    }
    s.last_rx_ms = now;
    s.peer_has_hello = true;  // it used our receiver index
    Peer& p = *s.peer;
    ++p.rx_packets;
    p.rx_bytes += r.size;
    // NAT rebinding: follow the newest authentic packet to its new source.
    // A relayed path and a direct one never turn into each other.
    if (from != s.endpoint && from.relayed() == s.endpoint.relayed() &&
        load64(d.data() + 8) == s.opener->replay_window().highest())
      roam(s, from);
    if (r.size == 0) return;  // a bare keepalive
    out->deliver_packet(s.node_id, d, crypto::kDataHeaderSize, r.size);
  }

  // -------------------------------------------------------------------------
  // DTLS demultiplexing

  void on_client_hello(const UdpEndpoint& from, ConstByteSpan d) {
    Session* hs = nullptr;
    const auto [lo, hi] = by_endpoint.equal_range(from);
    for (auto it = lo; it != hi; ++it) {
      Session& s = *it->second;
      if (!s.client && !s.dtls->is_new_client_hello(d)) {  // a repeat of the hello that started it
        s.dtls->on_datagram(d, now);
        pump(s);
        return;
      }
      if (s.handshaking()) hs = &s;
    }
    if (hs != nullptr && hs->client) {
      // Simultaneous open: only the hello with the larger random is answered.
      const auto theirs = client_hello_random(d);
      if (!theirs || !hs->client_random || !(*theirs > *hs->client_random)) return;
    }
    Bytes reply;
    auto cert = std::make_shared<PeerCert>();
    auto dtls = DtlsSession::server(ctx, from.to_string(), d, wrap_verifier(cert), now, reply);
    if (!reply.empty()) out->send_datagram(from, reply);
    if (!dtls) {
      if (reply.empty()) ++counters.malformed;
      return;
    }
    if (hs != nullptr) {
      kill(*hs);  // replaced: the peer restarted its handshake, or won the tie-break
    } else if (handshaking_count() >= kMaxHandshaking) {
      ++counters.not_allowed;
      return;
    }
    Session& s = add_session(std::move(dtls), from, false, "", std::move(cert));
    pump(s);
  }

  void on_dtls(const UdpEndpoint& from, ConstByteSpan d) {
    if (crypto::is_dtls_client_hello(d)) {
      on_client_hello(from, d);
      return;
    }
    // Every session at the endpoint sees the records: only the one in the
    // handshake takes epoch-0 records, and the others drop what does not
    // authenticate under their keys.
    const auto [lo, hi] = by_endpoint.equal_range(from);
    if (lo == hi) {
      ++counters.not_allowed;
      return;
    }
    const auto shortest = shortest_protected_record(d);
    if (!shortest) {
      ++counters.malformed;
      return;
    }
    std::vector<Session*> targets;
    for (auto it = lo; it != hi; ++it)
      if (*shortest >= it->second->min_record) targets.push_back(it->second);
    if (targets.empty()) ++counters.malformed;
    for (Session* s : targets) {
      if (s->dead) continue;
      s->dtls->on_datagram(d, now);
      pump(*s);
    }
  }

  // -------------------------------------------------------------------------
  // Timers

  void tick_session(Session& s) {
    if (!s.established) {
      const auto t = s.dtls->next_timeout_ms();
      if (t && *t <= now) s.dtls->on_timeout(now);
      pump(s);
      return;
    }
    pump(s);
    if (s.dead) return;
    if ((!s.keyed() || !s.peer_has_hello) && now >= s.hello_retry_at_ms) {
      send_hello(s, true);
      s.hello_interval_ms = std::min(2 * s.hello_interval_ms, std::max(config.keepalive_ms, config.hello_retry_ms));
      s.hello_retry_at_ms = now + std::max<std::int64_t>(s.hello_interval_ms, 1);
      if (s.dead) return;
    }
    if (now - s.last_rx_ms >= config.dead_after_ms) {
      end_session(s, "no traffic for " + std::to_string(now - s.last_rx_ms) + " ms");
      return;
    }
    if (stale_due(s) <= now) {
      end_session(s, "no answer for " + std::to_string(now - s.last_rx_ms) + " ms");
      return;
    }
    if (!s.keyed()) return;
    Peer& p = *s.peer;
    if (now >= s.retire_at_ms) {
      if (p.current != nullptr && p.current != &s && !p.current->peer_has_hello) {
        s.retire_at_ms = now + std::max<std::int64_t>(config.hello_retry_ms, 1);  // the peer may still need it
      } else {
        close_session(s, "retired");
        return;
      }
    }
    if (s.retire_at_ms == kNever && keepalive_due(s) <= now) send_keepalive(s);
    if (&s == p.current && rekey_due(p) <= now) start_rekey(p);
  }

  void on_timer() {
    for (std::size_t i = 0; i < sessions.size(); ++i) {
      Session& s = *sessions[i];
      if (!s.dead) tick_session(s);
    }
    for (auto& [id, p] : peers)
      if (!p.queue.empty() && p.current == nullptr) maybe_start_handshake(p);
    for (std::size_t i = 0; i < connects.size(); ++i) {
      const ConnectTarget t = connects[i];
      if (!live_at(t.endpoint) && now >= t.retry_at_ms) start_client(t.endpoint, "");
    }
  }

  std::int64_t next_deadline() const {
    std::int64_t t = kNever;
    for (const auto& sp : sessions) {
      const Session& s = *sp;
      if (s.dead) continue;
      if (!s.established) {
        if (const auto x = s.dtls->next_timeout_ms()) t = std::min(t, *x);
        continue;
      }
      if (!s.keyed() || !s.peer_has_hello) t = std::min(t, s.hello_retry_at_ms);
      t = std::min(t, s.last_rx_ms + config.dead_after_ms);
      if (!s.keyed()) continue;
      t = std::min(t, stale_due(s));
      t = std::min(t, s.retire_at_ms);
      if (s.retire_at_ms == kNever) t = std::min(t, keepalive_due(s));
      if (&s == s.peer->current) t = std::min(t, rekey_due(*s.peer));
    }
    for (const auto& [id, p] : peers)
      if (!p.queue.empty() && p.current == nullptr) t = std::min(t, handshake_due(p));
    for (const auto& c : connects)
      if (!live_at(c.endpoint)) t = std::min(t, c.retry_at_ms);
    return t;
  }

  void recheck() {
    for (std::size_t i = 0; i < sessions.size(); ++i) {
      Session& s = *sessions[i];
      if (s.dead || !s.cert || !s.cert->cert) continue;
      crypto::VerifyOutcome o;
      try {
        if (verify) o = verify(s.cert->cert.get(), s.cert->chain.get(), now);
      } catch (...) {
        o = crypto::VerifyOutcome{};
      }
      if (!o.ok) close_session(s, "peer certificate rejected: " + (o.reason.empty() ? "by verifier" : o.reason));
    }
  }

  void sweep() {
    if (!sweep_needed) return;
    sweep_needed = false;
    for (auto& s : sessions)
      if (s->dead && s->peer != nullptr) --s->peer->sessions;
    std::erase_if(sessions, [](const auto& s) { return s->dead; });
    for (auto it = peers.begin(); it != peers.end();) {
      const Peer& p = it->second;
      if (p.sessions == 0 && !p.up && p.queue.empty() && p.endpoints.empty() && !p.relay) {
        it = peers.erase(it);
      } else {
        ++it;
      }
    }
  }
};

// ---------------------------------------------------------------------------
// PeerManager

PeerManager::PeerManager(crypto::DtlsContext& ctx, crypto::Verifier verify, std::string self_name, PeerConfig config,
                         std::function<std::uint32_t()> random32, NodeNameOf node_name_of)
    : impl_(std::make_unique<Impl>(ctx, std::move(verify), std::move(self_name), config, std::move(random32),
                                   std::move(node_name_of))) {}

PeerManager::~PeerManager() = default;

void PeerManager::on_datagram(std::int64_t now_ms, const UdpEndpoint& from, ByteSpan datagram, PeerOutput& out) {
  Impl& m = *impl_;
  Impl::Scope scope(m, now_ms, &out);
  try {
    switch (wire::classify(datagram)) {
      case wire::DatagramType::Data: m.on_data(from, datagram); break;
      case wire::DatagramType::Dtls: m.on_dtls(from, datagram); break;
      default: ++m.counters.malformed; break;
    }
  } catch (...) {  // out of memory: the datagram is lost
  }
}

bool PeerManager::send_packet(std::int64_t now_ms, std::string_view node_id, ConstByteSpan ip_packet, PeerOutput& out) {
  Impl& m = *impl_;
  Impl::Scope scope(m, now_ms, &out);
  try {
    return m.send_or_queue(node_id, false, ip_packet);
  } catch (...) {
    return false;
  }
}

bool PeerManager::send_control(std::int64_t now_ms, std::string_view node_id, const NodeMessage& message,
                               PeerOutput& out) {
  Impl& m = *impl_;
  Impl::Scope scope(m, now_ms, &out);
  try {
    if (message.has_hello() || message.has_keepalive()) return false;
    std::string bytes;
    if (!message.SerializeToString(&bytes) || bytes.empty() || bytes.size() > crypto::kDtlsMaxMessage) return false;
    return m.send_or_queue(node_id, true, bytes_of(bytes));
  } catch (...) {
    return false;
  }
}

void PeerManager::connect(std::int64_t now_ms, const UdpEndpoint& to, PeerOutput& out) {
  Impl& m = *impl_;
  Impl::Scope scope(m, now_ms, &out);
  try {
    auto it = std::find_if(m.connects.begin(), m.connects.end(), [&](const auto& c) { return c.endpoint == to; });
    if (it == m.connects.end()) {
      m.connects.push_back(ConnectTarget{to, kLongAgo});
      it = m.connects.end() - 1;
    }
    if (!m.live_at(to) && now_ms >= it->retry_at_ms) m.start_client(to, "");
  } catch (...) {
  }
}

void PeerManager::disconnect(const UdpEndpoint& to) {
  std::erase_if(impl_->connects, [&](const auto& c) { return c.endpoint == to; });
}

void PeerManager::set_endpoints(std::string_view node_id, std::vector<UdpEndpoint> endpoints) {
  Impl& m = *impl_;
  try {
    if (endpoints.empty()) {
      if (Peer* p = m.find_peer(node_id)) {
        p->endpoints.clear();
        p->last_endpoint.reset();
        p->next_endpoint = 0;
        if (p->current == nullptr && !p->relay && !m.in_progress(*p)) {  // nowhere to go
          m.counters.queue_drops += p->queue.size();
          p->queue.clear();
        }
        m.sweep_needed = true;
        if (m.depth == 0) m.sweep();
      }
      return;
    }
    Peer& p = m.peer_entry(node_id);
    if (p.endpoints != endpoints) {
      p.endpoints = std::move(endpoints);
      p.next_endpoint = 0;
    }
  } catch (...) {
  }
}

void PeerManager::set_relay(std::string_view node_id, std::optional<UdpEndpoint> relay) {
  Impl& m = *impl_;
  try {
    if (!relay) {
      if (Peer* p = m.find_peer(node_id)) {
        p->relay.reset();
        m.sweep_needed = true;
        if (m.depth == 0) m.sweep();
      }
      return;
    }
    m.peer_entry(node_id).relay = relay;
  } catch (...) {
  }
}

bool PeerManager::try_direct(std::int64_t now_ms, std::string_view node_id, PeerOutput& out) {
  Impl& m = *impl_;
  Impl::Scope scope(m, now_ms, &out);
  try {
    Peer* p = m.find_peer(node_id);
    if (p == nullptr || (p->current != nullptr && !p->current->endpoint.relayed()) || m.in_progress(*p, false))
      return false;
    const auto ep = m.next_endpoint(*p);
    if (!ep || m.handshaking_at(*ep) != nullptr) return false;
    return m.start_client(*ep, p->node_id) != nullptr;
  } catch (...) {
    return false;
  }
}

std::string_view PeerManager::node_at(const UdpEndpoint& endpoint) const {
  const auto [lo, hi] = impl_->by_endpoint.equal_range(endpoint);
  for (auto it = lo; it != hi; ++it)
    if (!it->second->dead && it->second->keyed()) return it->second->node_id;
  return {};
}

std::optional<UdpEndpoint> PeerManager::endpoint_of(std::string_view node_id) const {
  const auto it = impl_->peers.find(node_id);
  if (it == impl_->peers.end() || it->second.current == nullptr) return std::nullopt;
  return it->second.current->endpoint;
}

void PeerManager::on_timer(std::int64_t now_ms, PeerOutput& out) {
  Impl& m = *impl_;
  Impl::Scope scope(m, now_ms, &out);
  try {
    m.on_timer();
  } catch (...) {
  }
}

std::int64_t PeerManager::next_deadline_ms() const { return impl_->next_deadline(); }

void PeerManager::recheck(std::int64_t now_ms, PeerOutput& out) {
  Impl& m = *impl_;
  Impl::Scope scope(m, now_ms, &out);
  try {
    m.recheck();
  } catch (...) {
  }
}

std::vector<PeerManager::PeerStats> PeerManager::peers() const {
  std::vector<PeerStats> list;
  try {
    list.reserve(impl_->peers.size());
    for (const auto& [id, p] : impl_->peers) {
      PeerStats st;
      st.node_id = p.node_id;
      st.node_name = p.node_name;
      if (p.current != nullptr) {
        st.endpoint = p.current->endpoint;
      } else if (p.last_endpoint) {
        st.endpoint = *p.last_endpoint;
      } else if (!p.endpoints.empty()) {
        st.endpoint = p.endpoints.front();
      }
      st.established = p.current != nullptr;
      st.relayed = p.current != nullptr && p.current->endpoint.relayed();
      st.tx_packets = p.tx_packets;
      st.tx_bytes = p.tx_bytes;
      st.rx_packets = p.rx_packets;
      st.rx_bytes = p.rx_bytes;
      st.last_handshake_ms = p.last_handshake_ms;
      st.rtt_ms = p.rtt_ms;
      st.last_error = p.last_error;
      list.push_back(std::move(st));
    }
  } catch (...) {
  }
  return list;
}

const PeerManager::Counters& PeerManager::counters() const { return impl_->counters; }

}  // namespace wownet::overlay
