// ControlServer under abuse: a real Unix socket in a temporary directory, the
// server on its own io_context thread, clients as plain blocking sockets in
// the test thread. Timeouts are injected through ControlServer::Options so the
// tests stay fast; time bounds are generous (seconds where the server needs
// milliseconds) and only ever upper bounds.
#include "io/control_server.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace wownet::io {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using wownet::control::Request;
using wownet::control::Response;

// The 4-byte big-endian length prefix and the serialized request.
std::string frame(const Request& req) {
  std::string body = req.SerializeAsString();
  std::uint32_t n = std::uint32_t(body.size());
  std::string out{char(n >> 24), char(n >> 16), char(n >> 8), char(n)};
  return out + body;
}

Request status_request() {
  Request req;
  req.mutable_status();
  return req;
}

// Raises the soft RLIMIT_NOFILE towards the hard limit so that `wanted` more
// descriptors fit; returns how many of them the limits allow (with headroom).
std::size_t usable_descriptors(std::size_t wanted) {
  constexpr rlim_t kHeadroom = 128;
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return 0;
  rlim_t need = rlim_t(wanted) + kHeadroom;
  if (lim.rlim_cur < need) {
    lim.rlim_cur = lim.rlim_max == RLIM_INFINITY ? need : std::min(need, lim.rlim_max);
    (void)::setrlimit(RLIMIT_NOFILE, &lim);
    (void)::getrlimit(RLIMIT_NOFILE, &lim);
  }
  return lim.rlim_cur > kHeadroom ? std::min<std::size_t>(wanted, std::size_t(lim.rlim_cur - kHeadroom)) : 0;
}

// A client's end of the control socket: blocking, with send and receive
// timeouts so that no test can hang on it.
class ClientSocket {
 public:
  // Connects to `path`; connected() tells whether that worked.
  explicit ClientSocket(const std::string& path, std::chrono::milliseconds timeout = 5000ms) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return;
    timeval tv{long(timeout.count() / 1000), long(timeout.count() % 1000) * 1000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ClientSocket(ClientSocket&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  ClientSocket& operator=(ClientSocket&&) = delete;
  ~ClientSocket() {
    if (fd_ >= 0) ::close(fd_);
  }

  // Whether the connection was established.
  bool connected() const { return fd_ >= 0; }

  // Writes all of `bytes`; false if the connection failed.
  bool send_bytes(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(std::size_t(n));
    }
    return true;
  }

  // Reads one framed Response; nullopt on EOF, error or timeout.
  std::optional<Response> read_response() {
    unsigned char hdr[4];
    if (!read_exactly(hdr, 4)) return std::nullopt;
    std::uint32_t n = (std::uint32_t(hdr[0]) << 24) | (std::uint32_t(hdr[1]) << 16) | (std::uint32_t(hdr[2]) << 8) |
                      std::uint32_t(hdr[3]);
    std::string body(n, '\0');
    if (!read_exactly(body.data(), n)) return std::nullopt;
    Response resp;
    if (!resp.ParseFromString(body)) return std::nullopt;
    return resp;
  }

  // Sends `req` and reads its response.
  std::optional<Response> call(const Request& req) {
    if (!connected() || !send_bytes(frame(req))) return std::nullopt;
    return read_response();
  }

  // Whether the server closed this connection within `within` (anything it
  // sends before that is read and dropped).
  bool closed_by_server(std::chrono::milliseconds within) {
    auto deadline = Clock::now() + within;
    char buf[256];
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      int r = ::poll(&p, 1, int(left.count()));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return true;
    }
  }

  // Whether the connection is still open right now (no EOF pending).
  bool still_open() {
    char c;
    ssize_t n = ::recv(fd_, &c, 1, MSG_DONTWAIT | MSG_PEEK);
    return n > 0 || (n < 0 && errno == EAGAIN);
  }

