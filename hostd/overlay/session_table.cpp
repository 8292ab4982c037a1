// The sessions of one PeerManager and their indexes: see session_table.h.
#include "overlay/session_table.h"

#include <algorithm>

#include "overlay/peer.h"

namespace wownet::overlay {

PeerSession& SessionTable::add(std::unique_ptr<PeerSession> s) {
  PeerSession& ref = *s;
  sessions_.push_back(std::move(s));
  by_endpoint_.emplace(ref.endpoint(), &ref);
  return ref;
}

void SessionTable::unindex_endpoint(PeerSession& s) {
  const auto [lo, hi] = by_endpoint_.equal_range(s.endpoint());
  for (auto it = lo; it != hi; ++it) {
    if (it->second == &s) {
      by_endpoint_.erase(it);
      return;
    }
  }
}

void SessionTable::kill(PeerSession& s) {
  if (s.dead()) return;
  s.mark_dead();
  sweep_needed_ = true;
  unindex_endpoint(s);
  if (s.receiver_index() != 0) by_index_.release(s.receiver_index(), s);
}

void SessionTable::move(PeerSession& s, const UdpEndpoint& to) {
  unindex_endpoint(s);
  s.set_endpoint(to);
  by_endpoint_.emplace(to, &s);
}

bool SessionTable::sweep() {
  if (!sweep_needed_) return false;
  sweep_needed_ = false;
  for (auto& s : sessions_)
    if (s->dead() && s->peer != nullptr) --s->peer->sessions;
  std::erase_if(sessions_, [](const auto& s) { return s->dead(); });
  return true;
}

PeerSession* SessionTable::handshaking_at(const UdpEndpoint& endpoint) const {
  for (PeerSession* s : at(endpoint) | std::views::values)
    if (s->handshaking()) return s;
  return nullptr;
}

std::string_view SessionTable::keyed_node_at(const UdpEndpoint& endpoint) const {
  for (const PeerSession* s : at(endpoint) | std::views::values)
    if (!s->dead() && s->keyed()) return s->node_id();
  return {};
}

std::size_t SessionTable::handshaking_count() const {
  return static_cast<std::size_t>(
      std::count_if(sessions_.begin(), sessions_.end(), [](const auto& s) { return s->handshaking(); }));
}

}  // namespace wownet::overlay
