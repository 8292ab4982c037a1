#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include "core/agent_core.h"
#include "core/report.h"

namespace wownet::agent {
namespace {

using namespace std::chrono_literals;

constexpr std::uint32_t ip(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  return (std::uint32_t{a} << 24) | (std::uint32_t{b} << 16) | (std::uint32_t{c} << 8) | d;
}

AgentConfig test_config() {
  AgentConfig c;
  c.agent_version = "0.1.0";
  c.host_name = "vm1";
  c.nic = "eth0";
  c.dhcp_client = DhcpClientKind::kDhclient;
  return c;
}

NicState configured_nic(std::uint32_t valid_lifetime) {
  NicState n;
  n.present = true;
  n.mac = MacBytes{0x52, 0x54, 0x00, 0xAB, 0xcd, 0x0f};
  n.ipv4 = Ipv4Assignment{ip(10, 20, 0, 5), 24, valid_lifetime};
  return n;
}

TEST(Format, Ipv4) {
  EXPECT_EQ(format_ipv4(ip(10, 20, 0, 5)), "10.20.0.5");
  EXPECT_EQ(format_ipv4(0), "0.0.0.0");
  EXPECT_EQ(format_ipv4(0xffffffff), "255.255.255.255");
}

TEST(Format, MacIsLowercaseWithColons) {
  EXPECT_EQ(format_mac(MacBytes{0x52, 0x54, 0x00, 0xAB, 0xcd, 0x0f}), "52:54:00:ab:cd:0f");
  EXPECT_EQ(format_mac(MacBytes{}), "00:00:00:00:00:00");
}

TEST(LeaseExpiry, NowPlusValidLifetime) {
  EXPECT_EQ(lease_expiry(1'700'000'000, 3600), 1'700'003'600);
  EXPECT_EQ(lease_expiry(1'700'000'000, 0), 1'700'000'000);
  EXPECT_EQ(lease_expiry(1'700'000'000, 0xfffffffe), 1'700'000'000 + 4294967294LL);
}

TEST(LeaseExpiry, InfiniteIsZero) { EXPECT_EQ(lease_expiry(1'700'000'000, kInfiniteLifetime), 0); }

TEST(BuildReport, ConfiguredNic) {
  const auto r = build_report(test_config(), configured_nic(600), 42, 7, 1'700'000'000);
  EXPECT_EQ(r.agent_version, "0.1.0");
  EXPECT_EQ(r.host_name, "vm1");
  EXPECT_EQ(r.nic, "eth0");
  EXPECT_EQ(r.address, "10.20.0.5");
  EXPECT_EQ(r.prefix_length, 24u);
  EXPECT_EQ(r.lease_expiry_unix, 1'700'000'600);
  EXPECT_EQ(r.uptime_seconds, 42u);
  EXPECT_EQ(r.dhcp_client, "dhclient");
  EXPECT_EQ(r.sequence, 7u);
  EXPECT_EQ(r.mac, "52:54:00:ab:cd:0f");
}

TEST(BuildReport, StaticAddressHasNoLeaseExpiry) {
  auto c = test_config();
  c.dhcp_client = DhcpClientKind::kNone;
  const auto r = build_report(c, configured_nic(kInfiniteLifetime), 1, 1, 1'700'000'000);
  EXPECT_EQ(r.address, "10.20.0.5");
  EXPECT_EQ(r.lease_expiry_unix, 0);
  EXPECT_EQ(r.dhcp_client, "none");
}

TEST(BuildReport, NicWithoutAddress) {
  NicState n = configured_nic(600);
  n.ipv4.reset();
  const auto r = build_report(test_config(), n, 1, 1, 1'700'000'000);
  EXPECT_EQ(r.address, "");
  EXPECT_EQ(r.prefix_length, 0u);
  EXPECT_EQ(r.lease_expiry_unix, 0);
  EXPECT_EQ(r.mac, "52:54:00:ab:cd:0f");
}

TEST(BuildReport, MissingNic) {
  const auto r = build_report(test_config(), NicState{}, 1, 1, 1'700'000'000);
  EXPECT_EQ(r.nic, "eth0");
  EXPECT_EQ(r.address, "");
  EXPECT_EQ(r.mac, "");
  EXPECT_EQ(r.lease_expiry_unix, 0);
}

TEST(AgentCore, SequenceStartsAtOneAndUptimeCountsFromStart) {
  AgentCore core(test_config(), MonoTime{100'000});
  struct Step {
    std::uint32_t lease_left;  // seconds, as the NIC shows it
    MonoTime now;
    UnixTime wall_now;
    std::uint64_t uptime;  // what the report must say
  };
  const Step steps[] = {{600, MonoTime{100'000}, 1'700'000'000, 0},
                        {600, MonoTime{105'400}, 1'700'000'005, 5},
                        {595, MonoTime{110'999}, 1'700'000'010, 10}};
  std::vector<ReportFields> r;
  for (const Step& step : steps)
    r.push_back(core.next_report(configured_nic(step.lease_left), step.now, step.wall_now));
  for (std::size_t i = 0; i < r.size(); ++i) {
    EXPECT_EQ(r[i].sequence, i + 1);
    EXPECT_EQ(r[i].uptime_seconds, steps[i].uptime);
  }
  EXPECT_EQ(r[2].lease_expiry_unix, 1'700'000'605);
}

TEST(AgentCore, UptimeNeverNegative) {
  AgentCore core(test_config(), MonoTime{100'000});
  EXPECT_EQ(core.next_report(NicState{}, MonoTime{99'000}, 0).uptime_seconds, 0u);
}

TEST(AgentCore, StartsTheClientOnlyForAPresentNicWithoutAddress) {
  AgentCore core(test_config(), MonoTime{0});
  EXPECT_FALSE(core.should_start_dhcp_client(NicState{}, false, MonoTime{1'000}));           // NIC missing
  EXPECT_FALSE(core.should_start_dhcp_client(configured_nic(600), false, MonoTime{2'000}));  // has an address
  NicState bare = configured_nic(600);
  bare.ipv4.reset();
  EXPECT_FALSE(core.should_start_dhcp_client(bare, true, MonoTime{3'000}));  // client running
  EXPECT_TRUE(core.should_start_dhcp_client(bare, false, MonoTime{4'000}));
  EXPECT_FALSE(core.should_start_dhcp_client(bare, true, MonoTime{5'000}));
}

TEST(AgentCore, RestartsAClientWhoseNicWasReplaced) {
  AgentCore core(test_config(), MonoTime{0});
  NicState bare = configured_nic(600);
  bare.ipv4.reset();
  bare.ifindex = 7;
  EXPECT_FALSE(core.client_lost_its_nic(bare, true));  // never started one: unknown
  ASSERT_TRUE(core.should_start_dhcp_client(bare, false, MonoTime{1'000}));
  EXPECT_FALSE(core.client_lost_its_nic(bare, true));
  EXPECT_FALSE(core.client_lost_its_nic(bare, false));  // not running: nothing to restart
  NicState replaced = bare;
  replaced.ifindex = 9;
  EXPECT_TRUE(core.client_lost_its_nic(replaced, true));
  EXPECT_TRUE(core.client_lost_its_nic(NicState{}, true));  // NIC gone
}

TEST(AgentCore, NeverStartsAClientWhenNoneIsConfigured) {
  auto c = test_config();
  c.dhcp_client = DhcpClientKind::kNone;
  AgentCore core(c, MonoTime{0});
  NicState bare = configured_nic(600);
  bare.ipv4.reset();
  for (int t = 0; t < 600; t += 10) EXPECT_FALSE(core.should_start_dhcp_client(bare, false, MonoTime{t * 1000}));
}

TEST(InterfaceName, Validation) {
  EXPECT_TRUE(is_valid_interface_name("eth0"));
  EXPECT_TRUE(is_valid_interface_name("enp0s31f6"));
  EXPECT_TRUE(is_valid_interface_name("wn-ovl.100"));
  EXPECT_TRUE(is_valid_interface_name(std::string(15, 'e')));
  EXPECT_FALSE(is_valid_interface_name(""));
  EXPECT_FALSE(is_valid_interface_name(std::string(16, 'e')));
  EXPECT_FALSE(is_valid_interface_name("."));
  EXPECT_FALSE(is_valid_interface_name(".."));
  EXPECT_FALSE(is_valid_interface_name("eth/0"));
  EXPECT_FALSE(is_valid_interface_name("eth:0"));
  EXPECT_FALSE(is_valid_interface_name("eth 0"));
  EXPECT_FALSE(is_valid_interface_name("eth\t0"));
}

}  // namespace
}  // namespace wownet::agent
