// What the session layer reports about one node (PeerManager::peers()).
#pragma once

#include <cstdint>
#include <string>

#include "overlay/endpoint.h"

namespace wownet::overlay {

struct PeerStats {
  std::string node_id, node_name;
  UdpEndpoint endpoint;  // of the sending session, else last used, else first known
  bool established = false;
  bool relayed = false;                                                      // the sending session goes through a relay
  std::uint64_t tx_packets = 0, tx_bytes = 0, rx_packets = 0, rx_bytes = 0;  // IPv4 bytes
  std::int64_t last_handshake_ms = -1;  // when the newest session was keyed; -1 never
  std::int64_t rtt_ms = -1;             // from the last keepalive reply; -1 unknown
  std::string last_error;               // why the last handshake or session failed
  // Calls f(name, value) for every traffic counter.
  template <typename F>
  void visit(F&& f) const {
    f("tx_packets", tx_packets), f("tx_bytes", tx_bytes), f("rx_packets", rx_packets), f("rx_bytes", rx_bytes);
  }
};

}  // namespace wownet::overlay
