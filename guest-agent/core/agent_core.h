// The agent's decisions in one place: what to report and when to (re)start
// the DHCP client. No I/O and no clock reads; the io layer observes the NIC
// and the client process and passes in the current time.
#pragma once

#include <cstdint>

#include "core/agent_time.h"
#include "core/dhcp_client.h"
#include "core/report.h"

namespace wownet::agent {

class AgentCore {
 public:
  // Starts the agent's uptime at `start` (monotonic).
  AgentCore(AgentConfig config, MonoTime start, DhcpBackoff backoff = {});

  // Builds the next report from the observed NIC state; sequence numbers
  // start at 1 and grow by one per call.
  ReportFields next_report(const NicState& nic, MonoTime now, UnixTime wall_now);

  // True if the DHCP client must be started at `now`: a client is configured,
  // the NIC exists but has no IPv4 address, the client is not running and
  // the backoff has passed. A true answer counts as a start.
  bool should_start_dhcp_client(const NicState& nic, bool client_running, MonoTime now);

  // True if the running DHCP client serves a NIC that is gone or has been
  // replaced by a new device of the same name (the VM's virtual NIC was
  // recreated): such a client never recovers and must be restarted.
  bool client_lost_its_nic(const NicState& nic, bool client_running) const;

  // The configuration the core was built with.
  const AgentConfig& config() const { return config_; }

  // The restart policy, for logging its backoff.
  const DhcpRestartPolicy& dhcp_policy() const { return dhcp_; }

 private:
  AgentConfig config_;
  MonoTime start_;
  std::uint64_t sequence_ = 0;
  DhcpRestartPolicy dhcp_;
  int client_ifindex_ = 0;  // the NIC the client was started on; 0 if unknown
};

}  // namespace wownet::agent
