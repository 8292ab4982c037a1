// wownet-agent: keeps the overlay NIC configured by DHCP and reports its
// state to wownet-hostd over the host-only channel. See README.md.
#include <signal.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "core/agent_core.h"
#include "core/dhcp_client.h"
#include "core/host_name.h"
#include "core/report.h"
#include "io/dhcp_process.h"
#include "io/nic_reader.h"
#include "io/report_sender.h"
#include "io/report_wire.h"
#include "io/system.h"

#ifndef WOWNET_AGENT_VERSION
#error "WOWNET_AGENT_VERSION must be defined by the build"
#endif

namespace wownet::agent {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr std::chrono::milliseconds kTick{1000};
constexpr std::chrono::milliseconds kStopTimeout{5000};

struct Options {
  std::string nic = "eth0";
  std::string channel = "eth1";
  int port = 6570;
  int interval = 5;
  std::string host_name;
  std::string dhcp_client = "auto";
  std::string state_dir = "/var/lib/wownet-agent";
  std::string log_level = "info";
  bool once = false;
  bool keep_client = false;
};

// Logs a recurring problem at warn level when it first appears or changes,
// and at debug level while it repeats.
class ProblemLog {
 public:
  // Reports `message` (empty: the problem is gone).
  void update(const std::string& message) {
    if (message == last_) {
      if (!message.empty()) spdlog::debug("{}", message);
      return;
    }
    if (message.empty()) {
      spdlog::info("recovered: {}", last_);
    } else {
      spdlog::warn("{}", message);
    }
    last_ = message;
  }

 private:
  std::string last_;
};

std::string describe_nic(const std::string& name, const NicState& nic) {
  if (!nic.present) return name + " is missing";
  if (!nic.ipv4) return name + " has no IPv4 address";
  std::string s = name + " has " + format_ipv4(nic.ipv4->address) + "/" + std::to_string(nic.ipv4->prefix_length);
  if (nic.ipv4->valid_lifetime != kInfiniteLifetime)
    s += " (lease: " + std::to_string(nic.ipv4->valid_lifetime) + " s left)";
  return s;
}

// Parses the command line into `opts`; returns an exit code to stop with, or
// nullopt to run.
std::optional<int> parse_command_line(int argc, char** argv, Options& opts) {
  CLI::App app{"wownet guest agent: keeps the overlay NIC configured by DHCP and reports its state to wownet-hostd.",
               "wownet-agent"};
  app.set_version_flag("--version", std::string(WOWNET_AGENT_VERSION));
  const CLI::Validator interface_name(
      [](std::string& s) {
        return is_valid_interface_name(s) ? std::string() : "not a valid interface name: '" + s + "'";
      },
      "IFNAME");
  const CLI::Validator absolute_path(
      [](std::string& s) {
        return !s.empty() && s.front() == '/' ? std::string() : "must be an absolute path: '" + s + "'";
      },
      "ABSPATH");
  app.add_option("--nic", opts.nic, "Overlay NIC, configured by DHCP")->capture_default_str()->check(interface_name);
  app.add_option("--channel", opts.channel, "Host-only NIC the reports are broadcast on")
      ->capture_default_str()
      ->check(interface_name);
  app.add_option("--port", opts.port, "UDP port of wownet-hostd's report listener")
      ->capture_default_str()
      ->check(CLI::Range(1, 65535));
  app.add_option("--interval", opts.interval, "Seconds between reports")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  app.add_option("--hostname", opts.host_name, "Host name to report and send in DHCP (default: gethostname())");
  app.add_option("--dhcp-client", opts.dhcp_client, "DHCP client to drive on --nic")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "dhclient", "udhcpc", "none"}));
  app.add_option("--state-dir", opts.state_dir, "Directory for the DHCP client's config, pid and lease files")
      ->capture_default_str()
      ->check(absolute_path);
  app.add_option("--log-level", opts.log_level, "Log level")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.add_flag("--once", opts.once, "Send one report and exit (never starts a DHCP client)");
  app.add_flag("--keep-client", opts.keep_client, "Leave the DHCP client running when the agent exits");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  if (opts.channel == opts.nic) {
    spdlog::error("--channel: must differ from --nic ('{}')", opts.nic);
    return kExitUsage;
  }
  return std::nullopt;
}

