// One wownet-hostd per state directory: an exclusive flock(2) on
// STATE_DIR/hostd.lock, held for the life of the process. A hostd started
// while its predecessor is still exiting (systemd restart, kill -9 of a
// busy daemon) waits for the lock instead of failing on a socket or a TAP
// that the predecessor has not released yet.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <system_error>

namespace wownet::io {

class InstanceLock {
 public:
  InstanceLock() = default;
  ~InstanceLock() { release(); }
  InstanceLock(const InstanceLock&) = delete;
  InstanceLock& operator=(const InstanceLock&) = delete;

  // Takes the lock on `dir`/hostd.lock (creating `dir` if needed), waiting
  // up to `wait` for a holder to exit. `on_wait` is called once, with the
  // holder's pid (0 if unknown), if the lock is held when first tried.
  // Errors: timed_out (errc::resource_unavailable_try_again) if still held,
  // or the system error of open/flock.
  std::error_code acquire(const std::string& dir, std::chrono::milliseconds wait,
                          const std::function<void(long holder)>& on_wait);
  // Releases the lock (idempotent).
  void release();
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

}  // namespace wownet::io
