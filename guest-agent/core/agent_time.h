// Time as the core sees it. The core never reads a clock: the io layer
// passes the current time into every entry point.
#pragma once

#include <chrono>
#include <cstdint>

namespace wownet::agent {

// Seconds since the Unix epoch (wall clock).
using UnixTime = std::int64_t;

// A point on the monotonic clock, as the distance from its (arbitrary) zero.
using MonoTime = std::chrono::milliseconds;

}  // namespace wownet::agent
