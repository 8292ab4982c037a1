#include "io/local_addresses.h"

#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace wownet::io {

std::vector<Ipv4Addr> local_ipv4_addresses() {
  std::vector<Ipv4Addr> out;
  ifaddrs* ifs = nullptr;
  if (::getifaddrs(&ifs) != 0) return out;
  for (ifaddrs* i = ifs; i; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
    auto* sin = reinterpret_cast<sockaddr_in*>(i->ifa_addr);
    out.push_back(Ipv4Addr{ntohl(sin->sin_addr.s_addr)});
  }
  ::freeifaddrs(ifs);
  return out;
}

}  // namespace wownet::io