 private:
  bool read_exactly(void* p, std::size_t n) {
    auto* out = static_cast<char*>(p);
    while (n) {
      ssize_t r = ::recv(fd_, out, n, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      out += r;
      n -= std::size_t(r);
    }
    return true;
  }

  int fd_ = -1;
};

class ControlServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/wownet-control-test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr) << std::strerror(errno);
    dir_ = tmpl;
    path_ = dir_ + "/hostd.sock";
  }

  void TearDown() override {
    if (thread_.joinable()) {
      boost::asio::post(io_, [this] { server_->close(); });
      work_.reset();
      io_.stop();
      thread_.join();
    }
    server_.reset();
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }

  // Far more than a Unix socket buffers: a client that does not read stalls the answer.
  static constexpr std::size_t kBigReply = 8 << 20;

  // Starts a server on path_ whose handler answers a status with version
  // "test" and a list with kBigReply bytes.
  void start(const ControlServer::Options& options) {
    server_ = std::make_unique<ControlServer>(
        io_,
        [this](const Request& req, Response& resp) {
          ++handled_;
          resp.set_code(wownet::control::OK);
          if (req.has_status()) resp.mutable_status()->set_version("test");
          if (req.has_list()) resp.set_message(std::string(kBigReply, 'x'));
        },
        options);
    ASSERT_FALSE(server_->open(path_));
    thread_ = std::thread([this] { io_.run(); });
  }

  // The server's live session count, read on its own thread.
  std::size_t sessions() {
    std::promise<std::size_t> p;
    auto f = p.get_future();
    boost::asio::post(io_, [&] { p.set_value(server_->session_count()); });
    return f.get();
  }

  // Waits (up to a generous bound) until the server holds `n` sessions.
  bool wait_for_sessions(std::size_t n) {
    auto deadline = Clock::now() + 5s;
    while (Clock::now() < deadline) {
      if (sessions() == n) return true;
      std::this_thread::sleep_for(1ms);
    }
    return false;
  }

  // A fresh client asks for status; returns how long the answer took, or
  // nullopt if none came.
  std::optional<Clock::duration> timed_status() {
    auto t0 = Clock::now();
    ClientSocket c(path_);
    auto resp = c.call(status_request());
    if (!resp || !resp->has_status() || resp->status().version() != "test") return std::nullopt;
    return Clock::now() - t0;
  }

  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_{io_.get_executor()};
  std::unique_ptr<ControlServer> server_;
  std::thread thread_;
  std::string dir_, path_;
  std::atomic<int> handled_{0};
};

// Options with long timeouts (60 s), then as `change` sets them.
ControlServer::Options long_timeouts(const std::function<void(ControlServer::Options&)>& change = {}) {
  ControlServer::Options o;
  o.idle_timeout = 60s;
  o.request_timeout = 60s;
  if (change) change(o);
  return o;
}

// The attack: more idle connections than sessions, held open. Timeouts are
// long, so only eviction of idle sessions can let the admin in.
TEST_F(ControlServerTest, ThousandIdleConnectionsDoNotLockOutAFreshClient) {
  start(long_timeouts());
  std::size_t n = usable_descriptors(1000);
  if (n < 1000) std::printf("note: RLIMIT_NOFILE allows only %zu idle connections\n", n);
  ASSERT_GT(n, 2 * ControlServer::Options{}.max_sessions);
  std::vector<ClientSocket> idle;
  idle.reserve(n);
  for (std::size_t i = 0; i < n; ++i) idle.emplace_back(path_);
  std::size_t connected = 0;
  for (auto& c : idle) connected += c.connected();
  EXPECT_EQ(connected, n);

  for (int round = 0; round < 5; ++round) {
    auto took = timed_status();
    ASSERT_TRUE(took) << "round " << round << ": no answer";
    EXPECT_LT(*took, 2s) << "round " << round;
  }
  EXPECT_LE(sessions(), ControlServer::Options{}.max_sessions + 1);
}

// A flood that goes on while the admin asks: 1000 connections held open at
// all times, the oldest replaced by a new one as fast as the attacker can.
TEST_F(ControlServerTest, ChurningIdleFloodDoesNotLockOutAFreshClient) {
  start(long_timeouts());
  std::size_t n = usable_descriptors(1000);
  ASSERT_GT(n, 2 * ControlServer::Options{}.max_sessions);
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> opened{0};
  std::thread flood([&] {
    std::deque<ClientSocket> idle;
    while (!stop) {
      if (idle.size() == n) idle.pop_front();
      idle.emplace_back(path_);
      ++opened;
    }
  });
  while (opened < n) std::this_thread::sleep_for(1ms);
  for (int round = 0; round < 20; ++round) {
    auto took = timed_status();
    EXPECT_TRUE(took) << "round " << round << ": no answer";
    if (took) {
      EXPECT_LT(*took, 2s) << "round " << round;
    }
  }
  std::size_t during = opened;
  stop = true;
  flood.join();
  std::printf("note: 20 answers while the flood opened %zu connections\n", during);
  EXPECT_LE(sessions(), ControlServer::Options{}.max_sessions + 1);
}

