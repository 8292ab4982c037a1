#include "logging.h"

#include <spdlog/pattern_formatter.h>
#include <sys/stat.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>

namespace wownet::logging {
namespace {

constexpr const char* kPlainPattern = "%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v";
constexpr const char* kJournalPattern = "%*%l %v";

// spdlog flag %*: the line's syslog priority prefix.
class PriorityFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    std::string_view p = syslog_prefix(msg.level);
    dest.append(p.data(), p.data() + p.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<PriorityFlag>(); }
};

}  // namespace

const char* syslog_prefix(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::critical: return "<2>";
    case spdlog::level::err: return "<3>";
    case spdlog::level::warn: return "<4>";
    case spdlog::level::info: return "<6>";
    default: return "<7>";  // debug, trace
  }
}

bool journal_stream_is(const char* journal_stream, std::uint64_t device, std::uint64_t inode) {
  if (!journal_stream) return false;
  std::uintmax_t dev = 0, ino = 0;
  int end = 0;
  if (std::sscanf(journal_stream, "%ju:%ju%n", &dev, &ino, &end) != 2 || journal_stream[end] != '\0') return false;
  return dev == device && ino == inode;
}

bool stderr_is_journal() {
  struct stat st {};
  if (::fstat(2, &st) != 0) return false;
  return journal_stream_is(std::getenv("JOURNAL_STREAM"), std::uint64_t(st.st_dev), std::uint64_t(st.st_ino));
}

std::unique_ptr<spdlog::formatter> make_formatter(bool priorities) {
  auto f = std::make_unique<spdlog::pattern_formatter>();
  if (priorities) f->add_flag<PriorityFlag>('*');
  f->set_pattern(priorities ? kJournalPattern : kPlainPattern);
  return f;
}

std::string repeat_summary(const util::RepeatLimiter::Summary& s) {
  return "repeated " + std::to_string(s.suppressed) + " more times in the last " + std::to_string(s.window_ms / 1000) +
         " s: " + s.last_message;
}

std::int64_t RepeatLimitSink::steady_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

RepeatLimitSink::RepeatLimitSink(spdlog::sink_ptr next, util::RepeatLimiter::Settings settings,
                                 std::function<std::int64_t()> now_ms)
    : next_(std::move(next)), limiter_(settings), now_ms_(std::move(now_ms)) {}

void RepeatLimitSink::sink_it_(const spdlog::details::log_msg& msg) {
  const std::int64_t now = now_ms_();
  write_summaries(now);
  if (logger_name_.empty()) logger_name_.assign(msg.logger_name.data(), msg.logger_name.size());
  std::string_view text(msg.payload.data(), msg.payload.size());
  std::string key = util::repeat_key(text);
  key += char('0' + int(msg.level));
  if (limiter_.allow(key, now, text, int(msg.level))) next_->log(msg);
}

void RepeatLimitSink::write_summaries(std::int64_t now) {
  for (const auto& s : limiter_.expire(now)) {
    std::string line = repeat_summary(s);
    spdlog::details::log_msg m(logger_name_, spdlog::level::level_enum(s.severity), line);
    next_->log(m);
  }
}

void RepeatLimitSink::flush_repeats() {
  std::lock_guard<std::mutex> lock(mutex_);
  write_summaries(now_ms_());
}

void RepeatLimitSink::flush_() { next_->flush(); }
void RepeatLimitSink::set_pattern_(const std::string& pattern) { next_->set_pattern(pattern); }
void RepeatLimitSink::set_formatter_(std::unique_ptr<spdlog::formatter> formatter) {
  next_->set_formatter(std::move(formatter));
}

}  // namespace wownet::logging
