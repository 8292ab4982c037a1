// Node-to-node session layer, sans-I/O: every node has one UDP socket; the io
// layer hands each datagram it reads to PeerManager::on_datagram and carries
// out the Actions (overlay/action.h) that every call appends to the caller's
// Outbox: SendDatagram, DeliverPacket, DeliverControl, PeerUp, PeerDown.
// Nothing calls back, so the caller may call again while carrying them out
// (with another Outbox). Time comes in as milliseconds on a monotonic clock
// of the caller's choosing; nothing here reads a clock, opens a socket or
// starts a thread. Not thread-safe: one thread drives it.
//
// Between two nodes: a DTLS 1.2 session (crypto::DtlsSession, mutual X.509
// authentication; the peer's node id is the verified certificate's id)
// carries control messages (NodeMessage, one per DTLS record), and keys
// exported from it drive the AEAD data channel (crypto::DataSealer/Opener)
// that carries the VMs' IPv4 packets.
//
// Demultiplexing (first byte of a datagram, core/overlay_wire.h): 20..25
// DTLS, 4 data, anything else malformed. Data packets find their session by
// receiver index. DTLS records find it by source endpoint: a ClientHello
// from an endpoint without a matching server session goes through the
// stateless cookie exchange (DtlsSession::server); other records are offered to every live session at
// that endpoint, which is unambiguous because at most one session per
// endpoint is ever in the handshake (epoch 0, unauthenticated) and the
// others only accept records that authenticate under their own keys.
// Protected records too short for an AEAD nonce and tag are dropped first:
// OpenSSL 3.0 would fail the whole session on such a forgery.
//
// Session life: once DTLS is established both sides send Hello (node name,
// the receiver index they want in data packets, the cipher they want to
// receive with, version) and repeat it until the peer shows it has ours.
// Hello.request_id is a set of flags: 1 = "answer with your Hello", 2 =
// "this session replaces our keyed one" (set by the DTLS client of a
// rekey). With the peer's Hello the session is keyed: queued traffic is
// flushed and PeerUp reported. Idle keyed sessions exchange keepalives
// (request ids: odd from the DTLS client, even from the server; the reply
// echoes the id and gives the RTT); nothing received for dead_after_ms ends
// a session. The DTLS client rekeys after rekey_after_ms (either side after
// rekey_after_packets) with a new handshake while traffic continues on the
// old session; the new one becomes the sending one once keyed and older
// ones are retired after retire_after_ms, all accepting data until then.
// An authentic data packet that is the newest of its session and comes from
// a new source moves the node there (NAT rebinding); DTLS records from an
// unknown endpoint do not (they count as not_allowed), so every keepalive
// request goes with an empty data packet that carries the move.
//
// Relayed paths. Endpoints in 0.0.0.0/8 never appear on the wire; the io
// layer uses them to name "node N through relay R" (UdpEndpoint::relayed)
// and wraps what is sent to them for the relay, which forwards the sealed
// datagrams unread: the DTLS session and the data keys stay between the two
// nodes. A node given a relay endpoint (set_relay) whose queued traffic has
// found no keyed session for relay_after_ms gets a handshake over the relay
// as well, while the direct one goes on. A direct keyed session always wins
// over a relayed one, whichever came first (both sides see alike which
// session is relayed, so they agree); try_direct() retries the direct path
// while the node is reached only through a relay.
//
// Simultaneous handshakes. Two handshakes between the same endpoint pair
// cannot be told apart before they are keyed, so a ClientHello that meets
// our own ClientHello in flight is answered only if its client random is
// the larger one: both sides decide alike and one handshake completes.
// Handshakes over different endpoint pairs all complete; when two sessions
// with a node, neither a rekey, are keyed within 5 s of each other, both
// sides keep sending on the one with the larger key-derived tag (otherwise
// the newer wins), so they agree.
//
// No heap allocation per data packet on the steady-state path (send_packet
// on a keyed session, on_datagram of a valid data packet). No exceptions
// leave the API.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/packet.h"
#include "core/types.h"
#include "overlay/action.h"
#include "overlay/endpoint.h"
#include "overlay/latency_histogram.h"
#include "overlay/peer_stats.h"

namespace wownet::overlay {

class NodeMessage;       // proto/overlay.proto
struct SessionSettings;  // overlay/session_settings.h

class PeerManager {
 public:
  static constexpr std::int64_t kNoDeadline = std::numeric_limits<std::int64_t>::max();

  // `settings.context` (our identity) must outlive the manager.
  // `settings.verify` checks a peer's certificate at a time (ms) and returns
  // the outcome with peer_id = the node id; recheck() calls it again.
  // `self_name` goes into our Hello. With `name_of`, a peer's name comes
  // from its certificate (e.g. its CN) instead of its Hello. `random32`
  // supplies receiver indices.
  PeerManager(SessionSettings settings, std::function<std::uint32_t()> random32);
  ~PeerManager();
  PeerManager(const PeerManager&) = delete;
  PeerManager& operator=(const PeerManager&) = delete;

  // Handles one datagram read from the socket. A valid data packet is
  // decrypted in place and reported as DeliverPacket (offset 16); the
  // datagram's bytes may be modified either way. Failures are counted.
  void on_datagram(std::int64_t now_ms, const UdpEndpoint& from, ByteSpan datagram, Outbox& out);

