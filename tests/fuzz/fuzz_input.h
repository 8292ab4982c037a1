// Reading structured steps out of a fuzz input, and making packets the
// fuzzer mutated well-formed again where a checksum would otherwise hide
// everything behind it. Header-only, standard library and the core only.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/bytes.h"

namespace wownet::fuzz {

// Consumes a fuzz input front to back. Reading past the end yields zeros and
// empty chunks, so every input is a valid (if short) program.
class FuzzReader {
 public:
  FuzzReader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}

  bool empty() const { return pos_ >= size_; }
  std::size_t remaining() const { return size_ - pos_; }

  std::uint8_t u8() { return pos_ < size_ ? data_[pos_++] : 0; }
  std::uint16_t u16() { return std::uint16_t(u8() << 8 | u8()); }
  std::uint32_t u32() { return std::uint32_t(u16()) << 16 | u16(); }

  // The next `n` bytes (fewer at the end).
  std::span<const std::uint8_t> bytes(std::size_t n) {
    n = std::min(n, remaining());
    std::span<const std::uint8_t> s(data_ + pos_, n);
    pos_ += n;
    return s;
  }
  // A chunk: a 16-bit big-endian length, then that many bytes.
  std::span<const std::uint8_t> chunk() { return bytes(u16()); }
  std::vector<std::uint8_t> chunk_copy() {
    auto s = chunk();
    return {s.begin(), s.end()};
  }
  std::string chunk_string() {
    auto s = chunk();
    return {s.begin(), s.end()};
  }
  // Everything left.
  std::span<const std::uint8_t> rest() { return bytes(remaining()); }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

// Recomputes the IPv4 header checksum of `packet` (an IPv4 packet) and, when
// `l4` is set and the packet is an unfragmented UDP, TCP or ICMP one whose
// lengths fit, its transport checksum. Leaves anything else as it is.
inline void fix_ipv4_checksums(std::span<std::uint8_t> packet, bool l4) {
  if (packet.size() < 20 || (packet[0] >> 4) != 4) return;
  const std::size_t ihl = std::size_t(packet[0] & 0x0f) * 4;
  if (ihl < 20 || ihl > packet.size()) return;
  store16(&packet[10], 0);
  store16(&packet[10], internet_checksum(packet.first(ihl)));
  if (!l4) return;
  const std::size_t total = load16(&packet[2]);
  if (total < ihl || total > packet.size() || (load16(&packet[6]) & 0x3fff) != 0) return;
  std::span<std::uint8_t> l4data = packet.subspan(ihl, total - ihl);
  const std::uint8_t proto = packet[9];
  std::size_t at;
  bool pseudo = true;
  if (proto == 17) {
    at = 6;
    if (l4data.size() < 8 || load16(&l4data[4]) != l4data.size()) return;
  } else if (proto == 6) {
    at = 16;
  } else if (proto == 1) {
    at = 2;
    pseudo = false;
  } else {
    return;
  }
  if (l4data.size() < at + 2) return;
  store16(&l4data[at], 0);
  std::uint32_t sum = 0;
  if (pseudo) {
    sum = checksum_add(sum, packet.subspan(12, 8));
    sum += proto;
    sum += std::uint32_t(l4data.size());
  }
  std::uint16_t c = checksum_finish(checksum_add(sum, l4data));
  if (proto == 17 && c == 0) c = 0xffff;  // RFC 768: zero means "no checksum"
  store16(&l4data[at], c);
}

// As fix_ipv4_checksums, for the IPv4 packet inside an Ethernet II frame.
inline void fix_frame_checksums(std::span<std::uint8_t> frame, bool l4) {
  if (frame.size() < 14 || load16(&frame[12]) != 0x0800) return;
  fix_ipv4_checksums(frame.subspan(14), l4);
}

}  // namespace wownet::fuzz
