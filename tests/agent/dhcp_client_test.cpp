#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "core/dhcp_client.h"

namespace wownet::agent {
namespace {

using namespace std::chrono_literals;
using Args = std::vector<std::string>;

MonoTime at(std::int64_t seconds) { return MonoTime{seconds * 1000}; }

TEST(DhcpClientChoice, Parse) {
  EXPECT_EQ(parse_dhcp_client_choice("auto"), DhcpClientChoice::kAuto);
  EXPECT_EQ(parse_dhcp_client_choice("none"), DhcpClientChoice::kNone);
  EXPECT_EQ(parse_dhcp_client_choice("dhclient"), DhcpClientChoice::kDhclient);
  EXPECT_EQ(parse_dhcp_client_choice("udhcpc"), DhcpClientChoice::kUdhcpc);
  EXPECT_EQ(parse_dhcp_client_choice("dhcpcd"), std::nullopt);
  EXPECT_EQ(parse_dhcp_client_choice("Auto"), std::nullopt);
}

TEST(DhcpClientChoice, Names) {
  EXPECT_EQ(to_string(DhcpClientKind::kNone), "none");
  EXPECT_EQ(to_string(DhcpClientKind::kDhclient), "dhclient");
  EXPECT_EQ(to_string(DhcpClientKind::kUdhcpc), "udhcpc");
}

TEST(DhcpClientChoice, AutoPrefersDhclientThenUdhcpcThenNone) {
  EXPECT_EQ(resolve_dhcp_client(DhcpClientChoice::kAuto, true, true), DhcpClientKind::kDhclient);
  EXPECT_EQ(resolve_dhcp_client(DhcpClientChoice::kAuto, true, false), DhcpClientKind::kDhclient);
  EXPECT_EQ(resolve_dhcp_client(DhcpClientChoice::kAuto, false, true), DhcpClientKind::kUdhcpc);
  EXPECT_EQ(resolve_dhcp_client(DhcpClientChoice::kAuto, false, false), DhcpClientKind::kNone);
}

TEST(DhcpClientChoice, ExplicitChoiceMustBeInstalled) {
  EXPECT_EQ(resolve_dhcp_client(DhcpClientChoice::kDhclient, true, false), DhcpClientKind::kDhclient);
  EXPECT_EQ(resolve_dhcp_client(DhcpClientChoice::kDhclient, false, true), std::nullopt);
  EXPECT_EQ(resolve_dhcp_client(DhcpClientChoice::kUdhcpc, false, true), DhcpClientKind::kUdhcpc);
  EXPECT_EQ(resolve_dhcp_client(DhcpClientChoice::kUdhcpc, true, false), std::nullopt);
  EXPECT_EQ(resolve_dhcp_client(DhcpClientChoice::kNone, false, false), DhcpClientKind::kNone);
  EXPECT_EQ(resolve_dhcp_client(DhcpClientChoice::kNone, true, true), DhcpClientKind::kNone);
}

TEST(DhcpCommand, Dhclient) {
  const auto cmd =
      dhcp_client_command(DhcpClientKind::kDhclient, {"/sbin/dhclient"}, "eth0", "vm1", "/var/lib/wownet-agent");
  EXPECT_EQ(cmd.argv, (Args{"/sbin/dhclient", "-4", "-v", "-cf", "/var/lib/wownet-agent/dhclient.conf", "-pf",
                            "/var/lib/wownet-agent/dhclient.eth0.pid", "-lf",
                            "/var/lib/wownet-agent/dhclient.eth0.leases", "eth0"}));
  EXPECT_EQ(cmd.pid_file, "/var/lib/wownet-agent/dhclient.eth0.pid");
  EXPECT_EQ(cmd.conf_file, "/var/lib/wownet-agent/dhclient.conf");
  EXPECT_NE(cmd.conf_text.find("send host-name \"vm1\";\n"), std::string::npos);
  EXPECT_NE(cmd.conf_text.find("request subnet-mask, broadcast-address, routers, domain-name, "
                               "domain-name-servers, host-name, interface-mtu;\n"),
            std::string::npos);
}

TEST(DhcpCommand, UdhcpcViaBusybox) {
  const auto cmd =
      dhcp_client_command(DhcpClientKind::kUdhcpc, {"/bin/busybox", "udhcpc"}, "ens3", "db-2", "/run/wna/");
  EXPECT_EQ(cmd.argv, (Args{"/bin/busybox", "udhcpc", "-i", "ens3", "-p", "/run/wna/udhcpc.ens3.pid", "-x",
                            "hostname:db-2", "-O", "mtu", "-b", "-S"}));
  EXPECT_EQ(cmd.pid_file, "/run/wna/udhcpc.ens3.pid");
  EXPECT_EQ(cmd.conf_file, "");
  EXPECT_EQ(cmd.conf_text, "");
}

TEST(DhcpCommand, PidFileNames) {
  EXPECT_EQ(dhcp_pid_file(DhcpClientKind::kDhclient, "eth0", "/s"), "/s/dhclient.eth0.pid");
  EXPECT_EQ(dhcp_pid_file(DhcpClientKind::kUdhcpc, "eth0", "/s/"), "/s/udhcpc.eth0.pid");
}

TEST(PidFile, Parse) {
  EXPECT_EQ(parse_pid_file("1234\n"), 1234);
  EXPECT_EQ(parse_pid_file("1234"), 1234);
  EXPECT_EQ(parse_pid_file("77 \n"), 77);
  EXPECT_EQ(parse_pid_file(""), std::nullopt);
  EXPECT_EQ(parse_pid_file("\n"), std::nullopt);
  EXPECT_EQ(parse_pid_file("0\n"), std::nullopt);
  EXPECT_EQ(parse_pid_file("1\n"), std::nullopt);
  EXPECT_EQ(parse_pid_file("-5\n"), std::nullopt);
  EXPECT_EQ(parse_pid_file("12ab\n"), std::nullopt);
  EXPECT_EQ(parse_pid_file("99999999999999\n"), std::nullopt);
}

TEST(DhcpRestartPolicy, FirstStartIsImmediate) {
  DhcpRestartPolicy p;
  EXPECT_EQ(p.next_start_allowed(), std::nullopt);
  EXPECT_TRUE(p.should_start(at(0), false, false));
  EXPECT_EQ(p.next_start_allowed(), at(2));
}

TEST(DhcpRestartPolicy, NoStartWhileConfiguredOrRunning) {
  DhcpRestartPolicy p;
  EXPECT_FALSE(p.should_start(at(0), true, false));
  EXPECT_FALSE(p.should_start(at(0), true, true));
  EXPECT_FALSE(p.should_start(at(0), false, true));
  EXPECT_TRUE(p.should_start(at(1), false, false));
}

TEST(DhcpRestartPolicy, BackoffDoublesUpToTheMaximum) {
  DhcpRestartPolicy p(DhcpBackoff{2s, 10s});
  EXPECT_TRUE(p.should_start(at(100), false, false));  // wait 2 s
  EXPECT_FALSE(p.should_start(at(101), false, false));
  EXPECT_TRUE(p.should_start(at(102), false, false));  // wait 4 s
  EXPECT_EQ(p.current_backoff(), 4s);
  EXPECT_FALSE(p.should_start(at(105), false, false));
  EXPECT_TRUE(p.should_start(at(106), false, false));  // wait 8 s
  EXPECT_FALSE(p.should_start(at(113), false, false));
  EXPECT_TRUE(p.should_start(at(114), false, false));  // wait 10 s (capped)
  EXPECT_EQ(p.current_backoff(), 10s);
  EXPECT_FALSE(p.should_start(at(123), false, false));
  EXPECT_TRUE(p.should_start(at(124), false, false));  // still 10 s
  EXPECT_EQ(p.current_backoff(), 10s);
  EXPECT_EQ(p.next_start_allowed(), at(134));
}

TEST(DhcpRestartPolicy, RunningClientDoesNotAdvanceTheBackoff) {
  DhcpRestartPolicy p(DhcpBackoff{2s, 60s});
  EXPECT_TRUE(p.should_start(at(0), false, false));
  for (int t = 1; t < 500; ++t) EXPECT_FALSE(p.should_start(at(t), false, true));
  EXPECT_TRUE(p.should_start(at(500), false, false));  // long run: restart at once, then wait 4 s
  EXPECT_EQ(p.current_backoff(), 4s);
  EXPECT_FALSE(p.should_start(at(503), false, false));
  EXPECT_TRUE(p.should_start(at(504), false, false));
}

TEST(DhcpRestartPolicy, ConfiguredNicResetsTheBackoff) {
  DhcpRestartPolicy p(DhcpBackoff{2s, 60s});
  EXPECT_TRUE(p.should_start(at(0), false, false));
  EXPECT_TRUE(p.should_start(at(2), false, false));
  EXPECT_TRUE(p.should_start(at(6), false, false));
  EXPECT_EQ(p.current_backoff(), 8s);
  EXPECT_FALSE(p.should_start(at(7), true, true));  // got a lease
  EXPECT_EQ(p.current_backoff(), 2s);
  EXPECT_FALSE(p.should_start(at(7), false, false));  // lost it at once: still 2 s after the last start
  EXPECT_TRUE(p.should_start(at(8), false, false));
  EXPECT_EQ(p.current_backoff(), 2s);
  EXPECT_TRUE(p.should_start(at(10), false, false));
  EXPECT_EQ(p.current_backoff(), 4s);
}

TEST(DhcpRestartPolicy, SubSecondTimes) {
  DhcpRestartPolicy p(DhcpBackoff{1500ms, 60s});
  EXPECT_TRUE(p.should_start(MonoTime{10'000}, false, false));
  EXPECT_FALSE(p.should_start(MonoTime{11'499}, false, false));
  EXPECT_TRUE(p.should_start(MonoTime{11'500}, false, false));
}

}  // namespace
}  // namespace wownet::agent
