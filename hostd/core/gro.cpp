#include "core/gro.h"

#include <algorithm>
#include <cstring>

#include "core/bytes.h"

namespace wownet {

namespace {

constexpr std::uint32_t kNone = 0xffffffff;
// TCP flags (RFC 793 §3.1, RFC 3168 §6.1 for ECE and CWR).
constexpr std::uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kUrg = 0x20, kCwr = 0x80;
constexpr std::size_t kTcpChecksumOffset = 16;

std::uint32_t pseudo_header_sum(std::uint32_t src, std::uint32_t dst, std::size_t tcp_size) {
  return (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + kIpProtoTcp + std::uint32_t(tcp_size);
}

std::uint16_t fold(std::uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return std::uint16_t(sum);
}

void store16le(std::uint8_t* p, std::uint16_t v) {
  p[0] = std::uint8_t(v);
  p[1] = std::uint8_t(v >> 8);
}

}  // namespace

std::size_t GroFrame::copy_to(ByteSpan out) const {
  if (out.size() < size) return 0;
  std::size_t at = 0;
  for (ConstByteSpan part : parts) {
    if (part.empty()) continue;  // an empty packet may have no storage at all
    std::memcpy(out.data() + at, part.data(), part.size());
    at += part.size();
  }
  return at;
}

TcpCoalescer::TcpCoalescer(GroOptions options) : options_(options) {
  options_.max_batch = std::max<std::size_t>(options_.max_batch, 1);
  options_.max_open_flows = std::max<std::size_t>(options_.max_open_flows, 1);
  options_.max_packet_size = std::min<std::size_t>(options_.max_packet_size, 65535);
  segments_.resize(options_.max_batch);
  next_.resize(options_.max_batch);
  pending_.resize(options_.max_batch);
  open_.resize(options_.max_open_flows);
  parts_.resize(options_.max_batch);
  frames_.resize(options_.max_batch);
}

// Reads what coalescing needs; kOther for anything that is not an
// unfragmented TCP/IPv4 packet with valid lengths and IP header checksum.
TcpCoalescer::Segment TcpCoalescer::classify(ConstByteSpan p) {
  Segment s;
  if (p.size() < kIpv4HeaderSize || (p[0] >> 4) != 4) return s;
  std::size_t ihl = std::size_t(p[0] & 0x0f) * 4;
  std::size_t total = load16(p.data() + 2);
  if (ihl < kIpv4HeaderSize || total > p.size() || total < ihl + 20) return s;
  if (p[9] != kIpProtoTcp) return s;
  std::uint16_t frag = load16(p.data() + 6);
  if ((frag & 0x3fff) != 0) return s;  // MF or an offset: a fragment (RFC 791 §3.1)
  if (internet_checksum(p.first(ihl)) != 0) return s;
  const std::uint8_t* tcp = p.data() + ihl;
  std::size_t thl = std::size_t(tcp[12] >> 4) * 4;
  if (thl < 20 || ihl + thl > total) return s;
  s.tos = p[1];
  s.ttl = p[8];
  s.df = std::uint8_t(frag >> 8);
  s.ip_id = load16(p.data() + 4);
  s.ip_size = std::uint16_t(total);
  s.src = load32(p.data() + 12);
  s.dst = load32(p.data() + 16);
  s.src_port = load16(tcp);
  s.dst_port = load16(tcp + 2);
  s.seq = load32(tcp + 4);
  s.ack = load32(tcp + 8);
  s.flags = tcp[13];
  s.window = load16(tcp + 14);
  s.tcp_header_size = std::uint8_t(thl);
  s.payload_size = std::uint16_t(total - ihl - thl);
  bool alone = ihl != kIpv4HeaderSize || (s.flags & (kSyn | kRst | kUrg)) != 0 || s.payload_size == 0;
  s.kind = alone ? Segment::Kind::kTcpAlone : Segment::Kind::kTcp;
  return s;
}

bool TcpCoalescer::checksum_ok(std::size_t i) {
  Segment& s = segments_[i];
  if (!s.checksum_checked) {
    ConstByteSpan tcp = ConstByteSpan(packets_[i]).subspan(kIpv4HeaderSize, s.ip_size - kIpv4HeaderSize);
    std::uint32_t sum = checksum_add(pseudo_header_sum(s.src, s.dst, tcp.size()), tcp);
    s.checksum_checked = true;
    s.checksum_good = checksum_finish(sum) == 0;
    if (!s.checksum_good) ++stats_.checksum_failures;
  }
  return s.checksum_good;
}

bool TcpCoalescer::can_join(const Pending& frame, std::size_t index) {
  const Segment& seg = segments_[index];
  const Segment& head = segments_[frame.head];
  if (seg.kind != Segment::Kind::kTcp) return false;
  if (seg.seq != frame.next_seq || seg.ip_id != frame.next_ip_id) return false;
  if (seg.tos != head.tos || seg.ttl != head.ttl || seg.df != head.df) return false;
  if (seg.ack != head.ack || seg.window != head.window) return false;
  if ((seg.flags & kCwr) != 0 || (seg.flags & ~(kPsh | kFin)) != (head.flags & ~kCwr)) return false;
  if (seg.payload_size > frame.mss || frame.size + seg.payload_size > options_.max_packet_size) return false;
  if (seg.tcp_header_size != head.tcp_header_size) return false;
  // The data-offset byte (with the reserved bits) and the options, byte for byte.
  const std::uint8_t* a = packets_[frame.head].data() + kIpv4HeaderSize;
  const std::uint8_t* b = packets_[index].data() + kIpv4HeaderSize;
  if (a[12] != b[12] || std::memcmp(a + 20, b + 20, seg.tcp_header_size - 20u) != 0) return false;
  if (options_.verify_checksums && (!checksum_ok(frame.head) || !checksum_ok(index))) return false;
  return true;
}

void TcpCoalescer::open(std::size_t f) {
  if (open_count_ == open_.size()) close(open_[0]);  // the oldest frame ends
  open_[open_count_++] = std::uint32_t(f);
}

void TcpCoalescer::close(std::size_t f) {
  for (std::size_t k = 0; k < open_count_; ++k) {
    if (open_[k] != f) continue;
    std::copy(open_.begin() + std::ptrdiff_t(k) + 1, open_.begin() + std::ptrdiff_t(open_count_),
              open_.begin() + std::ptrdiff_t(k));
    --open_count_;
    break;
  }
}

GroBatch TcpCoalescer::coalesce(std::span<const ByteSpan> packets) {
  std::size_t n = std::min(packets.size(), options_.max_batch);
  packets_ = packets.first(n);
  open_count_ = 0;
  std::size_t frame_count = 0;
  for (std::size_t i = 0; i < n; ++i) {
    Segment& seg = segments_[i] = classify(packets_[i]);
    next_[i] = kNone;
    if (seg.kind != Segment::Kind::kOther) {
      std::size_t found = kNone;
      for (std::size_t k = 0; k < open_count_; ++k) {
        const Segment& head = segments_[pending_[open_[k]].head];
        if (head.src == seg.src && head.dst == seg.dst && head.src_port == seg.src_port &&
            head.dst_port == seg.dst_port) {
          found = open_[k];
          break;
        }
      }
      if (found != kNone) {
        Pending& frame = pending_[found];
        if (can_join(frame, i)) {
          next_[frame.tail] = std::uint32_t(i);
          frame.tail = std::uint32_t(i);
          frame.next_seq += seg.payload_size;
          frame.size += seg.payload_size;
          ++frame.next_ip_id;
          ++frame.segments;
          frame.tail_flags = seg.flags & (kPsh | kFin);
          ++stats_.segments_merged;
          if (seg.payload_size < frame.mss || frame.tail_flags != 0) close(found);
          continue;
        }
        close(found);  // whatever comes next of this flow follows this packet
      }
    }
    Pending& frame = pending_[frame_count] = Pending{};
    frame.head = frame.tail = std::uint32_t(i);
    frame.mss = seg.payload_size;
    frame.next_seq = seg.seq + seg.payload_size;
    frame.next_ip_id = std::uint16_t(seg.ip_id + 1);
    frame.size = seg.ip_size;
    if (seg.kind == Segment::Kind::kTcp && (seg.flags & (kPsh | kFin)) == 0) open(frame_count);
    ++frame_count;
  }
  std::size_t part = 0;
  for (std::size_t f = 0; f < frame_count; ++f) finish(f, frames_[f], part);
  stats_.packets_in += n;
  stats_.frames_out += frame_count;
  return GroBatch{std::span<const GroFrame>(frames_.data(), frame_count), n};
}

void TcpCoalescer::finish(std::size_t f, GroFrame& out, std::size_t& part) {
  const Pending& frame = pending_[f];
  std::size_t first = part;
  out = GroFrame{};
  if (frame.segments == 1) {
    parts_[part++] = packets_[frame.head];
    out.size = packets_[frame.head].size();
  } else {
    const Segment& head = segments_[frame.head];
    std::uint8_t* ip = packets_[frame.head].data();
    store16(ip + 2, std::uint16_t(frame.size));
    store16(ip + 10, 0);
    store16(ip + 10, internet_checksum({ip, kIpv4HeaderSize}));
    std::uint8_t* tcp = ip + kIpv4HeaderSize;
    tcp[13] |= frame.tail_flags;
    // Left partial, as a stack that hands a super-frame to a NIC leaves it:
    // the folded pseudo-header sum over the frame's whole TCP length.
    store16(tcp + kTcpChecksumOffset, fold(pseudo_header_sum(head.src, head.dst, frame.size - kIpv4HeaderSize)));
    std::size_t headers = kIpv4HeaderSize + head.tcp_header_size;
    parts_[part++] = ConstByteSpan(ip, headers + frame.mss);
    for (std::uint32_t j = next_[frame.head]; j != kNone; j = next_[j]) {
      parts_[part++] = ConstByteSpan(packets_[j]).subspan(headers, segments_[j].payload_size);
    }
    out.size = frame.size;
    out.segments = frame.segments;
    out.gso_size = frame.mss;
    out.ip_header_size = std::uint8_t(kIpv4HeaderSize);
    out.header_size = std::uint8_t(headers);
    out.ecn = (head.flags & kCwr) != 0;
    ++stats_.super_frames;
  }
  out.parts = std::span<const ConstByteSpan>(parts_.data() + first, part - first);
}

VnetHeader vnet_header_for(const GroFrame& frame, std::size_t link_header_size) {
  VnetHeader h;
  if (!frame.is_super_frame()) return h;
  h.flags = VnetHeader::kNeedsChecksum;
  h.gso_type = std::uint8_t(VnetHeader::kGsoTcpV4 | (frame.ecn ? VnetHeader::kGsoEcn : 0));
  h.header_length = std::uint16_t(link_header_size + frame.header_size);
  h.gso_size = frame.gso_size;
  h.checksum_start = std::uint16_t(link_header_size + frame.ip_header_size);
  h.checksum_offset = std::uint16_t(kTcpChecksumOffset);
  return h;
}

void write_vnet_header(const VnetHeader& h, std::uint8_t* out) {
  out[0] = h.flags;
  out[1] = h.gso_type;
  store16le(out + 2, h.header_length);
  store16le(out + 4, h.gso_size);
  store16le(out + 6, h.checksum_start);
  store16le(out + 8, h.checksum_offset);
}

}  // namespace wownet
