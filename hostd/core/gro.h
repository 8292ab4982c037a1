// Receive-side TCP coalescing for traffic that arrives through the overlay
// (generic receive offload in the manner of Linux's tcp_gro_receive): a batch
// of decrypted IPv4 packets goes in; consecutive in-order TCP segments of one
// flow come out as one super-frame that a TAP with virtio-net offloads takes
// in a single write and the kernel cuts back into the very same segments
// (virtio spec §5.1.6.2, "Packet Transmission" from the device's view).
//
// Merge rules — a segment S joins the frame F that its flow has open when all
// of these hold, and otherwise passes through as it came:
//   IPv4  version 4, IHL 5 (no options), valid header checksum, not a
//         fragment (MF clear, offset 0), total length within the buffer;
//         TOS (DSCP and ECN), TTL and the DF bit equal to F's head;
//         identification = head's + number of segments in F (mod 2^16),
//         which is what segment_tcp4 and the kernel's GSO regenerate.
//   TCP   same addresses and ports; data offset equal and options
//         byte-identical to the head's (timestamps included, as Linux does);
//         acknowledgement number and window equal; sequence number equal
//         to F's next expected one (RFC 793 §3.3), so gaps, duplicates and
//         reordering start a new frame; payload non-empty and no larger
//         than F's MSS (the head's payload size); flags equal to the
//         head's except that S may add PSH or FIN, and S may not carry CWR.
//   Size  F's IPv4 total length stays within max_packet_size (<= 65535).
//   Checksum  with verify_checksums (the default) the TCP checksum of the
//         head and of S must be correct. The overlay's AEAD proves a
//         datagram was not changed between hosts, not that the sending VM
//         or host built it right; merging rewrites the checksum, so an
//         unverified merge would launder a bad segment into a good one.
// A frame ends (no later segment may join) after a segment shorter than the
// MSS or with PSH or FIN. A segment with SYN, RST or URG, or with PSH or FIN
// and nothing open to join, or without payload, is a frame of its own. A
// TCP packet that is not merged still closes its flow's open frame, so a
// flow's packets leave in the order they came. Other protocols, fragments
// and anything that does not parse pass through unchanged, in place.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/offload.h"
#include "core/packet.h"

namespace wownet {

struct GroOptions {
  std::size_t max_batch = 128;          // packets per coalesce() call
  std::size_t max_open_flows = 16;      // flows with a frame open at once
  std::size_t max_packet_size = 65535;  // IPv4 total length of a super-frame
  bool verify_checksums = true;         // TCP checksum of merged segments
};

// One output of a batch. Its bytes are `parts` in order, all inside the
// caller's packet buffers: parts[0] is a whole input packet (for a
// super-frame the head, whose headers were rewritten in place), each further
// part is the TCP payload of one following segment. Written with writev after
// a virtio-net and an Ethernet header, no copy is needed; copy_to() gathers.
struct GroFrame {
  std::span<const ConstByteSpan> parts;
  std::size_t size = 0;             // bytes over all parts
  std::uint16_t segments = 1;       // input packets in this frame
  std::uint16_t gso_size = 0;       // MSS of a super-frame; 0 if not one
  std::uint8_t ip_header_size = 0;  // of a super-frame: 20
  std::uint8_t header_size = 0;     // of a super-frame: IPv4 + TCP header bytes
  bool ecn = false;                 // the head carries CWR (VIRTIO_NET_HDR_GSO_ECN)

  bool is_super_frame() const { return gso_size != 0; }
  // Copies the frame into `out`; returns its size, or 0 if `out` is smaller.
  std::size_t copy_to(ByteSpan out) const;
};

struct GroStats {
  std::uint64_t packets_in = 0;
  std::uint64_t frames_out = 0;
  std::uint64_t super_frames = 0;
  std::uint64_t segments_merged = 0;    // segments that joined a head
  std::uint64_t checksum_failures = 0;  // TCP segments left alone for a bad checksum
};

struct GroBatch {
  std::span<const GroFrame> frames;  // valid until the next coalesce() call
  std::size_t consumed = 0;          // packets taken from the input
};

// Coalesces batches of IPv4 packets. All state is allocated by the
// constructor; coalesce() does not allocate.
class TcpCoalescer {
 public:
  explicit TcpCoalescer(GroOptions options = {});

