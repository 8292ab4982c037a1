// Durations in milliseconds counted into fixed buckets, for metrics
// (handshake times, keepalive round trips). No allocation, no clock: the
// caller measures with its `now`.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>

namespace wownet::overlay {

struct LatencyHistogram {
  // Upper bounds of the buckets, in milliseconds (Prometheus' le, inclusive).
  static constexpr std::array<std::int64_t, 14> kBoundsMs{1,   2,   5,    10,   25,   50,    100,
                                                          250, 500, 1000, 2500, 5000, 10000, 30000};
  // buckets[i]: observations in (kBoundsMs[i-1], kBoundsMs[i]]; the last
  // one: above the highest bound.
  std::array<std::uint64_t, kBoundsMs.size() + 1> buckets{};
  std::uint64_t count = 0;
  std::int64_t sum_ms = 0;

  // Counts one duration (a negative one as 0).
  void add(std::int64_t ms) {
    ms = std::max<std::int64_t>(ms, 0);
    const auto at = std::lower_bound(kBoundsMs.begin(), kBoundsMs.end(), ms);
    ++buckets[std::size_t(at - kBoundsMs.begin())];
    ++count;
    sum_ms += ms;
  }
};

}  // namespace wownet::overlay
