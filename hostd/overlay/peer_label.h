// How log lines name a peer node: its name where known and a short form of
// its node ID, "hb (51f4a3c2…)"; the short ID alone if the name is unknown.
#pragma once

#include <string>
#include <string_view>

namespace wownet::overlay {

// Characters of the node ID that a label keeps.
inline constexpr std::size_t kShortNodeIdLength = 8;

// The first kShortNodeIdLength characters of `node_id` and "…" (the whole
// ID if it is that short; "?" if empty).
std::string short_node_id(std::string_view node_id);

// Characters of the name that a label keeps.
inline constexpr std::size_t kMaxNameLength = 64;

// "NAME (SHORT-ID)", or "SHORT-ID" when `node_name` is empty. Control
// characters in the name become '?' and it is cut at kMaxNameLength.
std::string peer_label(std::string_view node_name, std::string_view node_id);

}  // namespace wownet::overlay
