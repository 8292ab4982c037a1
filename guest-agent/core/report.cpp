#include "core/report.h"

namespace wownet::agent {

std::string format_ipv4(std::uint32_t address) {
  std::string s;
  for (int shift = 24; shift >= 0; shift -= 8) {
    s.append(std::to_string((address >> shift) & 0xff));
    if (shift != 0) s.push_back('.');
  }
  return s;
}

std::string format_mac(const MacBytes& mac) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  s.reserve(17);
  for (std::size_t i = 0; i < mac.size(); ++i) {
    if (i != 0) s.push_back(':');
    s.push_back(kHex[mac[i] >> 4]);
    s.push_back(kHex[mac[i] & 0xf]);
  }
  return s;
}

std::int64_t lease_expiry(UnixTime now, std::uint32_t valid_lifetime) {
  if (valid_lifetime == kInfiniteLifetime) return 0;
  return now + std::int64_t{valid_lifetime};
}

ReportFields build_report(const AgentConfig& config, const NicState& nic, std::uint64_t uptime_seconds,
                          std::uint64_t sequence, UnixTime now) {
  ReportFields r;
  r.agent_version = config.agent_version;
  r.host_name = config.host_name;
  r.nic = config.nic;
  if (nic.present && nic.ipv4) {
    r.address = format_ipv4(nic.ipv4->address);
    r.prefix_length = nic.ipv4->prefix_length;
    r.lease_expiry_unix = lease_expiry(now, nic.ipv4->valid_lifetime);
  }
  r.uptime_seconds = uptime_seconds;
  r.dhcp_client = std::string(to_string(config.dhcp_client));
  r.sequence = sequence;
  if (nic.present && nic.mac) r.mac = format_mac(*nic.mac);
  return r;
}

bool is_valid_interface_name(std::string_view name) {
  if (name.empty() || name.size() > 15 || name == "." || name == "..") return false;
  for (char c : name) {
    if (c <= ' ' || c > '~' || c == '/' || c == ':') return false;
  }
  return true;
}

}  // namespace wownet::agent
