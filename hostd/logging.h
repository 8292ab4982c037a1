// hostd's log output: spdlog's stderr sink behind a limiter of repeated
// messages, and the line format, with the syslog priority prefix that the
// journal reads when hostd runs under systemd.
#pragma once

#include <spdlog/details/log_msg.h>
#include <spdlog/formatter.h>
#include <spdlog/sinks/base_sink.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "util/repeat_limiter.h"

namespace wownet::logging {

// The sd-daemon(3) priority of a level: "<3>" (SD_ERR) for error, "<4>"
// warning, "<6>" info, "<7>" debug and trace, "<2>" critical.
const char* syslog_prefix(spdlog::level::level_enum level);

// True if `journal_stream` (the value of $JOURNAL_STREAM, "DEVICE:INODE",
// may be null) names the file with that device and inode, as systemd.exec(5)
// sets it for a unit whose stderr is the journal.
bool journal_stream_is(const char* journal_stream, std::uint64_t device, std::uint64_t inode);
// True if this process' stderr is the journal's stream.
bool stderr_is_journal();

// The line format: "2026-12-02T08:54:29.123 warning text" (level in colour
// on a terminal), or with `priorities` "<4>warning text" for the journal,
// which keeps its own timestamps.
std::unique_ptr<spdlog::formatter> make_formatter(bool priorities);

// A sink that passes lines to `next` except repeats: of one kind of
// message (util::repeat_key of its text, and its level) at most `burst`
// per window; then one line, at the level of the lines left out, "repeated
// N more times in the last W s: TEXT". Summaries go out at the next line
// logged or flush_repeats() after the window ends. `now_ms` is any
// monotonic clock in ms.
class RepeatLimitSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  RepeatLimitSink(spdlog::sink_ptr next, util::RepeatLimiter::Settings settings,
                  std::function<std::int64_t()> now_ms = steady_now_ms);
  // Writes the summaries of windows that have ended.
  void flush_repeats();
  static std::int64_t steady_now_ms();

 private:
  void sink_it_(const spdlog::details::log_msg& msg) override;
  void flush_() override;
  void set_pattern_(const std::string& pattern) override;
  void set_formatter_(std::unique_ptr<spdlog::formatter> formatter) override;
  void write_summaries(std::int64_t now);

  spdlog::sink_ptr next_;
  util::RepeatLimiter limiter_;
  std::function<std::int64_t()> now_ms_;
  std::string logger_name_;
};

// The summary line for repeats that a RepeatLimiter left out.
std::string repeat_summary(const util::RepeatLimiter::Summary& s);

}  // namespace wownet::logging
