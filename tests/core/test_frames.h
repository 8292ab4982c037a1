// Hand-built frames for the core's unit tests: every byte is spelled out
// here, not produced by the code under test.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/types.h"

namespace wownet::test {

using Bytes = std::vector<std::uint8_t>;

inline void put16(Bytes& b, std::uint16_t v) {
  b.push_back(std::uint8_t(v >> 8));
  b.push_back(std::uint8_t(v));
}
inline void put32(Bytes& b, std::uint32_t v) {
  put16(b, std::uint16_t(v >> 16));
  put16(b, std::uint16_t(v));
}
inline void put(Bytes& b, MacAddr m) { b.insert(b.end(), m.bytes.begin(), m.bytes.end()); }
inline void put(Bytes& b, Ipv4Addr a) { put32(b, a.value); }

inline std::uint16_t sum16(const std::uint8_t* p, std::size_t n, std::uint32_t s = 0) {
  for (std::size_t i = 0; i + 1 < n; i += 2) s += std::uint32_t(p[i] << 8 | p[i + 1]);
  if (n & 1) s += std::uint32_t(p[n - 1] << 8);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return std::uint16_t(~s);
}

inline Bytes ethernet(MacAddr dst, MacAddr src, std::uint16_t type, const Bytes& payload) {
  Bytes b;
  put(b, dst);
  put(b, src);
  put16(b, type);
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

// An IPv4 packet (or fragment) with identification `id` and the 16-bit
// flags/fragment-offset field `flags_offset` (0x4000 DF, 0x2000 MF, low 13
// bits the offset in 8-byte units).
inline Bytes ipv4_fragment(Ipv4Addr src, Ipv4Addr dst, std::uint8_t proto, std::uint16_t id, std::uint16_t flags_offset,
                           const Bytes& payload) {
  Bytes b = {0x45, 0x00};
  put16(b, std::uint16_t(20 + payload.size()));
  put16(b, id);
  put16(b, flags_offset);
  b.push_back(64);
  b.push_back(proto);
  put16(b, 0);
  put(b, src);
  put(b, dst);
  std::uint16_t c = sum16(b.data(), 20);
  b[10] = std::uint8_t(c >> 8);
  b[11] = std::uint8_t(c);
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

// Fills in the checksum of TCP segment `tcp` (header and data) sent from
// `src` to `dst`: RFC 793 §3.1, over the pseudo-header and the segment.
inline void fill_tcp_checksum(Ipv4Addr src, Ipv4Addr dst, Bytes& tcp) {
  Bytes pseudo;
  put(pseudo, src);
  put(pseudo, dst);
  put16(pseudo, 6);
  put16(pseudo, std::uint16_t(tcp.size()));
  tcp[16] = tcp[17] = 0;
  pseudo.insert(pseudo.end(), tcp.begin(), tcp.end());
  std::uint16_t c = sum16(pseudo.data(), pseudo.size());
  tcp[16] = std::uint8_t(c >> 8);
  tcp[17] = std::uint8_t(c);
}

// An unfragmented IPv4 packet (ID 0x1234, DF).
inline Bytes ipv4(Ipv4Addr src, Ipv4Addr dst, std::uint8_t proto, const Bytes& payload) {
  return ipv4_fragment(src, dst, proto, 0x1234, 0x4000, payload);
}

// UDP with checksum 0 (none), which IPv4 allows.
inline Bytes udp(std::uint16_t sport, std::uint16_t dport, const Bytes& payload) {
  Bytes b;
  put16(b, sport);
  put16(b, dport);
  put16(b, std::uint16_t(8 + payload.size()));
  put16(b, 0);
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

inline Bytes icmp_echo(std::uint16_t id, std::uint16_t seq, const Bytes& data) {
  Bytes b = {8, 0, 0, 0};
  put16(b, id);
  put16(b, seq);
  b.insert(b.end(), data.begin(), data.end());
  std::uint16_t c = sum16(b.data(), b.size());
  b[2] = std::uint8_t(c >> 8);
  b[3] = std::uint8_t(c);
  return b;
}

inline Bytes arp(std::uint16_t op, MacAddr sha, Ipv4Addr spa, MacAddr tha, Ipv4Addr tpa) {
  Bytes b = {0x00, 0x01, 0x08, 0x00, 6, 4};
  put16(b, op);
  put(b, sha);
  put(b, spa);
  put(b, tha);
  put(b, tpa);
  return b;
}

// A DHCP client message: fixed header, magic cookie, then `options` as given
// (code, length, value...), then END.
inline Bytes dhcp(std::uint8_t type, std::uint32_t xid, MacAddr chaddr, Ipv4Addr ciaddr, bool broadcast,
                  const Bytes& more_options = {}) {
  Bytes b = {1, 1, 6, 0};
  put32(b, xid);
  put16(b, 0);
  put16(b, broadcast ? 0x8000 : 0);
  put(b, ciaddr);
  put32(b, 0);
  put32(b, 0);
  put32(b, 0);
  put(b, chaddr);
  b.resize(b.size() + 10 + 64 + 128, 0);
  b.insert(b.end(), {99, 130, 83, 99, 53, 1, type});
  b.insert(b.end(), more_options.begin(), more_options.end());
  b.push_back(255);
  return b;
}

inline Bytes opt_addr(std::uint8_t code, Ipv4Addr a) {
  Bytes b = {code, 4};
  put(b, a);
  return b;
}

inline Bytes opt_str(std::uint8_t code, const std::string& s) {
  Bytes b = {code, std::uint8_t(s.size())};
  b.insert(b.end(), s.begin(), s.end());
  return b;
}

inline Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes b;
  for (const auto& p : parts) b.insert(b.end(), p.begin(), p.end());
  return b;
}

}  // namespace wownet::test
