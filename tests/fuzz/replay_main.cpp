// Replays the checked-in fuzz corpora as unit tests: one test per fuzz
// target linked in (FuzzCorpus.<target>), running the empty input and
// every file in tests/fuzz/corpus/<target>/ through the target's body. A
// crash or failed check aborts the run and names the file being replayed;
// in the ASan build memory errors do too.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz_target.h"

namespace wownet::fuzz {
namespace {

char g_current[4096] = "";

void on_fatal_signal(int sig) {
  static const char kPrefix[] = "fuzz_replay_tests: crashed replaying ";
  (void)!::write(2, kPrefix, sizeof kPrefix - 1);
  (void)!::write(2, g_current, std::strlen(g_current));
  (void)!::write(2, "\n", 1);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

class CorpusReplay : public ::testing::Test {
 public:
  CorpusReplay(std::string name, TargetFn fn) : name_(std::move(name)), fn_(fn) {}

  void TestBody() override {
    const std::uint8_t empty = 0;
    std::snprintf(g_current, sizeof g_current, "%s: the empty input", name_.c_str());
    fn_(&empty, 0);
    const std::filesystem::path dir = std::filesystem::path(WOWNET_FUZZ_CORPUS_DIR) / name_;
    ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir << " is missing: every target keeps a seed corpus";
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(dir))
      if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    ASSERT_FALSE(files.empty()) << dir << " is empty";
    for (const auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      std::snprintf(g_current, sizeof g_current, "%s", f.c_str());
      fn_(bytes.empty() ? &empty : bytes.data(), bytes.size());
    }
    g_current[0] = '\0';
    RecordProperty("inputs", int(files.size()));
  }

 private:
  std::string name_;
  TargetFn fn_;
};

}  // namespace
}  // namespace wownet::fuzz

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  for (int sig : {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL}) ::signal(sig, wownet::fuzz::on_fatal_signal);
  for (const auto& [name, fn] : wownet::fuzz::targets()) {
    ::testing::RegisterTest(
        "FuzzCorpus", name.c_str(), nullptr, nullptr, __FILE__, __LINE__,
        [name = name, fn = fn]() -> ::testing::Test* { return new wownet::fuzz::CorpusReplay(name, fn); });
  }
  return RUN_ALL_TESTS();
}
