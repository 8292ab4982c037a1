// A node's paths, queue and session choice: see peer.h.
#include "overlay/peer.h"

#include <algorithm>

#include "overlay/session_table.h"

namespace wownet::overlay {

bool Peer::newcomer_wins(const Candidate& current, const Candidate& newcomer) {
  if (current.relayed != newcomer.relayed) return !newcomer.relayed;
  if (newcomer.keyed_ms - current.keyed_ms < kSimultaneousWindowMs)
    return newcomer.replaces != current.replaces ? newcomer.replaces : newcomer.tag > current.tag;
  return true;
}

bool Peer::better(const PeerSession& a, const PeerSession& b) {
  if (a.relayed() != b.relayed()) return !a.relayed();
  return a.keyed_ms() >= b.keyed_ms();
}

std::optional<UdpEndpoint> Peer::next_endpoint() const {
  const bool extra = last_endpoint && !last_endpoint->relayed() &&
                     std::find(endpoints.begin(), endpoints.end(), *last_endpoint) == endpoints.end();
  const std::size_t n = endpoints.size() + (extra ? 1 : 0);
  if (n == 0) return std::nullopt;
  const std::size_t i = next_endpoint_index % n;
  return i < endpoints.size() ? endpoints[i] : *last_endpoint;
}

std::size_t Peer::enqueue(bool control, ConstByteSpan bytes, std::size_t limit, std::int64_t now_ms) {
  if (limit == 0 || bytes.size() > kQueueByteLimit) return 1;
  std::size_t queued = bytes.size();
  for (const auto& q : queue) queued += q.bytes.size();
  std::size_t dropped = 0;
  while (!queue.empty() && (queue.size() >= limit || queued > kQueueByteLimit)) {
    queued -= queue.front().bytes.size();
    queue.pop_front();
    ++dropped;
  }
  queue.push_back(Queued{control, std::vector<std::uint8_t>(bytes.begin(), bytes.end())});
  if (current == nullptr && waiting_since_ms == kNever) waiting_since_ms = now_ms;
  return dropped;
}

std::size_t Peer::expire_unresolved(std::int64_t now_ms, std::int64_t wait_ms) {
  if (waiting_since_ms == kNever) waiting_since_ms = now_ms;
  if (now_ms < waiting_since_ms + wait_ms) return 0;
  const std::size_t n = queue.size();
  queue.clear();
  waiting_since_ms = kNever;
  return n;
}

void Peer::note_failed_path(const UdpEndpoint& endpoint, const std::string& reason, std::int64_t now_ms,
                            std::int64_t retry_after_ms) {
  last_error = reason;
  if (endpoint.relayed()) {
    relay_retry_at_ms = now_ms + retry_after_ms;
  } else {
    retry_at_ms = now_ms + retry_after_ms;
    ++next_endpoint_index;
  }
}

void Peer::note_keyed(const PeerSession& s, std::int64_t now_ms) {
  node_name = s.peer_name();
  last_handshake_ms = now_ms;
  last_error.clear();
  waiting_since_ms = kNever;
  if (s.relayed()) {
    relay_retry_at_ms = kLongAgo;
  } else {
    last_endpoint = s.endpoint();
    retry_at_ms = kLongAgo;
  }
  const auto known = std::find(endpoints.begin(), endpoints.end(), s.endpoint());
  if (known != endpoints.end()) next_endpoint_index = static_cast<std::size_t>(known - endpoints.begin());
}

void Peer::forget_endpoints() {
  endpoints.clear();
  last_endpoint.reset();
  next_endpoint_index = 0;
}

PeerStats Peer::stats() const {
  PeerStats st;
  st.node_id = node_id;
  st.node_name = node_name;
  if (current != nullptr) {
    st.endpoint = current->endpoint();
  } else if (last_endpoint) {
    st.endpoint = *last_endpoint;
  } else if (!endpoints.empty()) {
    st.endpoint = endpoints.front();
  }
  st.established = current != nullptr;
  st.relayed = current != nullptr && current->relayed();
  st.tx_packets = tx_packets;
  st.tx_bytes = tx_bytes;
  st.rx_packets = rx_packets;
  st.rx_bytes = rx_bytes;
  st.last_handshake_ms = last_handshake_ms;
  st.rtt_ms = rtt_ms;
  st.last_error = last_error;
  return st;
}

bool Peer::in_progress(const SessionTable& table, bool relayed) const {
  for (const auto& s : table.all())
    if (!s->dead() && !s->keyed() && s->relayed() == relayed &&
        ((s->is_client() && s->target_node() == node_id) || s->peer == this))
      return true;
  return false;
}

std::int64_t Peer::direct_due(const SessionTable& table) const {
  if (in_progress(table, false)) return kNever;
  const auto ep = next_endpoint();
  if (!ep || table.handshaking_at(*ep) != nullptr) return kNever;
  return retry_at_ms;
}

std::int64_t Peer::relay_due(const SessionTable& table, std::int64_t relay_after_ms) const {
  if (!relay || current != nullptr || in_progress(table, true) || table.handshaking_at(*relay) != nullptr)
    return kNever;
  std::int64_t from = kLongAgo;
  if (next_endpoint()) {
    if (waiting_since_ms == kNever) return kNever;
    from = waiting_since_ms + relay_after_ms;
  }
  return std::max(from, relay_retry_at_ms);
}

bool Peer::can_rekey(const SessionTable& table) const {
  return current != nullptr && !in_progress(table) && table.handshaking_at(current->endpoint()) == nullptr;
}

std::int64_t Peer::rekey_due(const SessionTable& table, std::int64_t rekey_after_ms) const {
  if (!can_rekey(table) || !current->is_client()) return kNever;
  return std::max(current->keyed_ms() + rekey_after_ms, retry_at_ms);
}

void Peer::choose_current(const SessionTable& table) {
  current = nullptr;
  for (const auto& o : table.all()) {
    if (!o->dead() && o->peer == this && o->keyed() && (current == nullptr || better(*o, *current))) current = o.get();
  }
  if (current != nullptr) current->retire_at_ms = kNever;
}

}  // namespace wownet::overlay
