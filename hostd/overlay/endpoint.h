// Where a node is reached: an IPv4 UDP address and port, or a path through
// a relay named by an address in 0.0.0.0/8 that never appears on the wire.
// (Not named Endpoint: overlay.proto already generates wownet::overlay::Endpoint.)
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/types.h"

namespace wownet::overlay {

struct UdpEndpoint {
  Ipv4Addr address;
  std::uint16_t port = 0;

  // "a.b.c.d:port".
  std::string to_string() const;
  // Names a path through a relay (0.0.0.0/8), not an address on the wire.
  bool relayed() const { return address.octet(0) == 0; }
  // Inverse of to_string(); nullopt on anything else.
  static std::optional<UdpEndpoint> parse(std::string_view s);
  auto operator<=>(const UdpEndpoint&) const = default;
};

// A node ID (32 lowercase hex digits) as the 16 raw bytes datagrams carry.
using RawNodeId = std::array<std::uint8_t, 16>;
// The raw bytes of a node ID; nullopt unless it is 32 lowercase hex digits.
std::optional<RawNodeId> raw_node_id(std::string_view id);
// The node ID of 16 raw bytes, written into `buffer` (no allocation: this
// runs per relayed datagram).
std::string_view hex_node_id(const std::uint8_t* raw, char (&buffer)[32]);

}  // namespace wownet::overlay
