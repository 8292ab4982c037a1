#include "io/metrics_server.h"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <list>
#include <optional>
#include <utility>

namespace wownet::io {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Tcp = asio::ip::tcp;

class Connection;

}  // namespace

struct MetricsServer::State {
  Producer producer;
  Options options;
  Counters counters;
  std::list<Connection*> live;
  bool closed = false;
};

namespace {

// One client connection: reads a request, answers, and reads the next one
// while the client keeps the connection alive.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Tcp::socket socket, std::shared_ptr<MetricsServer::State> state)
      : stream_(std::move(socket)), buffer_(state->options.max_request_bytes), state_(std::move(state)) {
    entry_ = state_->live.insert(state_->live.end(), this);
  }
  ~Connection() { unregister(); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void start() { read(); }

  // Closes the socket; pending operations end with operation_aborted.
  void close() {
    if (closed_) return;
    closed_ = true;
    beast::error_code ignored;
    stream_.socket().shutdown(Tcp::socket::shutdown_both, ignored);
    stream_.close();
    unregister();
  }

 private:
  void unregister() {
    if (!registered_) return;
    registered_ = false;
    state_->live.erase(entry_);
  }

  void read() {
    parser_.emplace();
    parser_->header_limit(std::uint32_t(state_->options.max_request_bytes));
    parser_->body_limit(0);
    stream_.expires_after(state_->options.read_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](const beast::error_code& ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(const beast::error_code& ec) {
    if (closed_ || ec == asio::error::operation_aborted) return;
    if (ec == beast::error::timeout) {
      ++state_->counters.timeouts;
      return close();
    }
    if (ec == http::error::end_of_stream || ec == asio::error::connection_reset || ec == asio::error::eof) {
      return close();
    }
    if (ec == http::error::partial_message && buffer_.size() == 0) return close();
    if (ec) {
      ++state_->counters.bad_requests;
      const bool too_large = ec == http::error::header_limit || ec == http::error::buffer_overflow;
      return answer(too_large ? http::status::request_header_fields_too_large : http::status::bad_request, 11, false,
                    too_large ? "request too large\n" : "bad request\n", "text/plain; charset=utf-8");
    }
    const auto& req = parser_->get();
    const beast::string_view target = req.target();
    const bool metrics = target == "/metrics" || target.starts_with("/metrics?");
    if (req.method() != http::verb::get || !metrics) {
      ++state_->counters.not_found;
      return answer(http::status::not_found, req.version(), req.keep_alive(), "not found; try /metrics\n",
                    "text/plain; charset=utf-8");
    }
    ++state_->counters.requests;
    answer(http::status::ok, req.version(), req.keep_alive(), state_->producer(),
           "text/plain; version=0.0.4; charset=utf-8");
  }

  void answer(http::status status, unsigned version, bool keep_alive, std::string body, const char* content_type) {
    response_ = {};
    response_.result(status);
    response_.version(version);
    response_.set(http::field::content_type, content_type);
    response_.keep_alive(keep_alive);
    response_.body() = std::move(body);
    response_.prepare_payload();
    stream_.expires_after(state_->options.write_timeout);
    http::async_write(stream_, response_,
                      [self = shared_from_this(), keep_alive](const beast::error_code& ec, std::size_t) {
                        if (self->closed_ || ec == asio::error::operation_aborted) return;
                        if (ec == beast::error::timeout) ++self->state_->counters.timeouts;
                        if (ec || !keep_alive) return self->close();
                        self->response_ = {};
                        self->read();
                      });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;  // at most max_request_bytes
  std::optional<http::request_parser<http::empty_body>> parser_;
  http::response<http::string_body> response_;
  std::shared_ptr<MetricsServer::State> state_;
  std::list<Connection*>::iterator entry_;
  bool registered_ = true;
  bool closed_ = false;
};

}  // namespace

MetricsServer::MetricsServer(asio::io_context& io, Producer producer, const Options& options)
    : acceptor_(io), backoff_(io), state_(std::make_shared<State>()) {
  state_->producer = std::move(producer);
  state_->options = options;
  if (state_->options.max_connections == 0) state_->options.max_connections = 1;
  if (state_->options.max_request_bytes < 256) state_->options.max_request_bytes = 256;
}

MetricsServer::MetricsServer(asio::io_context& io, Producer producer)
    : MetricsServer(io, std::move(producer), Options{}) {}

MetricsServer::~MetricsServer() { close(); }

std::error_code MetricsServer::open(Ipv4Addr address, std::uint16_t port) {
  boost::system::error_code ec;
  const Tcp::endpoint at(asio::ip::address_v4(address.value), port);
  acceptor_.open(at.protocol(), ec);
  if (ec) return ec;
  acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(at, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    return ec;
  }
  state_->closed = false;
  accept();
  return {};
}

void MetricsServer::close() {
  state_->closed = true;
  backoff_.cancel();
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  while (!state_->live.empty()) state_->live.front()->close();
}

std::uint16_t MetricsServer::port() const {
  boost::system::error_code ec;
  if (!acceptor_.is_open()) return 0;
  const auto at = acceptor_.local_endpoint(ec);
  return ec ? 0 : at.port();
}

std::size_t MetricsServer::connection_count() const { return state_->live.size(); }

const MetricsServer::Counters& MetricsServer::counters() const { return state_->counters; }

void MetricsServer::accept() {
  // The handlers hold the state, not `this`: after close() (and the
  // destructor) they see `closed` and stop.
  acceptor_.async_accept([this, state = state_](const boost::system::error_code& ec, Tcp::socket socket) {
    if (ec == asio::error::operation_aborted || state->closed) return;
    if (ec) {
      // Out of descriptors or memory: retrying at once would spin.
      backoff_.expires_after(state->options.accept_backoff);
      backoff_.async_wait([this, state](const boost::system::error_code& e) {
        if (e == asio::error::operation_aborted || state->closed) return;
        accept();
      });
      return;
    }
    if (state->live.size() >= state->options.max_connections) {
      ++state->counters.refused;
      boost::system::error_code ignored;
      socket.close(ignored);
    } else {
      std::make_shared<Connection>(std::move(socket), state)->start();
    }
    accept();
  });
}

}  // namespace wownet::io
