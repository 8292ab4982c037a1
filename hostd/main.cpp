// wownet-hostd: the per-host daemon. Runs in the foreground, logs to stderr.
#include <google/protobuf/stubs/logging.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <vector>
#include "io/asio.h"

#include "config.h"
#include "daemon.h"
#include "io/instance_lock.h"
#include "logging.h"
#include "util/repeat_limiter.h"
#include "util/rlimit.h"

namespace {

namespace util = wownet::util;
namespace logging = wownet::logging;

// How long a new hostd waits for its predecessor on the same state
// directory to exit (systemd restarts, a slow shutdown) before giving up.
constexpr auto kPredecessorWait = std::chrono::seconds(30);

// libprotobuf reports what it rejects (e.g. invalid UTF-8 in a string
// field) on stderr, one line per message, whatever hostd's log level: a
// peer could flood the log with it. Its lines go through spdlog instead, at
// most 5 per 10 s whatever their text (one kind for the repeat limiter),
// and the number left out is reported once the window has passed.
util::RepeatLimiter& protobuf_limiter() {
  static util::RepeatLimiter limiter(util::RepeatLimiter::Settings{5, 10000, 1});
  return limiter;
}

void report_protobuf_repeats(std::int64_t now_ms) {
  for (const auto& s : protobuf_limiter().expire(now_ms))
    spdlog::warn("protobuf: {} more messages suppressed", s.suppressed);
}

void protobuf_log(google::protobuf::LogLevel level, const char* file, int line, const std::string& message) {
  const std::int64_t now = logging::RepeatLimitSink::steady_now_ms();
  report_protobuf_repeats(now);
  if (!protobuf_limiter().allow("protobuf", now, message)) return;
  auto lvl = level >= google::protobuf::LOGLEVEL_ERROR     ? spdlog::level::err
             : level == google::protobuf::LOGLEVEL_WARNING ? spdlog::level::warn
                                                           : spdlog::level::info;
  spdlog::log(lvl, "protobuf {}:{}: {}", file ? file : "?", line, message);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"wownet-hostd: joins this host's VMs to the wownet virtual network"};
  std::string config_path, state_dir, control_socket, log_level;
  bool check_only = false, version = false, priorities = false;
  app.add_option("-c,--config", config_path, "TOML config file (default: built-in defaults)");
  app.add_option("--state-dir", state_dir, "directory for leases and attachments (default /var/lib/wownet)");
  app.add_option("--control-socket", control_socket, "Unix control socket (default /run/wownet/hostd.sock)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical or off");
  app.add_flag("--log-priorities", priorities,
               "prefix log lines with their syslog priority (<3> error ... <7> debug) for the journal; "
               "the default when JOURNAL_STREAM names stderr (under systemd)");
  app.add_flag("--check-config", check_only, "validate the config file and exit");
  app.add_flag("--version", version, "print the version and exit");
  CLI11_PARSE(app, argc, argv);
  if (version) {
    std::printf("wownet-hostd %s\n", WOWNET_VERSION);
    return 0;
  }

  if (!log_level.empty() && !wownet::is_valid_log_level(log_level)) {
    std::fprintf(stderr, "wownet-hostd: --log-level: expected trace, debug, info, warn, error, critical or off\n");
    return 2;
  }
  // The command line's values win over the file's, at start and at every reload.
  const auto apply_command_line = [&](wownet::HostdConfig& c) {
    if (!state_dir.empty()) c.state_dir = state_dir;
    if (!control_socket.empty()) c.control_socket = control_socket;
    if (!log_level.empty()) c.log_level = log_level;
    wownet::complete_config(c);
  };
  wownet::HostdConfig config;
  if (!config_path.empty()) {
    std::string error;
    std::vector<std::string> all;  // --check-config reports every problem
    auto loaded = wownet::load_config(config_path, error, check_only ? &all : nullptr);
    if (!loaded) {
      if (all.empty()) all.push_back(error);
      for (const auto& e : all) std::fprintf(stderr, "wownet-hostd: %s\n", e.c_str());
      return 2;
    }
    config = *loaded;
  } else if (check_only) {
    std::fprintf(stderr, "wownet-hostd: --check-config needs --config FILE\n");
    return 2;
  }
  apply_command_line(config);
  if (check_only) {
    const std::vector<std::string> problems = wownet::check_config_files(config);
    for (const auto& p : problems) std::fprintf(stderr, "wownet-hostd: %s: %s\n", config_path.c_str(), p.c_str());
    if (!problems.empty()) {
      std::fprintf(stderr, "wownet-hostd: %s: %zu error%s\n", config_path.c_str(), problems.size(),
                   problems.size() == 1 ? "" : "s");
      return 2;
    }
    std::printf("%s: ok (network %s, gateway %s, domain %s, mtu %u)\n", config_path.c_str(),
                config.network.network.to_string().c_str(), config.network.gateway.to_string().c_str(),
                config.network.domain.c_str(), unsigned(config.network.mtu));
    return 0;
  }

