// hostd's config reader: defaults, every key, and one error per kind of bad
// input, each naming the file, the key and what was expected.
#include <gtest/gtest.h>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "config.h"
#include "temp_dir.h"

namespace wownet {
namespace {

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(tmp_.path().empty());
    dir_ = tmp_.path();
  }

  std::string write(const std::string& text) {
    std::string path = dir_ + "/hostd" + std::to_string(++files_) + ".toml";
    std::ofstream(path) << text;
    return path;
  }

  std::optional<HostdConfig> load(const std::string& text) {
    path_ = write(text);
    error_.clear();
    return load_config(path_, error_);
  }

  // Loading `text` fails with "<file>: <key>: expected ...".
  void expect_error(const std::string& text, const std::string& key, const std::string& expected) {
    SCOPED_TRACE(text);
    auto c = load(text);
    EXPECT_FALSE(c);
    EXPECT_EQ(error_.rfind(path_ + ": " + key + ": ", 0), 0u) << error_;
    EXPECT_NE(error_.find(expected), std::string::npos) << error_;
  }

  test::TempDir tmp_{"wownet-config-test"};
  std::string dir_, path_, error_;
  int files_ = 0;
};

void expect_defaults(const HostdConfig& c) {
  HostdConfig d;
  EXPECT_EQ(c.state_dir, "/var/lib/wownet");
  EXPECT_EQ(c.control_socket, "/run/wownet/hostd.sock");
  EXPECT_EQ(c.log_level, "info");
  EXPECT_EQ(c.agent_port, 6570);
  EXPECT_EQ(c.network.network.to_string(), "10.128.0.0/9");
  EXPECT_EQ(c.network.gateway.to_string(), "10.128.0.1");
  EXPECT_EQ(c.network.gateway_mac.to_string(), "02:77:6e:00:00:01");
  EXPECT_EQ(c.network.domain, "wow");
  EXPECT_EQ(c.network.mtu, 1400);
  EXPECT_EQ(c.network.lease_time, 3600u);
  EXPECT_TRUE(c.network.learn_static);
  EXPECT_EQ(c.network.dns_ttl, 60u);
  EXPECT_EQ(c.network.offer_hold, d.network.offer_hold);
  EXPECT_EQ(c.network.decline_hold, d.network.decline_hold);
}

TEST_F(ConfigTest, EmptyFileAndEmptyTablesGiveDefaults) {
  auto c = load("");
  ASSERT_TRUE(c) << error_;
  expect_defaults(*c);
  c = load("# nothing\n[hostd]\n[network]\n[dns]\n[agent]\n");
  ASSERT_TRUE(c) << error_;
  expect_defaults(*c);
}

TEST_F(ConfigTest, EveryKeyIsRead) {
  auto c = load(R"([hostd]
state_dir = "/srv/wownet"
control_socket = "/run/wn.sock"
log_level = "debug"

[network]
prefix = "172.16.0.0/12"
gateway = "172.16.0.254"
gateway_mac = "02:00:00:AA:bb:01"
domain = "Lab.Example"
mtu = 9000
lease_time = 86400
learn_static = false

[dns]
ttl = 0

[agent]
port = 7000
)");
  ASSERT_TRUE(c) << error_;
  EXPECT_EQ(c->state_dir, "/srv/wownet");
  EXPECT_EQ(c->control_socket, "/run/wn.sock");
  EXPECT_EQ(c->log_level, "debug");
  EXPECT_EQ(c->network.network.to_string(), "172.16.0.0/12");
  EXPECT_EQ(c->network.gateway.to_string(), "172.16.0.254");
  EXPECT_EQ(c->network.gateway_mac.to_string(), "02:00:00:aa:bb:01");
  EXPECT_EQ(c->network.domain, "lab.example");  // lowercased
  EXPECT_EQ(c->network.mtu, 9000);
  EXPECT_EQ(c->network.lease_time, 86400u);
  EXPECT_FALSE(c->network.learn_static);
  EXPECT_EQ(c->network.dns_ttl, 0u);
  EXPECT_EQ(c->agent_port, 7000);
}

