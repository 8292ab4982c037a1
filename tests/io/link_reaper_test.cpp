#include "io/link_reaper.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <vector>

namespace wownet::io {
namespace {

using namespace std::chrono_literals;

// Records what the worker did; the operation named `block_on` waits for the gate.
struct Recorder {
  std::mutex mu;
  std::vector<std::string> done;
  std::string block_on;
  std::promise<void> gate;
  std::shared_future<void> opened = gate.get_future().share();

  void record(const std::string& what) {
    if (what == block_on) opened.wait();
    std::lock_guard lock(mu);
    done.push_back(what);
  }
  std::vector<std::string> log() {
    std::lock_guard lock(mu);
    return done;
  }
  LinkReaper::Ops ops() {
    LinkReaper::Ops o;
    o.close_fd = [this](int fd) { record("close " + std::to_string(fd)); };
    o.delete_link = [this](const std::string& name) { record("delete " + name); };
    return o;
  }
};

TEST(LinkReaper, DoesAJobsStepsInOrderOffTheCallersThread) {
  Recorder r;
  {
    LinkReaper reaper(r.ops());
    reaper.retire({7, {"wnt1", "wnb1"}});
    reaper.drain();
    EXPECT_EQ(r.log(), (std::vector<std::string>{"close 7", "delete wnt1", "delete wnb1"}));
    EXPECT_EQ(reaper.completed(), 1u);
    EXPECT_FALSE(reaper.pending("wnb1"));
  }
}

TEST(LinkReaper, RetireReturnsAtOnceAndNamesStayPendingUntilDone) {
  Recorder r;
  r.block_on = "delete wnb1";  // the kernel's slow unregister
  LinkReaper reaper(r.ops());
  const auto t0 = std::chrono::steady_clock::now();
  reaper.retire({-1, {"wnt1", "wnb1"}});
  reaper.retire({-1, {"wnt2", "wnb2"}});
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  for (const char* name : {"wnb1", "wnt1", "wnb2", "wnt2"}) EXPECT_TRUE(reaper.pending(name)) << name;
  EXPECT_FALSE(reaper.pending("wnb3"));

  auto waiter = std::async(std::launch::async, [&] { reaper.wait_for("wnt2"); });
  EXPECT_EQ(waiter.wait_for(100ms), std::future_status::timeout) << "wnt2's job has not run yet";
  r.gate.set_value();
  waiter.get();
  EXPECT_FALSE(reaper.pending("wnt2"));
  reaper.drain();
  EXPECT_EQ(reaper.completed(), 2u);
  const auto log = r.log();
  ASSERT_EQ(log.size(), 4u);
  EXPECT_EQ(log[1], "delete wnb1");
  EXPECT_EQ(log[2], "delete wnt2");
}

TEST(LinkReaper, DestructionFinishesQueuedJobs) {
  Recorder r;
  {
    LinkReaper reaper(r.ops());
    for (int i = 0; i < 20; ++i) reaper.retire({i, {"wnb" + std::to_string(i)}});
  }
  EXPECT_EQ(r.log().size(), 40u);
  EXPECT_EQ(r.log().back(), "delete wnb19");
}

TEST(LinkReaper, NoFdMeansOnlyDeletes) {
  Recorder r;
  LinkReaper reaper(r.ops());
  reaper.retire({-1, {"wnt9"}});
  reaper.drain();
  EXPECT_EQ(r.log(), (std::vector<std::string>{"delete wnt9"}));
}

}  // namespace
}  // namespace wownet::io