  // Lines of one kind beyond kLogBurst in kLogWindow are left out and
  // counted; the timer below writes the counts of windows that ended.
  constexpr std::uint32_t kLogBurst = 20;
  constexpr std::int64_t kLogWindowMs = 10000;
  auto log_sink =
      std::make_shared<logging::RepeatLimitSink>(std::make_shared<spdlog::sinks::stderr_color_sink_mt>(),
                                                 util::RepeatLimiter::Settings{kLogBurst, kLogWindowMs, 256});
  auto logger = std::make_shared<spdlog::logger>("hostd", log_sink);
  spdlog::set_default_logger(logger);
  spdlog::set_formatter(logging::make_formatter(priorities || logging::stderr_is_journal()));
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  std::signal(SIGPIPE, SIG_IGN);
  if (const util::NofileLimit nofile = util::raise_nofile_limit(); nofile.error)
    spdlog::warn("cannot raise the open-files limit from {} to {}: {}", nofile.before, nofile.hard,
                 std::strerror(nofile.error));
  else
    spdlog::debug("open-files limit {} (was {}, hard limit {})", nofile.after, nofile.before, nofile.hard);
  google::protobuf::SetLogHandler(&protobuf_log);

  // Signals that would otherwise end the daemon without a word are caught
  // before anything is set up; the loop below handles them.
  boost::asio::io_context io(1);
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.add(SIGHUP);
  signals.add(SIGUSR1);
  signals.add(SIGUSR2);

  wownet::io::InstanceLock lock;
  if (auto ec = lock.acquire(config.state_dir, kPredecessorWait, [&](long holder) {
        spdlog::info("waiting up to {} s for the wownet-hostd{} that holds {}/hostd.lock to exit",
                     kPredecessorWait.count(), holder > 0 ? " (pid " + std::to_string(holder) + ")" : std::string(),
                     config.state_dir);
      })) {
    spdlog::critical("{}/hostd.lock: {}", config.state_dir,
                     ec == std::errc::resource_unavailable_try_again
                         ? "another wownet-hostd still runs on this state directory"
                         : ec.message());
    return 1;
  }

  wownet::Daemon daemon(io, config);
  if (!config_path.empty())
    daemon.set_config_loader(config_path, [&config_path, apply_command_line](std::string& error) {
      auto fresh = wownet::load_config(config_path, error);
      if (fresh) apply_command_line(*fresh);
      return fresh;
    });
  std::string error;
  if (!daemon.start(error)) {
    spdlog::critical("{}", error);
    return 1;
  }
  std::function<void(const boost::system::error_code&, int)> on_signal = [&](const boost::system::error_code& ec,
                                                                             int sig) {
    if (ec) return;
    if (sig == SIGINT || sig == SIGTERM) {
      spdlog::info("signal {} ({}): shutting down", sig, sig == SIGINT ? "SIGINT" : "SIGTERM");
      sd_notify(0, "STOPPING=1");
      daemon.stop();
      io.stop();
      return;
    }
    if (sig == SIGHUP) {
      // systemctl reload (ExecReload= sends SIGHUP): the manager sees the
      // reload begin and end; without NOTIFY_SOCKET these do nothing.
      sd_notify(0, "RELOADING=1");
      (void)daemon.reload("SIGHUP");  // it logs what it did
      sd_notify(0, "READY=1");
    } else {
      spdlog::info("signal {} ({}) ignored", sig, sig == SIGUSR1 ? "SIGUSR1" : "SIGUSR2");
    }
    signals.async_wait(on_signal);
  };
  signals.async_wait(on_signal);
  boost::asio::steady_timer repeats_timer(io);
  std::function<void(const boost::system::error_code&)> on_repeats_timer = [&](const boost::system::error_code& ec) {
    if (ec) return;
    log_sink->flush_repeats();
    report_protobuf_repeats(logging::RepeatLimitSink::steady_now_ms());
    repeats_timer.expires_after(std::chrono::seconds(1));
    repeats_timer.async_wait(on_repeats_timer);
  };
  repeats_timer.expires_after(std::chrono::seconds(1));
  repeats_timer.async_wait(on_repeats_timer);
  sd_notify(0, "READY=1");
  io.run();
  daemon.stop();
  lock.release();  // only once every socket and TAP is closed
  return 0;
}
