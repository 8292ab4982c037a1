// ReplayWindow: the data channel's sliding window of seen counters.
#include "data_channel_fixture.h"

namespace wownet::crypto::data_test {
namespace {

// --- ReplayWindow --------------------------------------------------------------

constexpr std::uint64_t kW = ReplayWindow::kWindowSize;
constexpr std::uint64_t kMax = ~std::uint64_t{0};

TEST(ReplayWindowTest, SizeIsAtLeast2048) { static_assert(kW >= 2048); }

TEST(ReplayWindowTest, FreshWindowAcceptsZeroAndAnything) {
  ReplayWindow w;
  EXPECT_TRUE(w.check(0));
  EXPECT_TRUE(w.check(1));
  EXPECT_TRUE(w.check(kMax));
  w.update(0);
  EXPECT_FALSE(w.check(0));
  EXPECT_TRUE(w.check(1));
  w.update(1);
  EXPECT_FALSE(w.check(1));
}

TEST(ReplayWindowTest, StartingAboveZeroKeepsZeroAvailableInsideWindow) {
  ReplayWindow w;
  w.update(5);
  for (std::uint64_t c = 0; c < 5; ++c) EXPECT_TRUE(w.check(c)) << c;
  w.update(0);
  EXPECT_FALSE(w.check(0));
  EXPECT_TRUE(w.check(4));
}

TEST(ReplayWindowTest, WindowEdge) {
  ReplayWindow w;
  w.update(kW);
  EXPECT_FALSE(w.check(0));  // kW behind the highest: outside
  EXPECT_TRUE(w.check(1));   // kW - 1 behind: inside, unseen
  w.update(1);
  EXPECT_FALSE(w.check(1));
  w.update(0);  // too old: ignored, no effect
  EXPECT_FALSE(w.check(0));
  w.update(kW + 1);
  EXPECT_FALSE(w.check(1));  // slid out
  EXPECT_TRUE(w.check(2));
  EXPECT_FALSE(w.check(kW));
  EXPECT_TRUE(w.check(kW + 2));
}

TEST(ReplayWindowTest, JumpBeyondWindowClearsEverything) {
  ReplayWindow w;
  for (std::uint64_t c = 0; c < 200; ++c) w.update(c);
  const std::uint64_t far = 199 + 3 * kW + 17;
  w.update(far);
  EXPECT_FALSE(w.check(far));
  EXPECT_FALSE(w.check(199));
  EXPECT_FALSE(w.check(far - kW));
  for (std::uint64_t c = far - kW + 1; c < far; ++c) ASSERT_TRUE(w.check(c)) << c;
  // A jump of exactly one ring's worth of words must not leave stale bits.
  ReplayWindow v;
  v.update(64);
  v.update(64 + ReplayWindow::kBitsTotal);
  EXPECT_TRUE(v.check(64 + ReplayWindow::kBitsTotal - 64));
  EXPECT_TRUE(v.check(64 + ReplayWindow::kBitsTotal - 1));
}

TEST(ReplayWindowTest, TopOfCounterSpace) {
  ReplayWindow w;
  w.update(kMax - 1);
  EXPECT_TRUE(w.check(kMax));
  w.update(kMax);
  EXPECT_FALSE(w.check(kMax));
  EXPECT_FALSE(w.check(kMax - 1));
  EXPECT_TRUE(w.check(kMax - 2));
  EXPECT_TRUE(w.check(kMax - kW + 1));
  EXPECT_FALSE(w.check(kMax - kW));
  EXPECT_FALSE(w.check(0));
  w.update(kMax - kW + 1);
  EXPECT_FALSE(w.check(kMax - kW + 1));
  EXPECT_EQ(w.highest(), kMax);
}

// Against a set-based model: random walks with small steps, reordering within
// and beyond the window, and big jumps.
TEST(ReplayWindowTest, MatchesModel) {
  std::mt19937_64 rng(1234);
  for (int round = 0; round < 20; ++round) {
    ReplayWindow w;
    std::set<std::uint64_t> seen;
    std::uint64_t highest = round % 2 ? kMax - 3 * kW : 0;
    bool any = false;
    auto model_check = [&](std::uint64_t c) {
      if (!any || c > highest) return true;
      if (highest - c >= kW) return false;
      return seen.count(c) == 0;
    };
    for (int i = 0; i < 5000; ++i) {
      std::uint64_t c = highest;
      switch (rng() % 6) {
        case 0: c = highest + rng() % 3; break;
        case 1: c = highest + rng() % 200; break;
        case 2: c = highest - std::min<std::uint64_t>(highest, rng() % (kW + 100)); break;
        case 3: c = highest - std::min<std::uint64_t>(highest, rng() % 70); break;
        case 4: c = highest + kW - 64 + rng() % 200; break;
        default: c = rng() % 100 == 0 ? highest + (rng() % (10 * kW)) : highest + 1;
      }
      ASSERT_EQ(w.check(c), model_check(c)) << "round " << round << " i " << i << " c " << c;
      if (model_check(c) || rng() % 4 == 0) {  // occasionally update without a passing check
        w.update(c);
        if (!any || c > highest) highest = c;
        any = true;
        seen.insert(c);
      }
    }
  }
}

}  // namespace
}  // namespace wownet::crypto::data_test
