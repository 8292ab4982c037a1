// The VM's host name as the agent sends it: exactly one DNS label.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace wownet::agent {

inline constexpr std::size_t kMaxHostLabelLength = 63;

// True if `name` is one label of 1-63 characters [a-z0-9-] that neither
// starts nor ends with '-'.
bool is_valid_host_label(std::string_view name);

// Reduces `name` to one valid label: keeps the part before the first '.',
// lowercases it, turns every other character into '-', strips leading and
// trailing '-' and cuts it to 63 characters; nullopt if nothing is left.
std::optional<std::string> sanitize_host_name(std::string_view name);

}  // namespace wownet::agent
