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
#include "overlay/index_table.h"
#include "overlay/peer.h"
#include "overlay/session.h"
#include "proto/overlay.pb.h"

namespace wownet::overlay {
namespace {

using Bytes = std::vector<std::uint8_t>;
using Session = PeerSession;

// An IPv4 packet of any size fits without growing the seal buffer.
constexpr std::size_t kSealBufferSize = 65535 + crypto::kDataOverhead;
// Server sessions in the handshake at once (each needs a valid cookie, so
// an address the client really owns).
constexpr std::size_t kMaxHandshaking = 1024;

ConstByteSpan bytes_of(const std::string& s) { return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}; }

}  // namespace

namespace {

struct ConnectTarget {
  UdpEndpoint endpoint;
  std::int64_t retry_at_ms = kLongAgo;
};

}  // namespace

// ---------------------------------------------------------------------------
// PeerManager::Impl

struct PeerManager::Impl final : SessionHost {
  Impl(crypto::DtlsContext& context, crypto::Verifier verifier, std::string name, PeerConfig cfg,
       std::function<std::uint32_t()> rng, NodeNameOf name_of)
      : settings{&context, std::move(verifier), std::move(name_of), std::move(name), cfg},
        config(settings.config),
        by_index(std::move(rng)),
        seal_buffer(kSealBufferSize) {}

  SessionSettings settings;
  const PeerConfig& config;

  std::vector<std::unique_ptr<Session>> sessions;  // creation order
  ReceiverIndexTable<Session> by_index;
  std::multimap<UdpEndpoint, Session*> by_endpoint;
  std::map<std::string, Peer, std::less<>> peers;
  std::vector<ConnectTarget> connects;
  Counters counters;
  Bytes seal_buffer;

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
  // SessionHost

  void send_datagram(const UdpEndpoint& to, ConstByteSpan datagram) override { out->send_datagram(to, datagram); }

  std::uint32_t on_established(Session& s) override {
    ++counters.handshakes;
    Peer& p = peer_entry(s.node_id());
    s.peer = &p;
    ++p.sessions;
    if (s.is_client() && !s.target_node().empty() && s.target_node() != s.node_id()) {
      // The registry's endpoint belongs to someone else now: try the next.
      if (Peer* t = find_peer(s.target_node())) {
        t->note_failed_path(s.endpoint(), "endpoint " + s.endpoint().to_string() + " answered as node " + s.node_id(),
                            now, config.retry_after_ms);
      }
    }
    return by_index.allocate(s);
  }

  void on_keyed(Session& s) override {
    Peer& p = *s.peer;
    p.note_keyed(s, now);
    if (s.is_client()) counters.handshake_ms.add(now - s.created_ms());
    for (auto& t : connects)
      if (t.endpoint == s.endpoint()) t.retry_at_ms = kLongAgo;

    // The newcomer may take over from the sending session (peer.h).
    const bool newer_wins =
        p.current == nullptr || Peer::newcomer_wins(Peer::candidate_of(*p.current), Peer::candidate_of(s));
    if (newer_wins) {
      p.current = &s;
      s.retire_at_ms = kNever;
    }
    for (const auto& o : sessions) {
      if (o->dead() || o.get() == p.current) continue;
      if (o->peer == &p && o->keyed() && o->retire_at_ms == kNever) o->retire_at_ms = now + config.retire_after_ms;
      // Our other handshakes with the node are moot, except direct ones
      // while only a relayed session is keyed.
      if (o->is_client() && o->target_node() == p.node_id && o->handshaking() &&
          (o->relayed() || !p.current->relayed()))
        kill(*o);
    }
    flush_queue(p);
    if (!p.up && p.current != nullptr) {
      p.up = true;
      out->peer_up(p.node_id, p.node_name, p.current->endpoint());
    }
  }

  void on_control(Session& s, const NodeMessage& m) override { out->deliver_control(s.node_id(), m); }

  void on_rtt(Session& s, std::int64_t rtt_ms) override {
    s.peer->rtt_ms = rtt_ms;
    counters.rtt_ms.add(rtt_ms);
  }

