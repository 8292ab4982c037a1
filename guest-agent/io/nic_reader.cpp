#include "io/nic_reader.h"

#include <linux/if_addr.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <sys/socket.h>

#include <cstring>
#include <memory>

namespace wownet::agent {
namespace {

class NetlinkCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "netlink"; }
  std::string message(int code) const override { return nl_geterror(code); }
};

struct SockDeleter {
  void operator()(nl_sock* s) const { nl_socket_free(s); }
};
struct LinkDeleter {
  void operator()(rtnl_link* l) const { rtnl_link_put(l); }
};
struct CacheDeleter {
  void operator()(nl_cache* c) const { nl_cache_free(c); }
};

std::error_code nl_error(int rc) { return {rc < 0 ? -rc : rc, netlink_category()}; }

}  // namespace

const std::error_category& netlink_category() {
  static const NetlinkCategory category;
  return category;
}

std::error_code read_nic_state(const std::string& nic, NicState& out) {
  out = NicState{};
  std::unique_ptr<nl_sock, SockDeleter> sock(nl_socket_alloc());
  if (!sock) return nl_error(NLE_NOMEM);
  if (int rc = nl_connect(sock.get(), NETLINK_ROUTE); rc < 0) return nl_error(rc);

  rtnl_link* raw_link = nullptr;
  if (int rc = rtnl_link_get_kernel(sock.get(), 0, nic.c_str(), &raw_link); rc < 0) {
    if (rc == -NLE_OBJ_NOTFOUND || rc == -NLE_NODEV) return {};
    return nl_error(rc);
  }
  std::unique_ptr<rtnl_link, LinkDeleter> link(raw_link);
  out.present = true;
  const int ifindex = rtnl_link_get_ifindex(link.get());
  out.ifindex = ifindex;
  if (nl_addr* lladdr = rtnl_link_get_addr(link.get()); lladdr && nl_addr_get_len(lladdr) == 6) {
    MacBytes mac;
    std::memcpy(mac.data(), nl_addr_get_binary_addr(lladdr), mac.size());
    out.mac = mac;
  }

  nl_cache* raw_cache = nullptr;
  if (int rc = rtnl_addr_alloc_cache(sock.get(), &raw_cache); rc < 0) return nl_error(rc);
  std::unique_ptr<nl_cache, CacheDeleter> cache(raw_cache);
  for (nl_object* obj = nl_cache_get_first(cache.get()); obj != nullptr; obj = nl_cache_get_next(obj)) {
    auto* addr = reinterpret_cast<rtnl_addr*>(obj);
    if (rtnl_addr_get_ifindex(addr) != ifindex || rtnl_addr_get_family(addr) != AF_INET) continue;
    nl_addr* local = rtnl_addr_get_local(addr);
    if (local == nullptr || nl_addr_get_len(local) != 4) continue;
    const bool secondary = (rtnl_addr_get_flags(addr) & IFA_F_SECONDARY) != 0;
    if (out.ipv4 && secondary) continue;  // keep the first; a primary beats a secondary
    const auto* b = static_cast<const unsigned char*>(nl_addr_get_binary_addr(local));
    Ipv4Assignment a;
    a.address = (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
    a.prefix_length = static_cast<std::uint8_t>(rtnl_addr_get_prefixlen(addr));
    a.valid_lifetime = rtnl_addr_get_valid_lifetime(addr);
    out.ipv4 = a;
    if (!secondary) break;
  }
  return {};
}

}  // namespace wownet::agent
