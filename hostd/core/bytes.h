// Big-endian field access and the Internet checksum (RFC 1071).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace wownet {

inline std::uint16_t load16(const std::uint8_t* p) { return std::uint16_t((p[0] << 8) | p[1]); }
inline std::uint32_t load32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}
inline void store16(std::uint8_t* p, std::uint16_t v) {
  p[0] = std::uint8_t(v >> 8);
  p[1] = std::uint8_t(v);
}
inline void store32(std::uint8_t* p, std::uint32_t v) {
  p[0] = std::uint8_t(v >> 24);
  p[1] = std::uint8_t(v >> 16);
  p[2] = std::uint8_t(v >> 8);
  p[3] = std::uint8_t(v);
}

// Adds `data` to a running one's-complement sum (not yet folded).
inline std::uint32_t checksum_add(std::uint32_t sum, std::span<const std::uint8_t> data) {
  std::size_t i = 0;
  for (; i + 1 < data.size(); i += 2) sum += std::uint32_t(data[i] << 8 | data[i + 1]);
  if (i < data.size()) sum += std::uint32_t(data[i] << 8);
  return sum;
}

// Folds a running sum into the final 16-bit Internet checksum.
inline std::uint16_t checksum_finish(std::uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return std::uint16_t(~sum);
}

inline std::uint16_t internet_checksum(std::span<const std::uint8_t> data) {
  return checksum_finish(checksum_add(0, data));
}

}  // namespace wownet
