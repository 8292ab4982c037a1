// Internals of EtcdClient shared by etcd_client.cpp and etcd_watch.cpp:
// one HTTP connection (plain or TLS), a job (a call or a watch) that owns
// one, and the client's core. Included by those two files only.
#pragma once

#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <deque>
#include <optional>

#include "io/etcd_client.h"

namespace wownet::io {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;

// A raw answer: status and body, or an error.
using RawHandler = std::function<void(const EtcdError&, unsigned status, std::string body)>;

namespace etcd_detail {

// Every pending operation's handler holds the connection (shared_ptr),
// since the stream and buffer it works on live here: a call that ends
// early (timeout) drops its own reference at once.
struct Connection {
  Connection(asio::io_context& io, std::size_t index, ssl::context* tls_context) : endpoint(index), resolver(io) {
    if (tls_context) {
      tls.emplace(io, *tls_context);
    } else {
      tcp_stream.emplace(io);
    }
  }
  std::size_t endpoint;  // index into Core::endpoints
  tcp::resolver resolver;
  std::optional<beast::tcp_stream> tcp_stream;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;

  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *tcp_stream; }
  template <typename F>
  void with_stream(F&& f) {
    if (tls) {
      f(*tls);
    } else {
      f(*tcp_stream);
    }
  }
  bool is_open() { return lowest().socket().is_open(); }
  void close() {
    resolver.cancel();
    beast::error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    lowest().socket().close(ignored);
  }
};

// A call or a watch: the connection it uses and how far it got.
struct Job {
  virtual ~Job() = default;
  // Ends the job silently (the client is going away).
  virtual void stop() {
    finished = true;
    if (conn) conn->close();
  }
  std::shared_ptr<Connection> conn;
  std::size_t tries = 0;  // endpoints that failed to connect
  bool finished = false;
};

}  // namespace etcd_detail

struct EtcdClient::Core : std::enable_shared_from_this<EtcdClient::Core> {
  explicit Core(asio::io_context& context) : io(context) {}

  // Connects `job` to the current endpoint, trying the next ones on
  // failure, then calls `then` (an error if none could be reached).
  void open(const std::shared_ptr<etcd_detail::Job>& job, std::function<void(const EtcdError&)> then);
  // Queues a POST of `body` to `target`; `done` gets the answer once.
  void submit(std::string target, std::string body, RawHandler done);
  void pump();
  void connect(const std::shared_ptr<etcd_detail::Job>& call);
  void send(const std::shared_ptr<etcd_detail::Job>& call);
  void finish(const std::shared_ptr<etcd_detail::Job>& call, const EtcdError& error, unsigned status, std::string body);
  void track(const std::shared_ptr<etcd_detail::Job>& job);
  void shutdown();

  asio::io_context& io;
  EtcdOptions options;
  std::vector<EtcdEndpoint> endpoints;
  std::optional<ssl::context> tls_context;
  std::size_t current = 0;  // the endpoint calls go to
  std::vector<std::shared_ptr<etcd_detail::Connection>> idle;
  std::size_t active = 0;
  std::deque<std::shared_ptr<etcd_detail::Job>> queue;
  std::vector<std::weak_ptr<etcd_detail::Job>> jobs;  // stopped at shutdown
  bool closed = false;
  EtcdCounters counters;
};

}  // namespace wownet::io