  // A node losing its last keyed session goes down.
  void on_ended(Session& s, const std::string& reason) override {
    if (s.dead()) return;
    kill(s);
    if (!s.keyed()) {
      note_failure(s.is_client(), s.target_node(), s.endpoint(), s.peer, reason);
      return;
    }
    Peer& p = *s.peer;
    if (p.current == &s) {
      p.current = nullptr;
      for (const auto& o : sessions) {
        if (!o->dead() && o->peer == &p && o->keyed() && (p.current == nullptr || Peer::better(*o, *p.current)))
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

  void tally(Tally what) override {
    switch (what) {
      case Tally::Malformed: ++counters.malformed; break;
      case Tally::NotAllowed: ++counters.not_allowed; break;
    }
  }

  // -------------------------------------------------------------------------
  // Lookup helpers

  Peer* find_peer(std::string_view id) {
    const auto it = peers.find(id);
    return it == peers.end() ? nullptr : &it->second;
  }

  Peer& peer_entry(std::string_view id) {
    auto it = peers.find(id);
    if (it == peers.end()) {
      it = peers.try_emplace(std::string(id), std::string(id)).first;
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
      if (!s->dead() && !s->keyed() && s->relayed() == relayed &&
          ((s->is_client() && s->target_node() == p.node_id) || s->peer == &p))
        return true;
    return false;
  }

  std::size_t handshaking_count() const {
    return static_cast<std::size_t>(
        std::count_if(sessions.begin(), sessions.end(), [](const auto& s) { return s->handshaking(); }));
  }

  static bool sending(const Session& s) { return s.peer != nullptr && s.peer->current == &s; }

  // When a handshake for the node's queued traffic may start; kNever while
  // something else has to finish first.
  std::int64_t handshake_due(const Peer& p) const { return std::min(direct_due(p), relay_due(p)); }

  std::int64_t direct_due(const Peer& p) const {
    if (in_progress(p, false)) return kNever;
    const auto ep = p.next_endpoint();
    if (!ep || handshaking_at(*ep) != nullptr) return kNever;
    return p.retry_at_ms;
  }

  // The relay is tried once traffic has waited relay_after_ms for a direct
  // session, or at once when there is no direct endpoint.
  std::int64_t relay_due(const Peer& p) const {
    if (!p.relay || p.current != nullptr || in_progress(p, true) || handshaking_at(*p.relay) != nullptr) return kNever;
    std::int64_t from = kLongAgo;
    if (p.next_endpoint()) {
      if (p.waiting_since_ms == kNever) return kNever;
      from = p.waiting_since_ms + config.relay_after_ms;
    }
    return std::max(from, p.relay_retry_at_ms);
  }

  // True if a new handshake may replace the node's current session now or
  // once retry_at_ms has passed.
  bool can_rekey(const Peer& p) const {
    return p.current != nullptr && !in_progress(p) && handshaking_at(p.current->endpoint()) == nullptr;
  }

  // When the node's current session is due for a time-based rekey (by us:
  // the DTLS client rekeys on time).
  std::int64_t rekey_due(const Peer& p) const {
    if (!can_rekey(p) || !p.current->is_client()) return kNever;
    return std::max(p.current->keyed_ms() + config.rekey_after_ms, p.retry_at_ms);
  }

  // -------------------------------------------------------------------------
  // Session bookkeeping

  Session& add_session(std::unique_ptr<Session> s) {
    Session& ref = *s;
    sessions.push_back(std::move(s));
    by_endpoint.emplace(ref.endpoint(), &ref);
    return ref;
  }

  void unindex_endpoint(Session& s) {
    const auto [lo, hi] = by_endpoint.equal_range(s.endpoint());
    for (auto it = lo; it != hi; ++it) {
      if (it->second == &s) {
        by_endpoint.erase(it);
        return;
      }
    }
  }

  // Takes a session out of service (no output, no callbacks).
  void kill(Session& s) {
    if (s.dead()) return;
    s.mark_dead();
    sweep_needed = true;
    unindex_endpoint(s);
    if (s.receiver_index() != 0) by_index.release(s.receiver_index(), s);
  }

  // A handshake (ours or the peer's) failed or ended before the session was keyed.
  void note_failure(bool client, const std::string& target, const UdpEndpoint& ep, Peer* peer,
                    const std::string& reason) {
    ++counters.handshake_failures;
    if (client && !target.empty()) {
      if (Peer* t = find_peer(target)) {
        t->note_failed_path(ep, reason, now, config.retry_after_ms);
      }
    }
    if (peer != nullptr) peer->last_error = reason;
    for (auto& t : connects)
      if (t.endpoint == ep) t.retry_at_ms = now + config.retry_after_ms;
  }

  Session* start_client(const UdpEndpoint& ep, const std::string& target, bool replaces = false) {
    auto created = Session::client(settings, ep, target, replaces, now);
    if (!created) {
      note_failure(true, target, ep, nullptr, "cannot create a DTLS session");
      return nullptr;
    }
    Session& s = add_session(std::move(created));
    s.start(now, *this);
    return &s;
  }

  void maybe_start_handshake(Peer& p) {
    if (p.current == nullptr && p.waiting_since_ms == kNever && !p.queue.empty()) p.waiting_since_ms = now;
    if (direct_due(p) <= now) {
      if (const auto ep = p.next_endpoint()) start_client(*ep, p.node_id);
    }
    if (relay_due(p) <= now) start_client(*p.relay, p.node_id);
  }

  void start_rekey(Peer& p) {
    if (!can_rekey(p) || now < p.retry_at_ms) return;
    start_client(p.current->endpoint(), p.node_id, true);
  }

  void flush_queue(Peer& p) {
    while (!p.queue.empty() && p.current != nullptr && !p.current->dead()) {
      Peer::Queued item = std::move(p.queue.front());
      p.queue.pop_front();
      if (item.control) {
        p.current->send_message(now, item.bytes, *this);
      } else {
        seal_and_send(*p.current, item.bytes);
      }
    }
  }

  // -------------------------------------------------------------------------
  // Data channel

  bool seal_and_send(Session& s, ConstByteSpan packet) {
    Peer& p = *s.peer;
    const std::size_t need = packet.size() + crypto::kDataOverhead;
    if (seal_buffer.size() < need) seal_buffer.resize(need);
    const std::size_t n = s.seal(now, packet, seal_buffer);
    if (n == 0) return false;
    out->send_datagram(s.endpoint(), ConstByteSpan(seal_buffer.data(), n));
    ++p.tx_packets;
    p.tx_bytes += packet.size();
    if (s.wants_rekey()) start_rekey(p);
    return true;
  }

  // Sends on the node's keyed session, or queues and starts a handshake.
  bool send_or_queue(std::string_view node_id, bool control, ConstByteSpan bytes) {
    Peer* p = find_peer(node_id);
    if (p != nullptr && p->current != nullptr) {
      return control ? p->current->send_message(now, bytes, *this) : seal_and_send(*p->current, bytes);
    }
    if (p == nullptr || (!p->next_endpoint() && !p->relay && !in_progress(*p))) {
      ++counters.no_endpoint;
      return false;
    }
    counters.queue_drops += p->enqueue(control, bytes, config.queue_limit, now);
    maybe_start_handshake(*p);
    return true;
  }

  // Points the node's sessions that used the peer's old address at its new one.
  void roam(Session& s, const UdpEndpoint& to) {
    const UdpEndpoint from = s.endpoint();
    for (const auto& o : sessions) {
      if (o->dead() || o->peer != s.peer || o->endpoint() != from) continue;
      unindex_endpoint(*o);
      o->set_endpoint(to);
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
    const auto r = s.open(now, d);
    using E = crypto::DataOpener::OpenResult::Error;
    switch (r.error) {
      case E::None: break;
      case E::Replayed: ++counters.replayed; return;
      case E::BadTag: ++counters.bad_tag; return;
      default: ++counters.malformed; return;
    }
    Peer& p = *s.peer;
    ++p.rx_packets;
    p.rx_bytes += r.size;
    // NAT rebinding: follow the newest authentic packet to its new source.
    // A relayed path and a direct one never turn into each other.
    if (from != s.endpoint() && from.relayed() == s.relayed() && s.is_newest(d)) roam(s, from);
    if (r.size == 0) return;  // a bare keepalive
    out->deliver_packet(s.node_id(), d, crypto::kDataHeaderSize, r.size);
  }

  // -------------------------------------------------------------------------
  // DTLS demultiplexing

  void on_client_hello(const UdpEndpoint& from, ConstByteSpan d) {
    Session* hs = nullptr;
    const auto [lo, hi] = by_endpoint.equal_range(from);
    for (auto it = lo; it != hi; ++it) {
      Session& s = *it->second;
      if (!s.is_client() && !s.is_new_client_hello(d)) {  // a repeat of the hello that started it
        s.on_dtls(now, d, *this);
        return;
      }
      if (s.handshaking()) hs = &s;
    }
    // Simultaneous open: only the hello with the larger random is answered.
    if (hs != nullptr && hs->is_client() && !hs->yields_to(d)) return;
    Bytes reply;
    auto created = Session::server(settings, from, d, now, reply);
    if (!reply.empty()) out->send_datagram(from, reply);
    if (!created) {
      if (reply.empty()) ++counters.malformed;
      return;
    }
    if (hs != nullptr) {
      kill(*hs);  // replaced: the peer restarted its handshake, or won the tie-break
    } else if (handshaking_count() >= kMaxHandshaking) {
      ++counters.not_allowed;
      return;
    }
    add_session(std::move(created)).start(now, *this);
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
    const auto shortest = Session::shortest_protected_record(d);
    if (!shortest) {
      ++counters.malformed;
      return;
    }
    std::vector<Session*> targets;
    for (auto it = lo; it != hi; ++it)
      if (it->second->accepts_record_length(*shortest)) targets.push_back(it->second);
    if (targets.empty()) ++counters.malformed;
    for (Session* s : targets) s->on_dtls(now, d, *this);
  }

  // -------------------------------------------------------------------------
  // Timers

  void tick_session(Session& s) {
    if (!s.on_timer(now, sending(s), *this)) return;
    Peer& p = *s.peer;
    if (now >= s.retire_at_ms) {
      if (p.current != nullptr && p.current != &s && !p.current->peer_has_hello()) {
        s.retire_at_ms = now + std::max<std::int64_t>(config.hello_retry_ms, 1);  // the peer may still need it
      } else {
        s.close("retired", *this);
        return;
      }
    }
    if (s.retire_at_ms == kNever && s.keepalive_due() <= now) s.send_keepalive(now, *this);
    if (&s == p.current && rekey_due(p) <= now) start_rekey(p);
  }

  void on_timer() {
    for (std::size_t i = 0; i < sessions.size(); ++i) {
      Session& s = *sessions[i];
      if (!s.dead()) tick_session(s);
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
      if (s.dead()) continue;
      t = std::min(t, s.next_deadline(sending(s)));
      if (s.keyed() && sending(s)) t = std::min(t, rekey_due(*s.peer));
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
      const auto o = s.recheck(now);
      if (o && !o->ok) s.close("peer certificate rejected: " + (o->reason.empty() ? "by verifier" : o->reason), *this);
    }
  }

  void sweep() {
    if (!sweep_needed) return;
    sweep_needed = false;
    for (auto& s : sessions)
      if (s->dead() && s->peer != nullptr) --s->peer->sessions;
    std::erase_if(sessions, [](const auto& s) { return s->dead(); });
    for (auto it = peers.begin(); it != peers.end();) {
      if (it->second.unused()) {
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
        p->forget_endpoints();
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
      p.next_endpoint_index = 0;
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
    if (p == nullptr || (p->current != nullptr && !p->current->relayed()) || m.in_progress(*p, false)) return false;
    const auto ep = p->next_endpoint();
    if (!ep || m.handshaking_at(*ep) != nullptr) return false;
    return m.start_client(*ep, p->node_id) != nullptr;
  } catch (...) {
    return false;
  }
}

std::string_view PeerManager::node_at(const UdpEndpoint& endpoint) const {
  const auto [lo, hi] = impl_->by_endpoint.equal_range(endpoint);
  for (auto it = lo; it != hi; ++it)
    if (!it->second->dead() && it->second->keyed()) return it->second->node_id();
  return {};
}

std::optional<UdpEndpoint> PeerManager::endpoint_of(std::string_view node_id) const {
  const auto it = impl_->peers.find(node_id);
  if (it == impl_->peers.end() || it->second.current == nullptr) return std::nullopt;
  return it->second.current->endpoint();
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
        st.endpoint = p.current->endpoint();
      } else if (p.last_endpoint) {
        st.endpoint = *p.last_endpoint;
      } else if (!p.endpoints.empty()) {
        st.endpoint = p.endpoints.front();
      }
      st.established = p.current != nullptr;
      st.relayed = p.current != nullptr && p.current->relayed();
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

std::size_t PeerManager::keyed_sessions() const {
  std::size_t n = 0;
  for (const auto& s : impl_->sessions) n += !s->dead() && s->keyed() ? 1 : 0;
  return n;
}

}  // namespace wownet::overlay
