// Drives one DHCP client process (dhclient or busybox udhcpc) on the overlay
// NIC. The client starts in the foreground, daemonizes once it has a lease
// (or gives up waiting for one) and keeps renewing; its daemon's pid comes
// from the pid file it writes under the state directory.
#pragma once

#include <chrono>
#include <string>
#include <system_error>
#include <vector>

#include "core/agent_time.h"
#include "core/dhcp_client.h"

namespace wownet::agent {

class DhcpClientProcess {
 public:
  // Prepares to drive `kind` (not kNone); `program` is the argv prefix that
  // runs it, e.g. {"/sbin/dhclient"} or {"/bin/busybox", "udhcpc"}.
  DhcpClientProcess(DhcpClientKind kind, std::vector<std::string> program, std::string nic, std::string host_name,
                    std::string state_dir);
  DhcpClientProcess(const DhcpClientProcess&) = delete;
  DhcpClientProcess& operator=(const DhcpClientProcess&) = delete;

  // Takes over a client an earlier agent left running (its pid file names a
  // live process of the same program); true if one was adopted.
  bool adopt();

  // Creates the state directory, writes the client's config and spawns the
  // client without waiting for it; an error if any step fails.
  std::error_code start(MonoTime now);

  // Reaps the spawned process and follows it into the background; call it
  // every tick.
  void poll(MonoTime now);

  // True while the client runs in the foreground, is daemonizing or runs as
  // a daemon.
  bool running() const { return state_ != State::kIdle; }

  // The pid of the process being watched; 0 if none.
  int pid() const { return pid_; }

  // Stops the client: SIGTERM to the recorded pid, then waits up to
  // `timeout` before SIGKILL. Blocks for at most about twice `timeout`.
  void stop(std::chrono::milliseconds timeout);

 private:
  enum class State { kIdle, kForeground, kDaemonizing, kDaemon };

  // The live daemon the pid file names, or 0.
  int daemon_from_pid_file() const;
  // True if `pid` is alive and runs our program.
  bool is_our_process(int pid) const;
  // Sends SIGTERM to a process that is not our child and waits for it to go.
  void terminate_daemon(int pid, std::chrono::milliseconds timeout);
  // Sends SIGTERM to our spawned child and reaps it.
  void terminate_child(int pid, std::chrono::milliseconds timeout);

  std::string name_;  // "dhclient" or "udhcpc", for logs
  std::string comm_;  // what /proc/PID/comm shows for our program
  std::string state_dir_;
  DhcpCommand command_;
  State state_ = State::kIdle;
  int pid_ = 0;
  MonoTime since_{0};  // when the current state began
};

}  // namespace wownet::agent
