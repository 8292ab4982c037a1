#include "overlay/endpoint.h"

#include <charconv>

namespace wownet::overlay {

std::string UdpEndpoint::to_string() const { return address.to_string() + ":" + std::to_string(port); }

std::optional<UdpEndpoint> UdpEndpoint::parse(std::string_view s) {
  const auto colon = s.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  const auto address = Ipv4Addr::parse(s.substr(0, colon));
  const std::string_view port_text = s.substr(colon + 1);
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (!address || port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
      port > 65535 || (port_text.size() > 1 && port_text[0] == '0'))
    return std::nullopt;
  return UdpEndpoint{*address, std::uint16_t(port)};
}

std::optional<RawNodeId> raw_node_id(std::string_view id) {
  if (id.size() != 32) return std::nullopt;
  RawNodeId out{};
  for (std::size_t i = 0; i < 32; ++i) {
    const char c = id[i];
    const int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (v < 0) return std::nullopt;
    out[i / 2] = std::uint8_t(out[i / 2] | (i % 2 ? v : v << 4));
  }
  return out;
}

std::string_view hex_node_id(const std::uint8_t* raw, char (&buffer)[32]) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (std::size_t i = 0; i < 16; ++i) {
    buffer[2 * i] = kHex[raw[i] >> 4];
    buffer[2 * i + 1] = kHex[raw[i] & 15];
  }
  return std::string_view(buffer, sizeof buffer);
}

}  // namespace wownet::overlay
