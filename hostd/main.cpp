// wownet-hostd: the per-host daemon. Runs in the foreground, logs to stderr.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include "asio.h"

#include "config.h"
#include "daemon.h"

int main(int argc, char** argv) {
  CLI::App app{"wownet-hostd: joins this host's VMs to the wownet virtual network"};
  std::string config_path, state_dir, control_socket, log_level;
  bool check_only = false, version = false;
  app.add_option("-c,--config", config_path, "TOML config file (default: built-in defaults)");
  app.add_option("--state-dir", state_dir, "directory for leases and attachments (default /var/lib/wownet)");
  app.add_option("--control-socket", control_socket, "Unix control socket (default /run/wownet/hostd.sock)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical or off");
  app.add_flag("--check-config", check_only, "validate the config file and exit");
  app.add_flag("--version", version, "print the version and exit");
  CLI11_PARSE(app, argc, argv);
  if (version) {
    std::printf("wownet-hostd %s\n", WOWNET_VERSION);
    return 0;
  }

  wownet::HostdConfig config;
  if (!config_path.empty()) {
    std::string error;
    auto loaded = wownet::load_config(config_path, error);
    if (!loaded) {
      std::fprintf(stderr, "wownet-hostd: %s\n", error.c_str());
      return 2;
    }
    config = *loaded;
  } else if (check_only) {
    std::fprintf(stderr, "wownet-hostd: --check-config needs --config FILE\n");
    return 2;
  }
  if (!state_dir.empty()) config.state_dir = state_dir;
  if (!control_socket.empty()) config.control_socket = control_socket;
  if (!log_level.empty()) {
    if (!wownet::is_valid_log_level(log_level)) {
      std::fprintf(stderr, "wownet-hostd: --log-level: expected trace, debug, info, warn, error, critical or off\n");
      return 2;
    }
    config.log_level = log_level;
  }
  if (check_only) {
    std::printf("%s: ok (network %s, gateway %s, domain %s, mtu %u)\n", config_path.c_str(),
                config.network.network.to_string().c_str(), config.network.gateway.to_string().c_str(),
                config.network.domain.c_str(), unsigned(config.network.mtu));
    return 0;
  }

  auto logger = spdlog::stderr_color_mt("hostd");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  std::signal(SIGPIPE, SIG_IGN);

  boost::asio::io_context io(1);
  wownet::Daemon daemon(io, config);
  std::string error;
  if (!daemon.start(error)) {
    spdlog::critical("{}", error);
    return 1;
  }
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("signal {}: shutting down", sig);
    sd_notify(0, "STOPPING=1");
    daemon.stop();
    io.stop();
  });
  sd_notify(0, "READY=1");
  io.run();
  return 0;
}
