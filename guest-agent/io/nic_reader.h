// Reads the overlay NIC's state from the kernel over rtnetlink (libnl-route).
#pragma once

#include <string>
#include <system_error>

#include "core/report.h"

namespace wownet::agent {

// Fills `out` with the MAC and the first IPv4 address (primary preferred) of
// `nic`. A missing NIC is not an error: `out.present` is false then. Errors
// are netlink failures, in netlink_category().
std::error_code read_nic_state(const std::string& nic, NicState& out);

// The error category of libnl's NLE_* codes.
const std::error_category& netlink_category();

}  // namespace wownet::agent
