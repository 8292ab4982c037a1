// The overlay's wire table: every datagram that travels on a node's UDP
// socket, told apart by its first byte. Every layer that builds or sorts
// datagrams takes its types and sizes from here.
//
//  byte  datagram                   layout after the type byte           handled by
//  4     data                       3 zero, receiver index, counter,     crypto/data_channel
//                                   ciphertext, tag (kDataHeaderSize 16)
//  6     enrollment request         EnrollRequest (overlay.proto)        the CA's rendezvous
//  7     enrollment reply           EnrollReply; never answered          an enrolling host
//  8     punch probe                16 random bytes; never answered      dropped (counted) on arrival
//  9     relay request              destination node ID (16 bytes),      a relay
//                                   then a datagram of type 4 or 20-25
//  10    relayed                    source node ID (16 bytes), then      the destination node
//                                   the datagram as the source sent it
//  20-25 DTLS 1.2 record            RFC 6347 §4.1 (content types 20      overlay/peer_manager
//                                   change_cipher_spec .. 25 tls12_cid)
//
// Anything else is malformed and dropped (counted).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace wownet::wire {

enum class DatagramType : std::uint8_t {
  Data = 4,
  Enroll = 6,
  EnrollReply = 7,
  Probe = 8,
  Relay = 9,
  Relayed = 10,
  Dtls = 20,  // stands for the whole range 20..25
  Unknown = 0,
};

inline constexpr std::uint8_t kDtlsFirst = 20, kDtlsLast = 25;
inline constexpr std::size_t kNodeIdSize = 16;                    // a node ID as raw bytes (32 hex digits)
inline constexpr std::size_t kRelayHeaderSize = 1 + kNodeIdSize;  // types 9 and 10
inline constexpr std::size_t kProbeSize = 17;                     // type byte and 16 random bytes

constexpr bool is_dtls_record(std::uint8_t first) { return first >= kDtlsFirst && first <= kDtlsLast; }

// What a datagram is, by its first byte (Unknown for an empty one).
constexpr DatagramType classify(std::span<const std::uint8_t> datagram) {
  if (datagram.empty()) return DatagramType::Unknown;
  const std::uint8_t b = datagram[0];
  if (is_dtls_record(b)) return DatagramType::Dtls;
  switch (b) {
    case 4: return DatagramType::Data;
    case 6: return DatagramType::Enroll;
    case 7: return DatagramType::EnrollReply;
    case 8: return DatagramType::Probe;
    case 9: return DatagramType::Relay;
    case 10: return DatagramType::Relayed;
    default: return DatagramType::Unknown;
  }
}

// What a relay may carry between two nodes: their own protocol only.
constexpr bool relayable(std::uint8_t inner_first) {
  return inner_first == std::uint8_t(DatagramType::Data) || is_dtls_record(inner_first);
}

}  // namespace wownet::wire