TEST_F(ConfigTest, GatewayDefaultsToFirstHostOfPrefix) {
  auto c = load("[network]\nprefix = \"192.168.64.0/18\"\n");
  ASSERT_TRUE(c) << error_;
  EXPECT_EQ(c->network.gateway.to_string(), "192.168.64.1");
}

TEST_F(ConfigTest, RangeLimitsAreInclusive) {
  auto c =
      load("[network]\nprefix = \"10.0.0.0/8\"\nmtu = 576\nlease_time = 10\n[dns]\nttl = 86400\n[agent]\nport = 1\n");
  ASSERT_TRUE(c) << error_;
  c = load("[network]\nprefix = \"10.0.0.0/30\"\nlease_time = 31536000\n[agent]\nport = 65535\n");
  ASSERT_TRUE(c) << error_;
  EXPECT_EQ(c->network.gateway.to_string(), "10.0.0.1");
}

TEST_F(ConfigTest, UnknownKeys) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      // text, the key named
      {"[hostd]\nstate_dri = \"/x\"\n", "hostd.state_dri"},
      {"[network]\nmtu = 1400\nttl = 5\n", "network.ttl"},
      {"[dns]\nport = 53\n", "dns.port"},
      {"[agent]\nchannel = \"eth1\"\n", "agent.channel"},
      {"[tunnel]\nport = 1\n", "tunnel"},
      {"[overlay]\nport = 1\n", "overlay.port"},
      {"log_level = \"info\"\n", "log_level"},
      {"[network.extra]\n", "network.extra"},
  };
  for (const auto& [text, key] : cases) expect_error(text, key, "unknown key");
}

TEST_F(ConfigTest, WrongTypes) {
  expect_error("hostd = 1\n", "hostd", "expected a table ([hostd])");
  expect_error("[[network]]\n", "network", "expected a table ([network])");
  const std::vector<std::array<std::string, 4>> cases = {
      // table, key, value, what was expected
      {"hostd", "state_dir", "5", "expected a string"},
      {"hostd", "control_socket", "[\"/run/x\"]", "expected a string"},
      {"hostd", "log_level", "true", "expected a string"},
      {"network", "prefix", "10", "expected a string"},
      {"network", "gateway", "1.5", "expected a string"},
      {"network", "gateway_mac", "2", "expected a string"},
      {"network", "domain", "{}", "expected a string"},
      {"network", "mtu", "\"1400\"", "expected an integer from 576 to 9000"},
      {"network", "mtu", "1400.0", "expected an integer from 576 to 9000"},
      {"network", "lease_time", "\"1h\"", "expected an integer from 10 to 31536000"},
      {"network", "learn_static", "\"yes\"", "expected true or false"},
      {"network", "learn_static", "1", "expected true or false"},
      {"dns", "ttl", "\"60\"", "expected an integer from 0 to 86400"},
      {"agent", "port", "\"6570\"", "expected an integer from 1 to 65535"},
  };
  for (const auto& [table, key, value, expected] : cases)
    expect_error("[" + table + "]\n" + key + " = " + value + "\n", table + "." + key, expected);
}

TEST_F(ConfigTest, OutOfRange) {
  // One below the range (the whole message checked) and one above it.
  struct Range {
    std::string table, key;
    long long min, max;
  };
  for (const Range& r : {Range{"network", "mtu", 576, 9000}, Range{"network", "lease_time", 10, 31536000},
                         Range{"dns", "ttl", 0, 86400}, Range{"agent", "port", 1, 65535}}) {
    const std::string below = std::to_string(r.min - 1), above = std::to_string(r.max + 1);
    expect_error(
        "[" + r.table + "]\n" + r.key + " = " + below + "\n", r.table + "." + r.key,
        "expected an integer from " + std::to_string(r.min) + " to " + std::to_string(r.max) + ", got " + below);
    expect_error("[" + r.table + "]\n" + r.key + " = " + above + "\n", r.table + "." + r.key, "got " + above);
  }
  expect_error("[network]\nmtu = -1400\n", "network.mtu", "got -1400");
  expect_error("[network]\nmtu = 9223372036854775807\n", "network.mtu", "got 9223372036854775807");
}

