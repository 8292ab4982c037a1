#include "io/link_reaper.h"

#include <algorithm>

namespace wownet::io {
LinkReaper::LinkReaper(Ops ops) : ops_(std::move(ops)), worker_([this] { run(); }) {}

LinkReaper::~LinkReaper() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  work_.notify_all();
  worker_.join();
}

void LinkReaper::retire(Job job) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(job));
  }
  work_.notify_one();
}

bool LinkReaper::names(const Job& j, const std::string& name) {
  return std::find(j.links.begin(), j.links.end(), name) != j.links.end();
}

bool LinkReaper::pending(const std::string& name) const {
  std::lock_guard lock(mu_);
  return std::any_of(queue_.begin(), queue_.end(), [&](const Job& j) { return names(j, name); }) ||
         std::any_of(running_.begin(), running_.end(), [&](const Job& j) { return names(j, name); });
}

void LinkReaper::wait_for(const std::string& name) {
  std::unique_lock lock(mu_);
  done_.wait(lock, [&] {
    return std::none_of(queue_.begin(), queue_.end(), [&](const Job& j) { return names(j, name); }) &&
           std::none_of(running_.begin(), running_.end(), [&](const Job& j) { return names(j, name); });
  });
}

void LinkReaper::drain() {
  std::unique_lock lock(mu_);
  done_.wait(lock, [&] { return queue_.empty() && running_.empty(); });
}

std::uint64_t LinkReaper::completed() const {
  std::lock_guard lock(mu_);
  return completed_;
}

void LinkReaper::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    work_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and nothing left to do
    running_.push_back(std::move(queue_.front()));
    queue_.pop_front();
    const Job& job = running_.back();
    lock.unlock();
    if (job.tap_fd >= 0) ops_.close_fd(job.tap_fd);
    for (const auto& name : job.links) ops_.delete_link(name);
    lock.lock();
    running_.clear();
    ++completed_;
    done_.notify_all();
  }
}

}  // namespace wownet::io
