// Netlink adapter for the links wownet-hostd manages: per-VM isolating
// bridges, the VM's VIF and the TAP device enslaved to them.
// Implemented with libnl-3 / libnl-route-3 (message API for everything that
// libnl has no helpers for) plus /proc/sys writes for per-device sysctls.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

struct nl_sock;
struct nl_msg;

namespace wownet::io {

struct LinkInfo {
  int ifindex = 0;
  std::string name;
  std::string kind;          // rtnl_link_get_type(): "bridge", "veth", "tun", "" for plain devices...
  bool is_ethernet = false;  // ARPHRD_ETHER
  bool is_up = false;        // IFF_UP
  int master_ifindex = 0;    // 0 if not enslaved
  std::array<std::uint8_t, 6> mac{};
  unsigned mtu = 0;
};

// Owns one NETLINK_ROUTE socket. Not thread-safe. All calls are synchronous.
// Errors are std::system_category() codes holding positive errno values; the
// kernel's own errno is reported when it sent one, otherwise libnl's error is
// mapped (EEXIST, ENODEV, EPERM, EBUSY, EINVAL, else EIO). Names that are not
// valid Linux interface names (empty, > 15 chars, '/', ':', whitespace, "."
// or "..") give EINVAL before anything is sent.
//
// Bridge isolation ("no frame from a port is ever delivered up to the host's
// own stack") is enforced by two independent mechanisms:
//  1. an ingress filter on the bridge device (clsact qdisc + cls_bpf program
//     returning TC_ACT_SHOT): frames passed up by the bridge to its own device
//     are dropped before the IP/ARP stack sees them (packet sockets such as
//     tcpdump still see them). Port-to-port forwarding never traverses the
//     bridge device's ingress, so it is unaffected. Always required.
//  2. VLAN filtering on, bridge device removed from VLAN 1 ("self"), so the
//     bridge does not even pass frames up (and the host cannot send to ports).
//     Required where the kernel supports it; kernels built without
//     CONFIG_BRIDGE_VLAN_FILTERING answer EOPNOTSUPP, which is tolerated and
//     recorded (see vlan_filtering_supported()).
// Plus per-device sysctls as defence in depth: disable_ipv6=1, arp_ignore=8,
// rp_filter=1.
class LinkManager {
 public:
  // Opens and connects the NETLINK_ROUTE socket; throws std::system_error on failure.
  LinkManager();
  // Closes the socket; links are left as they are.
  ~LinkManager();
  LinkManager(const LinkManager&) = delete;
  LinkManager& operator=(const LinkManager&) = delete;

  // Looks a link up by name; nullopt with no error if it does not exist.
  std::optional<LinkInfo> find(const std::string& name, std::error_code& ec);
  // Looks a link up by ifindex; nullopt with no error if it does not exist.
  std::optional<LinkInfo> find(int ifindex, std::error_code& ec);
  // Lists all links of the socket's network namespace.
  std::vector<LinkInfo> list(std::error_code& ec);

  // Creates an isolating bridge (STP off, forward delay 0, isolation as
  // described above, IPv6 disabled, arp_ignore=8, rp_filter=1), left down.
  // Existing link of that name -> EEXIST. On any later failure the new
  // bridge is deleted again, so it either exists fully isolated or not at all.
  std::error_code create_bridge(const std::string& name);
  // Re-applies the isolation settings of create_bridge() to an existing
  // bridge (idempotent; used when hostd re-adopts its bridges after a
  // restart). Not a bridge -> EINVAL; absent -> ENODEV.
  std::error_code isolate_bridge(const std::string& name);
  // Enslaves port to bridge. Either absent -> ENODEV.
  std::error_code set_master(const std::string& port, const std::string& bridge);
  // Releases port from its master (no-op if it has none).
  std::error_code clear_master(const std::string& port);
  // Sets or clears IFF_UP.
  std::error_code set_up(const std::string& name, bool up);
  // Keeps the host's own stack quiet on a device: multicast off (no IGMP
  // joins), ARP off. Frames still pass through it as a bridge port.
  std::error_code silence(const std::string& name);
  // Sets the MTU (0 -> EINVAL; the kernel rejects values outside the device's range).
  std::error_code set_mtu(const std::string& name, unsigned mtu);
  // Sets the MTU to `mtu`, or to the largest value below it that the device
  // accepts (a TAP's maximum is 65521, less than a veth's 65535). Returns
  // the MTU set; 0 with `ec` set if the device took none.
  unsigned set_mtu_at_most(const std::string& name, unsigned mtu, std::error_code& ec);
  // Deletes the link (deleting one veth end deletes its peer too).
  std::error_code delete_link(const std::string& name);
  // Disables IPv6 on any device (sysctl), so the host never speaks on it.
  // Success if the kernel has no IPv6 at all.
  std::error_code disable_ipv6(const std::string& name);

  // False once the kernel has rejected bridge VLAN filtering with EOPNOTSUPP
  // (isolation then rests on the ingress filter alone); true otherwise.
  bool vlan_filtering_supported() const noexcept { return vlan_filtering_supported_; }

 private:
  std::error_code apply_isolation(int ifindex, const std::string& name);
  std::error_code set_bridge_attr(int ifindex, int attr, std::uint32_t value);
  std::error_code enable_vlan_filtering(int ifindex);
  std::error_code remove_self_vlan(int ifindex, std::uint16_t vid);
  std::error_code install_ingress_drop(int ifindex);
  std::error_code set_link(const std::string& name, std::optional<int> master, std::optional<unsigned> mtu,
                           std::optional<bool> up);
  std::optional<LinkInfo> get(int ifindex, const char* name, std::error_code& ec);
  std::error_code transact(nl_msg* msg);
  std::error_code to_error(int nl_err) const;

  nl_sock* sock_ = nullptr;
  int kernel_errno_ = 0;  // errno of the kernel's last NLMSG_ERROR, reset per request
  bool vlan_filtering_supported_ = true;
};

}  // namespace wownet::io
