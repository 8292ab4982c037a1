// One node as the session layer knows it: where it can be reached (known
// endpoints in turn, where it was last reached, a relay), its sending
// session, traffic queued while it has none, handshake retry times and
// statistics. The sessions themselves live in PeerManager; a session
// points at its Peer once established (PeerSession::peer).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "core/packet.h"
#include "overlay/endpoint.h"
#include "overlay/peer_stats.h"
#include "overlay/session.h"

namespace wownet::overlay {

class SessionTable;

class Peer {
 public:
  // What decides which of two keyed sessions with a node carries traffic.
  struct Candidate {
    bool relayed = false;
    std::int64_t keyed_ms = 0;
    bool replaces = false;  // a rekey
    std::uint64_t tag = 0;  // key-derived, the same on both sides
  };
  static Candidate candidate_of(const PeerSession& s) { return {s.relayed(), s.keyed_ms(), s.replaces(), s.tag()}; }
  // Sessions with a node keyed closer together than this are simultaneous.
  static constexpr std::int64_t kSimultaneousWindowMs = 5'000;
  // True if the just-keyed `newcomer` takes over from `current`: a direct
  // session beats a relayed one; otherwise the newer wins unless both were
  // keyed within kSimultaneousWindowMs, when the rekey beats the fresh one,
  // else the larger tag wins. Both sides know the same flags, tags and
  // paths, so they agree.
  static bool newcomer_wins(const Candidate& current, const Candidate& newcomer);
  // After the sending session ended, which remaining one takes over: direct
  // before relayed, then the newer (true: `a` beats `b`).
  static bool better(const PeerSession& a, const PeerSession& b);

  struct Queued {
    bool control = false;  // a serialized NodeMessage, else an IPv4 packet
    std::vector<std::uint8_t> bytes;
  };

  explicit Peer(std::string id) : node_id(std::move(id)) {}

  // Where the next handshake goes: the known endpoints in turn, then the
  // one the node was last reached at directly; nullopt if none.
  std::optional<UdpEndpoint> next_endpoint() const;
  // At most this many bytes wait per node, whatever the count limit: a
  // queue of 64 KiB offload frames would otherwise hold megabytes.
  static constexpr std::size_t kQueueByteLimit = 1 << 20;
  // Queues traffic while there is no sending session, dropping the oldest
  // beyond `limit` entries or kQueueByteLimit bytes (everything if 0, or
  // if `bytes` alone is larger); returns how many were dropped.
  std::size_t enqueue(bool control, ConstByteSpan bytes, std::size_t limit, std::int64_t now_ms);
  // A handshake to `endpoint` we started for this node failed (or reached
  // someone else): retry after `retry_after_ms`, a direct one elsewhere.
  void note_failed_path(const UdpEndpoint& endpoint, const std::string& reason, std::int64_t now_ms,
                        std::int64_t retry_after_ms);
  // `s` was keyed with the node: records when and where, resets retries.
  void note_keyed(const PeerSession& s, std::int64_t now_ms);
  // Forgets the known endpoints and where the node was last reached.
  void forget_endpoints();
  // What PeerManager::peers() reports: the endpoint is the sending
  // session's, else the last used, else the first known.
  PeerStats stats() const;

  // Path choice, from the sessions in `table`. A handshake with the node
  // that is not keyed yet, over direct (or relayed) paths only: ours to it,
  // or one (either way) past DTLS but still waiting for Hellos.
  bool in_progress(const SessionTable& table, bool relayed) const;
  // The same, over any path.
  bool in_progress(const SessionTable& table) const { return in_progress(table, false) || in_progress(table, true); }
  // When a handshake on the next direct endpoint may start for queued
  // traffic; kNever while something else has to finish first.
  std::int64_t direct_due(const SessionTable& table) const;
  // When one through the relay may: once traffic has waited
  // `relay_after_ms` for a direct session, or at once when there is no
  // direct endpoint; kNever likewise.
  std::int64_t relay_due(const SessionTable& table, std::int64_t relay_after_ms) const;
  // The earlier of the two.
  std::int64_t handshake_due(const SessionTable& table, std::int64_t relay_after_ms) const {
    return std::min(direct_due(table), relay_due(table, relay_after_ms));
  }
  // True if a new handshake may replace the sending session now or once
  // retry_at_ms has passed.
  bool can_rekey(const SessionTable& table) const;
  // When the sending session is due for a time-based rekey by us (the DTLS
  // client rekeys on time); kNever if not ours or not possible.
  std::int64_t rekey_due(const SessionTable& table, std::int64_t rekey_after_ms) const;
  // After the sending session ended: the best remaining keyed session of
  // the node takes over (see better()), or none.
  void choose_current(const SessionTable& table);
  // No sending session, no endpoint or relay to try and no handshake
  // running: queued traffic waits for the registry to name an endpoint.
  bool nowhere_to_go(const SessionTable& table) const {
    return current == nullptr && !next_endpoint() && !relay && !in_progress(table);
  }
  // Queued traffic with nowhere to go waits `wait_ms` for an endpoint (the
  // wait starts now if it has not: the session it waited for ended), then
  // is dropped; returns how many were dropped.
  std::size_t expire_unresolved(std::int64_t now_ms, std::int64_t wait_ms);
  // When expire_unresolved() has work; kNever before the wait started.
  std::int64_t unresolved_due(std::int64_t wait_ms) const {
    return waiting_since_ms == kNever ? kNever : waiting_since_ms + wait_ms;
  }
  // Nothing refers to the node any more: it can be forgotten.
  bool unused() const { return sessions == 0 && !up && queue.empty() && endpoints.empty() && !relay; }

  std::string node_id, node_name;
  std::vector<UdpEndpoint> endpoints;        // from set_endpoints
  std::optional<UdpEndpoint> relay;          // from set_relay
  std::optional<UdpEndpoint> last_endpoint;  // of the last keyed direct session
  std::size_t next_endpoint_index = 0;       // which one to try next
  PeerSession* current = nullptr;            // the keyed session we send on
  bool up = false;                           // peer_up reported, peer_down not yet
  std::deque<Queued> queue;
  std::int64_t retry_at_ms = kLongAgo;        // no new direct handshake before this
  std::int64_t relay_retry_at_ms = kLongAgo;  // no new relayed handshake before this
  std::int64_t waiting_since_ms = kNever;     // traffic queued without a keyed session since
  std::int64_t last_handshake_ms = -1, rtt_ms = -1;
  std::uint64_t tx_packets = 0, tx_bytes = 0, rx_packets = 0, rx_bytes = 0;
  std::string last_error;
  std::size_t sessions = 0;  // sessions whose peer this is (dead ones until swept)
};

}  // namespace wownet::overlay
