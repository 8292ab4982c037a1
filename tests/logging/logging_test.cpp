// hostd's log lines: the journal's priority prefixes, the plain format, and
// the sink that keeps repeats out (time from a fake clock).
#include "logging.h"

#include <gtest/gtest.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>

#include <sstream>
#include <string>
#include <vector>

namespace wownet::logging {
namespace {

std::string format(bool priorities, spdlog::level::level_enum level, const std::string& text) {
  auto f = make_formatter(priorities);
  spdlog::details::log_msg msg("hostd", level, text);
  spdlog::memory_buf_t buf;
  f->format(msg, buf);
  return std::string(buf.data(), buf.size());
}

TEST(Logging, SyslogPrefixesFollowSdDaemon) {
  EXPECT_STREQ(syslog_prefix(spdlog::level::critical), "<2>");
  EXPECT_STREQ(syslog_prefix(spdlog::level::err), "<3>");
  EXPECT_STREQ(syslog_prefix(spdlog::level::warn), "<4>");
  EXPECT_STREQ(syslog_prefix(spdlog::level::info), "<6>");
  EXPECT_STREQ(syslog_prefix(spdlog::level::debug), "<7>");
  EXPECT_STREQ(syslog_prefix(spdlog::level::trace), "<7>");
}

TEST(Logging, JournalLinesStartWithThePriority) {
  EXPECT_EQ(format(true, spdlog::level::err, "cannot save"), "<3>error cannot save\n");
  EXPECT_EQ(format(true, spdlog::level::warn, "TAP t1 without offloads"), "<4>warning TAP t1 without offloads\n");
  EXPECT_EQ(format(true, spdlog::level::info, "peer up"), "<6>info peer up\n");
  EXPECT_EQ(format(true, spdlog::level::debug, "resolved"), "<7>debug resolved\n");
}

TEST(Logging, PlainLinesHaveATimestampAndNoPrefix) {
  std::string line = format(false, spdlog::level::warn, "careful");
  // 2026-12-02T08:54:29.123 warning careful
  ASSERT_GE(line.size(), 24u) << line;
  EXPECT_EQ(line[4], '-');
  EXPECT_EQ(line[10], 'T');
  EXPECT_EQ(line[19], '.');
  EXPECT_EQ(line.substr(23), " warning careful\n");
  EXPECT_EQ(line.find('<'), std::string::npos);
}

TEST(Logging, JournalStreamMustNameTheFile) {
  EXPECT_TRUE(journal_stream_is("8:12345", 8, 12345));
  EXPECT_FALSE(journal_stream_is("8:12345", 8, 12346));
  EXPECT_FALSE(journal_stream_is("9:12345", 8, 12345));
  EXPECT_FALSE(journal_stream_is(nullptr, 8, 12345));
  EXPECT_FALSE(journal_stream_is("", 8, 12345));
  EXPECT_FALSE(journal_stream_is("8:12345x", 8, 12345));
  EXPECT_FALSE(journal_stream_is("8", 8, 12345));
}

struct SinkFixture : ::testing::Test {
  std::ostringstream out;
  std::int64_t now = 0;
  std::shared_ptr<RepeatLimitSink> sink;
  std::shared_ptr<spdlog::logger> logger;
  SinkFixture() {
    auto next = std::make_shared<spdlog::sinks::ostream_sink_st>(out);
    util::RepeatLimiter::Settings s;
    s.burst = 3;
    s.window_ms = 10000;
    sink = std::make_shared<RepeatLimitSink>(next, s, [this] { return now; });
    logger = std::make_shared<spdlog::logger>("hostd", sink);
    logger->set_formatter(make_formatter(true));
    logger->set_level(spdlog::level::trace);
  }
  std::vector<std::string> lines() {
    std::vector<std::string> v;
    std::istringstream in(out.str());
    for (std::string l; std::getline(in, l);) v.push_back(l);
    return v;
  }
};

TEST_F(SinkFixture, RepeatsAreSuppressedAndSummedUpOnce) {
  for (int i = 0; i < 1237; ++i) logger->warn("peer {} sent a bad packet", i);
  logger->info("something else");
  ASSERT_EQ(lines().size(), 4u) << out.str();
  EXPECT_EQ(lines()[0], "<4>warning peer 0 sent a bad packet");
  EXPECT_EQ(lines()[2], "<4>warning peer 2 sent a bad packet");
  EXPECT_EQ(lines()[3], "<6>info something else");
  now = 9999;
  sink->flush_repeats();
  EXPECT_EQ(lines().size(), 4u) << "not before the window ends";
  now = 10000;
  sink->flush_repeats();
  ASSERT_EQ(lines().size(), 5u) << out.str();
  EXPECT_EQ(lines()[4], "<4>warning repeated 1234 more times in the last 10 s: peer 1236 sent a bad packet");
  now = 30000;
  sink->flush_repeats();
  EXPECT_EQ(lines().size(), 5u) << "summed up once";
  logger->warn("peer {} sent a bad packet", 1);
  EXPECT_EQ(lines().size(), 6u) << "a new window";
}

TEST_F(SinkFixture, SummaryComesWithTheNextLineAfterTheWindow) {
  for (int i = 0; i < 5; ++i) logger->error("cannot save state: disk full");
  now = 10001;
  logger->info("next");
  auto l = lines();
  ASSERT_EQ(l.size(), 5u) << out.str();
  EXPECT_EQ(l[3], "<3>error repeated 2 more times in the last 10 s: cannot save state: disk full");
  EXPECT_EQ(l[4], "<6>info next");
}

TEST_F(SinkFixture, LevelsAreKindsApart) {
  for (int i = 0; i < 3; ++i) logger->info("same");
  for (int i = 0; i < 3; ++i) logger->warn("same");
  EXPECT_EQ(lines().size(), 6u);
}

}  // namespace
}  // namespace wownet::logging
