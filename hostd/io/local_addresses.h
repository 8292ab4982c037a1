// The IPv4 addresses of this host's interfaces.
#pragma once

#include <vector>

#include "core/types.h"

namespace wownet::io {

// Every IPv4 address on an interface (getifaddrs), loopback included, in
// the kernel's order; empty if they cannot be read.
std::vector<Ipv4Addr> local_ipv4_addresses();

}  // namespace wownet::io
