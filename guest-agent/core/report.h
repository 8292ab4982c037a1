// The status report in plain form, and how it is built from what the io
// layer observed. The io layer converts ReportFields to the protobuf message
// wownet.agent.Report field by field (proto/agent.proto).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/agent_time.h"
#include "core/dhcp_client.h"

namespace wownet::agent {

// The kernel's value for an address lifetime that never ends.
inline constexpr std::uint32_t kInfiniteLifetime = 0xffffffff;

using MacBytes = std::array<std::uint8_t, 6>;

struct Ipv4Assignment {
  std::uint32_t address = 0;  // host byte order
  std::uint8_t prefix_length = 0;
  std::uint32_t valid_lifetime = kInfiniteLifetime;  // seconds left, as the kernel reports it
};

// What the io layer observed about the overlay NIC.
struct NicState {
  bool present = false;                // the NIC exists
  int ifindex = 0;                     // its interface index: a new device gets a new one
  std::optional<MacBytes> mac;         // nullopt if it has no 6-byte link address
  std::optional<Ipv4Assignment> ipv4;  // its first IPv4 address, if any
};

struct AgentConfig {
  std::string agent_version;
  std::string host_name;  // one valid DNS label (see host_name.h)
  std::string nic;        // overlay NIC
  DhcpClientKind dhcp_client = DhcpClientKind::kNone;
};

// Mirrors wownet.agent.Report.
struct ReportFields {
  std::string agent_version;
  std::string host_name;
  std::string nic;
  std::string address;  // dotted quad, empty if none
  std::uint32_t prefix_length = 0;
  std::int64_t lease_expiry_unix = 0;  // 0 if unknown
  std::uint64_t uptime_seconds = 0;
  std::string dhcp_client;
  std::uint64_t sequence = 0;
  std::string mac;  // aa:bb:cc:dd:ee:ff, empty if unknown

  bool operator==(const ReportFields&) const = default;
};

// Formats a host-order IPv4 address as a dotted quad.
std::string format_ipv4(std::uint32_t address);

// Formats a MAC address as lowercase aa:bb:cc:dd:ee:ff.
std::string format_mac(const MacBytes& mac);

// The lease expiry for an address observed at `now` with `valid_lifetime`
// seconds left: now + valid_lifetime, or 0 if the lifetime is infinite.
std::int64_t lease_expiry(UnixTime now, std::uint32_t valid_lifetime);

// Builds one report from the config, the observed NIC state, the agent's
// uptime and the report's sequence number; `now` dates the lease expiry.
ReportFields build_report(const AgentConfig& config, const NicState& nic, std::uint64_t uptime_seconds,
                          std::uint64_t sequence, UnixTime now);

// True if `name` can be a Linux interface name: 1-15 bytes, printable ASCII
// without '/', ':' or whitespace, and neither "." nor "..".
bool is_valid_interface_name(std::string_view name);

}  // namespace wownet::agent
