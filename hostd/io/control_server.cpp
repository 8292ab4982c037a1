#include "io/control_server.h"

#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <memory>
#include <vector>

namespace wownet::io {
namespace {

namespace asio = boost::asio;
using Local = asio::local::stream_protocol;
constexpr std::uint32_t kMaxMessage = 1 << 20;
constexpr auto kIdleTimeout = std::chrono::seconds(30);
constexpr int kMaxSessions = 16;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Local::socket socket, ControlServer::Handler& handler, std::shared_ptr<int> count)
      : socket_(std::move(socket)), timer_(socket_.get_executor()), handler_(handler), count_(std::move(count)) {
    ++*count_;
  }
  ~Session() { --*count_; }

  void start() { read_header(); }

 private:
  void arm_timer() {
    timer_.expires_after(kIdleTimeout);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) {
        boost::system::error_code ignored;
        self->socket_.close(ignored);
      }
    });
  }

  void read_header() {
    arm_timer();
    asio::async_read(
        socket_, asio::buffer(header_), [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
          if (ec) {
            self->timer_.cancel();
            return;
          }
          std::uint32_t len = (std::uint32_t(self->header_[0]) << 24) | (std::uint32_t(self->header_[1]) << 16) |
                              (std::uint32_t(self->header_[2]) << 8) | self->header_[3];
          if (len > kMaxMessage) {
            wownet::control::Response r;
            r.set_code(wownet::control::INVALID_ARGUMENT);
            r.set_message("request larger than 1 MiB");
            return self->respond(r, false);
          }
          self->body_.resize(len);
          self->read_body();
        });
  }

  void read_body() {
    asio::async_read(socket_, asio::buffer(body_),
                     [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                       if (ec) {
                         self->timer_.cancel();
                         return;
                       }
                       wownet::control::Request req;
                       wownet::control::Response resp;
                       if (!req.ParseFromArray(self->body_.data(), int(self->body_.size()))) {
                         resp.set_code(wownet::control::INVALID_ARGUMENT);
                         resp.set_message("malformed request");
                       } else {
                         self->handler_(req, resp);
                       }
                       self->respond(resp, true);
                     });
  }

  void respond(const wownet::control::Response& r, bool keep_open) {
    std::string body = r.SerializeAsString();
    out_.resize(4 + body.size());
    std::uint32_t len = std::uint32_t(body.size());
    out_[0] = char(len >> 24);
    out_[1] = char(len >> 16);
    out_[2] = char(len >> 8);
    out_[3] = char(len);
    std::copy(body.begin(), body.end(), out_.begin() + 4);
    asio::async_write(socket_, asio::buffer(out_),
                      [self = shared_from_this(), keep_open](const boost::system::error_code& ec, std::size_t) {
                        if (ec || !keep_open) {
                          self->timer_.cancel();
                          boost::system::error_code ignored;
                          self->socket_.close(ignored);
                          return;
                        }
                        self->read_header();
                      });
  }

  Local::socket socket_;
  asio::steady_timer timer_;
  ControlServer::Handler& handler_;
  std::shared_ptr<int> count_;
  std::array<std::uint8_t, 4> header_{};
  std::vector<std::uint8_t> body_;
  std::string out_;
};

}  // namespace

ControlServer::ControlServer(asio::io_context& io, Handler handler)
    : io_(io), acceptor_(io), backoff_(io), handler_(std::move(handler)) {}

std::error_code ControlServer::open(const std::string& path) {
  boost::system::error_code ec;
  // Is someone already serving there?
  {
    Local::socket probe(io_);
    probe.connect(Local::endpoint(path), ec);
    if (!ec) return std::make_error_code(std::errc::address_in_use);
  }
  ::unlink(path.c_str());
  auto slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) ::mkdir(path.substr(0, slash).c_str(), 0755);
  acceptor_.open(Local(), ec);
  if (ec) return ec;
  mode_t old = ::umask(0177);
  acceptor_.bind(Local::endpoint(path), ec);
  ::umask(old);
  if (ec) return ec;
  ::chmod(path.c_str(), 0600);
  acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return ec;
  path_ = path;
  accept();
  return {};
}

void ControlServer::close() {
  backoff_.cancel();
  boost::system::error_code ec;
  acceptor_.close(ec);
  if (!path_.empty()) ::unlink(path_.c_str());
  path_.clear();
}

void ControlServer::accept() {
  acceptor_.async_accept([this](const boost::system::error_code& ec, Local::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec && *sessions_ < kMaxSessions) {
      std::make_shared<Session>(std::move(socket), handler_, sessions_)->start();
    } else if (ec) {
      // Out of descriptors (EMFILE) or similar: pause instead of spinning.
      backoff_.expires_after(std::chrono::milliseconds(100));
      backoff_.async_wait([this](const boost::system::error_code& e) {
        if (!e) accept();
      });
      return;
    }  // else: too many sessions; the socket closes as it goes out of scope
    accept();
  });
}

}  // namespace wownet::io
