// The channel datagram: the 4 ASCII bytes "WNA1" followed by a serialized
// wownet.agent.Report (proto/agent.proto). The core only frames bytes; the
// protobuf encoding itself happens in the io layer.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace wownet::agent {

inline constexpr std::string_view kDatagramMagic = "WNA1";
inline constexpr std::size_t kMaxDatagramSize = 1200;  // magic included

// Prefixes `serialized_report` with the magic; nullopt if the datagram
// would be larger than kMaxDatagramSize.
std::optional<std::string> encode_datagram(std::string_view serialized_report);

// Returns the serialized Report carried by `datagram`; nullopt if the magic
// is missing or the datagram is larger than kMaxDatagramSize.
std::optional<std::string_view> decode_datagram(std::string_view datagram);

}  // namespace wownet::agent
