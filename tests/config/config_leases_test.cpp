// [[dhcp.reservation]] and [[dns.static]] in hostd's config: what loads,
// and one clear error (file, key, what was expected) per kind of mistake.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "config.h"

namespace wownet {
namespace {

class ConfigLeasesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/wownet-config-leases-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::optional<HostdConfig> load(const std::string& text) {
    path_ = dir_ + "/hostd" + std::to_string(++files_) + ".toml";
    std::ofstream(path_) << text;
    error_.clear();
    return load_config(path_, error_);
  }
  void expect_error(const std::string& text, const std::string& key, const std::string& expected) {
    SCOPED_TRACE(text);
    EXPECT_FALSE(load(text));
    EXPECT_EQ(error_.rfind(path_ + ": " + key + ": ", 0), 0u) << error_;
    EXPECT_NE(error_.find(expected), std::string::npos) << error_;
  }

  std::string dir_, path_, error_;
  int files_ = 0;
};

const char* kNet = "[network]\nprefix = \"10.20.0.0/16\"\n";

TEST_F(ConfigLeasesTest, ReservationsAndStaticNamesLoad) {
  auto c = load(std::string(kNet) + R"(
[[dhcp.reservation]]
address = "10.20.0.50"
mac = "52:54:00:AA:00:01"
name = "FileServer"

[[dhcp.reservation]]
address = "10.20.0.51"
vm = "db-1"

[dns]
ttl = 30
[[dns.static]]
name = "printer"
address = "10.20.0.40"
)");
  ASSERT_TRUE(c) << error_;
  const auto& r = c->network.reservations;
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].address.to_string(), "10.20.0.50");
  ASSERT_TRUE(r[0].mac);
  EXPECT_EQ(r[0].mac->to_string(), "52:54:00:aa:00:01");
  EXPECT_EQ(r[0].name, "fileserver");  // DNS names are lowercase
  EXPECT_FALSE(r[1].mac);
  EXPECT_EQ(r[1].vm, "db-1");
  EXPECT_EQ(r[1].name, "");
  ASSERT_EQ(c->network.static_names.size(), 1u);
  EXPECT_EQ(c->network.static_names[0], (StaticName{"printer", *Ipv4Addr::parse("10.20.0.40")}));
  EXPECT_EQ(c->network.dns_ttl, 30u);
}

TEST_F(ConfigLeasesTest, ReservationErrors) {
  const std::string net(kNet);
  auto res = [&](const std::string& body) { return net + "[[dhcp.reservation]]\n" + body; };
  expect_error(res("mac = \"52:54:00:00:00:01\"\n"), "dhcp.reservation[0].address", "(it is required)");
  expect_error(res("address = \"10.21.0.5\"\nmac = \"52:54:00:00:00:01\"\n"), "dhcp.reservation[0].address",
               "inside network.prefix 10.20.0.0/16");
  expect_error(res("address = \"10.20.0.1\"\nmac = \"52:54:00:00:00:01\"\n"), "dhcp.reservation[0].address",
               "not the gateway");
  expect_error(res("address = \"10.20.255.255\"\nmac = \"52:54:00:00:00:01\"\n"), "dhcp.reservation[0].address",
               "inside network.prefix");
  expect_error(res("address = \"10.20.0.5\"\n"), "dhcp.reservation[0]", "either mac or vm");
  expect_error(res("address = \"10.20.0.5\"\nmac = \"52:54:00:00:00:01\"\nvm = \"a\"\n"), "dhcp.reservation[0]",
               "either mac or vm");
  expect_error(res("address = \"10.20.0.5\"\nmac = \"01:00:5e:00:00:01\"\n"), "dhcp.reservation[0].mac", "unicast MAC");
  expect_error(res("address = \"10.20.0.5\"\nvm = \"-bad\"\n"), "dhcp.reservation[0].vm", "VM name");
  expect_error(res("address = \"10.20.0.5\"\nvm = \"a\"\nname = \"gateway\"\n"), "dhcp.reservation[0].name",
               "not \"gateway\"");
  expect_error(res("address = \"10.20.0.5\"\nvm = \"a\"\nname = \"c020000005\"\n"), "dhcp.reservation[0].name",
               "automatic name");
  expect_error(res("address = \"10.20.0.5\"\nvm = \"a\"\nname = \"two.labels\"\n"), "dhcp.reservation[0].name",
               "one DNS label");
  expect_error(res("address = \"10.20.0.5\"\nvm = \"a\"\nmachine = \"x\"\n"), "dhcp.reservation[0].machine",
               "unknown key");
  expect_error(res("address = 5\nvm = \"a\"\n"), "dhcp.reservation[0].address", "expected a string");
  expect_error(net + "[dhcp]\nreservation = \"10.20.0.5\"\n", "dhcp.reservation", "[[dhcp.reservation]]");
  expect_error(net + "[dhcp]\nrange = 1\n", "dhcp.range", "unknown key");
}