// Works out the host name to use; nullopt (after logging why) if none fits.
std::optional<std::string> choose_host_name(const std::string& requested) {
  if (!requested.empty()) {
    auto name = sanitize_host_name(requested);
    if (!name) {
      spdlog::error("--hostname: '{}' has no usable DNS label (letters, digits, '-')", requested);
      return std::nullopt;
    }
    if (*name != requested) spdlog::warn("--hostname: using '{}' for '{}' (one lowercase DNS label)", *name, requested);
    return name;
  }
  const auto system = system_host_name();
  auto name = system ? sanitize_host_name(*system) : std::nullopt;
  if (!name) {
    spdlog::error("--hostname: cannot derive a DNS label from the system host name '{}'; pass --hostname",
                  system.value_or(""));
  }
  return name;
}

struct ClientProgram {
  DhcpClientKind kind = DhcpClientKind::kNone;
  std::vector<std::string> program;
};

// Resolves --dhcp-client against what is installed; nullopt (after logging
// why) if the requested client is missing.
std::optional<ClientProgram> choose_dhcp_client(const std::string& requested) {
  const auto choice = parse_dhcp_client_choice(requested);
  if (!choice) return std::nullopt;  // CLI11 already checked the value
  std::vector<std::string> dhclient;
  std::vector<std::string> udhcpc;
  if (*choice == DhcpClientChoice::kAuto || *choice == DhcpClientChoice::kDhclient) {
    if (auto p = find_executable("dhclient")) dhclient = {*p};
  }
  if (*choice == DhcpClientChoice::kAuto || *choice == DhcpClientChoice::kUdhcpc) {
    if (auto p = find_executable("udhcpc")) {
      udhcpc = {*p};
    } else if (auto b = find_executable("busybox")) {
      udhcpc = {*b, "udhcpc"};
    }
  }
  const auto kind = resolve_dhcp_client(*choice, !dhclient.empty(), !udhcpc.empty());
  if (!kind) {
    spdlog::error("--dhcp-client: {} is not installed (looked in $PATH and the sbin directories)", requested);
    return std::nullopt;
  }
  if (*choice == DhcpClientChoice::kAuto && *kind == DhcpClientKind::kNone) {
    spdlog::warn("--dhcp-client auto: neither dhclient nor udhcpc is installed; only reporting");
  }
  ClientProgram cp;
  cp.kind = *kind;
  if (*kind == DhcpClientKind::kDhclient) cp.program = dhclient;
  if (*kind == DhcpClientKind::kUdhcpc) cp.program = udhcpc;
  return cp;
}

// Encodes and sends one report, opening the sender first if needed.
std::error_code send_report(const ReportFields& report, const Options& opts, std::optional<ReportSender>& sender) {
  const auto datagram = encode_report(report);
  if (!datagram) return std::make_error_code(std::errc::message_size);
  std::error_code ec;
  if (!sender) sender = ReportSender::open(opts.channel, static_cast<std::uint16_t>(opts.port), ec);
  if (!sender) return ec;
  ec = sender->send(*datagram);
  if (ec) {
    sender.reset();  // reopen next time: the channel NIC may have been replaced
    return ec;
  }
  spdlog::debug("sent report #{} ({} bytes) on {}", report.sequence, datagram->size(), opts.channel);
  return {};
}

// Waits up to `timeout` for SIGINT or SIGTERM (blocked in `signals`);
// returns the signal, or 0 on timeout.
int wait_for_signal(const sigset_t& signals, std::chrono::milliseconds timeout) {
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  ts.tv_nsec = static_cast<long>(timeout.count() % 1000) * 1000000L;
  const int sig = ::sigtimedwait(&signals, nullptr, &ts);
  return sig > 0 ? sig : 0;
}

