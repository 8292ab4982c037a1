// Which DHCP client the agent drives, how it is started, and when it must be
// (re)started. Pure decisions; the io layer spawns and watches the process.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/agent_time.h"

namespace wownet::agent {

enum class DhcpClientKind { kNone, kDhclient, kUdhcpc };

// What --dhcp-client asked for: a kind, or "auto".
enum class DhcpClientChoice { kAuto, kNone, kDhclient, kUdhcpc };

// The report/log name of `kind`: "none", "dhclient" or "udhcpc".
std::string_view to_string(DhcpClientKind kind);

// Parses "auto", "none", "dhclient" or "udhcpc"; nullopt on anything else.
std::optional<DhcpClientChoice> parse_dhcp_client_choice(std::string_view s);

// Resolves `choice` against what is installed: auto takes dhclient if present,
// else udhcpc, else none; an explicit client that is missing gives nullopt.
std::optional<DhcpClientKind> resolve_dhcp_client(DhcpClientChoice choice, bool have_dhclient, bool have_udhcpc);

// Everything needed to start one client: the files it uses and its argv.
struct DhcpCommand {
  std::vector<std::string> argv;  // argv[0] is the executable's path
  std::string pid_file;           // written by the client itself
  std::string conf_file;          // empty if the client takes no config file
  std::string conf_text;          // what the agent writes to conf_file
};

// Builds the command that starts `kind` (not kNone) on `nic`, sending
// `host_name`, with its files under `state_dir`. `program` is the
// executable's argv prefix, e.g. {"/sbin/dhclient"} or {"/bin/busybox", "udhcpc"}.
DhcpCommand dhcp_client_command(DhcpClientKind kind, const std::vector<std::string>& program, std::string_view nic,
                                std::string_view host_name, std::string_view state_dir);

// The pid file `kind` (not kNone) keeps for `nic` under `state_dir`.
std::string dhcp_pid_file(DhcpClientKind kind, std::string_view nic, std::string_view state_dir);

// Parses the contents of a pid file: a positive decimal pid other than 1,
// optionally followed by whitespace; nullopt otherwise.
std::optional<int> parse_pid_file(std::string_view text);

struct DhcpBackoff {
  std::chrono::milliseconds initial{std::chrono::seconds(2)};
  std::chrono::milliseconds max{std::chrono::seconds(60)};
};

// Decides when the DHCP client must be (re)started. The first start is
// immediate; each further start waits for the current backoff after the
// previous one, and the backoff doubles per start up to `max`. Seeing the
// NIC configured resets the backoff to `initial`.
class DhcpRestartPolicy {
 public:
  // Starts with no start recorded and the backoff at `backoff.initial`.
  explicit DhcpRestartPolicy(DhcpBackoff backoff = {});

  // True if the client must be started at `now`: the NIC has no IPv4 address,
  // the client is not running and the backoff has passed. A true answer
  // records a start at `now`.
  bool should_start(MonoTime now, bool nic_has_ipv4, bool client_running);

  // The wait that applies after the most recent start.
  std::chrono::milliseconds current_backoff() const { return wait_; }

  // The earliest time of the next start; nullopt before the first one.
  std::optional<MonoTime> next_start_allowed() const;

 private:
  DhcpBackoff backoff_;
  std::optional<MonoTime> last_start_;
  std::chrono::milliseconds wait_;
  bool fresh_ = true;  // the next start is the first since a reset: no doubling
};

}  // namespace wownet::agent
