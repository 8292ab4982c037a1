#include "io/link_manager.h"

// glibc's <net/if.h> must precede the <linux/...> headers (libc-compat).
#include <net/if.h>
#include <net/if_arp.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/if_bridge.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <netlink/attr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/handlers.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <memory>

namespace wownet::io {
namespace {

struct MsgDeleter {
  void operator()(nl_msg* m) const { nlmsg_free(m); }
};
using MsgPtr = std::unique_ptr<nl_msg, MsgDeleter>;

struct LinkDeleter {
  void operator()(rtnl_link* l) const { rtnl_link_put(l); }
};
using LinkPtr = std::unique_ptr<rtnl_link, LinkDeleter>;

struct CacheDeleter {
  void operator()(nl_cache* c) const { nl_cache_free(c); }
};
using CachePtr = std::unique_ptr<nl_cache, CacheDeleter>;

std::error_code errno_code(int e) { return {e, std::system_category()}; }

// Mirrors the kernel's dev_valid_name(), so a bad name never reaches the
// kernel and can never escape the /proc/sys paths built from it.
bool valid_ifname(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ || name == "." || name == "..") return false;
  return std::none_of(name.begin(), name.end(), [](char c) {
    return c == '/' || c == ':' || c == '\0' || std::isspace(static_cast<unsigned char>(c));
  });
}

// Fallback when the kernel sent no errno (the error arose inside libnl).
int nlerr_to_errno(int nl_err) {
  switch (nl_err < 0 ? -nl_err : nl_err) {
    case NLE_EXIST: return EEXIST;
    case NLE_OBJ_NOTFOUND:
    case NLE_NODEV: return ENODEV;
    case NLE_PERM:
    case NLE_NOACCESS: return EPERM;
    case NLE_BUSY: return EBUSY;
    case NLE_INVAL:
    case NLE_MSGSIZE:
    case NLE_RANGE: return EINVAL;
    case NLE_NOMEM: return ENOMEM;
    case NLE_OPNOTSUPP: return EOPNOTSUPP;
    case NLE_AGAIN: return EAGAIN;
    case NLE_INTR: return EINTR;
    default: return EIO;
  }
}

// Records the kernel's errno for the request that failed, then lets libnl
// report the failure as usual (NL_STOP makes it return -nl_syserr2nlerr()).
int on_kernel_error(sockaddr_nl*, nlmsgerr* err, void* arg) {
  *static_cast<int*>(arg) = err->error < 0 ? -err->error : err->error;
  return NL_STOP;
}

MsgPtr new_msg(int type, int flags) { return MsgPtr(nlmsg_alloc_simple(type, flags)); }

MsgPtr new_link_msg(int type, int flags, unsigned char family, int ifindex) {
  MsgPtr msg = new_msg(type, flags);
  if (!msg) return msg;
  ifinfomsg ifi{};
  ifi.ifi_family = family;
  ifi.ifi_index = ifindex;
  if (nlmsg_append(msg.get(), &ifi, sizeof(ifi), NLMSG_ALIGNTO) < 0) return {};
  return msg;
}

LinkInfo to_info(rtnl_link* link) {
  LinkInfo info;
  info.ifindex = rtnl_link_get_ifindex(link);
  if (const char* n = rtnl_link_get_name(link)) info.name = n;
  if (const char* t = rtnl_link_get_type(link)) info.kind = t;
  info.is_ethernet = rtnl_link_get_arptype(link) == ARPHRD_ETHER;
  info.is_up = (rtnl_link_get_flags(link) & IFF_UP) != 0;
  info.master_ifindex = rtnl_link_get_master(link);
  if (nl_addr* a = rtnl_link_get_addr(link); a && nl_addr_get_len(a) == info.mac.size()) {
    std::memcpy(info.mac.data(), nl_addr_get_binary_addr(a), info.mac.size());
  }
  info.mtu = rtnl_link_get_mtu(link);
  return info;
}

// Writes value to /proc/sys/net/<path>. ENOENT (device vanished) -> ENODEV.
std::error_code write_sysctl(const std::string& path, const char* value) {
  const std::string full = "/proc/sys/net/" + path;
  int fd = ::open(full.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno_code(errno == ENOENT ? ENODEV : errno);
  const size_t len = std::strlen(value);
  ssize_t n = ::write(fd, value, len);
  int saved = errno;
  ::close(fd);
  if (n < 0) return errno_code(saved);
  if (static_cast<size_t>(n) != len) return errno_code(EIO);
  return {};
}

// Loads a cls_bpf program that drops every packet (r0 = TC_ACT_SHOT; exit).
// Returns the program fd or -errno.
int load_drop_program() {
  bpf_insn insns[2]{};
  insns[0].code = BPF_ALU64 | BPF_MOV | BPF_K;
  insns[0].dst_reg = BPF_REG_0;
  insns[0].imm = TC_ACT_SHOT;
  insns[1].code = BPF_JMP | BPF_EXIT;
  static const char license[] = "GPL";
  bpf_attr attr{};
  attr.prog_type = BPF_PROG_TYPE_SCHED_CLS;
  attr.insn_cnt = 2;
  attr.insns = reinterpret_cast<std::uintptr_t>(insns);
  attr.license = reinterpret_cast<std::uintptr_t>(license);
  std::strncpy(attr.prog_name, "wownet_drop", sizeof(attr.prog_name) - 1);
  long fd = ::syscall(__NR_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
  if (fd < 0 && errno == EINVAL) {
    // Kernels before 4.15 reject prog_name; retry without it.
    std::memset(attr.prog_name, 0, sizeof(attr.prog_name));
    fd = ::syscall(__NR_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
  }
  return fd < 0 ? -errno : static_cast<int>(fd);
}

constexpr std::uint16_t kDefaultVid = 1;
constexpr std::uint16_t kIngressDropPrio = 1;
constexpr std::uint32_t kIngressDropHandle = 1;

}  // namespace

LinkManager::LinkManager() {
  sock_ = nl_socket_alloc();
  if (!sock_) throw std::system_error(errno_code(ENOMEM), "nl_socket_alloc");
  int err = nl_connect(sock_, NETLINK_ROUTE);
  if (err < 0) {
    nl_socket_free(sock_);
    sock_ = nullptr;
    throw std::system_error(errno_code(nlerr_to_errno(err)), "nl_connect(NETLINK_ROUTE)");
  }
  nl_socket_modify_err_cb(sock_, NL_CB_CUSTOM, on_kernel_error, &kernel_errno_);
}

LinkManager::~LinkManager() {
  if (sock_) nl_socket_free(sock_);  // also closes the socket
}

std::error_code LinkManager::to_error(int nl_err) const {
  if (nl_err >= 0) return {};
  return errno_code(kernel_errno_ > 0 ? kernel_errno_ : nlerr_to_errno(nl_err));
}

std::error_code LinkManager::transact(nl_msg* msg) {
  if (!msg) return errno_code(ENOMEM);
  kernel_errno_ = 0;
  int err = nl_send_auto(sock_, msg);  // adds NLM_F_ACK (auto-ack is on)
  if (err >= 0) err = nl_wait_for_ack(sock_);
  return to_error(err);
}

std::optional<LinkInfo> LinkManager::get(int ifindex, const char* name, std::error_code& ec) {
  ec.clear();
  kernel_errno_ = 0;
  rtnl_link* raw = nullptr;
  int err = rtnl_link_get_kernel(sock_, ifindex, name, &raw);
  LinkPtr link(raw);
  if (err < 0) {
    std::error_code e = to_error(err);
    if (e.value() != ENODEV && e.value() != ENOENT) ec = e;
    return std::nullopt;
  }
  if (!link) return std::nullopt;
  return to_info(link.get());
}

std::optional<LinkInfo> LinkManager::find(const std::string& name, std::error_code& ec) {
  if (!valid_ifname(name)) {
    ec = errno_code(EINVAL);
    return std::nullopt;
  }
  return get(0, name.c_str(), ec);
}

std::optional<LinkInfo> LinkManager::find(int ifindex, std::error_code& ec) {
  if (ifindex <= 0) {
    ec = errno_code(EINVAL);
    return std::nullopt;
  }
  return get(ifindex, nullptr, ec);
}

std::vector<LinkInfo> LinkManager::list(std::error_code& ec) {
  ec.clear();
  kernel_errno_ = 0;
  nl_cache* raw = nullptr;
  int err = rtnl_link_alloc_cache(sock_, AF_UNSPEC, &raw);
  CachePtr cache(raw);
  std::vector<LinkInfo> out;
  if (err < 0) {
    ec = to_error(err);
    return out;
  }
  for (nl_object* o = nl_cache_get_first(cache.get()); o; o = nl_cache_get_next(o)) {
    out.push_back(to_info(reinterpret_cast<rtnl_link*>(o)));
  }
  return out;
}

std::error_code LinkManager::create_bridge(const std::string& name) {
  if (!valid_ifname(name)) return errno_code(EINVAL);
  MsgPtr msg = new_link_msg(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL, AF_UNSPEC, 0);
  if (!msg) return errno_code(ENOMEM);
  nlattr* info = nullptr;
  nlattr* data = nullptr;
  // A new bridge starts with STP off, so forward delay 0 is accepted here.
  if (nla_put_string(msg.get(), IFLA_IFNAME, name.c_str()) < 0 || !(info = nla_nest_start(msg.get(), IFLA_LINKINFO)) ||
      nla_put_string(msg.get(), IFLA_INFO_KIND, "bridge") < 0 || !(data = nla_nest_start(msg.get(), IFLA_INFO_DATA)) ||
      nla_put_u32(msg.get(), IFLA_BR_STP_STATE, 0) < 0 || nla_put_u32(msg.get(), IFLA_BR_FORWARD_DELAY, 0) < 0 ||
      nla_nest_end(msg.get(), data) < 0 || nla_nest_end(msg.get(), info) < 0) {
    return errno_code(ENOMEM);
  }
  if (auto ec = transact(msg.get())) return ec;  // EEXIST: not ours, leave it alone

  std::error_code ec;
  auto link = find(name, ec);
  if (!link) return ec ? ec : errno_code(ENODEV);  // vanished under us
  ec = apply_isolation(link->ifindex, name);
  if (ec) {
    // Roll back by ifindex so that only the bridge created above is removed.
    MsgPtr del = new_link_msg(RTM_DELLINK, NLM_F_REQUEST, AF_UNSPEC, link->ifindex);
    (void)transact(del.get());
  }
  return ec;
}

std::error_code LinkManager::isolate_bridge(const std::string& name) {
  std::error_code ec;
  auto link = find(name, ec);
  if (ec) return ec;
  if (!link) return errno_code(ENODEV);
  if (link->kind != "bridge") return errno_code(EINVAL);
  return apply_isolation(link->ifindex, name);
}

std::error_code LinkManager::apply_isolation(int ifindex, const std::string& name) {
  // The ingress drop comes first: from then on nothing reaches the stack.
  if (auto ec = install_ingress_drop(ifindex)) return ec;
  // STP must be off before forward delay 0 is accepted (the kernel checks
  // the range while STP is on and applies FORWARD_DELAY before STP_STATE).
  if (auto ec = set_bridge_attr(ifindex, IFLA_BR_STP_STATE, 0)) return ec;
  if (auto ec = set_bridge_attr(ifindex, IFLA_BR_FORWARD_DELAY, 0)) return ec;
  std::error_code ec = enable_vlan_filtering(ifindex);
  if (ec.value() == EOPNOTSUPP) {
    vlan_filtering_supported_ = false;  // kernel without CONFIG_BRIDGE_VLAN_FILTERING
  } else if (ec) {
    return ec;
  } else {
    vlan_filtering_supported_ = true;
    ec = remove_self_vlan(ifindex, kDefaultVid);
    if (ec && ec.value() != ENOENT) return ec;  // ENOENT: already removed
  }
  if (auto e = disable_ipv6(name)) return e;
  if (auto e = write_sysctl("ipv4/conf/" + name + "/arp_ignore", "8\n")) return e;
  if (auto e = write_sysctl("ipv4/conf/" + name + "/rp_filter", "1\n")) return e;
  return {};
}

std::error_code LinkManager::set_bridge_attr(int ifindex, int attr, std::uint32_t value) {
  MsgPtr msg = new_link_msg(RTM_NEWLINK, NLM_F_REQUEST, AF_UNSPEC, ifindex);
  if (!msg) return errno_code(ENOMEM);
  nlattr* info = nullptr;
  nlattr* data = nullptr;
  if (!(info = nla_nest_start(msg.get(), IFLA_LINKINFO)) || nla_put_string(msg.get(), IFLA_INFO_KIND, "bridge") < 0 ||
      !(data = nla_nest_start(msg.get(), IFLA_INFO_DATA)) || nla_put_u32(msg.get(), attr, value) < 0 ||
      nla_nest_end(msg.get(), data) < 0 || nla_nest_end(msg.get(), info) < 0) {
    return errno_code(ENOMEM);
  }
  return transact(msg.get());
}

std::error_code LinkManager::enable_vlan_filtering(int ifindex) {
  MsgPtr msg = new_link_msg(RTM_NEWLINK, NLM_F_REQUEST, AF_UNSPEC, ifindex);
  if (!msg) return errno_code(ENOMEM);
  nlattr* info = nullptr;
  nlattr* data = nullptr;
  if (!(info = nla_nest_start(msg.get(), IFLA_LINKINFO)) || nla_put_string(msg.get(), IFLA_INFO_KIND, "bridge") < 0 ||
      !(data = nla_nest_start(msg.get(), IFLA_INFO_DATA)) || nla_put_u8(msg.get(), IFLA_BR_VLAN_FILTERING, 1) < 0 ||
      nla_nest_end(msg.get(), data) < 0 || nla_nest_end(msg.get(), info) < 0) {
    return errno_code(ENOMEM);
  }
  return transact(msg.get());
}

// What `bridge vlan del dev BR vid VID self` sends.
std::error_code LinkManager::remove_self_vlan(int ifindex, std::uint16_t vid) {
  MsgPtr msg = new_link_msg(RTM_DELLINK, NLM_F_REQUEST, AF_BRIDGE, ifindex);
  if (!msg) return errno_code(ENOMEM);
  bridge_vlan_info vinfo{};
  vinfo.flags = 0;
  vinfo.vid = vid;
  nlattr* spec = nullptr;
  if (!(spec = nla_nest_start(msg.get(), IFLA_AF_SPEC)) ||
      nla_put_u16(msg.get(), IFLA_BRIDGE_FLAGS, BRIDGE_FLAGS_SELF) < 0 ||
      nla_put(msg.get(), IFLA_BRIDGE_VLAN_INFO, sizeof(vinfo), &vinfo) < 0 || nla_nest_end(msg.get(), spec) < 0) {
    return errno_code(ENOMEM);
  }
  return transact(msg.get());
}

// clsact qdisc + cls_bpf direct-action filter dropping everything on the
// bridge device's ingress, i.e. every frame the bridge passes up to the host.
// Idempotent: an existing clsact is kept, the filter (fixed prio/handle) replaced.
std::error_code LinkManager::install_ingress_drop(int ifindex) {
  {
    MsgPtr msg = new_msg(RTM_NEWQDISC, NLM_F_REQUEST | NLM_F_CREATE);
    if (!msg) return errno_code(ENOMEM);
    tcmsg tcm{};
    tcm.tcm_family = AF_UNSPEC;
    tcm.tcm_ifindex = ifindex;
    tcm.tcm_handle = TC_H_MAKE(TC_H_CLSACT, 0);
    tcm.tcm_parent = TC_H_CLSACT;
    if (nlmsg_append(msg.get(), &tcm, sizeof(tcm), NLMSG_ALIGNTO) < 0 ||
        nla_put_string(msg.get(), TCA_KIND, "clsact") < 0) {
      return errno_code(ENOMEM);
    }
    std::error_code ec = transact(msg.get());
    if (ec && ec.value() != EEXIST) return ec;
  }
  int prog_fd = load_drop_program();
  if (prog_fd < 0) return errno_code(-prog_fd);
  MsgPtr msg = new_msg(RTM_NEWTFILTER, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE);
  std::error_code ec = errno_code(ENOMEM);
  if (msg) {
    tcmsg tcm{};
    tcm.tcm_family = AF_UNSPEC;
    tcm.tcm_ifindex = ifindex;
    tcm.tcm_handle = kIngressDropHandle;
    tcm.tcm_parent = TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS);
    tcm.tcm_info = TC_H_MAKE(static_cast<std::uint32_t>(kIngressDropPrio) << 16, htons(ETH_P_ALL));
    nlattr* opts = nullptr;
    if (nlmsg_append(msg.get(), &tcm, sizeof(tcm), NLMSG_ALIGNTO) >= 0 &&
        nla_put_string(msg.get(), TCA_KIND, "bpf") >= 0 && (opts = nla_nest_start(msg.get(), TCA_OPTIONS)) &&
        nla_put_u32(msg.get(), TCA_BPF_FD, static_cast<std::uint32_t>(prog_fd)) >= 0 &&
        nla_put_string(msg.get(), TCA_BPF_NAME, "wownet_drop") >= 0 &&
        nla_put_u32(msg.get(), TCA_BPF_FLAGS, TCA_BPF_FLAG_ACT_DIRECT) >= 0 && nla_nest_end(msg.get(), opts) >= 0) {
      ec = transact(msg.get());
    }
  }
  ::close(prog_fd);  // the filter holds its own reference to the program
  return ec;
}

std::error_code LinkManager::set_link(const std::string& name, std::optional<int> master, std::optional<unsigned> mtu,
                                      std::optional<bool> up) {
  if (!valid_ifname(name)) return errno_code(EINVAL);
  // Addressed by IFLA_IFNAME (ifi_index 0): no lookup race, ENODEV if absent.
  MsgPtr msg = new_msg(RTM_SETLINK, NLM_F_REQUEST);
  if (!msg) return errno_code(ENOMEM);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  if (up) {
    ifi.ifi_change = IFF_UP;
    ifi.ifi_flags = *up ? IFF_UP : 0;
  }
  if (nlmsg_append(msg.get(), &ifi, sizeof(ifi), NLMSG_ALIGNTO) < 0 ||
      nla_put_string(msg.get(), IFLA_IFNAME, name.c_str()) < 0 ||
      (master && nla_put_u32(msg.get(), IFLA_MASTER, static_cast<std::uint32_t>(*master)) < 0) ||
      (mtu && nla_put_u32(msg.get(), IFLA_MTU, *mtu) < 0)) {
    return errno_code(ENOMEM);
  }
  return transact(msg.get());
}

std::error_code LinkManager::set_master(const std::string& port, const std::string& bridge) {
  if (!valid_ifname(port) || !valid_ifname(bridge)) return errno_code(EINVAL);
  std::error_code ec;
  auto br = find(bridge, ec);
  if (ec) return ec;
  if (!br) return errno_code(ENODEV);
  return set_link(port, br->ifindex, std::nullopt, std::nullopt);
}

std::error_code LinkManager::clear_master(const std::string& port) {
  return set_link(port, 0, std::nullopt, std::nullopt);
}

std::error_code LinkManager::silence(const std::string& name) {
  if (!valid_ifname(name)) return errno_code(EINVAL);
  MsgPtr msg = new_msg(RTM_SETLINK, NLM_F_REQUEST);
  if (!msg) return errno_code(ENOMEM);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_change = IFF_MULTICAST | IFF_NOARP;
  ifi.ifi_flags = IFF_NOARP;
  if (nlmsg_append(msg.get(), &ifi, sizeof(ifi), NLMSG_ALIGNTO) < 0 ||
      nla_put_string(msg.get(), IFLA_IFNAME, name.c_str()) < 0) {
    return errno_code(ENOMEM);
  }
  return transact(msg.get());
}

std::error_code LinkManager::set_up(const std::string& name, bool up) {
  return set_link(name, std::nullopt, std::nullopt, up);
}

std::error_code LinkManager::set_mtu(const std::string& name, unsigned mtu) {
  if (mtu == 0) return errno_code(EINVAL);
  return set_link(name, std::nullopt, mtu, std::nullopt);
}

unsigned LinkManager::set_mtu_at_most(const std::string& name, unsigned mtu, std::error_code& ec) {
  ec = set_mtu(name, mtu);
  if (!ec) return mtu;
  if (ec.value() != EINVAL) return 0;
  // The kernel does not say the device's range: find its top by bisection
  // (at most 16 requests, and only when the first one was refused).
  constexpr unsigned kMinMtu = 68;      // RFC 791's minimum
  unsigned lo = kMinMtu - 1, hi = mtu;  // lo: accepted or floor, hi: refused
  while (hi - lo > 1) {
    unsigned mid = lo + (hi - lo) / 2;
    if (set_mtu(name, mid)) {
      hi = mid;
    } else {
      lo = mid;
    }
  }
  if (lo < kMinMtu) return 0;  // ec still holds the first refusal
  ec = set_mtu(name, lo);
  return ec ? 0 : lo;
}

std::error_code LinkManager::delete_link(const std::string& name) {
  if (!valid_ifname(name)) return errno_code(EINVAL);
  MsgPtr msg = new_link_msg(RTM_DELLINK, NLM_F_REQUEST, AF_UNSPEC, 0);
  if (!msg || nla_put_string(msg.get(), IFLA_IFNAME, name.c_str()) < 0) return errno_code(ENOMEM);
  return transact(msg.get());
}

std::error_code LinkManager::disable_ipv6(const std::string& name) {
  if (!valid_ifname(name)) return errno_code(EINVAL);
  std::error_code ec = write_sysctl("ipv6/conf/" + name + "/disable_ipv6", "1\n");
  if (ec.value() == ENODEV) {
    struct stat st {};
    if (::stat("/proc/sys/net/ipv6", &st) != 0 && errno == ENOENT) return {};  // no IPv6 at all
    // The device exists but has no IPv6 state (e.g. MTU < 1280): nothing to
    // disable now, but IPv6 would start with defaults if it ever got one.
    std::error_code lookup;
    if (find(name, lookup)) return errno_code(EOPNOTSUPP);
  }
  return ec;
}

}  // namespace wownet::io
