// raise_nofile_limit: the soft RLIMIT_NOFILE ends at the hard limit.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>

#include "util/rlimit.h"

namespace wownet::util {
namespace {

TEST(RlimitTest, RaisesTheSoftLimitToTheHardLimit) {
  rlimit lim{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &lim), 0);
  const rlim_t low = std::min<rlim_t>(lim.rlim_max, 64);
  lim.rlim_cur = low;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lim), 0);
  const NofileLimit r = raise_nofile_limit();
  EXPECT_EQ(r.error, 0);
  EXPECT_EQ(r.before, std::uint64_t(low));
  EXPECT_EQ(r.hard, std::uint64_t(lim.rlim_max));
  EXPECT_EQ(r.after, std::uint64_t(lim.rlim_max));
  rlimit now{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &now), 0);
  EXPECT_EQ(now.rlim_cur, lim.rlim_max);
  // Already at the hard limit: nothing to do, no error.
  const NofileLimit again = raise_nofile_limit();
  EXPECT_EQ(again.error, 0);
  EXPECT_EQ(again.before, again.after);
}

}  // namespace
}  // namespace wownet::util
