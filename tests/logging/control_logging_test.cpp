// The log-level control request: sets spdlog's level, reports old and new,
// refuses unknown names and leaves the level alone then.
#include "control_logging.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

namespace wownet {
namespace {

control::Response ask(const std::string& level) {
  control::LogLevelRequest req;
  req.set_level(level);
  control::Response resp;
  resp.set_code(control::OK);
  answer_log_level(req, resp);
  return resp;
}

TEST(ControlLogLevel, SetsTheLevelAndReportsBoth) {
  spdlog::set_level(spdlog::level::info);
  auto r = ask("debug");
  EXPECT_EQ(r.code(), control::OK);
  EXPECT_EQ(spdlog::get_level(), spdlog::level::debug);
  EXPECT_EQ(r.log_level().old_level(), "info");
  EXPECT_EQ(r.log_level().level(), "debug");
  EXPECT_EQ(r.message(), "log level info -> debug");
  r = ask("warn");
  EXPECT_EQ(r.log_level().old_level(), "debug");
  EXPECT_EQ(r.log_level().level(), "warn") << "named as in hostd.toml, not spdlog's 'warning'";
  EXPECT_EQ(spdlog::get_level(), spdlog::level::warn);
  r = ask("error");
  EXPECT_EQ(r.log_level().level(), "error");
  EXPECT_EQ(spdlog::get_level(), spdlog::level::err);
}

TEST(ControlLogLevel, EmptyOnlyAsks) {
  spdlog::set_level(spdlog::level::critical);
  auto r = ask("");
  EXPECT_EQ(r.code(), control::OK);
  EXPECT_EQ(r.log_level().old_level(), "critical");
  EXPECT_EQ(r.log_level().level(), "critical");
  EXPECT_EQ(spdlog::get_level(), spdlog::level::critical);
}

TEST(ControlLogLevel, UnknownLevelIsRefused) {
  spdlog::set_level(spdlog::level::info);
  for (const char* bad : {"verbose", "warning", "INFO", "err", " info"}) {
    auto r = ask(bad);
    EXPECT_EQ(r.code(), control::INVALID_ARGUMENT) << bad;
    EXPECT_FALSE(r.has_log_level()) << bad;
    EXPECT_NE(r.message().find("expected trace, debug"), std::string::npos) << r.message();
    EXPECT_EQ(spdlog::get_level(), spdlog::level::info) << bad;
  }
}

}  // namespace
}  // namespace wownet