// Slow-loris clients dribble a request byte by byte: they are evicted for new
// connections, and each is closed once its request deadline passes.
TEST_F(ControlServerTest, SlowLorisClientsDoNotLockOutAFreshClient) {
  auto options = long_timeouts();
  options.request_timeout = 1s;
  start(options);
  std::size_t n = 2 * options.max_sessions;
  std::vector<ClientSocket> loris;
  for (std::size_t i = 0; i < n; ++i) {
    loris.emplace_back(path_);
    ASSERT_TRUE(loris.back().connected());
    ASSERT_TRUE(loris.back().send_bytes(std::string_view("\0", 1)));  // of a 100-byte request's header
  }
  std::atomic<bool> stop{false};
  std::thread dribbler([&] {
    // One byte per connection every 100 ms: header "\0\0\0d", then body bytes.
    for (int step = 1; !stop && step < 60; ++step) {
      char byte = step < 3 ? '\0' : step == 3 ? 'd' : 'x';
      for (auto& c : loris) (void)c.send_bytes(std::string_view(&byte, 1));
      std::this_thread::sleep_for(100ms);
    }
  });
  std::this_thread::sleep_for(250ms);  // let the dribble start; not a timing assertion
  for (int round = 0; round < 3; ++round) {
    auto took = timed_status();
    EXPECT_TRUE(took) << "round " << round << ": no answer";
    if (took) {
      EXPECT_LT(*took, 2s) << "round " << round;
    }
  }
  // Every slow client is gone by its deadline (1 s) plus a generous margin.
  std::size_t closed = 0;
  for (auto& c : loris) closed += c.closed_by_server(5s);
  stop = true;
  dribbler.join();
  EXPECT_EQ(closed, n);
}

// A request must arrive whole within request_timeout of its first byte, even
// with free slots and bytes still trickling in.
TEST_F(ControlServerTest, PartialRequestIsCutOffAtItsDeadline) {
  start(long_timeouts([](auto& o) { o.request_timeout = 300ms; }));
  ClientSocket c(path_);
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send_bytes(std::string_view("\0\0\0\x40", 4)));
  auto t0 = Clock::now();
  bool closed = false;
  for (int i = 0; i < 50 && !closed; ++i) {  // a byte every 100 ms for up to 5 s
    (void)c.send_bytes("x");
    closed = c.closed_by_server(100ms);
  }
  EXPECT_TRUE(closed) << "still open after " << (Clock::now() - t0) / 1ms << " ms";
}

// A session with nothing under way is closed after idle_timeout: before its
// first request and after an answered one.
TEST_F(ControlServerTest, IdleSessionIsClosedAfterIdleTimeout) {
  start(long_timeouts([](auto& o) { o.idle_timeout = 200ms; }));
  ClientSocket silent(path_);
  ASSERT_TRUE(silent.connected());
  ClientSocket served(path_);
  auto resp = served.call(status_request());
  ASSERT_TRUE(resp);
  EXPECT_TRUE(silent.closed_by_server(5s));
  EXPECT_TRUE(served.closed_by_server(5s));
}

// At the session limit, the session idle longest makes room for a new one;
// the others stay.
TEST_F(ControlServerTest, OldestIdleSessionIsEvictedForANewConnection) {
  auto options = long_timeouts();
  options.max_sessions = 4;
  start(options);
  std::vector<ClientSocket> idle;
  for (std::size_t i = 0; i < options.max_sessions; ++i) {
    idle.emplace_back(path_);
    ASSERT_TRUE(idle.back().connected());
    ASSERT_TRUE(wait_for_sessions(i + 1));
  }
  auto took = timed_status();
  ASSERT_TRUE(took);
  EXPECT_LT(*took, 2s);
  EXPECT_TRUE(idle[0].closed_by_server(2s));
  for (std::size_t i = 1; i < idle.size(); ++i) EXPECT_TRUE(idle[i].still_open()) << "session " << i;
}

