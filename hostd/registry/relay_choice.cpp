#include "registry/relay_choice.h"

#include <algorithm>

namespace wownet::registry {

bool RelayChoice::add(RelayCandidate c) {
  auto it = relays_.find(c.id);
  if (it != relays_.end() && it->second == c) return false;
  std::string id = c.id;
  relays_[id] = std::move(c);
  return true;
}

bool RelayChoice::remove(const std::string& id) {
  if (!relays_.erase(id)) return false;
  std::erase_if(assigned_, [&](const auto& a) { return a.second == id; });
  return true;
}

void RelayChoice::forget(const std::string& node) { assigned_.erase(node); }

std::size_t RelayChoice::load(const std::string& id) const {
  return std::size_t(std::count_if(assigned_.begin(), assigned_.end(), [&](const auto& a) { return a.second == id; }));
}

std::vector<RelayCandidate> RelayChoice::choose(const std::string& node) {
  forget(node);  // its own previous choice does not weigh on the new one
  std::vector<std::pair<std::size_t, const RelayCandidate*>> order;
  for (const auto& [id, c] : relays_)
    if (id != node) order.emplace_back(load(id), &c);
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<RelayCandidate> out;
  for (const auto& [n, c] : order) {
    if (out.size() == kMaxRelays) break;
    out.push_back(*c);
  }
  if (!out.empty()) assigned_[node] = out.front().id;
  return out;
}

}  // namespace wownet::registry
