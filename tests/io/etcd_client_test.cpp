// io/etcd_client against a scripted HTTP server on 127.0.0.1 (no etcd):
// keep-alive, failover, timeouts and every kind of bad answer end each
// call exactly once with the right error (label: unit).
#include "io/etcd_client.h"

#include <gtest/gtest.h>

#include <deque>
#include <memory>

namespace wownet::io {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

const std::string kHeader = R"("header":{"cluster_id":"1","member_id":"2","revision":"9","raft_term":"2"})";

std::string http_answer(const std::string& body, unsigned status = 200, bool close = false) {
  return "HTTP/1.1 " + std::to_string(status) +
         " X\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         (close ? "\r\nConnection: close" : "") + "\r\n\r\n" + body;
}

std::string chunk(const std::string& data) {
  char size[16];
  std::snprintf(size, sizeof size, "%zx", data.size());
  return std::string(size) + "\r\n" + data + "\r\n";
}

// Answers each request with the next scripted step.
class ScriptedServer {
 public:
  struct Step {
    enum class Kind { Answer, Hang, Close, AnswerThenClose } kind = Kind::Answer;
    std::string bytes;
  };
  explicit ScriptedServer(asio::io_context& io) : acceptor_(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0)) {
    accept();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()); }
  void add(Step::Kind kind, std::string bytes = {}) { steps_.push_back({kind, std::move(bytes)}); }
  int accepted = 0;
  std::vector<std::string> targets, bodies;

 private:
  struct Conn {
    explicit Conn(asio::io_context& io) : socket(io) {}
    tcp::socket socket;
    std::string in;
    char buf[4096];
  };
  void accept() {
    auto c = std::make_shared<Conn>(static_cast<asio::io_context&>(acceptor_.get_executor().context()));
    acceptor_.async_accept(c->socket, [this, c](const boost::system::error_code& ec) {
      if (ec) return;
      ++accepted;
      read(c);
      accept();
    });
  }
  void read(const std::shared_ptr<Conn>& c) {
    c->socket.async_read_some(asio::buffer(c->buf), [this, c](const boost::system::error_code& ec, std::size_t n) {
      if (ec) return;
      c->in.append(c->buf, n);
      auto end = c->in.find("\r\n\r\n");
      if (end == std::string::npos) return read(c);
      auto at = c->in.find("Content-Length: ");
      std::size_t length = at == std::string::npos ? 0 : std::stoul(c->in.substr(at + 16));
      if (c->in.size() < end + 4 + length) return read(c);
      targets.push_back(c->in.substr(5, c->in.find(' ', 5) - 5));
      bodies.push_back(c->in.substr(end + 4, length));
      c->in.erase(0, end + 4 + length);
      Step step = steps_.empty() ? Step{Step::Kind::Hang, {}} : steps_.front();
      if (!steps_.empty()) steps_.pop_front();
      switch (step.kind) {
        case Step::Kind::Hang: held_.push_back(c); return;
        case Step::Kind::Close: c->socket.close(); return;
        case Step::Kind::Answer:
        case Step::Kind::AnswerThenClose:
          asio::async_write(c->socket, asio::buffer(step.bytes),
                            [this, c, close = step.kind == Step::Kind::AnswerThenClose](
                                const boost::system::error_code& wec, std::size_t) {
                              if (wec) return;
                              if (close) {
                                c->socket.close();
                              } else {
                                read(c);
                              }
                            });
          return;
      }
    });
  }
  tcp::acceptor acceptor_;
  std::deque<Step> steps_;
  std::vector<std::shared_ptr<Conn>> held_;
};

using Kind = ScriptedServer::Step::Kind;

