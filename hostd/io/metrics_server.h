// hostd's Prometheus endpoint: HTTP/1.1 (Boost.Beast) on a TCP address,
// on the daemon's io_context. GET /metrics answers with the text that the
// producer returns (format 0.0.4); any other request gets 404.
//
// No client can hurt the daemon:
// - a request (line and headers) larger than max_request_bytes, a request
//   with a body, or one that does not parse gets a 400 (431 when too
//   large) and the connection is closed;
// - a request must arrive whole within read_timeout (also the idle limit
//   of a kept-alive connection), and its answer be taken within
//   write_timeout;
// - at most max_connections are open; a connection beyond them is closed
//   at once (counted as refused);
// - everything runs asynchronously: no call blocks the data path.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include "io/asio.h"

#include "core/types.h"

namespace wownet::io {

class MetricsServer {
 public:
  using Producer = std::function<std::string()>;

  struct Options {
    std::size_t max_request_bytes = 8192;  // request line and headers
    std::chrono::steady_clock::duration read_timeout = std::chrono::seconds(10);
    std::chrono::steady_clock::duration write_timeout = std::chrono::seconds(10);
    std::size_t max_connections = 8;
    // Pause before accepting again after accept failed (EMFILE, ENFILE, ENOBUFS).
    std::chrono::steady_clock::duration accept_backoff = std::chrono::milliseconds(100);
  };

  struct Counters {
    std::uint64_t requests = 0;      // answered 200
    std::uint64_t bad_requests = 0;  // malformed, oversized or with a body: 400/431 and closed
    std::uint64_t not_found = 0;     // another path or method: 404
    std::uint64_t refused = 0;       // closed at once, at max_connections
    std::uint64_t timeouts = 0;      // closed for read_timeout or write_timeout
    // Calls f(name, value) for every counter.
    template <typename F>
    void visit(F&& f) const {
      f("requests", requests), f("bad_requests", bad_requests), f("not_found", not_found);
      f("refused", refused), f("timeouts", timeouts);
    }
  };

  // Serves `producer`'s text (called on io's thread, once per request).
  MetricsServer(boost::asio::io_context& io, Producer producer, const Options& options);
  MetricsServer(boost::asio::io_context& io, Producer producer);
  // Closes the listener and every connection.
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Listens on address:port (port 0: any; see port()).
  std::error_code open(Ipv4Addr address, std::uint16_t port);
  // Stops listening and closes every connection.
  void close();
  // The port listened on; 0 when closed.
  std::uint16_t port() const;
  std::size_t connection_count() const;
  const Counters& counters() const;

  struct State;  // shared with the connections; metrics_server.cpp

 private:
  void accept();

  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer backoff_;
  std::shared_ptr<State> state_;
};

}  // namespace wownet::io
