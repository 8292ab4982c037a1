#include "io/control_server.h"

#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <list>
#include <memory>
#include <utility>
#include <vector>

namespace wownet::io {
namespace {

namespace asio = boost::asio;
using Local = asio::local::stream_protocol;
using Clock = std::chrono::steady_clock;
constexpr std::uint32_t kMaxMessage = 1 << 20;

class Session;

}  // namespace

struct ControlServer::Sessions {
  Handler handler;
  Options options;
  std::list<Session*> live;         // open sessions, oldest first
  std::function<void()> on_change;  // a session ended or fell idle
};

namespace {

// One client connection. It reads the socket only once it is readable, so a
// request that has arrived but is not yet read stays visible to
// has_unread_bytes() (and such a session is not evicted).
class Session : public std::enable_shared_from_this<Session> {
 public:
  enum class Phase { idle, receiving, answering, closed };

  Session(Local::socket socket, std::shared_ptr<ControlServer::Sessions> sessions)
      : socket_(std::move(socket)), timer_(socket_.get_executor()), sessions_(std::move(sessions)) {
    entry_ = sessions_->live.insert(sessions_->live.end(), this);
    registered_ = true;
  }
  ~Session() { unregister(); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Waits for the first request, for at most idle_timeout.
  void start() {
    boost::system::error_code ec;
    socket_.non_blocking(true, ec);
    if (ec) return close();
    enter_idle();
    wait_readable();
  }

  // Closes the connection and leaves the live list; pending handlers end
  // with operation_aborted. Idempotent.
  void close() {
    if (phase_ == Phase::closed) return;
    phase_ = Phase::closed;
    boost::system::error_code ignored;
    timer_.cancel();
    socket_.close(ignored);
    unregister();
    if (sessions_->on_change) sessions_->on_change();
  }

  Phase phase() const { return phase_; }
  // When the current phase began: idle since, or the request's first byte.
  Clock::time_point since() const { return since_; }
  // Whether bytes wait in the socket that this session has not read yet.
  bool has_unread_bytes() const {
    boost::system::error_code ec;
    std::size_t n = socket_.available(ec);
    return !ec && n > 0;
  }

 private:
  void unregister() {
    if (!registered_) return;
    registered_ = false;
    sessions_->live.erase(entry_);
  }

  void enter_idle() {
    phase_ = Phase::idle;
    since_ = Clock::now();
    received_ = 0;
    body_ = {};
    arm_timer(sessions_->options.idle_timeout);
  }

  // Closes the session when `timeout` passes without being re-armed.
  void arm_timer(Clock::duration timeout) {
    timer_.expires_after(timeout);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec || self->phase_ == Phase::closed) return;
      if (self->timer_.expiry() > Clock::now()) return;  // re-armed after this wait had fired
      self->close();
    });
  }

  void wait_readable() {
    socket_.async_wait(Local::socket::wait_read,
                       [self = shared_from_this()](const boost::system::error_code& ec) { self->on_readable(ec); });
  }

  // Reads what has arrived of the current request, and no further.
  void on_readable(const boost::system::error_code& ec) {
    if (phase_ == Phase::closed) return;
    if (ec) return close();
    for (;;) {
      asio::mutable_buffer into =
          received_ < header_.size()
              ? asio::buffer(header_.data() + received_, header_.size() - received_)
              : asio::buffer(body_.data() + (received_ - header_.size()), body_.size() - (received_ - header_.size()));
      boost::system::error_code read_ec;
      std::size_t n = socket_.read_some(into, read_ec);
      if (read_ec == asio::error::would_block || read_ec == asio::error::try_again) return wait_readable();
      if (read_ec == asio::error::interrupted) continue;
      if (read_ec || n == 0) return close();  // EOF or reset
      if (phase_ == Phase::idle) {
        // The request's deadline runs from its first byte; more bytes do not extend it.
        phase_ = Phase::receiving;
        since_ = Clock::now();
        arm_timer(sessions_->options.request_timeout);
      }
      received_ += n;
      if (received_ == header_.size()) {
        std::uint32_t len = (std::uint32_t(header_[0]) << 24) | (std::uint32_t(header_[1]) << 16) |
                            (std::uint32_t(header_[2]) << 8) | header_[3];
        if (len > kMaxMessage) {
          wownet::control::Response r;
          r.set_code(wownet::control::INVALID_ARGUMENT);
          r.set_message("request larger than 1 MiB");
          return respond(r, false);
        }
        body_.resize(len);
      }
      if (received_ >= header_.size() && received_ - header_.size() == body_.size()) return on_request();
    }
  }

  void on_request() {
    wownet::control::Request req;
    wownet::control::Response resp;
    static const std::uint8_t kEmpty = 0;
    if (!req.ParseFromArray(body_.empty() ? &kEmpty : body_.data(), int(body_.size()))) {
      resp.set_code(wownet::control::INVALID_ARGUMENT);
      resp.set_message("malformed request");
    } else {
      sessions_->handler(req, resp);
    }
    respond(resp, true);
  }