TEST_F(ConfigTest, BadPrefix) {
  const std::string expected = "expected a network address with a length from 8 to 30";
  expect_error("[network]\nprefix = \"10.128.0.1/9\"\n", "network.prefix", expected);  // host bits set
  expect_error("[network]\nprefix = \"10.0.0.0/7\"\n", "network.prefix", expected);
  expect_error("[network]\nprefix = \"10.0.0.0/31\"\n", "network.prefix", expected);
  expect_error("[network]\nprefix = \"10.128.0.0\"\n", "network.prefix", expected);
  expect_error("[network]\nprefix = \"10.128.0/9\"\n", "network.prefix", expected);
  expect_error("[network]\nprefix = \"\"\n", "network.prefix", expected);
}

TEST_F(ConfigTest, BadGateway) {
  expect_error("[network]\ngateway = \"10.0.0.1\"\n", "network.gateway",
               "expected a host address inside network.prefix 10.128.0.0/9");
  expect_error("[network]\nprefix = \"192.168.0.0/24\"\ngateway = \"192.168.1.1\"\n", "network.gateway",
               "expected a host address inside network.prefix 192.168.0.0/24");
  expect_error("[network]\nprefix = \"192.168.0.0/24\"\ngateway = \"192.168.0.0\"\n", "network.gateway",
               "inside network.prefix");  // the network address
  expect_error("[network]\nprefix = \"192.168.0.0/24\"\ngateway = \"192.168.0.255\"\n", "network.gateway",
               "inside network.prefix");  // the broadcast address
  expect_error("[network]\ngateway = \"10.128.0.256\"\n", "network.gateway", "expected an IPv4 address");
  expect_error("[network]\ngateway = \"\"\n", "network.gateway", "expected an IPv4 address");
}

TEST_F(ConfigTest, BadGatewayMac) {
  const std::string expected = "expected a unicast MAC address";
  expect_error("[network]\ngateway_mac = \"02:77:6e:00:00\"\n", "network.gateway_mac", expected);
  expect_error("[network]\ngateway_mac = \"02-77-6e-00-00-01\"\n", "network.gateway_mac", expected);
  expect_error("[network]\ngateway_mac = \"02:77:6e:00:00:0g\"\n", "network.gateway_mac", expected);
  expect_error("[network]\ngateway_mac = \"01:00:5e:00:00:01\"\n", "network.gateway_mac", expected);  // multicast
  expect_error("[network]\ngateway_mac = \"ff:ff:ff:ff:ff:ff\"\n", "network.gateway_mac", expected);
  expect_error("[network]\ngateway_mac = \"00:00:00:00:00:00\"\n", "network.gateway_mac", expected);
  expect_error("[network]\ngateway_mac = \"\"\n", "network.gateway_mac", expected);
}

TEST_F(ConfigTest, BadDomain) {
  const std::string expected = "expected a DNS domain";
  for (const char* d : {"", "wow_net", "a..b", ".wow", "wow.", "-wow", "wow-", "w ow", "w\u00f6w"})
    expect_error("[network]\ndomain = \"" + std::string(d) + "\"\n", "network.domain", expected);
  expect_error("[network]\ndomain = \"" + std::string(64, 'a') + "\"\n", "network.domain", expected);
  expect_error("[network]\ndomain = \"" + std::string(201, 'a') + "\"\n", "network.domain", expected);
}

