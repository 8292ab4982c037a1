#include "io/report_wire.h"

#include "core/datagram.h"
#include "proto/agent.pb.h"

namespace wownet::agent {

std::optional<std::string> encode_report(const ReportFields& fields) {
  Report msg;
  msg.set_agent_version(fields.agent_version);
  msg.set_host_name(fields.host_name);
  msg.set_nic(fields.nic);
  msg.set_address(fields.address);
  msg.set_prefix_length(fields.prefix_length);
  msg.set_lease_expiry_unix(fields.lease_expiry_unix);
  msg.set_uptime_seconds(fields.uptime_seconds);
  msg.set_dhcp_client(fields.dhcp_client);
  msg.set_sequence(fields.sequence);
  msg.set_mac(fields.mac);
  std::string bytes;
  if (!msg.SerializeToString(&bytes)) return std::nullopt;
  return encode_datagram(bytes);
}

std::optional<ReportFields> decode_report(std::string_view datagram) {
  const auto payload = decode_datagram(datagram);
  if (!payload) return std::nullopt;
  Report msg;
  if (!msg.ParseFromArray(payload->data(), static_cast<int>(payload->size()))) return std::nullopt;
  ReportFields f;
  f.agent_version = msg.agent_version();
  f.host_name = msg.host_name();
  f.nic = msg.nic();
  f.address = msg.address();
  f.prefix_length = msg.prefix_length();
  f.lease_expiry_unix = msg.lease_expiry_unix();
  f.uptime_seconds = msg.uptime_seconds();
  f.dhcp_client = msg.dhcp_client();
  f.sequence = msg.sequence();
  f.mac = msg.mac();
  return f;
}

}  // namespace wownet::agent
