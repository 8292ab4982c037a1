// What the overlay's sans-I/O pieces (relay, NAT traversal, registry
// client, peer manager) ask of the io shell: one type for all of them. A
// piece takes `now` and its input and appends Actions; the shell carries
// them out in order, after the call has returned (so no piece is ever
// re-entered). Spans point into the caller's datagram, an Outbox the caller
// passed, or the piece's own buffer, and are valid until the piece's next
// call (an Outbox's: until it is cleared).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/packet.h"
#include "overlay/endpoint.h"

namespace wownet::overlay {

class NodeMessage;  // proto/overlay.proto

// Send `bytes` to `to` on the node's UDP socket; `ttl` 0 keeps the
// socket's default (punch probes use a low one).
struct SendDatagram {
  UdpEndpoint to;
  ConstByteSpan bytes;
  std::uint8_t ttl = 0;
};
// Hand a datagram that arrived through a relay to the session layer as if
// it had come from `from`, the relayed path's name (0.0.0.0/8).
struct DeliverDatagram {
  UdpEndpoint from;
  ByteSpan bytes;
};
// Send a control message (a serialized NodeMessage) to node `node_id`
// over its session.
struct SendControl {
  std::string node_id;
  std::string message;
};
// The node can be reached at `endpoints` (first tried first); with
// `offer_relay`, through our relay as well.
struct SetPeerPath {
  std::string node_id;
  std::vector<UdpEndpoint> endpoints;
  bool offer_relay = true;
};
// Start a handshake on the node's direct path now.
struct TryDirect {
  std::string node_id;
};
// Ask the registry where node `node_id` is (answered by a Resolved).
struct ResolveNode {
  std::string node_id;
};
// Dropped, counted under `reason` by the piece itself.
struct Drop {
  std::string_view reason;
};
// A data packet from an authenticated peer for the engine: the bare IPv4
// packet is buffer[offset, offset + length) and at least 14 bytes before
// offset are free (for an Ethernet header). `buffer` is the datagram the
// caller passed in; `node_id` is valid while the node has a session.
struct DeliverPacket {
  std::string_view node_id;
  ByteSpan buffer;
  std::size_t offset = 0;
  std::size_t length = 0;
};
// A control message other than Hello and Keepalive from an authenticated peer.
struct DeliverControl {
  std::string node_id;
  std::shared_ptr<const NodeMessage> message;
};
// The node has a keyed session now (it had none).
struct PeerUp {
  std::string node_id, node_name;
  UdpEndpoint endpoint;
};
// The node's last keyed session ended.
struct PeerDown {
  std::string node_id, reason;
};
enum class LogLevel : std::uint8_t { Debug, Info, Warn };
struct LogEvent {
  LogLevel level = LogLevel::Info;
  std::string text;
};

using Action = std::variant<std::monostate, SendDatagram, DeliverDatagram, SendControl, SetPeerPath, TryDirect,
                            ResolveNode, Drop, LogEvent, DeliverPacket, DeliverControl, PeerUp, PeerDown>;
using Actions = std::vector<Action>;

// Actions together with the bytes of the datagrams they send, for a piece
// whose output outlives its own buffers (PeerManager seals one datagram per
// packet). The caller owns it and clears it before reusing it: reused, it
// allocates nothing once its buffers have grown to the datagrams' sizes.
class Outbox {
 public:
  Actions actions;

  // Room for `size` bytes that stays valid until clear(); send it with
  // send(to, room.first(n)).
  ByteSpan room(std::size_t size) {
    if (used_ == buffers_.size()) buffers_.emplace_back();
    std::vector<std::uint8_t>& b = buffers_[used_++];
    if (b.size() < size) b.resize(size);  // never shrinks: no refill per datagram
    return ByteSpan(b.data(), size);
  }
  // Appends a SendDatagram of a copy of `bytes`.
  void send(const UdpEndpoint& to, ConstByteSpan bytes) {
    const ByteSpan copy = room(bytes.size());
    std::copy(bytes.begin(), bytes.end(), copy.begin());
    actions.emplace_back(SendDatagram{to, copy});
  }
  void clear() {
    actions.clear();
    used_ = 0;
  }

 private:
  std::vector<std::vector<std::uint8_t>> buffers_;  // the first used_ hold this round's datagrams
  std::size_t used_ = 0;
};

}  // namespace wownet::overlay