TEST_F(ConfigTest, BadHostdPaths) {
  expect_error("[hostd]\nstate_dir = \"var/lib/wownet\"\n", "hostd.state_dir", "expected an absolute path");
  expect_error("[hostd]\nstate_dir = \"\"\n", "hostd.state_dir", "expected an absolute path");
  expect_error("[hostd]\ncontrol_socket = \"hostd.sock\"\n", "hostd.control_socket", "expected an absolute path");
  expect_error("[hostd]\ncontrol_socket = \"/" + std::string(100, 's') + "\"\n", "hostd.control_socket",
               "at most 100 characters");
}

TEST_F(ConfigTest, BadLogLevel) {
  for (const char* level : {"verbose", "INFO", ""})
    expect_error("[hostd]\nlog_level = \"" + std::string(level) + "\"\n", "hostd.log_level",
                 "expected one of trace, debug, info, warn, error, critical, off");
  for (const char* level : {"trace", "debug", "info", "warn", "error", "critical", "off"})
    EXPECT_TRUE(load("[hostd]\nlog_level = \"" + std::string(level) + "\"\n")) << error_;
}

TEST_F(ConfigTest, SyntaxErrorReportsLineAndColumn) {
  auto c = load("[network]\nmtu = 1400\ndomain = \"wow\n");
  EXPECT_FALSE(c);
  EXPECT_EQ(error_.rfind(path_ + ":3:", 0), 0u) << error_;
  c = load("[network]\nmtu = 14x0\n");
  EXPECT_FALSE(c);
  EXPECT_EQ(error_.rfind(path_ + ":2:9: ", 0), 0u) << error_;
  c = load("[network]\nmtu = 1400\nmtu = 1500\n");
  EXPECT_FALSE(c);
  EXPECT_EQ(error_.rfind(path_ + ":3:", 0), 0u) << error_;
}

TEST_F(ConfigTest, UnreadableFile) {
  std::string error;
  EXPECT_FALSE(load_config(dir_ + "/missing.toml", error));
  EXPECT_EQ(error, dir_ + "/missing.toml: cannot open: No such file or directory");
  error.clear();
  EXPECT_FALSE(load_config(dir_, error));  // not read as an empty file
  EXPECT_EQ(error, dir_ + ": is a directory, expected a TOML file");
}

TEST_F(ConfigTest, FirstErrorWins) {
  expect_error("[hostd]\nlog_level = \"loud\"\n[network]\nmtu = 1\n", "hostd.log_level", "expected one of");
}

TEST_F(ConfigTest, EveryTablesProblemIsListedWhenAsked) {
  path_ = write("[hostd]\nlog_level = \"loud\"\n[network]\nmtu = 1\n[dns]\nttl = -1\n[agent]\nport = 7\n");
  std::vector<std::string> all;
  EXPECT_FALSE(load_config(path_, error_, &all));
  ASSERT_EQ(all.size(), 3u) << ::testing::PrintToString(all);
  EXPECT_EQ(error_, all[0]);
  EXPECT_EQ(all[0].rfind(path_ + ": hostd.log_level: ", 0), 0u) << all[0];
  EXPECT_EQ(all[1].rfind(path_ + ": network.mtu: ", 0), 0u) << all[1];
  EXPECT_EQ(all[2].rfind(path_ + ": dns.ttl: ", 0), 0u) << all[2];
}

