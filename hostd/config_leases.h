// The config's lease administration: [[dhcp.reservation]] (addresses that
// always go to one MAC or VM) and [[dns.static]] (fixed names the
// gateway's DNS answers). Read by load_config() (config.cpp).
#pragma once

#include <toml++/toml.h>

#include <functional>
#include <string>

#include "core/network_config.h"

namespace wownet {

// Reports one problem: the key ("dhcp.reservation[1].mac") and what was
// expected.
using ConfigFail = std::function<void(const std::string& key, const std::string& what)>;

// At most this many of each, so a config cannot make every lookup slow.
inline constexpr std::size_t kMaxReservations = 4096;
inline constexpr std::size_t kMaxStaticNames = 4096;

// Reads `list` (the value of dhcp.reservation) into n.reservations; n's
// prefix and gateway must be final. False after fail() on the first problem.
bool read_reservations(const toml::node& list, NetworkConfig& n, const ConfigFail& fail);
// Reads `list` (the value of dns.static) into n.static_names, checking its
// names against n.reservations' too. False after fail() on the first problem.
bool read_static_names(const toml::node& list, NetworkConfig& n, const ConfigFail& fail);

// True if `name` may be a reserved or static host name: one lowercase DNS
// label that is neither "gateway" nor shaped like an automatic name.
bool is_assignable_host_name(const std::string& name);

}  // namespace wownet
