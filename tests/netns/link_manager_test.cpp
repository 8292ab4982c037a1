// Network-namespace test of wownet::io::LinkManager. Needs root: main()
// moves the whole process into a private network namespace first, so every
// link created here disappears with the process, whatever happens. Peers that
// need a second namespace live in a forked child with its own unshare(), so
// that namespace (and the veth end in it) dies with the child.
// Requires iproute2 (`ip`, `tc`) for setup and cross-checks.
#include "io/link_manager.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

namespace {

using wownet::io::LinkInfo;
using wownet::io::LinkManager;

constexpr const char* kBridgeAddr = "192.0.2.1";
constexpr const char* kPeerAddr = "192.0.2.2";
constexpr const char* kPeerMac = "02:00:5e:00:53:02";

// Unique, <= 15-char link name: prefix (<= 5 chars) + pid + tag.
std::string link_name(const std::string& prefix, const std::string& tag = "") {
  return prefix + std::to_string(::getpid()) + tag;
}

// Runs a shell command, returns its exit status (-1 if it did not exit).
int sh(const std::string& cmd) {
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// Runs a shell command and returns its stdout.
std::string capture(const std::string& cmd) {
  std::string out;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
    ::pclose(p);
  }
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

bool write_file(const std::string& path, const std::string& data) {
  std::ofstream f(path);
  f << data;
  f.flush();
  return static_cast<bool>(f);
}

std::string mac_string(const std::array<std::uint8_t, 6>& mac) {
  char buf[18];
  std::snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
  return buf;
}

// Deletes a link on scope exit (ignoring errors), for every exit path.
struct LinkGuard {
  LinkManager& lm;
  std::string name;
  ~LinkGuard() { (void)lm.delete_link(name); }
};

std::uint16_t icmp_checksum(const void* data, size_t len) {
  const auto* p = static_cast<const std::uint8_t*>(data);
  std::uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += (p[i] << 8) | p[i + 1];
  if (len & 1) sum += p[len - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons(static_cast<std::uint16_t>(~sum));
}

// Sends ICMP echo requests to dst every 250 ms; true iff a reply arrives
// within timeout. (The image has no ping binary.)
bool icmp_ping(const char* dst, std::chrono::milliseconds timeout) {
  int s = ::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
  if (s < 0) return false;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  ::inet_pton(AF_INET, dst, &to.sin_addr);
  const std::uint16_t id = static_cast<std::uint16_t>(::getpid());
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::uint16_t seq = 0;
  bool got_reply = false;
  while (!got_reply && std::chrono::steady_clock::now() < deadline) {
    struct {
      icmphdr hdr;
      char payload[16];
    } req{};
    req.hdr.type = ICMP_ECHO;
    req.hdr.un.echo.id = htons(id);
    req.hdr.un.echo.sequence = htons(++seq);
    std::memcpy(req.payload, "wownet-probe....", sizeof(req.payload));
    req.hdr.checksum = icmp_checksum(&req, sizeof(req));
    (void)::sendto(s, &req, sizeof(req), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to));
    const auto next = std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(250));
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(next - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd pfd{s, POLLIN, 0};
      if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
      std::uint8_t buf[1500];
      ssize_t n = ::recv(s, buf, sizeof(buf), 0);
      if (n < static_cast<ssize_t>(sizeof(iphdr))) continue;
      size_t ihl = (buf[0] & 0x0f) * 4u;
      if (static_cast<size_t>(n) < ihl + sizeof(icmphdr)) continue;
      icmphdr rep;
      std::memcpy(&rep, buf + ihl, sizeof(rep));
      if (rep.type == ICMP_ECHOREPLY && ntohs(rep.un.echo.id) == id) {
        got_reply = true;
        break;
      }
    }
  }
  ::close(s);
  return got_reply;
}

// Child side of probe_reaches_bridge(): runs in its own netns.
[[noreturn]] void probe_child(int ready_w, int go_r, const std::string& far, const std::string& bridge_mac) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  char c = ::unshare(CLONE_NEWNET) == 0 ? 'r' : 'e';
  if (::write(ready_w, &c, 1) != 1 || c != 'r') ::_exit(3);
  if (::read(go_r, &c, 1) != 1 || c != 'g') ::_exit(3);
  const std::string setup = "ip link set " + far + " up && ip addr add " + kPeerAddr + "/24 dev " + far +
                            " && ip neigh replace " + kBridgeAddr + " lladdr " + bridge_mac + " dev " + far +
                            " nud permanent";
  if (sh(setup) != 0) ::_exit(2);
  ::_exit(icmp_ping(kBridgeAddr, std::chrono::milliseconds(1500)) ? 0 : 1);
}