// The shipped example loads, and says the truth: with every commented-out
// key uncommented it still loads, to exactly the defaults.
TEST_F(ConfigTest, ExampleConfigDocumentsEveryKeyWithItsDefault) {
  const std::string example = WOWNET_SOURCE_DIR "/packaging/hostd.toml";
  std::string error;
  auto shipped = load_config(example, error);
  ASSERT_TRUE(shipped) << error;
  expect_defaults(*shipped);

  std::ifstream in(example);
  std::string line, uncommented, table;
  std::set<std::string> keys, qualified;
  const std::regex setting("^#?([a-z_]+) = "), header("^\\[([a-z_]+)\\]");
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, header)) table = m[1];
    if (std::regex_search(line, m, setting)) {
      keys.insert(m[1]);
      EXPECT_TRUE(qualified.insert(table + "." + std::string(m[1])).second) << "twice: " << table << "." << m[1];
      if (line[0] == '#') line.erase(0, 1);
    }
    uncommented += line + "\n";
  }
  EXPECT_EQ(
      keys,
      (std::set<std::string>{
          "state_dir",   "control_socket", "log_level",    "prefix",  "gateway", "gateway_mac", "domain",
          "mtu",         "lease_time",     "learn_static", "ttl",     "port",    "role",        "listen",
          "rendezvous",  "cert",           "key",          "ca",      "crl",     "cipher",      "crl_refresh",
          "keepalive",   "node_name",      "csr",          "ca_dir",  "relay",   "relay_quota", "relay_quota_interval",
          "relay_after", "direct_retry",   "punch_ttl",    "udp_gso", "udp_gro", "backend",     "endpoints"}));
  EXPECT_TRUE(qualified.count("metrics.listen"));
  EXPECT_FALSE(shipped->metrics.enabled);
  auto all = load(uncommented);
  ASSERT_TRUE(all) << error_;
  expect_defaults(*all);
  // The one key whose example turns something on: the metrics endpoint.
  EXPECT_TRUE(all->metrics.enabled);
  EXPECT_EQ(all->metrics.listen, (ConfigEndpoint{Ipv4Addr::from_octets(127, 0, 0, 1), 9770}));
}

TEST_F(ConfigTest, MetricsEndpointIsOffUnlessListenIsSet) {
  auto c = load("");
  ASSERT_TRUE(c) << error_;
  EXPECT_FALSE(c->metrics.enabled);
  c = load("[metrics]\n");
  ASSERT_TRUE(c) << error_;
  EXPECT_FALSE(c->metrics.enabled);
  c = load("[metrics]\nlisten = \"\"\n");
  ASSERT_TRUE(c) << error_;
  EXPECT_FALSE(c->metrics.enabled);
  c = load("[metrics]\nlisten = \"0.0.0.0:19100\"\n");
  ASSERT_TRUE(c) << error_;
  EXPECT_TRUE(c->metrics.enabled);
  EXPECT_EQ(c->metrics.listen, (ConfigEndpoint{Ipv4Addr{0}, 19100}));
}

TEST_F(ConfigTest, BadMetricsValuesNameTheKey) {
  for (const char* bad : {"nowhere", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "::1:9770", "[::1]:9770",
                          "localhost:9770", "127.0.0.1:97x0", " 127.0.0.1:9770"}) {
    expect_error("[metrics]\nlisten = \"" + std::string(bad) + "\"\n", "metrics.listen",
                 "expected ADDRESS:PORT like \"127.0.0.1:9770\"");
  }
  expect_error("[metrics]\nlisten = 9770\n", "metrics.listen", "expected a string");
  expect_error("[metrics]\nport = 9770\n", "metrics.port", "unknown key");
  expect_error("metrics = 1\n", "metrics", "expected a table");
}

}  // namespace
}  // namespace wownet

