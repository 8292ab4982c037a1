// One fuzz target body, two builds. WOWNET_FUZZ_TARGET(name) opens the
// definition of a function taking (const std::uint8_t* data, std::size_t
// size):
//   - with WOWNET_LIBFUZZER (the clang build, CMake option WOWNET_FUZZ) it
//     becomes LLVMFuzzerTestOneInput of its own executable;
//   - otherwise it registers itself in fuzz::targets(), which the replay
//     test (replay_main.cpp) runs over tests/fuzz/corpus/<name>/.
// A target returns nothing and never throws: a crash, a sanitizer report or
// a failed WOWNET_FUZZ_CHECK is the finding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

namespace wownet::fuzz {

using TargetFn = void (*)(const std::uint8_t* data, std::size_t size);

// Every target linked into this executable, by name.
inline std::map<std::string, TargetFn>& targets() {
  static std::map<std::string, TargetFn> table;
  return table;
}

inline bool register_target(const char* name, TargetFn fn) {
  targets()[name] = fn;
  return true;
}

[[noreturn]] inline void check_failed(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n", file, line, expr);
  std::abort();
}

}  // namespace wownet::fuzz

// An invariant of the code under test; aborts (a finding) when false.
#define WOWNET_FUZZ_CHECK(cond) ((cond) ? void(0) : ::wownet::fuzz::check_failed(#cond, __FILE__, __LINE__))

#ifdef WOWNET_LIBFUZZER
#define WOWNET_FUZZ_TARGET(name)                                                      \
  static void wownet_fuzz_##name(const std::uint8_t*, std::size_t);                   \
  extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) { \
    wownet_fuzz_##name(data, size);                                                   \
    return 0;                                                                         \
  }                                                                                   \
  static void wownet_fuzz_##name
#else
#define WOWNET_FUZZ_TARGET(name)                                     \
  static void wownet_fuzz_##name(const std::uint8_t*, std::size_t);  \
  [[maybe_unused]] static const bool wownet_fuzz_registered_##name = \
      ::wownet::fuzz::register_target(#name, &wownet_fuzz_##name);   \
  static void wownet_fuzz_##name
#endif
