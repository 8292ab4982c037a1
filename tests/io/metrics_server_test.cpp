// io/metrics_server over 127.0.0.1: answers, 404s, malformed and oversized
// requests, the connection cap and the read timeout (label: unit).
#include "io/metrics_server.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

namespace wownet::io {
namespace {

namespace asio = boost::asio;
using Tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// A blocking client with a 5 s receive timeout, so that a test fails
// rather than hangs.
class Client {
 public:
  explicit Client(std::uint16_t port) : socket_(io_) {
    socket_.connect(Tcp::endpoint(asio::ip::address_v4::loopback(), port));
    timeval tv{5, 0};
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  void send(const std::string& data) { asio::write(socket_, asio::buffer(data)); }
  // One response: head and Content-Length body; empty if the server closed first.
  std::string response() {
    std::string head;
    while (head.find("\r\n\r\n") == std::string::npos) {
      const std::string more = read_some();
      if (more.empty()) return head;
      head += more;
    }
    const std::size_t end = head.find("\r\n\r\n") + 4;
    std::string rest = head.substr(end);
    head.resize(end);
    std::size_t length = 0;
    if (const auto at = head.find("Content-Length: "); at != std::string::npos)
      length = std::stoul(head.substr(at + 16));
    while (rest.size() < length) {
      const std::string more = read_some();
      if (more.empty()) break;
      rest += more;
    }
    return head + rest;
  }
  // True if the server closes the connection (EOF or reset) within the timeout.
  bool closed_by_server() {
    for (;;) {
      char buf[4096];
      boost::system::error_code ec;
      const std::size_t n = socket_.read_some(asio::buffer(buf), ec);
      if (ec == asio::error::eof || ec == asio::error::connection_reset) return true;
      if (ec) return false;  // timeout
      (void)n;
    }
  }

 private:
  std::string read_some() {
    char buf[4096];
    boost::system::error_code ec;
    const std::size_t n = socket_.read_some(asio::buffer(buf), ec);
    return ec ? std::string() : std::string(buf, n);
  }
  asio::io_context io_;
  Tcp::socket socket_;
};

class MetricsServerTest : public ::testing::Test {
 protected:
  void start(MetricsServer::Options options = {}) {
    server_ = std::make_unique<MetricsServer>(
        io_, [this] { return "wownet_test_total " + std::to_string(++produced_) + "\n"; }, options);
    ASSERT_FALSE(server_->open(Ipv4Addr::from_octets(127, 0, 0, 1), 0));
    port_ = server_->port();
    ASSERT_NE(port_, 0);
    work_.emplace(io_.get_executor());
    thread_ = std::thread([this] { io_.run(); });
  }
  // Stops the io thread; the server's counters may be read after this.
  void stop() {
    if (!thread_.joinable()) return;
    asio::post(io_, [this] { server_->close(); });
    work_.reset();
    thread_.join();
  }
  void TearDown() override {
    stop();
    server_.reset();
  }

  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::unique_ptr<MetricsServer> server_;
  std::thread thread_;
  std::atomic<int> produced_{0};
  std::uint16_t port_ = 0;
};

TEST_F(MetricsServerTest, GetMetricsAnswersAndKeepsTheConnection) {
  start();
  Client c(port_);
  c.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string r = c.response();
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
  EXPECT_NE(r.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), std::string::npos) << r;
  EXPECT_EQ(r.substr(r.find("\r\n\r\n") + 4), "wownet_test_total 1\n");
  // Kept alive: a second request on the same connection, fresh text.
  c.send("GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n");
  r = c.response();
  EXPECT_EQ(r.substr(r.find("\r\n\r\n") + 4), "wownet_test_total 2\n");
  // HTTP/1.0 without keep-alive: answered, then closed.
  Client d(port_);
  d.send("GET /metrics HTTP/1.0\r\n\r\n");
  r = d.response();
  EXPECT_EQ(r.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << r;
  EXPECT_TRUE(d.closed_by_server());
  stop();
  EXPECT_EQ(server_->counters().requests, 3u);
}

TEST_F(MetricsServerTest, AnythingElseIs404) {
  start();
  Client c(port_);
  for (const char* req : {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET /metricsx HTTP/1.1\r\nHost: x\r\n\r\n",
                          "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
                          "DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n"}) {
    c.send(req);
    const std::string r = c.response();
    EXPECT_EQ(r.rfind("HTTP/1.1 404 Not Found\r\n", 0), 0u) << req << r;
  }
  stop();
  EXPECT_EQ(server_->counters().not_found, 4u);
  EXPECT_EQ(server_->counters().requests, 0u);
  EXPECT_EQ(produced_, 0);
}

TEST_F(MetricsServerTest, GarbageGets400AndIsClosedThenServingGoesOn) {
  start();
  {
    Client c(port_);
    c.send("\x16\x03\x01\x02 this is not HTTP\r\n\r\n");
    const std::string r = c.response();
    EXPECT_EQ(r.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << r;
    EXPECT_TRUE(c.closed_by_server());
  }
  {
    Client c(port_);  // a body is not expected either
    c.send("GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    const std::string r = c.response();
    EXPECT_EQ(r.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << r;
    EXPECT_TRUE(c.closed_by_server());
  }
  Client ok(port_);
  ok.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(ok.response().rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
  stop();
  EXPECT_EQ(server_->counters().bad_requests, 2u);
  EXPECT_EQ(server_->counters().requests, 1u);
}

TEST_F(MetricsServerTest, OversizedHeaderGets431AndIsClosed) {
  MetricsServer::Options o;
  o.max_request_bytes = 1024;
  start(o);
  Client c(port_);
  c.send("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Filler: " + std::string(4000, 'a') + "\r\n\r\n");
  const std::string r = c.response();
  EXPECT_EQ(r.rfind("HTTP/1.1 431 ", 0), 0u) << r;
  EXPECT_TRUE(c.closed_by_server());
  // Just under the limit is fine.
  Client d(port_);
  d.send("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Filler: " + std::string(900, 'a') + "\r\n\r\n");
  EXPECT_EQ(d.response().rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
  stop();
  EXPECT_EQ(server_->counters().bad_requests, 1u);
}

TEST_F(MetricsServerTest, ConnectionsBeyondTheCapAreClosed) {
  MetricsServer::Options o;
  o.max_connections = 2;
  start(o);
  auto a = std::make_unique<Client>(port_);
  auto b = std::make_unique<Client>(port_);
  a->send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");  // both are open and counted once answered
  b->send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_FALSE(a->response().empty());
  EXPECT_FALSE(b->response().empty());
  Client third(port_);
  EXPECT_TRUE(third.closed_by_server());
  a.reset();  // a slot frees up
  bool served = false;
  for (int i = 0; i < 50 && !served; ++i) {
    Client again(port_);
    again.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    served = again.response().rfind("HTTP/1.1 200 OK\r\n", 0) == 0;
    if (!served) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(served);
  stop();
  EXPECT_GE(server_->counters().refused, 1u);
}

TEST_F(MetricsServerTest, SlowRequestIsClosedAtTheReadTimeout) {
  MetricsServer::Options o;
  o.read_timeout = 200ms;
  start(o);
  Client c(port_);
  c.send("GET /metr");
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.closed_by_server());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  Client idle(port_);  // nothing at all: the same
  EXPECT_TRUE(idle.closed_by_server());
  stop();
  EXPECT_EQ(server_->counters().timeouts, 2u);
}

TEST_F(MetricsServerTest, OpenFailsOnAPortInUse) {
  start();
  asio::io_context io;
  MetricsServer other(io, [] { return std::string(); });
  EXPECT_TRUE(other.open(Ipv4Addr::from_octets(127, 0, 0, 1), port_));
  EXPECT_EQ(other.port(), 0);
}

}  // namespace
}  // namespace wownet::io
