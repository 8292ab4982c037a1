// The session layer's tunables (PeerManager and its pieces).
#pragma once

#include <cstddef>
#include <cstdint>

#include "crypto/data_channel.h"

namespace wownet::overlay {

struct PeerConfig {
  crypto::Cipher cipher = crypto::Cipher::Aes256Gcm;  // what we want peers to send to us with
  std::int64_t rekey_after_ms = 120'000;
  std::uint64_t rekey_after_packets = 1ull << 40;
  std::int64_t keepalive_ms = 10'000;
  std::int64_t dead_after_ms = 35'000;
  std::size_t queue_limit = 128;  // packets and control messages waiting for a session, per node
  std::int64_t retry_after_ms = 2'000;
  std::int64_t retire_after_ms = 10'000;  // an old session's grace period once a newer one is keyed
  std::int64_t hello_retry_ms = 1'000;    // first Hello retransmission (doubling, at most keepalive_ms)
  std::int64_t relay_after_ms = 3'000;    // traffic waiting this long for a direct session also tries the relay
  // Traffic for a node with no known endpoint (nor relay) waits this long
  // for the registry to say where the node is, then is dropped (counted
  // as queue_drops).
  std::int64_t resolve_wait_ms = 5'000;
  // A sending session that has received nothing (not even a keepalive) for
  // this long ends early (the path broke: NAT rebinding, new uplink) so
  // that traffic finds a new one; 0: only dead_after_ms applies.
  std::int64_t stale_after_ms = 0;
};

}  // namespace wownet::overlay
