// What the overlay's sans-I/O pieces (relay, NAT traversal, registry
// client, ...) ask of the io shell: one type for all of them. A piece takes
// `now` and its input and returns Actions; the shell carries them out in
// order. Spans point into the caller's datagram or the piece's own buffer
// and are valid until the piece's next call.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/packet.h"
#include "overlay/endpoint.h"

namespace wownet::overlay {

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
enum class LogLevel : std::uint8_t { Debug, Info, Warn };
struct LogEvent {
  LogLevel level = LogLevel::Info;
  std::string text;
};

using Action = std::variant<std::monostate, SendDatagram, DeliverDatagram, SendControl, SetPeerPath, TryDirect,
                            ResolveNode, Drop, LogEvent>;
using Actions = std::vector<Action>;

}  // namespace wownet::overlay
