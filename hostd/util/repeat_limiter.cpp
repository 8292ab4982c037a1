#include "util/repeat_limiter.h"

#include <limits>

namespace wownet::util {

std::string repeat_key(std::string_view message) {
  std::string key;
  key.reserve(message.size());
  bool in_digits = false;
  for (char c : message) {
    const bool digit = c >= '0' && c <= '9';
    if (digit && !in_digits) key += '#';
    if (!digit) key += c;
    in_digits = digit;
  }
  return key;
}

RepeatLimiter::RepeatLimiter(Settings settings)
    : settings_(settings), next_deadline_ms_(std::numeric_limits<std::int64_t>::max()) {}

bool RepeatLimiter::allow(std::string_view key, std::int64_t now_ms, std::string_view message, int severity) {
  auto it = windows_.find(std::string(key));
  if (it == windows_.end()) {
    if (windows_.size() >= settings_.max_kinds) return true;  // too many kinds to tell apart: not a repeat flood
    it = windows_.emplace(std::string(key), Window{now_ms, 0, 0, {}, 0}).first;
    if (now_ms + settings_.window_ms < next_deadline_ms_) next_deadline_ms_ = now_ms + settings_.window_ms;
  }
  Window& w = it->second;
  if (w.written < settings_.burst) {
    ++w.written;
    return true;
  }
  ++w.suppressed;
  w.last_message.assign(message);
  w.severity = severity;
  return false;
}

std::vector<RepeatLimiter::Summary> RepeatLimiter::expire(std::int64_t now_ms) {
  std::vector<Summary> out;
  if (now_ms < next_deadline_ms_) return out;
  next_deadline_ms_ = std::numeric_limits<std::int64_t>::max();
  for (auto it = windows_.begin(); it != windows_.end();) {
    const std::int64_t end = it->second.start_ms + settings_.window_ms;
    if (now_ms < end) {
      if (end < next_deadline_ms_) next_deadline_ms_ = end;
      ++it;
      continue;
    }
    if (it->second.suppressed)
      out.push_back(
          {std::move(it->second.last_message), it->second.severity, it->second.suppressed, settings_.window_ms});
    it = windows_.erase(it);
  }
  return out;
}

}  // namespace wownet::util