class EtcdClientTest : public ::testing::Test {
 protected:
  std::unique_ptr<EtcdClient> make(std::vector<std::string> endpoints, std::chrono::milliseconds timeout = 2000ms) {
    EtcdOptions o;
    o.endpoints = std::move(endpoints);
    o.timeout = timeout;
    std::string error;
    auto c = EtcdClient::create(io_, o, error);
    EXPECT_TRUE(c) << error;
    return c;
  }
  // Runs the loop until `done` or 5 s.
  void run_until(const bool& done) {
    const auto stop = std::chrono::steady_clock::now() + 5s;
    while (!done && std::chrono::steady_clock::now() < stop) io_.run_for(10ms);
    ASSERT_TRUE(done) << "no answer within 5 s";
  }
  // One range call: its error.
  EtcdError range(EtcdClient& c, etcdserverpb::RangeResponse* out = nullptr) {
    bool done = false;
    int calls = 0;
    EtcdError result;
    etcdserverpb::RangeRequest r;
    r.set_key("a");
    c.range(r, [&](const EtcdError& e, etcdserverpb::RangeResponse&& a) {
      ++calls;
      done = true;
      result = e;
      if (out) *out = a;
    });
    run_until(done);
    io_.run_for(20ms);
    EXPECT_EQ(calls, 1);
    return result;
  }
  // A port on 127.0.0.1 where nothing listens.
  static std::string dead_url() {
    asio::io_context io;
    tcp::acceptor a(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    return "http://127.0.0.1:" + std::to_string(a.local_endpoint().port());
  }
  asio::io_context io_;
};

TEST_F(EtcdClientTest, AnswersAndKeepsTheConnectionAlive) {
  ScriptedServer s(io_);
  s.add(Kind::Answer, http_answer("{" + kHeader + R"(,"kvs":[{"key":"YQ==","value":"Yg==","mod_revision":"4"}]})"));
  s.add(Kind::Answer, http_answer("{" + kHeader + "}"));
  auto c = make({s.url()});
  etcdserverpb::RangeResponse r;
  EXPECT_FALSE(range(*c, &r));
  ASSERT_EQ(r.kvs_size(), 1);
  EXPECT_EQ(r.kvs(0).mod_revision(), 4);
  EXPECT_FALSE(range(*c));
  EXPECT_EQ(s.accepted, 1);
  EXPECT_EQ(s.targets, (std::vector<std::string>{"/v3/kv/range", "/v3/kv/range"}));
  EXPECT_EQ(s.bodies[0], R"({"key":"YQ=="})");
}

TEST_F(EtcdClientTest, ReportsBadAnswers) {
  ScriptedServer s(io_);
  s.add(Kind::Answer, http_answer("{\"header\":"));
  s.add(Kind::Answer, http_answer(R"({"error":"etcdserver: request timed out","code":14})", 503));
  s.add(Kind::Answer, http_answer("oops", 500));
  s.add(Kind::Answer, http_answer(R"({"header":{},"count":{"a":1}})"));
  s.add(Kind::AnswerThenClose, "SSH-2.0-OpenSSH\r\n\r\n");
  s.add(Kind::Close);
  auto c = make({s.url()});
  EXPECT_EQ(range(*c).kind, EtcdErrorKind::Malformed);
  EtcdError e = range(*c);
  EXPECT_EQ(e.kind, EtcdErrorKind::Gateway);
  EXPECT_EQ(e.grpc_code, 14);
  EXPECT_EQ(range(*c).kind, EtcdErrorKind::Http);
  EXPECT_EQ(range(*c).kind, EtcdErrorKind::Malformed);
  EXPECT_EQ(range(*c).kind, EtcdErrorKind::Malformed);
  // Closed by the server before any answer, on a fresh connection.
  EXPECT_EQ(range(*c).kind, EtcdErrorKind::ConnectionLost);
  EXPECT_EQ(c->counters().failures, 6u);
}

TEST_F(EtcdClientTest, RetriesOnceWhenAKeptAliveConnectionWasClosed) {
  ScriptedServer s(io_);
  s.add(Kind::Answer, http_answer("{" + kHeader + "}"));
  s.add(Kind::Close);  // the kept-alive connection dies with the next request
  s.add(Kind::Answer, http_answer("{" + kHeader + "}"));
  auto c = make({s.url()});
  EXPECT_FALSE(range(*c));
  EXPECT_FALSE(range(*c));
  EXPECT_EQ(s.accepted, 2);
}

TEST_F(EtcdClientTest, TimesOutWhenTheServerSaysNothing) {
  ScriptedServer s(io_);
  s.add(Kind::Hang);
  auto c = make({s.url()}, 150ms);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(range(*c).kind, EtcdErrorKind::Timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  EXPECT_EQ(c->counters().timeouts, 1u);
}

TEST_F(EtcdClientTest, QueuedCallsTimeOutToo) {
  ScriptedServer s(io_);
  EtcdOptions o;
  o.endpoints = {s.url()};
  o.timeout = 150ms;
  o.max_connections = 1;
  std::string error;
  auto c = EtcdClient::create(io_, o, error);
  ASSERT_TRUE(c);
  int answered = 0, timeouts = 0;
  for (int i = 0; i < 3; ++i) {
    c->put(etcdserverpb::PutRequest{}, [&](const EtcdError& e, etcdserverpb::PutResponse&&) {
      ++answered;
      timeouts += e.kind == EtcdErrorKind::Timeout;
    });
  }
  const auto stop = std::chrono::steady_clock::now() + 3s;
  while (answered < 3 && std::chrono::steady_clock::now() < stop) io_.run_for(10ms);
  EXPECT_EQ(answered, 3);
  EXPECT_EQ(timeouts, 3);
}

TEST_F(EtcdClientTest, FailsOverToTheNextEndpoint) {
  ScriptedServer s(io_);
  s.add(Kind::Answer, http_answer("{" + kHeader + "}"));
  auto c = make({dead_url(), s.url()});
  EXPECT_FALSE(range(*c));
  EXPECT_EQ(c->counters().failovers, 1u);
  EXPECT_EQ(c->current_endpoint(), s.url());
}

TEST_F(EtcdClientTest, NoEndpointReachable) {
  auto c = make({dead_url(), dead_url()});
  EtcdError e = range(*c);
  EXPECT_EQ(e.kind, EtcdErrorKind::Connect);
  EXPECT_NE(e.message.find("connect"), std::string::npos) << e.message;
}

TEST_F(EtcdClientTest, DestroyedWithCallsOpenCallsNothing) {
  ScriptedServer s(io_);
  s.add(Kind::Hang);
  auto c = make({s.url()});
  bool called = false;
  c->range(etcdserverpb::RangeRequest{}, [&](const EtcdError&, etcdserverpb::RangeResponse&&) { called = true; });
  io_.run_for(50ms);
  c.reset();
  io_.run_for(100ms);
  EXPECT_FALSE(called);
}

TEST_F(EtcdClientTest, RefusesBadOptions) {
  std::string error;
  EtcdOptions o;
  EXPECT_FALSE(EtcdClient::create(io_, o, error));
  o.endpoints = {"tcp://x:1"};
  EXPECT_FALSE(EtcdClient::create(io_, o, error));
  o.endpoints = {"https://127.0.0.1:1"};
  o.ca = "/nonexistent/ca.pem";
  EXPECT_FALSE(EtcdClient::create(io_, o, error));
  EXPECT_NE(error.find("/nonexistent/ca.pem"), std::string::npos) << error;
  o.ca.clear();
  o.cert = "/x.pem";
  EXPECT_FALSE(EtcdClient::create(io_, o, error));
}

TEST_F(EtcdClientTest, WatchDeliversLinesThenReportsTheEnd) {
  ScriptedServer s(io_);
  const std::string created = R"({"result":{)" + kHeader +
                              R"(,"created":true}})"
                              "\n";
  const std::string event = R"({"result":{)" + kHeader +
                            R"(,"events":[{"kv":{"key":"YQ==","mod_revision":"9","value":"Yg=="}}]}})"
                            "\n";
  // The event arrives split over two chunks.
  s.add(Kind::AnswerThenClose, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(created) +
                                   chunk(event.substr(0, 30)) + chunk(event.substr(30)) + "0\r\n\r\n");
  auto c = make({s.url()});
  std::vector<etcdserverpb::WatchResponse> got;
  EtcdError last;
  bool ended = false;
  etcdserverpb::WatchCreateRequest r;
  r.set_key("a");
  auto w = c->watch(r, [&](const EtcdError& e, const etcdserverpb::WatchResponse& m) {
    if (e) {
      last = e;
      ended = true;
    } else {
      got.push_back(m);
    }
  });
  run_until(ended);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_TRUE(got[0].created());
  ASSERT_EQ(got[1].events_size(), 1);
  EXPECT_EQ(got[1].events(0).kv().value(), "b");
  EXPECT_EQ(last.kind, EtcdErrorKind::ConnectionLost);
  EXPECT_EQ(s.bodies[0], R"({"create_request":{"key":"YQ=="}})");
}

TEST_F(EtcdClientTest, WatchReportsMalformedLinesAndHttpErrors) {
  ScriptedServer s(io_);
  s.add(Kind::Answer, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk("{\"result\": 5}\n"));
  auto c = make({s.url()});
  EtcdError last;
  bool ended = false;
  auto w = c->watch(etcdserverpb::WatchCreateRequest{}, [&](const EtcdError& e, const etcdserverpb::WatchResponse&) {
    if (e) last = e, ended = true;
  });
  run_until(ended);
  EXPECT_EQ(last.kind, EtcdErrorKind::Malformed);

  ScriptedServer s2(io_);
  s2.add(Kind::Answer, http_answer("Not Found", 404));
  auto c2 = make({s2.url()});
  ended = false;
  auto w2 = c2->watch(etcdserverpb::WatchCreateRequest{}, [&](const EtcdError& e, const etcdserverpb::WatchResponse&) {
    if (e) last = e, ended = true;
  });
  run_until(ended);
  EXPECT_EQ(last.kind, EtcdErrorKind::Http) << last.message;

  // No answer header: a timeout; a dropped watch calls nothing more.
  ScriptedServer s3(io_);
  s3.add(Kind::Hang);
  auto c3 = make({s3.url()}, 100ms);
  ended = false;
  auto w3 = c3->watch(etcdserverpb::WatchCreateRequest{}, [&](const EtcdError& e, const etcdserverpb::WatchResponse&) {
    if (e) last = e, ended = true;
  });
  run_until(ended);
  EXPECT_EQ(last.kind, EtcdErrorKind::Timeout);
}

}  // namespace
}  // namespace wownet::io
