#include "core/host_name.h"

namespace wownet::agent {
namespace {

bool is_label_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }

std::string_view trim_hyphens(std::string_view s) {
  while (!s.empty() && s.front() == '-') s.remove_prefix(1);
  while (!s.empty() && s.back() == '-') s.remove_suffix(1);
  return s;
}

}  // namespace

bool is_valid_host_label(std::string_view name) {
  if (name.empty() || name.size() > kMaxHostLabelLength) return false;
  if (name.front() == '-' || name.back() == '-') return false;
  for (char c : name) {
    if (!is_label_char(c)) return false;
  }
  return true;
}

std::optional<std::string> sanitize_host_name(std::string_view name) {
  name = name.substr(0, name.find('.'));
  std::string mapped;
  mapped.reserve(name.size());
  for (char c : name) {
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
    mapped.push_back(is_label_char(c) ? c : '-');
  }
  std::string_view label = trim_hyphens(mapped);
  if (label.size() > kMaxHostLabelLength) label = trim_hyphens(label.substr(0, kMaxHostLabelLength));
  if (label.empty()) return std::nullopt;
  return std::string(label);
}

}  // namespace wownet::agent
