// Node-to-node session layer: see peer_manager.h for the protocol.
#include "overlay/peer_manager.h"

#include <algorithm>
#include <map>
#include <ranges>
#include <utility>

#include "overlay/peer.h"
#include "overlay/session.h"
#include "overlay/session_settings.h"
#include "overlay/session_table.h"
#include "proto/overlay.pb.h"

namespace wownet::overlay {
namespace {

using Bytes = std::vector<std::uint8_t>;
using Session = PeerSession;

// Server sessions in the handshake at once (each needs a valid cookie, so
// an address the client really owns).
constexpr std::size_t kMaxHandshaking = 1024;

ConstByteSpan bytes_of(const std::string& s) { return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}; }

struct ConnectTarget {
  UdpEndpoint endpoint;
  std::int64_t retry_at_ms = kLongAgo;
};

}  // namespace

// ---------------------------------------------------------------------------
// PeerManager::Impl

struct PeerManager::Impl final : SessionHost {
  Impl(SessionSettings s, std::function<std::uint32_t()> rng)
      : settings(std::move(s)), config(settings.config), sessions(std::move(rng)) {}

  SessionSettings settings;
  const PeerConfig& config;

  SessionTable sessions;
  std::map<std::string, Peer, std::less<>> peers;
  std::vector<ConnectTarget> connects;
  Counters counters;

  // The call being processed (set by run()).
  std::int64_t now = 0;
  Outbox* out = nullptr;
  bool forget_needed = false;  // a node may be unused now (sweep forgets it)

  // Runs one public call `f` at `now_ms`, its actions going to `o`, then
  // sweeps dead sessions and unused nodes: deferred to the end of the call
  // so that no Session or Peer disappears under a loop. Returns f's result,
  // or `failed` if it threw (out of memory: the call's work is lost).
  template <typename R, typename F>
  R run(std::int64_t now_ms, Outbox& o, R failed, F&& f) {
    now = now_ms;
    out = &o;
    R result = failed;
    try {
      result = f();
    } catch (...) {
    }
    sweep();
    out = nullptr;
    return result;
  }

  // -------------------------------------------------------------------------
  // SessionHost

