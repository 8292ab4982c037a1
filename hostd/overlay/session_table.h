// The sessions of one PeerManager, in creation order, found by the endpoint
// their datagrams come from and by the receiver index data packets carry.
// A killed session leaves both indexes at once but stays in the table, so
// that no caller up the stack loses it, until sweep() erases it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <ranges>
#include <string_view>
#include <vector>

#include "overlay/endpoint.h"
#include "overlay/index_table.h"
#include "overlay/session.h"

namespace wownet::overlay {

class SessionTable {
 public:
  using EndpointIndex = std::multimap<UdpEndpoint, PeerSession*>;
  using AtEndpoint = std::ranges::subrange<EndpointIndex::const_iterator>;

  // `random32` proposes receiver indexes (see ReceiverIndexMap).
  explicit SessionTable(std::function<std::uint32_t()> random32) : by_index_(std::move(random32)) {}

  // Takes `s` in, indexed by its endpoint; returns it.
  PeerSession& add(std::unique_ptr<PeerSession> s);
  // Binds a fresh receiver index to `s` (established) and returns it.
  std::uint32_t bind_index(PeerSession& s) { return by_index_.allocate(s); }
  // Takes `s` out of service: marked dead, out of both indexes (no output,
  // no callbacks). It stays in all() until sweep().
  void kill(PeerSession& s);
  // `s` (and its node's other sessions at the same endpoint, see roam in
  // PeerManager) is reached at `to` now: re-indexes it.
  void move(PeerSession& s, const UdpEndpoint& to);
  // Erases the dead sessions, taking each off its Peer's count; false if
  // there were none to erase since the last sweep.
  bool sweep();

  // Every session, dead ones until swept, in creation order.
  const std::vector<std::unique_ptr<PeerSession>>& all() const { return sessions_; }
  // The live sessions at `endpoint`.
  AtEndpoint at(const UdpEndpoint& endpoint) const {
    const auto [lo, hi] = by_endpoint_.equal_range(endpoint);
    return {lo, hi};
  }
  // The session with receiver index `index`; null if none. Never allocates.
  PeerSession* find_index(std::uint32_t index) const { return by_index_.find(index); }
  // The session at `endpoint` that is in the DTLS handshake (there is at most one).
  PeerSession* handshaking_at(const UdpEndpoint& endpoint) const;
  // Whether any live session uses `endpoint`.
  bool live_at(const UdpEndpoint& endpoint) const { return by_endpoint_.find(endpoint) != by_endpoint_.end(); }
  // The node of a keyed session at `endpoint`; empty if none.
  std::string_view keyed_node_at(const UdpEndpoint& endpoint) const;
  // How many sessions are in the DTLS handshake.
  std::size_t handshaking_count() const;

 private:
  void unindex_endpoint(PeerSession& s);

  std::vector<std::unique_ptr<PeerSession>> sessions_;  // creation order
  ReceiverIndexTable<PeerSession> by_index_;
  EndpointIndex by_endpoint_;
  bool sweep_needed_ = false;
};

}  // namespace wownet::overlay
