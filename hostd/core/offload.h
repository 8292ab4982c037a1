// What a TAP with virtio-net offloads hands over (virtio spec §5.1.6.2):
// frames whose L4 checksum is left partial, and TCP "super-frames" of up to
// 64 KiB to be cut into MSS-sized segments. Traffic that leaves the host
// through the overlay must be finished here first: checksums completed and
// super-frames segmented, exactly as a NIC would.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "core/packet.h"

namespace wownet {

struct VnetHeader {
  static constexpr std::size_t kSize = 10;
  static constexpr std::uint8_t kNeedsChecksum = 1;
  static constexpr std::uint8_t kGsoNone = 0;
  static constexpr std::uint8_t kGsoTcpV4 = 1;
  static constexpr std::uint8_t kGsoEcn = 0x80;

  std::uint8_t flags = 0;
  std::uint8_t gso_type = 0;
  std::uint16_t header_length = 0;
  std::uint16_t gso_size = 0;
  std::uint16_t checksum_start = 0;   // from the start of the Ethernet frame
  std::uint16_t checksum_offset = 0;  // from checksum_start

  // Reads the 10-byte header (little-endian fields, as a TAP on x86 and ARM
  // writes them).
  static VnetHeader parse(const std::uint8_t* p);
  bool needs_checksum() const { return (flags & kNeedsChecksum) != 0; }
  std::uint8_t gso() const { return gso_type & std::uint8_t(~kGsoEcn); }
};

// Completes a partial checksum in place: the one's-complement sum over
// data[start, end) is folded into the 16-bit field at start + offset, which
// holds the pseudo-header sum. False if the positions do not fit.
bool complete_checksum(ByteSpan data, std::size_t start, std::size_t offset);

// Receives the segments of a super-frame, one at a time.
class SegmentSink {
 public:
  virtual ~SegmentSink() = default;
  virtual void segment(ConstByteSpan ip_packet) = 0;
};

// Cuts a TCP/IPv4 packet larger than `mss` payload bytes into segments
// (RFC 793 sequence numbers, IP identification incremented, FIN/PSH only on
// the last segment, CWR only on the first), each with complete IP and TCP
// checksums, built in `scratch` and handed to `sink`. Returns the number of
// segments, 0 if the packet is not TCP/IPv4 or does not parse.
std::size_t segment_tcp4(ConstByteSpan ip_packet, std::uint16_t mss, ByteSpan scratch, SegmentSink& sink);

}  // namespace wownet
