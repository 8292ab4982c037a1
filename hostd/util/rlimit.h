// The process's limit on open files.
#pragma once

#include <cstdint>

namespace wownet::util {

struct NofileLimit {
  std::uint64_t before = 0;  // the soft limit found
  std::uint64_t after = 0;   // the soft limit now (the hard limit, or `before` on error)
  std::uint64_t hard = 0;
  int error = 0;  // errno of getrlimit/setrlimit, 0 on success
};

// Raises the soft RLIMIT_NOFILE to the hard limit: every VM costs a TAP, a
// bridge and sockets, and the soft default (1024) runs out on a big host.
NofileLimit raise_nofile_limit();

}  // namespace wownet::util
