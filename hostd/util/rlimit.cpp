#include "util/rlimit.h"

#include <sys/resource.h>

#include <cerrno>

namespace wownet::util {

NofileLimit raise_nofile_limit() {
  NofileLimit out;
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    out.error = errno;
    return out;
  }
  out.before = out.after = std::uint64_t(lim.rlim_cur);
  out.hard = std::uint64_t(lim.rlim_max);
  if (lim.rlim_cur == lim.rlim_max) return out;
  lim.rlim_cur = lim.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) {
    out.error = errno;
    return out;
  }
  out.after = out.hard;
  return out;
}

}  // namespace wownet::util
