// Removes a detached VM's links off the daemon's io thread. Unregistering a
// network device waits for RCU grace periods in the kernel: closing a TAP
// and deleting a bridge take 30-50 ms each, during which the io thread
// would move no VM's packets and answer no control request. LinkReaper
// does that work on its own thread with its own netlink socket; the io
// thread only hands over the TAP descriptor and the link names.
//
// Names still being removed are "pending": the daemon does not give them
// to a new attachment (wait_for() waits for one).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace wownet::io {

class LinkReaper {
 public:
  struct Job {
    int tap_fd = -1;                 // closed first (removes a non-persistent TAP); -1: none
    std::vector<std::string> links;  // deleted in this order (missing ones are fine)
  };
  // How the worker does its work (hostd: a LinkManager of the worker's own,
  // failures logged; tests: recorders). Called on the worker thread only.
  struct Ops {
    std::function<void(int fd)> close_fd;
    std::function<void(const std::string& name)> delete_link;
  };

  explicit LinkReaper(Ops ops);
  // Finishes every queued job, then stops the worker.
  ~LinkReaper();
  LinkReaper(const LinkReaper&) = delete;
  LinkReaper& operator=(const LinkReaper&) = delete;

  // Queues a job; returns at once.
  void retire(Job job);
  // True while a queued or running job names `name`.
  bool pending(const std::string& name) const;
  // Blocks until no queued or running job names `name`.
  void wait_for(const std::string& name);
  // Blocks until every job queued so far is done.
  void drain();
  std::uint64_t completed() const;

 private:
  static bool names(const Job& j, const std::string& name);
  void run();

  Ops ops_;
  mutable std::mutex mu_;
  std::condition_variable work_, done_;
  std::deque<Job> queue_;
  std::vector<Job> running_;  // at most one
  std::uint64_t completed_ = 0;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace wownet::io
