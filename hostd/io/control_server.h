// hostd's control socket: a Unix stream socket, root-only, carrying
// length-prefixed protobuf Request/Response pairs (proto/control.proto).
#pragma once

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

  ControlServer(boost::asio::io_context& io, Handler handler);
  // Listens on `path` (mode 0600). A stale socket file is replaced; a live
  // one (another hostd answers) is an error.
  std::error_code open(const std::string& path);
  void close();

 private:
  void accept();

  boost::asio::io_context& io_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  boost::asio::steady_timer backoff_;
  std::shared_ptr<int> sessions_ = std::make_shared<int>(0);  // live sessions
  Handler handler_;
  std::string path_;
};

}  // namespace wownet::io
