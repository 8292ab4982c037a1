// RepeatLimiter: per kind, `burst` lines per window pass, the rest are
// counted and summed up once the window has ended. Time is an argument.
#include "util/repeat_limiter.h"

#include <gtest/gtest.h>

#include <string>

namespace wownet::util {
namespace {

RepeatLimiter::Settings small(std::uint32_t burst = 3, std::int64_t window_ms = 10000, std::size_t max_kinds = 256) {
  RepeatLimiter::Settings s;
  s.burst = burst;
  s.window_ms = window_ms;
  s.max_kinds = max_kinds;
  return s;
}

TEST(RepeatKey, NumbersBecomeOneHash) {
  EXPECT_EQ(repeat_key("peer 3 down after 120 s"), "peer # down after # s");
  EXPECT_EQ(repeat_key("peer 4 down after 7 s"), repeat_key("peer 3 down after 120 s"));
  EXPECT_EQ(repeat_key("10.128.0.5:4789"), "#.#.#.#:#");
  EXPECT_EQ(repeat_key(""), "");
  EXPECT_EQ(repeat_key("no digits"), "no digits");
  EXPECT_NE(repeat_key("peer a down"), repeat_key("peer b down"));
}

TEST(RepeatLimiter, BurstPassesTheRestIsCountedAndSummedUp) {
  RepeatLimiter l(small(3, 10000));
  int written = 0;
  for (int i = 0; i < 1000; ++i) {
    std::int64_t now = i;  // all within the first second
    EXPECT_TRUE(l.expire(now).empty());
    written += l.allow("k", now, "line " + std::to_string(i), 4);
  }
  EXPECT_EQ(written, 3);
  EXPECT_TRUE(l.expire(9999).empty()) << "the window is still open";
  EXPECT_EQ(l.next_deadline_ms(), 10000);
  auto s = l.expire(10000);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].suppressed, 997u);
  EXPECT_EQ(s[0].last_message, "line 999");
  EXPECT_EQ(s[0].severity, 4);
  EXPECT_EQ(s[0].window_ms, 10000);
  EXPECT_EQ(l.kinds(), 0u);
  EXPECT_TRUE(l.expire(20000).empty()) << "reported once";
  // A new window: the burst passes again.
  EXPECT_TRUE(l.allow("k", 20000, "again"));
}

TEST(RepeatLimiter, NoSummaryWithoutSuppression) {
  RepeatLimiter l(small(3));
  EXPECT_TRUE(l.allow("k", 0, "a"));
  EXPECT_TRUE(l.allow("k", 1, "a"));
  EXPECT_TRUE(l.expire(10000).empty());
  EXPECT_EQ(l.kinds(), 0u) << "an ended window is forgotten";
}

TEST(RepeatLimiter, KindsAreCountedApart) {
  RepeatLimiter l(small(1));
  EXPECT_TRUE(l.allow("a", 0, "a"));
  EXPECT_TRUE(l.allow("b", 0, "b"));
  EXPECT_FALSE(l.allow("a", 1, "a"));
  EXPECT_FALSE(l.allow("a", 2, "a"));
  EXPECT_FALSE(l.allow("b", 3, "b"));
  auto s = l.expire(10000);
  ASSERT_EQ(s.size(), 2u);
  std::uint64_t a = 0, b = 0;
  for (const auto& x : s) (x.last_message == "a" ? a : b) = x.suppressed;
  EXPECT_EQ(a, 2u);
  EXPECT_EQ(b, 1u);
}

TEST(RepeatLimiter, WindowsStartWithTheirFirstMessage) {
  RepeatLimiter l(small(1, 1000));
  EXPECT_TRUE(l.allow("a", 0, "a"));
  EXPECT_TRUE(l.allow("b", 500, "b"));
  EXPECT_FALSE(l.allow("a", 600, "a"));
  EXPECT_FALSE(l.allow("b", 700, "b"));
  EXPECT_EQ(l.next_deadline_ms(), 1000);
  auto s = l.expire(1000);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].last_message, "a");
  EXPECT_EQ(l.next_deadline_ms(), 1500);
  EXPECT_FALSE(l.allow("b", 1200, "b")) << "b's window runs to 1500";
  s = l.expire(1500);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].suppressed, 2u);
}

TEST(RepeatLimiter, TooManyKindsPassUntracked) {
  RepeatLimiter l(small(1, 1000, 2));
  EXPECT_TRUE(l.allow("a", 0, "a"));
  EXPECT_TRUE(l.allow("b", 0, "b"));
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(l.allow("c", 0, "c"));
  EXPECT_EQ(l.kinds(), 2u);
  EXPECT_TRUE(l.expire(1000).empty());
  EXPECT_TRUE(l.allow("c", 1000, "c"));
  EXPECT_FALSE(l.allow("c", 1001, "c")) << "tracked once there is room";
}

}  // namespace
}  // namespace wownet::util