// Attaches a fresh veth pair to `bridge` (which must be up with kBridgeAddr),
// moves the far end into a child's private netns with kPeerAddr, and pings
// kBridgeAddr from there. Static neighbour entries on both sides take ARP
// (and arp_ignore) out of the picture, so only L2 isolation can make it fail.
// Returns true iff the host stack answered. Fails the test on setup errors.
bool probe_reaches_bridge(LinkManager& lm, const std::string& bridge, const std::string& tag) {
  const std::string near = link_name("wnpa", tag);
  const std::string far = link_name("wnpb", tag);
  EXPECT_EQ(sh("ip link add " + near + " type veth peer name " + far + " address " + kPeerMac), 0);
  LinkGuard guard{lm, near};  // deleting one veth end deletes both
  EXPECT_FALSE(lm.set_master(near, bridge));
  EXPECT_FALSE(lm.set_up(near, true));
  std::error_code ec;
  auto br = lm.find(bridge, ec);  // read the MAC after enslaving: it may change
  if (!br) {
    ADD_FAILURE() << "bridge " << bridge << " vanished: " << ec.message();
    return false;
  }
  EXPECT_EQ(
      sh(std::string("ip neigh replace ") + kPeerAddr + " lladdr " + kPeerMac + " dev " + bridge + " nud permanent"),
      0);

  int ready[2], go[2];
  if (::pipe2(ready, O_CLOEXEC) != 0 || ::pipe2(go, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe: " << std::strerror(errno);
    return false;
  }
  std::fflush(nullptr);
  pid_t child = ::fork();
  if (child == 0) {
    ::close(ready[0]);
    ::close(go[1]);
    probe_child(ready[1], go[0], far, mac_string(br->mac));
  }
  ::close(ready[1]);
  ::close(go[0]);
  char c = 0;
  bool ok = child > 0 && ::read(ready[0], &c, 1) == 1 && c == 'r';
  ok = ok && sh("ip link set " + far + " netns " + std::to_string(child)) == 0;
  c = ok ? 'g' : 'x';
  if (::write(go[1], &c, 1) != 1) ok = false;  // the child then gives up on its own
  ::close(ready[0]);
  ::close(go[1]);
  int status = 0;
  if (child > 0) ::waitpid(child, &status, 0);
  (void)sh(std::string("ip neigh del ") + kPeerAddr + " dev " + bridge + " 2>/dev/null");
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  EXPECT_TRUE(ok) << "could not set up the peer namespace";
  EXPECT_TRUE(code == 0 || code == 1) << "probe child failed with status " << status;
  return ok && code == 0;
}

class LinkManagerTest : public ::testing::Test {
 protected:
  // Gives `bridge` the address kBridgeAddr/24 and sets it up, as the probe
  // of probe_reaches_bridge needs.
  void address_and_up(const std::string& bridge) {
    ASSERT_EQ(sh("ip addr add " + std::string(kBridgeAddr) + "/24 dev " + bridge), 0);
    ASSERT_FALSE(lm_.set_up(bridge, true));
  }
  LinkManager lm_;
};

TEST_F(LinkManagerTest, CreateBridgeConfiguresIsolation) {
  const std::string br = link_name("wnbr", "c");
  ASSERT_FALSE(lm_.create_bridge(br));
  LinkGuard guard{lm_, br};

  std::error_code ec;
  auto info = lm_.find(br, ec);
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_TRUE(info);
  EXPECT_EQ(info->kind, "bridge");
  EXPECT_EQ(info->name, br);
  EXPECT_TRUE(info->is_ethernet);
  EXPECT_FALSE(info->is_up) << "create_bridge must not bring the bridge up";
  EXPECT_EQ(info->master_ifindex, 0);
  EXPECT_GT(info->ifindex, 0);
  auto by_index = lm_.find(info->ifindex, ec);
  ASSERT_TRUE(by_index);
  EXPECT_EQ(by_index->name, br);

  EXPECT_EQ(read_file("/proc/sys/net/ipv6/conf/" + br + "/disable_ipv6"), "1\n");
  EXPECT_EQ(read_file("/proc/sys/net/ipv4/conf/" + br + "/arp_ignore"), "8\n");
  EXPECT_EQ(read_file("/proc/sys/net/ipv4/conf/" + br + "/rp_filter"), "1\n");

  const std::string details = capture("ip -d link show dev " + br);
  EXPECT_NE(details.find("stp_state 0 "), std::string::npos) << details;
  EXPECT_NE(details.find("forward_delay 0 "), std::string::npos) << details;
  EXPECT_NE(capture("tc filter show dev " + br + " ingress").find("wownet_drop"), std::string::npos);
  if (lm_.vlan_filtering_supported()) {
    EXPECT_NE(details.find("vlan_filtering 1 "), std::string::npos) << details;
    const std::string vlans = capture("bridge -j vlan show dev " + br);
    EXPECT_EQ(vlans.find("\"vlan\":1,"), std::string::npos) << "bridge still in vid 1: " << vlans;
  } else {
    std::printf("NOTE: kernel lacks bridge VLAN filtering; isolation rests on the ingress filter\n");
  }

  auto all = lm_.list(ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_TRUE(std::any_of(all.begin(), all.end(), [&](const LinkInfo& l) { return l.name == br; }));
}

TEST_F(LinkManagerTest, EnslaveReleaseAndLinkOps) {
  const std::string br = link_name("wnbr", "e");
  const std::string vif = link_name("wnva", "e");
  const std::string peer = link_name("wnvb", "e");
  const std::string tap = link_name("wntp", "e");
  ASSERT_EQ(sh("ip link add " + vif + " type veth peer name " + peer), 0);
  LinkGuard vif_guard{lm_, vif};
  ASSERT_EQ(sh("ip tuntap add dev " + tap + " mode tap"), 0);
  LinkGuard tap_guard{lm_, tap};
  ASSERT_FALSE(lm_.create_bridge(br));
  LinkGuard br_guard{lm_, br};

  std::error_code ec;
  auto bri = lm_.find(br, ec);
  ASSERT_TRUE(bri);
  auto v = lm_.find(vif, ec);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->kind, "veth");
  EXPECT_TRUE(v->is_ethernet);
  auto t = lm_.find(tap, ec);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->kind, "tun");
  EXPECT_TRUE(t->is_ethernet);

  EXPECT_FALSE(lm_.set_master(vif, br));
  EXPECT_FALSE(lm_.set_master(tap, br));
  EXPECT_FALSE(lm_.set_up(vif, true));
  EXPECT_FALSE(lm_.set_up(br, true));
  EXPECT_FALSE(lm_.set_mtu(vif, 1400));
  v = lm_.find(vif, ec);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->master_ifindex, bri->ifindex);
  EXPECT_TRUE(v->is_up);
  EXPECT_EQ(v->mtu, 1400u);
  t = lm_.find(tap, ec);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->master_ifindex, bri->ifindex);
  bri = lm_.find(br, ec);
  ASSERT_TRUE(bri);
  EXPECT_TRUE(bri->is_up);

  EXPECT_FALSE(lm_.disable_ipv6(vif));
  EXPECT_EQ(read_file("/proc/sys/net/ipv6/conf/" + vif + "/disable_ipv6"), "1\n");

  EXPECT_FALSE(lm_.set_up(vif, false));
  EXPECT_FALSE(lm_.clear_master(vif));
  EXPECT_FALSE(lm_.clear_master(vif)) << "releasing an unenslaved port is a no-op";
  v = lm_.find(vif, ec);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->master_ifindex, 0);
  EXPECT_FALSE(v->is_up);

  EXPECT_FALSE(lm_.delete_link(vif));
  EXPECT_FALSE(lm_.find(vif, ec));
  EXPECT_FALSE(ec);
  EXPECT_FALSE(lm_.find(peer, ec)) << "deleting one veth end deletes the peer";
  EXPECT_FALSE(lm_.delete_link(br));
  EXPECT_FALSE(lm_.find(br, ec));
  t = lm_.find(tap, ec);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->master_ifindex, 0) << "deleting the bridge releases its ports";
}

