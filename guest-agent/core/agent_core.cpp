#include "core/agent_core.h"

#include <utility>

namespace wownet::agent {

AgentCore::AgentCore(AgentConfig config, MonoTime start, DhcpBackoff backoff)
    : config_(std::move(config)), start_(start), dhcp_(backoff) {}

ReportFields AgentCore::next_report(const NicState& nic, MonoTime now, UnixTime wall_now) {
  const auto up = now > start_ ? std::chrono::duration_cast<std::chrono::seconds>(now - start_).count() : 0;
  return build_report(config_, nic, static_cast<std::uint64_t>(up), ++sequence_, wall_now);
}

bool AgentCore::should_start_dhcp_client(const NicState& nic, bool client_running, MonoTime now) {
  if (config_.dhcp_client == DhcpClientKind::kNone || !nic.present) return false;
  if (!dhcp_.should_start(now, nic.ipv4.has_value(), client_running)) return false;
  client_ifindex_ = nic.ifindex;
  return true;
}

bool AgentCore::client_lost_its_nic(const NicState& nic, bool client_running) const {
  if (!client_running || client_ifindex_ == 0) return false;
  return !nic.present || nic.ifindex != client_ifindex_;
}

}  // namespace wownet::agent