  // Writes `r`; then waits for the next request, or closes unless `keep_open`.
  void respond(const wownet::control::Response& r, bool keep_open) {
    if (phase_ == Phase::closed) return;  // the handler closed the server
    // The answer gets a deadline of its own, so a slow handler does not eat it.
    phase_ = Phase::answering;
    arm_timer(sessions_->options.request_timeout);
    std::string body = r.SerializeAsString();
    std::uint32_t len = std::uint32_t(body.size());
    out_ = {char(len >> 24), char(len >> 16), char(len >> 8), char(len)};
    out_ += body;
    asio::async_write(socket_, asio::buffer(out_),
                      [self = shared_from_this(), keep_open](const boost::system::error_code& ec, std::size_t) {
                        if (self->phase_ == Phase::closed) return;
                        if (ec || !keep_open) return self->close();
                        self->out_ = {};
                        self->enter_idle();
                        self->wait_readable();
                        if (self->sessions_->on_change) self->sessions_->on_change();
                      });
  }

  Local::socket socket_;
  asio::steady_timer timer_;
  std::shared_ptr<ControlServer::Sessions> sessions_;
  std::list<Session*>::iterator entry_;  // in sessions_->live while registered_
  bool registered_ = false;
  Phase phase_ = Phase::idle;
  Clock::time_point since_ = Clock::now();
  std::array<std::uint8_t, 4> header_{};
  std::size_t received_ = 0;  // of the current request, header included
  std::vector<std::uint8_t> body_;
  std::string out_;
};

// The session to close for a new connection: the one idle longest with
// nothing unread, else the one whose partial request is oldest; null if every
// session is being answered or has a request waiting to be read.
Session* pick_victim(const ControlServer::Sessions& sessions) {
  Session* idle = nullptr;
  Session* receiving = nullptr;
  for (Session* s : sessions.live) {
    if (s->phase() == Session::Phase::idle && !s->has_unread_bytes()) {
      if (!idle || s->since() < idle->since()) idle = s;
    } else if (s->phase() == Session::Phase::receiving) {
      if (!receiving || s->since() < receiving->since()) receiving = s;
    }
  }
  return idle ? idle : receiving;
}

}  // namespace

ControlServer::ControlServer(asio::io_context& io, Handler handler)
    : ControlServer(io, std::move(handler), Options{}) {}

ControlServer::ControlServer(asio::io_context& io, Handler handler, const Options& options)
    : io_(io), acceptor_(io), backoff_(io), sessions_(std::make_shared<Sessions>()) {
  sessions_->handler = std::move(handler);
  sessions_->options = options;
  if (sessions_->options.max_sessions == 0) sessions_->options.max_sessions = 1;
}

ControlServer::~ControlServer() { close(); }

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
  // The kernel caps the backlog at net.core.somaxconn. Connections beyond it
  // wait in connect(); accept() drains the backlog at once (evicting), so a
  // flood does not leave an admin's connection queued behind it for long.
  acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return ec;
  path_ = path;
  sessions_->on_change = [this] { on_session_change(); };
  accept();
  return {};
}

void ControlServer::close() {
  sessions_->on_change = nullptr;
  backoff_.cancel();
  boost::system::error_code ec;
  acceptor_.close(ec);
  accepting_ = false;
  while (!sessions_->live.empty()) sessions_->live.front()->close();
  if (!path_.empty()) ::unlink(path_.c_str());
  path_.clear();
}

std::size_t ControlServer::session_count() const { return sessions_->live.size(); }

void ControlServer::accept() {
  if (accepting_ || !acceptor_.is_open()) return;
  accepting_ = true;
  acceptor_.async_accept(
      [this, alive = std::weak_ptr<bool>(alive_)](const boost::system::error_code& ec, Local::socket socket) {
        if (ec == asio::error::operation_aborted || alive.expired()) return;
        on_accept(ec, std::move(socket));
      });
}

void ControlServer::on_accept(const boost::system::error_code& ec, Local::socket socket) {
  Sessions& s = *sessions_;
  if (ec) {
    // Out of descriptors (EMFILE, ENFILE) or memory: the connection stays in
    // the backlog and the listener stays readable, so retrying at once would
    // spin. Free a descriptor if a session can go, and retry after a pause.
    // Nothing is logged here: a flood must not flood the log.
    if (Session* victim = pick_victim(s)) victim->close();
    backoff_.expires_after(s.options.accept_backoff);
    backoff_.async_wait([this, alive = std::weak_ptr<bool>(alive_)](const boost::system::error_code& e) {
      if (e == asio::error::operation_aborted || alive.expired()) return;
      accepting_ = false;
      accept();
    });
    return;
  }
  // accepting_ stays set until here, so sessions closed now do not restart accept().
  if (s.live.size() >= s.options.max_sessions) {
    if (Session* victim = pick_victim(s)) victim->close();
  }
  std::make_shared<Session>(std::move(socket), sessions_)->start();
  accepting_ = false;
  on_session_change();
}

void ControlServer::on_session_change() {
  // Beyond max_sessions the spare slot is in use: accept again only when a
  // session can make room for the next connection.
  if (sessions_->live.size() <= sessions_->options.max_sessions || pick_victim(*sessions_)) accept();
}

}  // namespace wownet::io