int run(int argc, char** argv) {
  auto logger = spdlog::stderr_color_mt("wownet-agent");
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  spdlog::set_default_logger(logger);

  Options opts;
  if (auto rc = parse_command_line(argc, argv, opts)) return *rc;
  spdlog::set_level(spdlog::level::from_str(opts.log_level));

  const auto host_name = choose_host_name(opts.host_name);
  if (!host_name) return kExitUsage;
  const auto client_program = choose_dhcp_client(opts.dhcp_client);
  if (!client_program) return kExitFailure;

  // Block the stop signals before any child exists; they are taken with
  // sigtimedwait, and children get them unblocked (see DhcpClientProcess).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  ::sigprocmask(SIG_BLOCK, &stop_signals, nullptr);

  AgentConfig config;
  config.agent_version = WOWNET_AGENT_VERSION;
  config.host_name = *host_name;
  config.nic = opts.nic;
  config.dhcp_client = client_program->kind;
  AgentCore core(config, monotonic_now());
  std::optional<ReportSender> sender;

  if (opts.once) {
    NicState nic;
    if (auto ec = read_nic_state(opts.nic, nic)) spdlog::warn("cannot read {}: {}", opts.nic, ec.message());
    const auto report = core.next_report(nic, monotonic_now(), unix_now());
    if (auto ec = send_report(report, opts, sender)) {
      spdlog::error("cannot send the report on {}: {}", opts.channel, ec.message());
      return kExitFailure;
    }
    spdlog::info("sent one report on {} ({})", opts.channel, describe_nic(opts.nic, nic));
    return kExitOk;
  }

  spdlog::info("wownet-agent {} starting: nic {}, channel {}, port {}, every {} s, host name '{}', dhcp client {}",
               WOWNET_AGENT_VERSION, opts.nic, opts.channel, opts.port, opts.interval, config.host_name,
               to_string(config.dhcp_client));

  std::unique_ptr<DhcpClientProcess> client;
  if (client_program->kind != DhcpClientKind::kNone) {
    client = std::make_unique<DhcpClientProcess>(client_program->kind, client_program->program, opts.nic,
                                                 config.host_name, opts.state_dir);
    client->adopt();
  }

  const std::chrono::milliseconds interval{std::chrono::seconds(opts.interval)};
  ProblemLog nic_problem;
  ProblemLog send_problem;
  std::string last_nic_description;
  MonoTime next_report = monotonic_now();
  int stop_signal = 0;
  while (stop_signal == 0) {
    const MonoTime now = monotonic_now();
    NicState nic;
    const auto read_ec = read_nic_state(opts.nic, nic);
    nic_problem.update(read_ec ? "cannot read " + opts.nic + ": " + read_ec.message() : std::string());
    if (const auto d = describe_nic(opts.nic, nic); d != last_nic_description) {
      spdlog::info("{}", d);
      last_nic_description = d;
    }

    if (client) {
      client->poll(now);
      if (core.client_lost_its_nic(nic, client->running())) {
        spdlog::info("{} was replaced or removed: restarting {}", opts.nic, to_string(config.dhcp_client));
        client->stop(kStopTimeout);
        client->poll(now);
      }
      if (core.should_start_dhcp_client(nic, client->running(), now)) {
        if (auto ec = client->start(now)) {
          spdlog::error("cannot start {}: {}; retrying in {} s", to_string(config.dhcp_client), ec.message(),
                        std::chrono::duration_cast<std::chrono::seconds>(core.dhcp_policy().current_backoff()).count());
        }
      }
    }

    if (now >= next_report) {
      const auto report = core.next_report(nic, now, unix_now());
      const auto ec = send_report(report, opts, sender);
      send_problem.update(ec ? "cannot send reports on " + opts.channel + ": " + ec.message() : std::string());
      next_report += interval;
      if (next_report <= now) next_report = now + interval;
    }

    const auto until_report = std::chrono::duration_cast<std::chrono::milliseconds>(next_report - monotonic_now());
    stop_signal = wait_for_signal(stop_signals, std::clamp(until_report, std::chrono::milliseconds{0}, kTick));
  }

  spdlog::info("got {}, stopping", stop_signal == SIGTERM ? "SIGTERM" : "SIGINT");
  if (client && client->running()) {
    if (opts.keep_client) {
      spdlog::info("leaving {} (pid {}) running (--keep-client)", to_string(config.dhcp_client), client->pid());
    } else {
      client->stop(kStopTimeout);
    }
  }
  return kExitOk;
}

}  // namespace
}  // namespace wownet::agent

int main(int argc, char** argv) {
  try {
    return wownet::agent::run(argc, argv);
  } catch (const std::exception& e) {
    spdlog::critical("fatal: {}", e.what());
    return 1;
  }
}
