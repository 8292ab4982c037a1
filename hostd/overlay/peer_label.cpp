#include "overlay/peer_label.h"

namespace wownet::overlay {

std::string short_node_id(std::string_view node_id) {
  if (node_id.empty()) return "?";
  if (node_id.size() <= kShortNodeIdLength) return std::string(node_id);
  return std::string(node_id.substr(0, kShortNodeIdLength)) + "\u2026";
}

std::string peer_label(std::string_view node_name, std::string_view node_id) {
  if (node_name.empty()) return short_node_id(node_id);
  // A refused peer's name is whatever its certificate says: one line, bounded.
  std::string name(node_name.substr(0, kMaxNameLength));
  for (char& c : name)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return name + " (" + short_node_id(node_id) + ")";
}

}  // namespace wownet::overlay