  // Seals and sends an IPv4 packet to node `node_id` on its newest keyed
  // session. Without one, queues it (at most queue_limit per node; the
  // oldest is dropped and counted) and starts a handshake to the node's
  // known endpoints unless one is running or failed less than
  // retry_after_ms ago. False (counted as no_endpoint) if there is no
  // session and no known endpoint: the packet is queued all the same and
  // waits up to resolve_wait_ms for set_endpoints or set_relay (the
  // caller asks the registry), then is dropped; false also if sealing
  // failed.
  bool send_packet(std::int64_t now_ms, std::string_view node_id, ConstByteSpan ip_packet, Outbox& out);

  // As send_packet, for a control message over DTLS (unreliable: the caller
  // retries by request_id). False also if it does not serialize to 1 to
  // crypto::kDtlsMaxMessage bytes, or is a Hello or Keepalive.
  bool send_control(std::int64_t now_ms, std::string_view node_id, const NodeMessage& m, Outbox& out);

  // Starts (or keeps) a session to an endpoint whose node id is not known
  // yet (e.g. a configured rendezvous); PeerUp reports the id once keyed.
  // Persistent: whenever no session with that endpoint is live, a new
  // handshake starts (no more often than retry_after_ms after a failure).
  void connect(std::int64_t now_ms, const UdpEndpoint& to, Outbox& out);
  // Stops what connect() started keeping up (live sessions stay).
  void disconnect(const UdpEndpoint& to);
  // Changes relay_after_ms (PeerConfig) from now on: a config reload.
  void set_relay_after_ms(std::int64_t ms);

  // Where a node can be reached (e.g. from the registry); the first is tried
  // first, the next after a failed handshake (then the endpoint it was last
  // reached at). Empty forgets them and where the node was last reached
  // (a keyed session stays), and the node's queue if nothing else can
  // reach it: the next send_packet then fails, so the caller resolves the
  // node again.
  void set_endpoints(std::string_view node_id, std::vector<UdpEndpoint> endpoints);
  // A relayed endpoint (UdpEndpoint::relayed) for the node, tried as well
  // once its traffic has waited relay_after_ms for a direct session (at
  // once if it has no direct endpoint); nullopt forgets it.
  void set_relay(std::string_view node_id, std::optional<UdpEndpoint> relay);
  // Starts a handshake to the node's next direct endpoint now, unless one
  // is running or a direct session is keyed: after the far side was asked
  // to open its NAT toward us. False if nothing was started.
  bool try_direct(std::int64_t now_ms, std::string_view node_id, Outbox& out);
  // The node whose keyed session uses `endpoint`; empty if none. Valid
  // until the next call that may change sessions.
  std::string_view node_at(const UdpEndpoint& endpoint) const;
  // The endpoint of the node's sending session; nullopt without one.
  std::optional<UdpEndpoint> endpoint_of(std::string_view node_id) const;

  // Runs retransmissions, Hello retries, keepalives, rekeys, retirements,
  // dead-peer detection and pending handshakes that are due at `now_ms`.
  void on_timer(std::int64_t now_ms, Outbox& out);
  // When on_timer next has something to do (possibly already past, then
  // call on_timer now); kNoDeadline if nothing is armed. Ask again after
  // every other call.
  std::int64_t next_deadline_ms() const;

  // Re-verifies every session's peer certificate at `now_ms` (after a CRL
  // update) and closes those that now fail; a node left without a keyed
  // session gets PeerDown with the verifier's reason.
  void recheck(std::int64_t now_ms, Outbox& out);
  // Shutting down: sends close_notify on every session (so that peers
  // learn at once that this node is gone instead of after dead_after_ms),
  // ends them (PeerDown for nodes that were up) and stops connecting.
  void close_all(std::int64_t now_ms, Outbox& out);

  using PeerStats = overlay::PeerStats;
  // Every node known from a session, set_endpoints or queued traffic, by node id.
  std::vector<PeerStats> peers() const;

  struct Counters {
    std::uint64_t malformed = 0;           // unknown first byte, short/bad data header, bad protobuf
    std::uint64_t unknown_receiver = 0;    // data packet for no live session
    std::uint64_t replayed = 0;            // data packet counter seen before or too old
    std::uint64_t bad_tag = 0;             // data packet failed authentication
    std::uint64_t handshake_failures = 0;  // DTLS handshakes that failed or timed out, sessions never keyed
    std::uint64_t queue_drops = 0;         // queued traffic dropped (limit, or the node was forgotten)
    std::uint64_t no_endpoint = 0;         // send to a node with neither session nor endpoint
    std::uint64_t not_allowed = 0;         // DTLS from an endpoint without session, unusable Hello, ...
    std::uint64_t handshakes = 0;          // DTLS handshakes completed
    // Not visited (histograms): from our ClientHello to the keyed session
    // (DTLS and Hello), for the sessions we started; keepalive round trips.
    LatencyHistogram handshake_ms, rtt_ms;
    // Calls f(name, value) for every counter.
    template <typename F>
    void visit(F&& f) const {
      f("malformed", malformed), f("unknown_receiver", unknown_receiver), f("replayed", replayed);
      f("bad_tag", bad_tag), f("handshake_failures", handshake_failures), f("queue_drops", queue_drops);
      f("no_endpoint", no_endpoint), f("not_allowed", not_allowed), f("handshakes", handshakes);
    }
  };
  const Counters& counters() const;
  // Keyed sessions that are not dead (a node may have two during a rekey).
  std::size_t keyed_sessions() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wownet::overlay