  void send_datagram(const UdpEndpoint& to, ConstByteSpan datagram) override { out->send(to, datagram); }

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
    return sessions.bind_index(s);
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
    for (const auto& o : sessions.all()) {
      if (o->dead() || o.get() == p.current) continue;
      if (o->peer == &p && o->keyed() && o->retire_at_ms == kNever) o->retire_at_ms = now + config.retire_after_ms;
      // Our other handshakes with the node are moot, except direct ones
      // while only a relayed session is keyed.
      if (o->is_client() && o->target_node() == p.node_id && o->handshaking() &&
          (o->relayed() || !p.current->relayed()))
        sessions.kill(*o);
    }
    flush_queue(p);
    if (!p.up && p.current != nullptr) {
      p.up = true;
      out->actions.emplace_back(PeerUp{p.node_id, p.node_name, p.current->endpoint()});
    }
  }

  void on_control(Session& s, const NodeMessage& m) override {
    out->actions.emplace_back(DeliverControl{s.node_id(), std::make_shared<const NodeMessage>(m)});
  }

  void on_rtt(Session& s, std::int64_t rtt_ms) override {
    s.peer->rtt_ms = rtt_ms;
    counters.rtt_ms.add(rtt_ms);
  }

  // A node losing its last keyed session goes down.
  void on_ended(Session& s, const std::string& reason) override {
    if (s.dead()) return;
    sessions.kill(s);
    if (!s.keyed()) {
      note_failure(s.is_client(), s.target_node(), s.endpoint(), s.peer, reason);
      return;
    }
    Peer& p = *s.peer;
    if (p.current == &s) p.choose_current(sessions);
    if (p.current == nullptr && p.up) {
      p.up = false;
      p.last_error = reason;
      out->actions.emplace_back(PeerDown{p.node_id, reason});
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

  static bool sending(const Session& s) { return s.peer != nullptr && s.peer->current == &s; }

  // -------------------------------------------------------------------------
  // Session bookkeeping

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
    Session& s = sessions.add(std::move(created));
    s.start(now, *this);
    return &s;
  }

  void maybe_start_handshake(Peer& p) {
    if (p.current == nullptr && p.waiting_since_ms == kNever && !p.queue.empty()) p.waiting_since_ms = now;
    if (p.direct_due(sessions) <= now) {
      if (const auto ep = p.next_endpoint()) start_client(*ep, p.node_id);
    }
    if (p.relay_due(sessions, config.relay_after_ms) <= now) start_client(*p.relay, p.node_id);
  }

  void start_rekey(Peer& p) {
    if (!p.can_rekey(sessions) || now < p.retry_at_ms) return;
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
    const ByteSpan sealed = out->room(packet.size() + crypto::kDataOverhead);
    const std::size_t n = s.seal(now, packet, sealed);
    if (n == 0) return false;
    out->actions.emplace_back(SendDatagram{s.endpoint(), sealed.first(n)});
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
    if (p == nullptr || p->nowhere_to_go(sessions)) {
      // The caller asks the registry; the traffic waits for its answer
      // (set_endpoints or set_relay) up to resolve_wait_ms.
      ++counters.no_endpoint;
      Peer& q = p != nullptr ? *p : peer_entry(node_id);
      counters.queue_drops += q.enqueue(control, bytes, config.queue_limit, now);
      return false;
    }
    counters.queue_drops += p->enqueue(control, bytes, config.queue_limit, now);
    maybe_start_handshake(*p);
    return true;
  }

  // Points the node's sessions that used the peer's old address at its new one.
  void roam(Session& s, const UdpEndpoint& to) {
    const UdpEndpoint from = s.endpoint();
    for (const auto& o : sessions.all()) {
      if (o->dead() || o->peer != s.peer || o->endpoint() != from) continue;
      sessions.move(*o, to);
    }
    s.peer->last_endpoint = to;
  }

  void on_data(const UdpEndpoint& from, ByteSpan d) {
    const auto index = crypto::DataOpener::peek_receiver_index(d);
    if (!index) {
      ++counters.malformed;
      return;
    }
    Session* found = sessions.find_index(*index);
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
    out->actions.emplace_back(DeliverPacket{s.node_id(), d, crypto::kDataHeaderSize, r.size});
  }

  // -------------------------------------------------------------------------
  // DTLS demultiplexing

  void on_client_hello(const UdpEndpoint& from, ConstByteSpan d) {
    Session* hs = nullptr;
    for (Session* at : sessions.at(from) | std::views::values) {
      Session& s = *at;
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
    if (!reply.empty()) out->send(from, reply);
    if (!created) {
      if (reply.empty()) ++counters.malformed;
      return;
    }
    if (hs != nullptr) {
      sessions.kill(*hs);  // replaced: the peer restarted its handshake, or won the tie-break
    } else if (sessions.handshaking_count() >= kMaxHandshaking) {
      ++counters.not_allowed;
      return;
    }
    sessions.add(std::move(created)).start(now, *this);
  }

  void on_dtls(const UdpEndpoint& from, ConstByteSpan d) {
    if (crypto::is_dtls_client_hello(d)) {
      on_client_hello(from, d);
      return;
    }
    // Every session at the endpoint sees the records: only the one in the
    // handshake takes epoch-0 records, and the others drop what does not
    // authenticate under their keys.
    const auto at = sessions.at(from);
    if (at.empty()) {
      ++counters.not_allowed;
      return;
    }
    const auto shortest = Session::shortest_protected_record(d);
    if (!shortest) {
      ++counters.malformed;
      return;
    }
    std::vector<Session*> targets;
    for (Session* s : at | std::views::values)
      if (s->accepts_record_length(*shortest)) targets.push_back(s);
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
    if (&s == p.current && p.rekey_due(sessions, config.rekey_after_ms) <= now) start_rekey(p);
  }

  void on_timer() {
    for (std::size_t i = 0; i < sessions.all().size(); ++i) {
      Session& s = *sessions.all()[i];
      if (!s.dead()) tick_session(s);
    }
    for (auto& [id, p] : peers) {
      if (p.queue.empty() || p.current != nullptr) continue;
      if (!p.nowhere_to_go(sessions)) {
        maybe_start_handshake(p);
      } else if (const std::size_t n = p.expire_unresolved(now, config.resolve_wait_ms)) {
        counters.queue_drops += n;
        forget_needed = true;
      }
    }
    for (std::size_t i = 0; i < connects.size(); ++i) {
      const ConnectTarget t = connects[i];
      if (!sessions.live_at(t.endpoint) && now >= t.retry_at_ms) start_client(t.endpoint, "");
    }
  }

  std::int64_t next_deadline() const {
    std::int64_t t = kNever;
    for (const auto& sp : sessions.all()) {
      const Session& s = *sp;
      if (s.dead()) continue;
      t = std::min(t, s.next_deadline(sending(s)));
      if (s.keyed() && sending(s)) t = std::min(t, s.peer->rekey_due(sessions, config.rekey_after_ms));
    }
    for (const auto& [id, p] : peers) {
      if (p.queue.empty() || p.current != nullptr) continue;
      t = std::min(t, p.nowhere_to_go(sessions) ? p.unresolved_due(config.resolve_wait_ms)
                                                : p.handshake_due(sessions, config.relay_after_ms));
    }
    for (const auto& c : connects)
      if (!sessions.live_at(c.endpoint)) t = std::min(t, c.retry_at_ms);
    return t;
  }

  void recheck() {
    for (std::size_t i = 0; i < sessions.all().size(); ++i) {
      Session& s = *sessions.all()[i];
      const auto o = s.recheck(now);
      if (o && !o->ok) s.close("peer certificate rejected: " + (o->reason.empty() ? "by verifier" : o->reason), *this);
    }
  }

  void sweep() {
    const bool swept = sessions.sweep();
    if (!swept && !forget_needed) return;
    forget_needed = false;
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

PeerManager::PeerManager(SessionSettings settings, std::function<std::uint32_t()> random32)
    : impl_(std::make_unique<Impl>(std::move(settings), std::move(random32))) {}

PeerManager::~PeerManager() = default;

void PeerManager::on_datagram(std::int64_t now_ms, const UdpEndpoint& from, ByteSpan datagram, Outbox& out) {
  Impl& m = *impl_;
  m.run(now_ms, out, false, [&] {
    switch (wire::classify(datagram)) {
      case wire::DatagramType::Data: m.on_data(from, datagram); break;
      case wire::DatagramType::Dtls: m.on_dtls(from, datagram); break;
      default: ++m.counters.malformed; break;
    }
    return true;
  });
}

bool PeerManager::send_packet(std::int64_t now_ms, std::string_view node_id, ConstByteSpan ip_packet, Outbox& out) {
  Impl& m = *impl_;
  return m.run(now_ms, out, false, [&] { return m.send_or_queue(node_id, false, ip_packet); });
}

bool PeerManager::send_control(std::int64_t now_ms, std::string_view node_id, const NodeMessage& message, Outbox& out) {
  Impl& m = *impl_;
  return m.run(now_ms, out, false, [&] {
    if (message.has_hello() || message.has_keepalive()) return false;
    std::string bytes;
    if (!message.SerializeToString(&bytes) || bytes.empty() || bytes.size() > crypto::kDtlsMaxMessage) return false;
    return m.send_or_queue(node_id, true, bytes_of(bytes));
  });
}

void PeerManager::connect(std::int64_t now_ms, const UdpEndpoint& to, Outbox& out) {
  Impl& m = *impl_;
  m.run(now_ms, out, false, [&] {
    auto it = std::find_if(m.connects.begin(), m.connects.end(), [&](const auto& c) { return c.endpoint == to; });
    if (it == m.connects.end()) {
      m.connects.push_back(ConnectTarget{to, kLongAgo});
      it = m.connects.end() - 1;
    }
    if (!m.sessions.live_at(to) && now_ms >= it->retry_at_ms) m.start_client(to, "");
    return true;
  });
}

void PeerManager::disconnect(const UdpEndpoint& to) {
  std::erase_if(impl_->connects, [&](const auto& c) { return c.endpoint == to; });
}

void PeerManager::set_relay_after_ms(std::int64_t ms) { impl_->settings.config.relay_after_ms = ms; }

void PeerManager::set_endpoints(std::string_view node_id, std::vector<UdpEndpoint> endpoints) {
  Impl& m = *impl_;
  try {
    if (endpoints.empty()) {
      if (Peer* p = m.find_peer(node_id)) {
        p->forget_endpoints();
        if (p->current == nullptr && !p->relay && !p->in_progress(m.sessions)) {  // nowhere to go
          m.counters.queue_drops += p->queue.size();
          p->queue.clear();
        }
        m.forget_needed = true;
        m.sweep();
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
        m.forget_needed = true;
        m.sweep();
      }
      return;
    }
    m.peer_entry(node_id).relay = relay;
  } catch (...) {
  }
}

bool PeerManager::try_direct(std::int64_t now_ms, std::string_view node_id, Outbox& out) {
  Impl& m = *impl_;
  return m.run(now_ms, out, false, [&] {
    Peer* p = m.find_peer(node_id);
    if (p == nullptr || (p->current != nullptr && !p->current->relayed()) || p->in_progress(m.sessions, false))
      return false;
    const auto ep = p->next_endpoint();
    if (!ep || m.sessions.handshaking_at(*ep) != nullptr) return false;
    return m.start_client(*ep, p->node_id) != nullptr;
  });
}

std::string_view PeerManager::node_at(const UdpEndpoint& endpoint) const {
  return impl_->sessions.keyed_node_at(endpoint);
}

std::optional<UdpEndpoint> PeerManager::endpoint_of(std::string_view node_id) const {
  const auto it = impl_->peers.find(node_id);
  if (it == impl_->peers.end() || it->second.current == nullptr) return std::nullopt;
  return it->second.current->endpoint();
}

void PeerManager::on_timer(std::int64_t now_ms, Outbox& out) {
  Impl& m = *impl_;
  m.run(now_ms, out, false, [&] {
    m.on_timer();
    return true;
  });
}

std::int64_t PeerManager::next_deadline_ms() const { return impl_->next_deadline(); }

void PeerManager::recheck(std::int64_t now_ms, Outbox& out) {
  Impl& m = *impl_;
  m.run(now_ms, out, false, [&] {
    m.recheck();
    return true;
  });
}

void PeerManager::close_all(std::int64_t now_ms, Outbox& out) {
  Impl& m = *impl_;
  m.run(now_ms, out, false, [&] {
    m.connects.clear();
    for (std::size_t i = 0; i < m.sessions.all().size(); ++i) {
      Session& s = *m.sessions.all()[i];
      if (!s.dead()) s.close("shutting down", m);
    }
    return true;
  });
}

std::vector<PeerManager::PeerStats> PeerManager::peers() const {
  std::vector<PeerStats> list;
  try {
    list.reserve(impl_->peers.size());
    for (const auto& [id, p] : impl_->peers) list.push_back(p.stats());
  } catch (...) {
  }
  return list;
}

const PeerManager::Counters& PeerManager::counters() const { return impl_->counters; }

std::size_t PeerManager::keyed_sessions() const {
  std::size_t n = 0;
  for (const auto& s : impl_->sessions.all()) n += !s->dead() && s->keyed() ? 1 : 0;
  return n;
}

}  // namespace wownet::overlay