// Sessions whose answers are stuck (their clients do not read) cannot be
// evicted; the slot kept beyond max_sessions still serves a new client, and
// accepting resumes as soon as that one falls idle.
TEST_F(ControlServerTest, KeptSlotServesNewClientsWhenNoSessionCanBeEvicted) {
  auto options = long_timeouts();
  options.max_sessions = 2;
  start(options);
  Request list;
  list.mutable_list();
  std::vector<ClientSocket> stalled;
  for (int i = 0; i < 2; ++i) {
    stalled.emplace_back(path_);
    ASSERT_TRUE(stalled.back().send_bytes(frame(list)));
  }
  auto deadline = Clock::now() + 5s;
  while (handled_ < 2 && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(handled_, 2);
  for (int round = 0; round < 3; ++round) {
    auto took = timed_status();
    ASSERT_TRUE(took) << "round " << round << ": no answer";
    EXPECT_LT(*took, 2s) << "round " << round;
  }
  for (auto& c : stalled) EXPECT_TRUE(c.still_open());
  EXPECT_LE(sessions(), options.max_sessions + 1);
}

// An answer the client does not read is abandoned at the request deadline.
TEST_F(ControlServerTest, UnreadAnswerIsCutOffAtTheRequestDeadline) {
  start(long_timeouts([](auto& o) { o.request_timeout = 300ms; }));
  ClientSocket c(path_);
  Request list;
  list.mutable_list();
  ASSERT_TRUE(c.send_bytes(frame(list)));
  ASSERT_TRUE(wait_for_sessions(1));
  EXPECT_TRUE(wait_for_sessions(0));
}

// One connection may carry several requests, even written back to back.
TEST_F(ControlServerTest, SessionAnswersPipelinedRequestsInOrder) {
  start(long_timeouts());
  ClientSocket c(path_);
  ASSERT_TRUE(c.connected());
  Request leases;
  leases.mutable_leases();
  ASSERT_TRUE(c.send_bytes(frame(status_request()) + frame(leases) + frame(status_request())));
  auto a = c.read_response();
  auto b = c.read_response();
  auto d = c.read_response();
  ASSERT_TRUE(a && b && d);
  EXPECT_TRUE(a->has_status());
  EXPECT_FALSE(b->has_status());
  EXPECT_TRUE(d->has_status());
}

// A request announcing more than 1 MiB is refused with a reply, then closed.
TEST_F(ControlServerTest, OversizedRequestIsRefused) {
  start(long_timeouts());
  ClientSocket c(path_);
  ASSERT_TRUE(c.send_bytes(std::string_view("\x7f\xff\xff\xff", 4)));
  auto resp = c.read_response();
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->code(), wownet::control::INVALID_ARGUMENT);
  EXPECT_TRUE(c.closed_by_server(2s));
}

// Out of descriptors, accept fails (EMFILE) and the connection waits in the
// backlog: the server retries after a pause instead of spinning on the
// readable listener, and answers once descriptors are free again.
TEST_F(ControlServerTest, AcceptWithoutDescriptorsBacksOffAndRecovers) {
  start(long_timeouts());
  ClientSocket c(path_);  // connected before the table fills; accepted later
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(wait_for_sessions(1));
  ASSERT_TRUE(c.call(status_request()));  // the session is served, then idle

  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit low = saved;
  low.rlim_cur = 256;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<int> filler;
  for (int fd; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) filler.push_back(fd);
  ASSERT_EQ(errno, EMFILE);

  // A new client, created by freeing one filler descriptor for its socket.
  ::close(filler.back());
  filler.pop_back();
  ClientSocket late(path_);
  ASSERT_TRUE(late.connected());
  ASSERT_TRUE(late.send_bytes(frame(status_request())));

  rusage before{}, after{};
  ::getrusage(RUSAGE_SELF, &before);
  auto t0 = Clock::now();
  std::this_thread::sleep_for(500ms);  // the server meets EMFILE meanwhile
  ::getrusage(RUSAGE_SELF, &after);
  auto cpu = [](const rusage& r) {
    return std::chrono::seconds(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
           std::chrono::microseconds(r.ru_utime.tv_usec + r.ru_stime.tv_usec);
  };
  auto wall = Clock::now() - t0;
  // A spinning accept loop burns a whole core; backing off burns next to nothing.
  EXPECT_LT(cpu(after) - cpu(before), wall / 4);

  for (int fd : filler) ::close(fd);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  auto t1 = Clock::now();
  auto resp = late.read_response();
  ASSERT_TRUE(resp);
  EXPECT_TRUE(resp->has_status());
  EXPECT_LT(Clock::now() - t1, 2s);
}

}  // namespace
}  // namespace wownet::io
