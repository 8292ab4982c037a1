// hostd's control socket: a Unix stream socket, root-only, carrying
// length-prefixed protobuf Request/Response pairs (proto/control.proto).
//
// No client can lock the admin out:
// - a session with nothing under way (no request yet, or the last one
//   answered) is closed after idle_timeout;
// - a request must arrive whole within request_timeout of its first byte,
//   and its answer be written within request_timeout of being ready;
// - at max_sessions a new connection evicts the session idle longest, else
//   the one whose partial request is oldest. Sessions being answered, or whose
//   request waits unread in the socket, are not evicted;
// - when none can be evicted, one slot beyond max_sessions takes the new
//   connection, and accepting pauses until a session ends or can be evicted
//   (further connections wait in the listen backlog).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include "io/asio.h"

#include "proto/control.pb.h"

namespace wownet::io {

class ControlServer {
 public:
  using Handler = std::function<void(const wownet::control::Request&, wownet::control::Response&)>;

  struct Options {
    // A session with no request under way (none yet, or the last one
    // answered) is closed after this long.
    std::chrono::steady_clock::duration idle_timeout = std::chrono::seconds(5);
    // For a whole request to arrive once its first byte has, and again for
    // its answer to be written (a client must read it).
    std::chrono::steady_clock::duration request_timeout = std::chrono::seconds(10);
    // Sessions at once, not counting the one slot kept for a new connection.
    std::size_t max_sessions = 16;
    // Pause before accepting again after accept failed (EMFILE, ENFILE, ENOBUFS).
    std::chrono::steady_clock::duration accept_backoff = std::chrono::milliseconds(100);
  };

  // Serves requests on `io` through `handler` (called on io's thread), with
  // the default Options.
  ControlServer(boost::asio::io_context& io, Handler handler);
  // The same with the given limits and timeouts.
  ControlServer(boost::asio::io_context& io, Handler handler, const Options& options);
  // Closes the socket and every session.
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Listens on `path` (mode 0600). A stale socket file is replaced; a live
  // one (another hostd answers) is an error.
  std::error_code open(const std::string& path);
  // Stops listening, removes the socket file and ends every session.
  void close();
  // Sessions open now (for tests and status).
  std::size_t session_count() const;

  struct Sessions;  // the live sessions, shared with them; control_server.cpp

 private:
  void accept();
  void on_accept(const boost::system::error_code& ec, boost::asio::local::stream_protocol::socket socket);
  void on_session_change();

  boost::asio::io_context& io_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  boost::asio::steady_timer backoff_;
  std::shared_ptr<Sessions> sessions_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // accept handlers that outlive us see it expire
  std::string path_;
  bool accepting_ = false;  // an async_accept or its backoff is pending
};

}  // namespace wownet::io
