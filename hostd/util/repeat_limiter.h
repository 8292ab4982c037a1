// Keeps a repeated message from flooding a log: per kind of message, the
// first `burst` in a window are written, the rest are counted, and one
// summary per window says how many were left out. Pure: time is an
// argument (ms on any monotonic clock); the caller writes the lines.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace wownet::util {

// The kind of a log message: the message with every run of digits replaced
// by one '#', so "peer 3 down after 120 s" and "peer 4 down after 7 s" are
// one kind.
std::string repeat_key(std::string_view message);

class RepeatLimiter {
 public:
  struct Settings {
    std::uint32_t burst = 20;        // messages of one kind written per window
    std::int64_t window_ms = 10000;  // from the first message of the kind
    std::size_t max_kinds = 256;     // kinds tracked at once; beyond, messages pass untracked
  };
  // Messages of one kind left out during one window.
  struct Summary {
    std::string last_message;      // the last one left out, as given
    int severity = 0;              // as given with it (e.g. a log level)
    std::uint64_t suppressed = 0;  // how many were left out
    std::int64_t window_ms = 0;    // the window's length
  };

  RepeatLimiter() : RepeatLimiter(Settings{}) {}
  explicit RepeatLimiter(Settings settings);

  // Whether a message of kind `key` at `now_ms` is to be written. False:
  // it was counted, and a later expire() reports it (with `message` and
  // `severity` if it is the last one of its window). Call expire(now_ms)
  // first so that a window that has ended is reported before a new one
  // starts.
  [[nodiscard]] bool allow(std::string_view key, std::int64_t now_ms, std::string_view message, int severity = 0);

  // Ends every window that ended by `now_ms`: returns a summary for each
  // one that left messages out, in no particular order, and forgets them.
  std::vector<Summary> expire(std::int64_t now_ms);

  // When the next window ends (then call expire); INT64_MAX if none is open.
  std::int64_t next_deadline_ms() const { return next_deadline_ms_; }
  // Kinds tracked now.
  std::size_t kinds() const { return windows_.size(); }

 private:
  struct Window {
    std::int64_t start_ms = 0;
    std::uint32_t written = 0;
    std::uint64_t suppressed = 0;
    std::string last_message;
    int severity = 0;
  };
  Settings settings_;
  std::unordered_map<std::string, Window> windows_;
  std::int64_t next_deadline_ms_;
};

}  // namespace wownet::util