TEST_F(LinkManagerTest, IsolatedBridgeNeverPassesFramesToHostStack) {
  const std::string br = link_name("wnbr", "i");
  ASSERT_FALSE(lm_.create_bridge(br));
  LinkGuard guard{lm_, br};
  ASSERT_NO_FATAL_FAILURE(address_and_up(br));
  EXPECT_FALSE(probe_reaches_bridge(lm_, br, "i")) << "host stack answered through an isolating bridge";
}

// Control: the same probe against a plain kernel bridge (same sysctls, no L2
// isolation) must succeed, proving the probe can fail; isolate_bridge() on
// that very bridge must then cut the host off.
TEST_F(LinkManagerTest, PlainBridgeReachesHostUntilIsolated) {
  const std::string br = link_name("wnbr", "p");
  ASSERT_EQ(sh("ip link add name " + br + " type bridge"), 0);
  LinkGuard guard{lm_, br};
  EXPECT_FALSE(lm_.disable_ipv6(br));
  for (const auto& [sysctl, value] : {std::pair{"arp_ignore", "8\n"}, std::pair{"rp_filter", "1\n"}})
    ASSERT_TRUE(write_file("/proc/sys/net/ipv4/conf/" + br + "/" + sysctl, value)) << sysctl;
  ASSERT_NO_FATAL_FAILURE(address_and_up(br));
  EXPECT_TRUE(probe_reaches_bridge(lm_, br, "p")) << "control probe failed: the isolation test proves nothing";

  ASSERT_FALSE(lm_.isolate_bridge(br));
  EXPECT_FALSE(probe_reaches_bridge(lm_, br, "q")) << "isolate_bridge() did not isolate an existing bridge";
}

