// Value types shared by the whole core: MAC and IPv4 addresses, prefixes,
// and time. All plain values, no I/O.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace wownet {

// Seconds since the Unix epoch. The core never reads a clock: the io layer
// passes the current time into every entry point.
using UnixTime = std::int64_t;

struct MacAddr {
  std::array<std::uint8_t, 6> bytes{};

  static MacAddr from(const std::uint8_t* p) {
    MacAddr m;
    for (int i = 0; i < 6; ++i) m.bytes[i] = p[i];
    return m;
  }
  // Parses "aa:bb:cc:dd:ee:ff" (case-insensitive); nullopt on any other form.
  static std::optional<MacAddr> parse(std::string_view s);
  static constexpr MacAddr broadcast() { return MacAddr{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}; }

  bool is_zero() const { return bytes == std::array<std::uint8_t, 6>{}; }
  bool is_broadcast() const { return *this == broadcast(); }
  // True for group addresses (broadcast included): the I/G bit is set.
  bool is_multicast() const { return (bytes[0] & 1) != 0; }
  std::string to_string() const;
  auto operator<=>(const MacAddr&) const = default;
};

struct Ipv4Addr {
  std::uint32_t value = 0;  // host byte order

  static constexpr Ipv4Addr from_octets(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
    return Ipv4Addr{(std::uint32_t{a} << 24) | (std::uint32_t{b} << 16) | (std::uint32_t{c} << 8) | d};
  }
  // Reads four bytes in network order.
  static Ipv4Addr from(const std::uint8_t* p) { return from_octets(p[0], p[1], p[2], p[3]); }
  // Writes four bytes in network order.
  void write(std::uint8_t* p) const {
    p[0] = std::uint8_t(value >> 24);
    p[1] = std::uint8_t(value >> 16);
    p[2] = std::uint8_t(value >> 8);
    p[3] = std::uint8_t(value);
  }
  // Parses a dotted quad; nullopt on anything else (no shorthand forms).
  static std::optional<Ipv4Addr> parse(std::string_view s);
  std::uint8_t octet(int i) const { return std::uint8_t(value >> (24 - 8 * i)); }
  bool is_zero() const { return value == 0; }
  std::string to_string() const;
  auto operator<=>(const Ipv4Addr&) const = default;
};

struct Ipv4Prefix {
  Ipv4Addr network;
  int length = 0;

  // Parses "a.b.c.d/len"; the address must be the network address.
  static std::optional<Ipv4Prefix> parse(std::string_view s);
  std::uint32_t mask() const { return length == 0 ? 0 : ~std::uint32_t{0} << (32 - length); }
  Ipv4Addr netmask() const { return Ipv4Addr{mask()}; }
  Ipv4Addr broadcast() const { return Ipv4Addr{network.value | ~mask()}; }
  bool contains(Ipv4Addr a) const { return (a.value & mask()) == network.value; }
  // True if `a` is inside the prefix and is neither its network nor its
  // broadcast address: an address a host may hold.
  bool is_host(Ipv4Addr a) const { return contains(a) && a != network && a != broadcast(); }
  std::string to_string() const;
  bool operator==(const Ipv4Prefix&) const = default;
};

}  // namespace wownet