TEST_F(ConfigLeasesTest, TwoReservationsMayNotShareAnAddressMacVmOrName) {
  const std::string net(kNet);
  auto two = [&](const std::string& a, const std::string& b) {
    return net + "[[dhcp.reservation]]\n" + a + "[[dhcp.reservation]]\n" + b;
  };
  expect_error(two("address = \"10.20.0.5\"\nvm = \"a\"\n", "address = \"10.20.0.5\"\nvm = \"b\"\n"),
               "dhcp.reservation[1].address", "reserved already by dhcp.reservation[0]");
  expect_error(two("address = \"10.20.0.5\"\nmac = \"52:54:00:00:00:01\"\n",
                   "address = \"10.20.0.6\"\nmac = \"52:54:00:00:00:01\"\n"),
               "dhcp.reservation[1].mac", "has a reservation already: dhcp.reservation[0]");
  expect_error(two("address = \"10.20.0.5\"\nvm = \"a\"\n", "address = \"10.20.0.6\"\nvm = \"a\"\n"),
               "dhcp.reservation[1].vm", "has a reservation already");
  expect_error(
      two("address = \"10.20.0.5\"\nvm = \"a\"\nname = \"x\"\n", "address = \"10.20.0.6\"\nvm = \"b\"\nname = \"x\"\n"),
      "dhcp.reservation[1].name", "is the name of dhcp.reservation[0] already");
}

TEST_F(ConfigLeasesTest, StaticNameErrors) {
  const std::string net(kNet);
  expect_error(net + "[[dns.static]]\nname = \"printer\"\n", "dns.static[0].address", "(it is required)");
  expect_error(net + "[[dns.static]]\nname = \"printer\"\naddress = \"192.0.2.1\"\n", "dns.static[0].address",
               "inside network.prefix");
  expect_error(net + "[[dns.static]]\naddress = \"10.20.0.9\"\n", "dns.static[0].name", "one DNS label");
  expect_error(net + "[[dns.static]]\nname = \"a_b\"\naddress = \"10.20.0.9\"\n", "dns.static[0].name",
               "one DNS label");
  expect_error(net +
                   "[[dns.static]]\nname = \"p\"\naddress = \"10.20.0.9\"\n[[dns.static]]\nname = \"P\"\naddress = "
                   "\"10.20.0.10\"\n",
               "dns.static[1].name", "is the name of dns.static[0] already");
  expect_error(net +
                   "[[dhcp.reservation]]\naddress = \"10.20.0.5\"\nvm = \"a\"\nname = \"p\"\n[[dns.static]]\nname = "
                   "\"p\"\naddress = \"10.20.0.9\"\n",
               "dns.static[0].name", "is the name of dhcp.reservation[0] already");
  expect_error(net + "[dns]\nstatic = [1]\n", "dns.static", "[[dns.static]]");
}

TEST_F(ConfigLeasesTest, ReservationsBelongToTheNodeThatAllocates) {
  const std::string overlay = R"(
[overlay]
cert = "/etc/wownet/node.crt"
key = "/etc/wownet/node.key"
ca = "/etc/wownet/ca.crt"
rendezvous = ["192.0.2.10:7700"]
)";
  const std::string res = "[[dhcp.reservation]]\naddress = \"10.128.0.5\"\nvm = \"a\"\n";
  expect_error(res + overlay, "dhcp.reservation", "role = \"rendezvous\"");
  // Static names are every host's own.
  EXPECT_TRUE(load("[[dns.static]]\nname = \"p\"\naddress = \"10.128.0.9\"\n" + overlay)) << error_;
  // A rendezvous allocates.
  std::string rv = overlay;
  rv.replace(rv.find("rendezvous = ["), std::string::npos, "role = \"rendezvous\"\n");
  EXPECT_TRUE(load(res + rv)) << error_;
}

TEST_F(ConfigLeasesTest, EveryProblemIsReportedWithAllErrors) {
  path_ = dir_ + "/all.toml";
  std::ofstream(path_) << std::string(kNet) +
                              "[[dhcp.reservation]]\naddress = \"10.20.0.1\"\nvm = \"a\"\n"
                              "[[dns.static]]\nname = \"gateway\"\naddress = \"10.20.0.9\"\n";
  std::vector<std::string> all;
  EXPECT_FALSE(load_config(path_, error_, &all));
  ASSERT_EQ(all.size(), 2u) << error_;
  EXPECT_NE(all[0].find("dhcp.reservation[0].address"), std::string::npos);
  EXPECT_NE(all[1].find("dns.static[0].name"), std::string::npos);
}

}  // namespace
}  // namespace wownet
