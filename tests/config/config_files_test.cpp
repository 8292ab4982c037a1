// --check-config's file checks (check_config_files): every problem is
// reported, one line each, naming the key, the path and what is wrong.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config.h"
#include "temp_dir.h"

namespace wownet {
namespace {

class ConfigFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(tmp_.path().empty());
    dir_ = tmp_.path();
    config_.state_dir = dir_ + "/state";
    config_.control_socket = dir_ + "/run/hostd.sock";
    config_.overlay.enabled = true;
    config_.overlay.ca = put("ca.crt", 0644);
    config_.overlay.cert = put("node.crt", 0644);
    config_.overlay.key = put("node.key", 0600);
  }

  std::string put(const std::string& name, mode_t mode) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << "PEM\n";
    ::chmod(path.c_str(), mode);
    return path;
  }

  test::TempDir tmp_{"wownet-config-files"};
  std::string dir_;
  HostdConfig config_;
};

TEST_F(ConfigFilesTest, AGoodConfigHasNoProblems) {
  EXPECT_EQ(check_config_files(config_), std::vector<std::string>{});
  // Directories that exist are fine too.
  std::filesystem::create_directories(config_.state_dir);
  EXPECT_EQ(check_config_files(config_), std::vector<std::string>{});
}

TEST_F(ConfigFilesTest, AKeyReadableByOthersIsAnError) {
  ::chmod(config_.overlay.key.c_str(), 0644);
  EXPECT_EQ(check_config_files(config_),
            std::vector<std::string>{"overlay.key " + config_.overlay.key +
                                     ": mode 0644 lets group or others read the private key; expected 0600 or "
                                     "stricter (chmod 600 " +
                                     config_.overlay.key + ")"});
  ::chmod(config_.overlay.key.c_str(), 0640);
  ASSERT_EQ(check_config_files(config_).size(), 1u);
  EXPECT_NE(check_config_files(config_)[0].find("mode 0640"), std::string::npos);
  ::chmod(config_.overlay.key.c_str(), 0400);
  EXPECT_TRUE(check_config_files(config_).empty());
}

TEST_F(ConfigFilesTest, EveryProblemIsReportedNotOnlyTheFirst) {
  config_.overlay.ca = dir_ + "/missing-ca.crt";
  config_.overlay.cert = dir_ + "/missing.crt";
  ::chmod(config_.overlay.key.c_str(), 0604);
  config_.overlay.crl = dir_;  // a directory, not a file
  put("blocker", 0644);
  config_.state_dir = dir_ + "/blocker/state";  // under a regular file: cannot be created
  const std::vector<std::string> errors = check_config_files(config_);
  ASSERT_EQ(errors.size(), 5u) << ::testing::PrintToString(errors);
  EXPECT_EQ(errors[0],
            "hostd.state_dir " + dir_ + "/blocker/state: cannot be created: " + dir_ + "/blocker is not a directory");
  EXPECT_EQ(errors[1], "overlay.ca " + dir_ + "/missing-ca.crt: No such file or directory");
  EXPECT_EQ(errors[2].rfind("overlay.key " + config_.overlay.key + ": mode 0604", 0), 0u) << errors[2];
  EXPECT_EQ(errors[3], "overlay.cert " + dir_ + "/missing.crt: No such file or directory");
  EXPECT_EQ(errors[4], "overlay.crl " + dir_ + ": not a regular file");
}

TEST_F(ConfigFilesTest, StateDirThatIsAFileIsAnError) {
  config_.state_dir = put("state", 0644);
  EXPECT_EQ(check_config_files(config_),
            std::vector<std::string>{"hostd.state_dir " + config_.state_dir + ": not a directory"});
}

TEST_F(ConfigFilesTest, EnrollmentNeedsTheCsrAndAPlaceForTheCertificate) {
  config_.overlay.csr = put("node.csr", 0644);
  config_.overlay.cert = dir_ + "/certs/node.crt";  // not there yet: written once approved
  EXPECT_EQ(check_config_files(config_), std::vector<std::string>{});
  config_.overlay.csr = dir_ + "/missing.csr";
  EXPECT_EQ(check_config_files(config_),
            std::vector<std::string>{"overlay.csr " + dir_ + "/missing.csr: No such file or directory"});
}

TEST_F(ConfigFilesTest, CaDirMustHoldAPrivateCaKey) {
  config_.overlay.rendezvous = true;
  config_.overlay.ca_dir = dir_ + "/ca";
  std::filesystem::create_directories(config_.overlay.ca_dir);
  EXPECT_EQ(check_config_files(config_),
            std::vector<std::string>{"overlay.ca_dir " + dir_ + "/ca/ca.key: No such file or directory"});
  put("ca/ca.key", 0644);
  ASSERT_EQ(check_config_files(config_).size(), 1u);
  EXPECT_NE(check_config_files(config_)[0].find("mode 0644"), std::string::npos);
  ::chmod((dir_ + "/ca/ca.key").c_str(), 0600);
  EXPECT_TRUE(check_config_files(config_).empty());
}

TEST_F(ConfigFilesTest, WithoutTheOverlayOnlyDirectoriesAreChecked) {
  HostdConfig single;
  single.state_dir = dir_ + "/a/b/c";
  single.control_socket = dir_ + "/run/hostd.sock";
  EXPECT_TRUE(check_config_files(single).empty());
}

}  // namespace
}  // namespace wownet