namespace wownet {
namespace {
class OverlayConfigTest : public ConfigTest {};

TEST_F(OverlayConfigTest, HostWithRendezvousNodes) {
  auto c = load(
      "[overlay]\nrole = \"host\"\nlisten = \"0.0.0.0:7701\"\nrendezvous = [\"198.51.100.1:7700\"]\n"
      "cert = \"/etc/wownet/node.crt\"\nkey = \"/etc/wownet/node.key\"\nca = \"/etc/wownet/ca.crt\"\n"
      "cipher = \"chacha20-poly1305\"\ncrl_refresh = 5\nkeepalive = 3\nrelay_after = 0\npunch_ttl = 4\n"
      "direct_retry = 60\nudp_gso = false\nudp_gro = false\n");
  ASSERT_TRUE(c) << error_;
  EXPECT_TRUE(c->overlay.enabled);
  EXPECT_FALSE(c->overlay.rendezvous);
  EXPECT_EQ(c->overlay.listen.port, 7701);
  ASSERT_EQ(c->overlay.rendezvous_nodes.size(), 1u);
  EXPECT_EQ(c->overlay.rendezvous_nodes[0].address.to_string(), "198.51.100.1");
  EXPECT_EQ(c->overlay.cipher, "chacha20-poly1305");
  EXPECT_EQ(c->overlay.crl_refresh, 5u);
  EXPECT_EQ(c->overlay.relay_after, 0u);
  EXPECT_EQ(c->overlay.punch_ttl, 4u);
  EXPECT_EQ(c->overlay.direct_retry, 60u);
  EXPECT_FALSE(c->overlay.udp_gso);
  EXPECT_FALSE(c->overlay.udp_gro);
  EXPECT_FALSE(c->overlay.relay);  // a host relays only when asked to
  EXPECT_FALSE(load("[overlay]\nrole = \"rendezvous\"\npunch_ttl = 256\n"));
  EXPECT_NE(error_.find("punch_ttl"), std::string::npos) << error_;
  EXPECT_FALSE(load("[overlay]\nrole = \"rendezvous\"\nrelay = 1\n"));
  EXPECT_NE(error_.find("relay"), std::string::npos) << error_;
}

TEST_F(OverlayConfigTest, AHostMayListSeveralRendezvousInOrder) {
  auto c = load(
      "[overlay]\nrendezvous = [\"198.51.100.1:7700\", \"198.51.100.2:7701\", \"203.0.113.9:7700\"]\n"
      "cert = \"/etc/wownet/node.crt\"\nkey = \"/etc/wownet/node.key\"\nca = \"/etc/wownet/ca.crt\"\n");
  ASSERT_TRUE(c) << error_;
  ASSERT_EQ(c->overlay.rendezvous_nodes.size(), 3u);
  EXPECT_EQ(c->overlay.rendezvous_nodes[1].address.to_string(), "198.51.100.2");
  EXPECT_EQ(c->overlay.rendezvous_nodes[1].port, 7701);
  EXPECT_EQ(c->overlay.rendezvous_nodes[2].address.to_string(), "203.0.113.9");
}

TEST_F(OverlayConfigTest, AHostRelaysOnlyWhenAskedAndFromAListenAddress) {
  const std::string host =
      "[overlay]\nrendezvous = [\"198.51.100.1:7700\"]\n"
      "cert = \"/etc/wownet/node.crt\"\nkey = \"/etc/wownet/node.key\"\nca = \"/etc/wownet/ca.crt\"\n";
  auto c = load(host + "listen = \"198.51.100.7:7700\"\nrelay = true\nrelay_quota = 512\nrelay_quota_interval = 60\n");
  ASSERT_TRUE(c) << error_;
  EXPECT_TRUE(c->overlay.relay);
  EXPECT_EQ(c->overlay.relay_quota, 512u);
  EXPECT_EQ(c->overlay.relay_quota_interval, 60u);
  c = load(host);
  ASSERT_TRUE(c) << error_;
  EXPECT_FALSE(c->overlay.relay);
  EXPECT_EQ(c->overlay.relay_quota, 0u);
  EXPECT_EQ(c->overlay.relay_quota_interval, 3600u);
  // The rendezvous hand out its address: it must be one the hosts reach.
  expect_error(host + "relay = true\n", "overlay.relay", "listen");
  expect_error(host + "listen = \"0.0.0.0:7700\"\nrelay = true\n", "overlay.relay", "listen");
  expect_error(host + "relay_quota_interval = 0\n", "overlay.relay_quota_interval", "");
  expect_error(host + "relay_quota = -1\n", "overlay.relay_quota", "");
  // A rendezvous still relays by default.
  c = load(
      "[overlay]\nrole = \"rendezvous\"\ncert = \"/etc/wownet/node.crt\"\nkey = \"/etc/wownet/node.key\"\n"
      "ca = \"/etc/wownet/ca.crt\"\n");
  ASSERT_TRUE(c) << error_;
  EXPECT_TRUE(c->overlay.relay);
}

TEST_F(OverlayConfigTest, WithoutTheTableTheOverlayIsOff) {
  auto c = load("");
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->overlay.enabled);
}

TEST_F(OverlayConfigTest, BadValuesNameTheKey) {
  const std::string files = "cert = \"/a.crt\"\nkey = \"/a.key\"\nca = \"/ca.crt\"\n";
  expect_error("[overlay]\nrole = \"boss\"\n" + files + "rendezvous = [\"192.0.2.1:1\"]\n", "overlay.role", "expected");
  expect_error("[overlay]\n" + files + "rendezvous = \"192.0.2.1:1\"\n", "overlay.rendezvous", "list");
  expect_error("[overlay]\n" + files + "rendezvous = [\"192.0.2.1\"]\n", "overlay.rendezvous", "ADDRESS:PORT");
  expect_error("[overlay]\n" + files + "rendezvous = [\"192.0.2.1:70000\"]\n", "overlay.rendezvous", "ADDRESS:PORT");
  expect_error("[overlay]\n" + files, "overlay.rendezvous", "at least one");
  expect_error("[overlay]\n" + files + "rendezvous = [\"192.0.2.1:1\", \"192.0.2.1:1\"]\n", "overlay.rendezvous",
               "twice");
  std::string many = "rendezvous = [";
  for (int i = 1; i <= 17; ++i) many += (i > 1 ? ", " : "") + ("\"192.0.2." + std::to_string(i) + ":7700\"");
  expect_error("[overlay]\n" + files + many + "]\n", "overlay.rendezvous", "at most 16");
  expect_error("[overlay]\nrole = \"rendezvous\"\nkey = \"/a.key\"\nca = \"/ca.crt\"\n", "overlay.cert", "absolute");
  expect_error("[overlay]\nrole = \"rendezvous\"\n" + files + "cipher = \"rot13\"\n", "overlay.cipher", "expected");
  expect_error("[overlay]\nrole = \"rendezvous\"\n" + files + "listen = \"nowhere\"\n", "overlay.listen", "ADDRESS");
  expect_error("[overlay]\nrole = \"rendezvous\"\n" + files + "crl_refresh = 0\n", "overlay.crl_refresh", "from 1");
}

TEST_F(OverlayConfigTest, AnEnrollingHostsCertificateDefaultsToTheStateDir) {
  const std::string host =
      "[overlay]\nrendezvous = [\"192.0.2.1:7700\"]\nkey = \"/k\"\nca = \"/ca\"\ncsr = \"/node.csr\"\n";
  auto c = load("[hostd]\nstate_dir = \"/srv/wn\"\n" + host);
  ASSERT_TRUE(c) << error_;
  EXPECT_EQ(c->overlay.cert, "");
  c->state_dir = "/var/lib/other";  // as --state-dir would
  complete_config(*c);
  EXPECT_EQ(c->overlay.cert, "/var/lib/other/node.crt");
  // A cert path given stays; without a CSR, or on a rendezvous, it is required.
  c = load(host + "cert = \"/etc/wownet/node.crt\"\n");
  ASSERT_TRUE(c) << error_;
  complete_config(*c);
  EXPECT_EQ(c->overlay.cert, "/etc/wownet/node.crt");
  expect_error("[overlay]\nrendezvous = [\"192.0.2.1:7700\"]\nkey = \"/k\"\nca = \"/ca\"\n", "overlay.cert",
               "absolute");
  expect_error("[overlay]\nrole = \"rendezvous\"\nkey = \"/k\"\nca = \"/ca\"\ncsr = \"/c\"\n", "overlay.cert",
               "absolute");
}
}  // namespace
}  // namespace wownet

