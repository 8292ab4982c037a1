// Sliding anti-replay window over 64-bit packet counters, RFC 6479 style (as
// in WireGuard): a ring of 64-bit words, one word kept spare so that moving
// the window forward only ever clears whole words. No allocation, no
// exceptions; check() and update() are split so a counter is only marked
// after the packet carrying it has been authenticated.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace wownet::crypto {

class ReplayWindow {
 public:
  static constexpr std::size_t kWords = 64;  // power of two
  static constexpr std::size_t kBitsTotal = kWords * 64;
  // Counters in (highest - kWindowSize, highest] are tracked individually.
  static constexpr std::uint64_t kWindowSize = kBitsTotal - 64;  // 4032

  // True if `counter` is new: above everything seen, or inside the window and
  // not yet marked. Counter 0 is a valid first counter.
  bool check(std::uint64_t counter) const {
    if (counter > highest_) return true;
    if (highest_ - counter >= kWindowSize) return false;
    return (bitmap_[word_index(counter)] & bit(counter)) == 0;
  }

  // Marks `counter` as seen, sliding the window forward if it is the new
  // highest. Call only after check() accepted it and the packet verified;
  // a counter already behind the window is ignored.
  void update(std::uint64_t counter) {
    if (counter > highest_) {
      const std::uint64_t old_word = highest_ / 64;
      const std::uint64_t new_word = counter / 64;
      const std::uint64_t advance = new_word - old_word;
      if (advance >= kWords) {
        bitmap_.fill(0);
      } else {
        for (std::uint64_t w = old_word + 1; w <= new_word; ++w) bitmap_[w & (kWords - 1)] = 0;
      }
      highest_ = counter;
    } else if (highest_ - counter >= kWindowSize) {
      return;
    }
    bitmap_[word_index(counter)] |= bit(counter);
  }

  // Highest counter marked so far (0 also before anything was marked).
  std::uint64_t highest() const { return highest_; }

 private:
  static std::size_t word_index(std::uint64_t counter) { return std::size_t((counter / 64) & (kWords - 1)); }
  static std::uint64_t bit(std::uint64_t counter) { return std::uint64_t{1} << (counter & 63); }

  // Nothing seen is the same state as "highest 0, bit 0 clear".
  std::uint64_t highest_ = 0;
  std::array<std::uint64_t, kWords> bitmap_{};
};

}  // namespace wownet::crypto
