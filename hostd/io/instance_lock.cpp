#include "io/instance_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <thread>

namespace wownet::io {
namespace {

std::error_code errno_code() { return {errno, std::system_category()}; }

long read_holder(int fd) {
  char buf[32] = {};
  ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return 0;
  return std::strtol(buf, nullptr, 10);
}

}  // namespace

std::error_code InstanceLock::acquire(const std::string& dir, std::chrono::milliseconds wait,
                                      const std::function<void(long holder)>& on_wait) {
  release();
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return errno_code();
  path_ = dir + "/hostd.lock";
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) return errno_code();
  auto deadline = std::chrono::steady_clock::now() + wait;
  bool told = false;
  while (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK) {
      std::error_code ec = errno_code();
      release();
      return ec;
    }
    if (!told && on_wait) on_wait(read_holder(fd_));
    told = true;
    if (std::chrono::steady_clock::now() >= deadline) {
      release();
      return std::make_error_code(std::errc::resource_unavailable_try_again);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, pid.data(), pid.size(), 0);
  return {};
}

void InstanceLock::release() {
  if (fd_ >= 0) {
    ::close(fd_);  // drops the flock
    fd_ = -1;
  }
}

}  // namespace wownet::io