TEST_F(LinkManagerTest, IsolateBridgeTurnsStpOffAndIsIdempotent) {
  const std::string br = link_name("wnbr", "s");
  ASSERT_EQ(sh("ip link add name " + br + " type bridge stp_state 1 forward_delay 400"), 0);
  LinkGuard guard{lm_, br};
  ASSERT_FALSE(lm_.isolate_bridge(br));
  ASSERT_FALSE(lm_.isolate_bridge(br));
  const std::string details = capture("ip -d link show dev " + br);
  EXPECT_NE(details.find("stp_state 0 "), std::string::npos) << details;
  EXPECT_NE(details.find("forward_delay 0 "), std::string::npos) << details;
  EXPECT_EQ(read_file("/proc/sys/net/ipv6/conf/" + br + "/disable_ipv6"), "1\n");
  const std::string filters = capture("tc filter show dev " + br + " ingress");
  EXPECT_NE(filters.find("wownet_drop"), std::string::npos) << filters;
  EXPECT_EQ(filters.find("handle "), filters.rfind("handle ")) << "filter duplicated: " << filters;
}

TEST_F(LinkManagerTest, ErrorsAreErrnoCodes) {
  const std::string br = link_name("wnbr", "x");
  const std::string missing = link_name("wnno", "x");
  const std::string vif = link_name("wnva", "x");
  const std::string too_long = "wn-0123456789abc";  // 16 chars
  ASSERT_EQ(too_long.size(), 16u);
  ASSERT_EQ(sh("ip link add " + vif + " type veth peer name " + link_name("wnvb", "x")), 0);
  LinkGuard vif_guard{lm_, vif};
  ASSERT_FALSE(lm_.create_bridge(br));
  LinkGuard br_guard{lm_, br};
  const auto enodev = std::error_code(ENODEV, std::system_category());
  const auto eexist = std::error_code(EEXIST, std::system_category());
  const auto einval = std::error_code(EINVAL, std::system_category());

  std::error_code ec;
  EXPECT_FALSE(lm_.find(missing, ec));
  EXPECT_FALSE(ec) << "absent is not an error";
  EXPECT_FALSE(lm_.find(999999, ec));
  EXPECT_FALSE(ec);
  EXPECT_EQ(lm_.set_up(missing, true), enodev);
  EXPECT_EQ(lm_.set_mtu(missing, 1400), enodev);
  EXPECT_EQ(lm_.delete_link(missing), enodev);
  EXPECT_EQ(lm_.clear_master(missing), enodev);
  EXPECT_EQ(lm_.set_master(missing, br), enodev);
  EXPECT_EQ(lm_.set_master(vif, missing), enodev);
  EXPECT_EQ(lm_.isolate_bridge(missing), enodev);
  EXPECT_EQ(lm_.disable_ipv6(missing), enodev);

  EXPECT_EQ(lm_.create_bridge(br), eexist);
  EXPECT_EQ(lm_.create_bridge(vif), eexist);
  EXPECT_TRUE(lm_.find(vif, ec)) << "a failed create_bridge must not touch the existing link";
  EXPECT_TRUE(lm_.find(br, ec));

  EXPECT_EQ(lm_.create_bridge(too_long), einval);
  EXPECT_EQ(lm_.create_bridge(""), einval);
  EXPECT_EQ(lm_.create_bridge("../x"), einval);
  EXPECT_EQ(lm_.set_up(too_long, true), einval);
  EXPECT_EQ(lm_.set_master(too_long, br), einval);
  EXPECT_EQ(lm_.delete_link(too_long), einval);
  EXPECT_EQ(lm_.disable_ipv6(too_long), einval);
  EXPECT_FALSE(lm_.find(too_long, ec));
  EXPECT_EQ(ec, einval);
  EXPECT_FALSE(lm_.find(0, ec));
  EXPECT_EQ(ec, einval);
  EXPECT_EQ(lm_.isolate_bridge(vif), einval) << "not a bridge";
  EXPECT_EQ(lm_.set_mtu(vif, 0), einval);
  EXPECT_EQ(lm_.set_mtu(vif, 1u << 20), einval) << "kernel's range check comes back as EINVAL";
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (::unshare(CLONE_NEWNET) != 0) {
    std::fprintf(stderr,
                 "FATAL: unshare(CLONE_NEWNET) failed: %s. This test must run as root "
                 "(CAP_SYS_ADMIN and CAP_NET_ADMIN); it refuses to touch the host's namespace.\n",
                 std::strerror(errno));
    return 1;
  }
  if (sh("ip -V >/dev/null 2>&1 && tc -V >/dev/null 2>&1") != 0) {
    std::fprintf(stderr, "FATAL: iproute2 (ip, tc) is required\n");
    return 1;
  }
  return RUN_ALL_TESTS();
}
