#include "core/dhcp_client.h"

#include <algorithm>
#include <charconv>

namespace wownet::agent {
namespace {

std::string join_path(std::string_view dir, std::string_view file) {
  std::string path(dir);
  if (path.empty() || path.back() != '/') path.push_back('/');
  path.append(file);
  return path;
}

}  // namespace

std::string_view to_string(DhcpClientKind kind) {
  switch (kind) {
    case DhcpClientKind::kDhclient: return "dhclient";
    case DhcpClientKind::kUdhcpc: return "udhcpc";
    case DhcpClientKind::kNone: break;
  }
  return "none";
}

std::optional<DhcpClientChoice> parse_dhcp_client_choice(std::string_view s) {
  if (s == "auto") return DhcpClientChoice::kAuto;
  if (s == "none") return DhcpClientChoice::kNone;
  if (s == "dhclient") return DhcpClientChoice::kDhclient;
  if (s == "udhcpc") return DhcpClientChoice::kUdhcpc;
  return std::nullopt;
}

std::optional<DhcpClientKind> resolve_dhcp_client(DhcpClientChoice choice, bool have_dhclient, bool have_udhcpc) {
  switch (choice) {
    case DhcpClientChoice::kAuto:
      if (have_dhclient) return DhcpClientKind::kDhclient;
      if (have_udhcpc) return DhcpClientKind::kUdhcpc;
      return DhcpClientKind::kNone;
    case DhcpClientChoice::kDhclient:
      if (have_dhclient) return DhcpClientKind::kDhclient;
      return std::nullopt;
    case DhcpClientChoice::kUdhcpc:
      if (have_udhcpc) return DhcpClientKind::kUdhcpc;
      return std::nullopt;
    case DhcpClientChoice::kNone: break;
  }
  return DhcpClientKind::kNone;
}

std::string dhcp_pid_file(DhcpClientKind kind, std::string_view nic, std::string_view state_dir) {
  std::string name(to_string(kind));
  name.push_back('.');
  name.append(nic);
  name.append(".pid");
  return join_path(state_dir, name);
}

DhcpCommand dhcp_client_command(DhcpClientKind kind, const std::vector<std::string>& program, std::string_view nic,
                                std::string_view host_name, std::string_view state_dir) {
  DhcpCommand cmd;
  cmd.argv = program;
  cmd.pid_file = dhcp_pid_file(kind, nic, state_dir);
  const std::string nic_s(nic);
  const std::string name(host_name);
  if (kind == DhcpClientKind::kDhclient) {
    cmd.conf_file = join_path(state_dir, "dhclient.conf");
    cmd.conf_text =
        "# Written by wownet-agent on every start of dhclient; edits are lost.\n"
        "send host-name \"" +
        name +
        "\";\n"
        "request subnet-mask, broadcast-address, routers, domain-name, domain-name-servers, host-name, "
        "interface-mtu;\n";
    const std::string leases = join_path(state_dir, "dhclient." + nic_s + ".leases");
    cmd.argv.insert(cmd.argv.end(), {"-4", "-v", "-cf", cmd.conf_file, "-pf", cmd.pid_file, "-lf", leases, nic_s});
  } else if (kind == DhcpClientKind::kUdhcpc) {
    cmd.argv.insert(cmd.argv.end(),
                    {"-i", nic_s, "-p", cmd.pid_file, "-x", "hostname:" + name, "-O", "mtu", "-b", "-S"});
  }
  return cmd;
}

std::optional<int> parse_pid_file(std::string_view text) {
  int pid = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, pid);
  if (ec != std::errc() || ptr == text.data() || pid <= 1) return std::nullopt;
  for (; ptr != end; ++ptr) {
    if (*ptr != '\n' && *ptr != ' ' && *ptr != '\t' && *ptr != '\r') return std::nullopt;
  }
  return pid;
}

DhcpRestartPolicy::DhcpRestartPolicy(DhcpBackoff backoff) : backoff_(backoff), wait_(backoff.initial) {}

bool DhcpRestartPolicy::should_start(MonoTime now, bool nic_has_ipv4, bool client_running) {
  if (nic_has_ipv4) {
    wait_ = backoff_.initial;
    fresh_ = true;
    return false;
  }
  if (client_running) return false;
  if (last_start_ && now < *last_start_ + wait_) return false;
  if (!fresh_) wait_ = std::min(wait_ * 2, backoff_.max);
  fresh_ = false;
  last_start_ = now;
  return true;
}

std::optional<MonoTime> DhcpRestartPolicy::next_start_allowed() const {
  if (!last_start_) return std::nullopt;
  return *last_start_ + wait_;
}

}  // namespace wownet::agent
