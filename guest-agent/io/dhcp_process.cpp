#include "io/dhcp_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include <spdlog/spdlog.h>

#include "io/system.h"

namespace wownet::agent {
namespace {

constexpr std::chrono::milliseconds kDaemonizeTimeout{std::chrono::seconds(5)};
constexpr std::chrono::milliseconds kPollStep{20};

void sleep_for(std::chrono::milliseconds d) {
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(d.count() / 1000);
  ts.tv_nsec = static_cast<long>(d.count() % 1000) * 1000000L;
  while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

std::string basename_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string join(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) {
    if (!s.empty()) s.push_back(' ');
    s.append(a);
  }
  return s;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
  return "stopped";
}

// Spawns argv in a new session with default signal dispositions, an empty
// signal mask and stdin from /dev/null.
std::error_code spawn(const std::vector<std::string>& args, pid_t& pid) {
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  posix_spawnattr_t attr;
  posix_spawn_file_actions_t actions;
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_init(&actions);
  sigset_t mask;
  sigemptyset(&mask);
  posix_spawnattr_setsigmask(&attr, &mask);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  const int rc = ::posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  return rc == 0 ? std::error_code{} : std::error_code{rc, std::system_category()};
}

}  // namespace

DhcpClientProcess::DhcpClientProcess(DhcpClientKind kind, std::vector<std::string> program, std::string nic,
                                     std::string host_name, std::string state_dir)
    : name_(to_string(kind)),
      comm_(basename_of(program.empty() ? std::string() : program.front()).substr(0, 15)),
      state_dir_(std::move(state_dir)),
      command_(dhcp_client_command(kind, program, nic, host_name, state_dir_)) {}

bool DhcpClientProcess::adopt() {
  if (running()) return true;
  const int daemon = daemon_from_pid_file();
  if (daemon == 0) return false;
  state_ = State::kDaemon;
  pid_ = daemon;
  spdlog::info("adopted the running {} (pid {}) from {}", name_, pid_, command_.pid_file);
  return true;
}

std::error_code DhcpClientProcess::start(MonoTime now) {
  if (running()) return std::make_error_code(std::errc::operation_in_progress);
  if (auto ec = make_directories(state_dir_)) return ec;
  if (!command_.conf_file.empty()) {
    if (auto ec = write_file(command_.conf_file, command_.conf_text)) return ec;
  }
  ::unlink(command_.pid_file.c_str());  // a stale one would name the wrong daemon
  pid_t child = 0;
  if (auto ec = spawn(command_.argv, child)) return ec;
  state_ = State::kForeground;
  pid_ = child;
  since_ = now;
  spdlog::info("started {} (pid {}): {}", name_, pid_, join(command_.argv));
  return {};
}

void DhcpClientProcess::poll(MonoTime now) {
  switch (state_) {
    case State::kIdle: return;
    case State::kForeground: {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == 0 || (r < 0 && errno == EINTR)) return;
      if (r > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        spdlog::debug("{} (pid {}) left the foreground", name_, pid_);
        state_ = State::kDaemonizing;
        since_ = now;
        poll(now);
        return;
      }
      spdlog::warn("{} (pid {}) {}", name_, pid_, r > 0 ? describe_status(status) : "vanished");
      state_ = State::kIdle;
      pid_ = 0;
      return;
    }
    case State::kDaemonizing:
      if (const int daemon = daemon_from_pid_file(); daemon != 0) {
        state_ = State::kDaemon;
        pid_ = daemon;
        since_ = now;
        spdlog::info("{} runs in the background as pid {}", name_, pid_);
      } else if (now - since_ > kDaemonizeTimeout) {
        spdlog::warn("{} left the foreground but no daemon shows in {}", name_, command_.pid_file);
        state_ = State::kIdle;
        pid_ = 0;
      }
      return;
    case State::kDaemon:
      if (!is_our_process(pid_)) {
        int status = 0;
        ::waitpid(pid_, &status, WNOHANG);  // reaps it if we are its reaper (agent as pid 1)
        spdlog::warn("{} (pid {}) is gone", name_, pid_);
        state_ = State::kIdle;
        pid_ = 0;
      }
      return;
  }
}

void DhcpClientProcess::stop(std::chrono::milliseconds timeout) {
  switch (state_) {
    case State::kIdle: return;
    case State::kForeground: {
      const int child = pid_;
      terminate_child(child, timeout);
      if (const int daemon = daemon_from_pid_file(); daemon != 0 && daemon != child) terminate_daemon(daemon, timeout);
      break;
    }
    case State::kDaemonizing: {
      int daemon = 0;
      for (auto waited = std::chrono::milliseconds{0}; waited < timeout; waited += kPollStep) {
        if ((daemon = daemon_from_pid_file()) != 0) break;
        sleep_for(kPollStep);
      }
      if (daemon != 0) terminate_daemon(daemon, timeout);
      break;
    }
    case State::kDaemon: terminate_daemon(pid_, timeout); break;
  }
  ::unlink(command_.pid_file.c_str());
  state_ = State::kIdle;
  pid_ = 0;
}

int DhcpClientProcess::daemon_from_pid_file() const {
  const auto text = read_small_file(command_.pid_file, 64);
  if (!text) return 0;
  const auto pid = parse_pid_file(*text);
  if (!pid || !is_our_process(*pid)) return 0;
  return *pid;
}

bool DhcpClientProcess::is_our_process(int pid) const {
  if (pid <= 1) return false;
  if (::kill(pid, 0) != 0 && errno != EPERM) return false;
  // /proc/PID/stat: "PID (COMM) STATE ..."; COMM may itself hold ')'.
  const auto stat = read_small_file("/proc/" + std::to_string(pid) + "/stat", 4096);
  if (!stat) return true;  // no /proc: trust kill()
  const auto open = stat->find('(');
  const auto close = stat->rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open || close + 2 >= stat->size()) {
    return false;
  }
  const char state = (*stat)[close + 2];
  if (state == 'Z' || state == 'X') return false;
  return stat->compare(open + 1, close - open - 1, comm_) == 0;
}

void DhcpClientProcess::terminate_daemon(int pid, std::chrono::milliseconds timeout) {
  if (::kill(pid, SIGTERM) != 0) return;
  for (int round = 0; round < 2; ++round) {
    for (auto waited = std::chrono::milliseconds{0}; waited < timeout; waited += kPollStep) {
      int status = 0;
      ::waitpid(pid, &status, WNOHANG);  // only succeeds if we are its reaper
      if (!is_our_process(pid)) {
        spdlog::info("stopped {} (pid {})", name_, pid);
        return;
      }
      sleep_for(kPollStep);
    }
    if (round == 0) {
      spdlog::warn("{} (pid {}) ignored SIGTERM; sending SIGKILL", name_, pid);
      ::kill(pid, SIGKILL);
    }
  }
  spdlog::error("{} (pid {}) did not exit", name_, pid);
}

void DhcpClientProcess::terminate_child(int pid, std::chrono::milliseconds timeout) {
  ::kill(pid, SIGTERM);
  int status = 0;
  for (auto waited = std::chrono::milliseconds{0}; waited < timeout; waited += kPollStep) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) {
      spdlog::info("stopped {} (pid {})", name_, pid);
      return;
    }
    sleep_for(kPollStep);
  }
  spdlog::warn("{} (pid {}) ignored SIGTERM; sending SIGKILL", name_, pid);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
}

}  // namespace wownet::agent