  // Coalesces up to max_batch packets from the front of `packets` (each an
  // IPv4 packet from its first byte; trailing bytes beyond the IPv4 total
  // length are dropped from merged frames and kept in passed-through ones).
  // Frames come out in the order of their first packet, so each flow keeps
  // its order. The headers of a super-frame's head packet are rewritten in
  // place; the other input bytes are not modified. The packet buffers must
  // outlive the use of the returned frames.
  [[nodiscard]] GroBatch coalesce(std::span<const ByteSpan> packets);

  const GroStats& stats() const { return stats_; }
  const GroOptions& options() const { return options_; }

 private:
  // What coalescing needs of one input packet.
  struct Segment {
    enum class Kind : std::uint8_t { kOther, kTcpAlone, kTcp };
    Kind kind = Kind::kOther;  // kTcpAlone: has a flow but may not be merged
    bool checksum_checked = false;
    bool checksum_good = false;
    std::uint8_t tos = 0;
    std::uint8_t ttl = 0;
    std::uint8_t df = 0;
    std::uint8_t flags = 0;
    std::uint8_t tcp_header_size = 0;
    std::uint16_t ip_id = 0;
    std::uint16_t window = 0;
    std::uint16_t payload_size = 0;
    std::uint16_t src_port = 0;
    std::uint16_t dst_port = 0;
    std::uint32_t src = 0;
    std::uint32_t dst = 0;
    std::uint32_t seq = 0;
    std::uint32_t ack = 0;
    std::uint16_t ip_size = 0;  // IPv4 total length
  };
  // A frame under construction.
  struct Pending {
    std::uint32_t head = 0;  // packet index of the first segment
    std::uint32_t tail = 0;  // packet index of the last segment
    std::uint32_t next_seq = 0;
    std::uint32_t size = 0;  // IPv4 total length of the frame
    std::uint16_t segments = 1;
    std::uint16_t mss = 0;
    std::uint16_t next_ip_id = 0;
    std::uint8_t tail_flags = 0;
  };
  static Segment classify(ConstByteSpan packet);
  bool can_join(const Pending& frame, std::size_t packet_index);
  bool checksum_ok(std::size_t packet_index);
  void close(std::size_t frame_index);
  void open(std::size_t frame_index);
  void finish(std::size_t frame_index, GroFrame& out, std::size_t& part);

  GroOptions options_;
  GroStats stats_;
  std::vector<Segment> segments_;    // per input packet
  std::vector<std::uint32_t> next_;  // per input packet: next packet of its frame
  std::vector<Pending> pending_;     // per frame under construction
  std::vector<std::uint32_t> open_;  // indices of open frames, oldest first
  std::size_t open_count_ = 0;
  std::vector<ConstByteSpan> parts_;   // per input packet
  std::vector<GroFrame> frames_;       // per frame
  std::span<const ByteSpan> packets_;  // the batch being coalesced
};

// The virtio-net header to write before `frame` when it is written to a TAP
// behind `link_header_size` bytes of link header (14 for Ethernet). For a
// super-frame: NEEDS_CSUM with checksum_start at the TCP header and
// checksum_offset 16 (the TCP checksum field, which holds the pseudo-header
// sum over the whole frame's TCP length, RFC 793 §3.1), gso_type TCPV4 (with
// ECN if the head has CWR), gso_size the MSS and header_length the link,
// IPv4 and TCP headers. Any other frame has complete checksums and gets an
// all-zero header (no checksum or segmentation work).
VnetHeader vnet_header_for(const GroFrame& frame, std::size_t link_header_size = kEthernetHeaderSize);

// Writes the 10-byte virtio-net header at out[0..10), fields little-endian
// (as a TAP set up with TUNSETVNETLE or on a little-endian host reads them).
void write_vnet_header(const VnetHeader& header, std::uint8_t* out);

}  // namespace wownet