namespace wownet {
namespace {

const char* kRendezvous = "[overlay]\nrole = \"rendezvous\"\ncert = \"/c\"\nkey = \"/k\"\nca = \"/a\"\n";

TEST_F(ConfigTest, RegistryDefaultsToSqlite) {
  auto c = load("");
  ASSERT_TRUE(c) << error_;
  EXPECT_EQ(c->registry.backend, RegistryConfig::Backend::Sqlite);
  EXPECT_EQ(c->registry.prefix, "/wownet/");
  c = load(std::string(kRendezvous) + "[registry]\nbackend = \"sqlite\"\n");
  ASSERT_TRUE(c) << error_;
  EXPECT_EQ(c->registry.backend, RegistryConfig::Backend::Sqlite);
}

TEST_F(ConfigTest, RegistryOnEtcd) {
  auto c =
      load(std::string(kRendezvous) +
           "[registry]\nbackend = \"etcd\"\nendpoints = [\"http://127.0.0.1:2379\", \"https://etcd-2.example:2379\", "
           "\"https://[::1]:2379\"]\nprefix = \"/net1/\"\ncert = \"/e.crt\"\nkey = \"/e.key\"\nca = \"/e-ca.crt\"\n");
  ASSERT_TRUE(c) << error_;
  EXPECT_EQ(c->registry.backend, RegistryConfig::Backend::Etcd);
  EXPECT_EQ(c->registry.endpoints.size(), 3u);
  EXPECT_EQ(c->registry.prefix, "/net1/");
  EXPECT_EQ(c->registry.cert, "/e.crt");
  EXPECT_EQ(c->registry.key, "/e.key");
  EXPECT_EQ(c->registry.ca, "/e-ca.crt");
}

TEST_F(ConfigTest, BadRegistry) {
  const std::string r = std::string(kRendezvous) + "[registry]\n";
  const std::string etcd = r + "backend = \"etcd\"\n";
  expect_error(r + "backend = \"redis\"\n", "registry.backend", "expected \"sqlite\" or \"etcd\"");
  expect_error(r + "backend = 1\n", "registry.backend", "expected a string");
  expect_error(etcd, "registry.endpoints", "needs at least one endpoint");
  expect_error(etcd + "endpoints = \"http://a:1\"\n", "registry.endpoints", "expected a list");
  for (const char* bad :
       {"127.0.0.1:2379", "http://a", "http://a:0", "http://a:99999", "http://a:2379/v3", "tcp://a:1", "http://:1"})
    expect_error(etcd + "endpoints = [\"" + bad + "\"]\n", "registry.endpoints", "expected a list of etcd URLs");
  expect_error(etcd + "endpoints = [1]\n", "registry.endpoints", "expected a list of etcd URLs");
  const std::string ok = etcd + "endpoints = [\"http://127.0.0.1:2379\"]\n";
  expect_error(ok + "prefix = \"wownet\"\n", "registry.prefix", "starts and ends with '/'");
  expect_error(ok + "prefix = \"\"\n", "registry.prefix", "starts and ends with '/'");
  expect_error(ok + "cert = \"rel.crt\"\nkey = \"/k\"\n", "registry.cert", "absolute path");
  expect_error(ok + "cert = \"/c.crt\"\n", "registry.cert", "cert and key go together");
  expect_error(ok + "port = 1\n", "registry.port", "unknown key");
  expect_error(r + "endpoints = [\"http://127.0.0.1:2379\"]\n", "registry.endpoints", "only with backend = \"etcd\"");
  expect_error(r + "prefix = \"/other/\"\n", "registry.prefix", "only with backend = \"etcd\"");
  expect_error("[registry]\nbackend = \"etcd\"\nendpoints = [\"http://127.0.0.1:2379\"]\n", "registry.backend",
               "is for a rendezvous");
  expect_error("registry = 1\n", "registry", "expected a table");
}

}  // namespace
}  // namespace wownet
