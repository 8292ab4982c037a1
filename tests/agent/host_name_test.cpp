#include <gtest/gtest.h>

#include <string>

#include "core/host_name.h"

namespace wownet::agent {
namespace {

TEST(HostLabel, AcceptsPlainLabels) {
  EXPECT_TRUE(is_valid_host_label("vm1"));
  EXPECT_TRUE(is_valid_host_label("a"));
  EXPECT_TRUE(is_valid_host_label("web-01"));
  EXPECT_TRUE(is_valid_host_label("0day"));
  EXPECT_TRUE(is_valid_host_label(std::string(63, 'a')));
}

TEST(HostLabel, RejectsEverythingElse) {
  EXPECT_FALSE(is_valid_host_label(""));
  EXPECT_FALSE(is_valid_host_label(std::string(64, 'a')));
  EXPECT_FALSE(is_valid_host_label("-vm"));
  EXPECT_FALSE(is_valid_host_label("vm-"));
  EXPECT_FALSE(is_valid_host_label("Vm"));
  EXPECT_FALSE(is_valid_host_label("vm.example"));
  EXPECT_FALSE(is_valid_host_label("vm_1"));
  EXPECT_FALSE(is_valid_host_label("vm 1"));
}

TEST(SanitizeHostName, KeepsValidLabels) {
  EXPECT_EQ(sanitize_host_name("vm1"), "vm1");
  EXPECT_EQ(sanitize_host_name("web-01"), "web-01");
}

TEST(SanitizeHostName, LowercasesAndKeepsTheFirstLabel) {
  EXPECT_EQ(sanitize_host_name("Web01"), "web01");
  EXPECT_EQ(sanitize_host_name("db1.example.org"), "db1");
  EXPECT_EQ(sanitize_host_name("DB1.Example.ORG."), "db1");
}

TEST(SanitizeHostName, MapsOtherCharactersToHyphens) {
  EXPECT_EQ(sanitize_host_name("my_host"), "my-host");
  EXPECT_EQ(sanitize_host_name("my host"), "my-host");
  EXPECT_EQ(sanitize_host_name("caf\xc3\xa9"), "caf");  // UTF-8 bytes become '-' and are trimmed
}

TEST(SanitizeHostName, TrimsHyphens) {
  EXPECT_EQ(sanitize_host_name("-vm-"), "vm");
  EXPECT_EQ(sanitize_host_name("__vm__"), "vm");
}

TEST(SanitizeHostName, CutsTo63AndTrimsAgain) {
  const std::string long_name = std::string(62, 'a') + "-bcd";
  const auto s = sanitize_host_name(long_name);
  ASSERT_TRUE(s);
  EXPECT_EQ(*s, std::string(62, 'a'));  // cut after the '-', which is then trimmed
  EXPECT_TRUE(is_valid_host_label(*s));
  EXPECT_EQ(sanitize_host_name(std::string(100, 'x')), std::string(63, 'x'));
}

TEST(SanitizeHostName, NothingLeftIsAnError) {
  EXPECT_EQ(sanitize_host_name(""), std::nullopt);
  EXPECT_EQ(sanitize_host_name("---"), std::nullopt);
  EXPECT_EQ(sanitize_host_name(".example.org"), std::nullopt);
  EXPECT_EQ(sanitize_host_name("___"), std::nullopt);
}

TEST(SanitizeHostName, ResultIsAlwaysValid) {
  for (const char* in : {"A", "a.b", "x_y-z", "--a--", "(none)", "localhost.localdomain", "Ünïcode-host"}) {
    const auto s = sanitize_host_name(in);
    if (s) {
      EXPECT_TRUE(is_valid_host_label(*s)) << in << " -> " << *s;
    }
  }
  EXPECT_EQ(sanitize_host_name("(none)"), "none");
}

}  // namespace
}  // namespace wownet::agent
