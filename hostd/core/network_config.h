// The overlay network's parameters as the core sees them. Loaded and
// validated by hostd's config reader; the core trusts these values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/types.h"

namespace wownet {

// An address that always goes to one client, as dnsmasq's dhcp-host= or
// ISC dhcpd's host {} do: by MAC, or by VM name (whatever MAC it
// presents). `name`, if set, is the host name the lease gets.
struct Reservation {
  Ipv4Addr address;
  std::optional<MacAddr> mac;  // set: reserved for this MAC
  std::string vm;              // else: reserved for the VM of this name
  std::string name;            // one DNS label, lowercase; empty: the client's own
  // True if the client (`mac`, VM `vm`) is the one this reserves for.
  bool matches(MacAddr m, const std::string& v) const { return mac ? *mac == m : (!vm.empty() && vm == v); }
  bool operator==(const Reservation&) const = default;
};

// A name the gateway's DNS answers for a fixed address (A and PTR), like
// a line of /etc/hosts.
struct StaticName {
  std::string name;  // one DNS label, lowercase
  Ipv4Addr address;
  bool operator==(const StaticName&) const = default;
};

struct NetworkConfig {
  Ipv4Prefix network = *Ipv4Prefix::parse("10.128.0.0/9");
  Ipv4Addr gateway = Ipv4Addr::from_octets(10, 128, 0, 1);
  MacAddr gateway_mac{{0x02, 0x77, 0x6e, 0x00, 0x00, 0x01}};
  std::string domain = "wow";
  std::uint16_t mtu = 1400;
  std::uint32_t lease_time = 3600;   // seconds
  std::uint32_t offer_hold = 60;     // seconds an offered address stays reserved
  std::uint32_t decline_hold = 600;  // seconds a declined address stays out of the pool
  bool learn_static = true;          // register statically configured VMs seen in traffic
  std::uint32_t dns_ttl = 60;
  std::vector<Reservation> reservations;  // [[dhcp.reservation]], on the node that allocates
  std::vector<StaticName> static_names;   // [[dns.static]]

  // Seconds a DHCP lease stays the VM's after an ACK. Clients are told
  // lease_time, but some keep a short lease longer than they are told:
  // busybox udhcpc treats anything under 30 s as 30 s and renews after
  // 15 s. Holding the lease at least that long keeps such a VM bound (and
  // its renewals answered here) between its renewals.
  static constexpr std::uint32_t kMinHold = 30;
  std::uint32_t hold_time() const { return lease_time < kMinHold ? kMinHold : lease_time; }
};

}  // namespace wownet
