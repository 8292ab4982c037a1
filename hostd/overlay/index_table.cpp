// Receiver index allocation: see index_table.h.
#include "overlay/index_table.h"

namespace wownet::overlay {
namespace {
constexpr int kIndexAttempts = 64;
}  // namespace

std::uint32_t ReceiverIndexMap::allocate(void* value) {
  std::uint32_t x = 0;
  for (int i = 0; i < kIndexAttempts; ++i) {
    try {
      x = random32_ ? random32_() : 0;
    } catch (...) {
      x = 0;
    }
    if (x != 0 && map_.find(x) == map_.end()) break;
  }
  while (x == 0 || map_.find(x) != map_.end()) ++x;  // a poor random source: probe
  map_.emplace(x, value);
  return x;
}

void ReceiverIndexMap::release(std::uint32_t index, const void* value) {
  const auto it = map_.find(index);
  if (it != map_.end() && it->second == value) map_.erase(it);
}

}  // namespace wownet::overlay
