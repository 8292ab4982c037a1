// EtcdClient: connections (plain or TLS, with failover), the queue of
// unary calls and their timeouts. The watch stream is in etcd_watch.cpp;
// the wire format in etcd_codec.cpp.
#include "io/etcd_client.h"

#include "io/etcd_connection.h"

namespace wownet::io {

using etcd_detail::Connection;
using etcd_detail::Job;

namespace {

struct Call : Job {
  explicit Call(boost::asio::io_context& io) : timer(io) {}
  std::string target, body;
  RawHandler done;
  boost::asio::steady_timer timer;
  bool queued = true, reused = false, retried_stale = false;
  http::request<http::string_body> request;
  std::optional<http::response_parser<http::string_body>> parser;
};

EtcdError error_of(EtcdErrorKind kind, std::string message) {
  EtcdError e;
  e.kind = kind;
  e.message = std::move(message);
  return e;
}

bool stale_connection_error(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe;
}

}  // namespace

std::unique_ptr<EtcdClient> EtcdClient::create(asio::io_context& io, EtcdOptions options, std::string& error) {
  auto core = std::make_shared<Core>(io);
  if (options.endpoints.empty()) {
    error = "no etcd endpoints";
    return nullptr;
  }
  bool any_tls = false;
  for (const std::string& url : options.endpoints) {
    auto e = parse_etcd_endpoint(url, error);
    if (!e) return nullptr;
    any_tls |= e->tls;
    core->endpoints.push_back(*e);
  }
  if (options.cert.empty() != options.key.empty()) {
    error = "etcd TLS: cert and key go together";
    return nullptr;
  }
  if (any_tls) {
    try {
      core->tls_context.emplace(ssl::context::tls_client);
      core->tls_context->set_verify_mode(ssl::verify_peer);
      if (options.ca.empty()) {
        core->tls_context->set_default_verify_paths();
      } else {
        core->tls_context->load_verify_file(options.ca);
      }
      if (!options.cert.empty()) {
        core->tls_context->use_certificate_chain_file(options.cert);
        core->tls_context->use_private_key_file(options.key, ssl::context::pem);
      }
    } catch (const boost::system::system_error& e) {
      error = "etcd TLS (ca " + options.ca + ", cert " + options.cert + ", key " + options.key + "): " + e.what();
      return nullptr;
    }
  }
  if (options.max_connections == 0) options.max_connections = 1;
  core->options = std::move(options);
  return std::unique_ptr<EtcdClient>(new EtcdClient(std::move(core)));
}

EtcdClient::~EtcdClient() { core_->shutdown(); }

const EtcdCounters& EtcdClient::counters() const { return core_->counters; }

std::string EtcdClient::current_endpoint() const { return core_->endpoints[core_->current].to_string(); }

void EtcdClient::Core::shutdown() {
  closed = true;
  for (auto& c : idle) c->close();
  idle.clear();
  for (auto& weak : jobs) {
    if (auto job = weak.lock()) job->stop();
  }
  jobs.clear();
}

void EtcdClient::Core::track(const std::shared_ptr<Job>& job) {
  // Forget jobs that ended, now and then.
  if (jobs.size() > 64 && jobs.size() % 64 == 0)
    std::erase_if(jobs, [](const std::weak_ptr<Job>& w) { return w.expired(); });
  jobs.push_back(job);
}

void EtcdClient::Core::open(const std::shared_ptr<Job>& job, std::function<void(const EtcdError&)> then) {
  auto self = shared_from_this();
  const std::size_t index = current;
  const EtcdEndpoint& ep = endpoints[index];
  auto conn = std::make_shared<Connection>(io, index, tls_context && ep.tls ? &*tls_context : nullptr);
  job->conn = conn;
  ++counters.connections;
  auto failed = [self, job, then, index](const std::string& what, const beast::error_code& ec) {
    if (job->finished || self->closed) return;
    const std::string message = self->endpoints[index].to_string() + ": " + what + ": " + ec.message();
    job->conn->close();
    ++job->tries;
    ++self->counters.failovers;
    if (self->current == index) self->current = (index + 1) % self->endpoints.size();
    std::erase_if(self->idle, [index](const auto& c) { return c->endpoint == index; });
    if (job->tries >= self->endpoints.size()) {
      then(error_of(EtcdErrorKind::Connect, message));
      return;
    }
    self->open(job, then);
  };
  conn->resolver.async_resolve(
      ep.host, std::to_string(ep.port),
      [self, job, conn, then, failed](const beast::error_code& ec, tcp::resolver::results_type results) {
        if (job->finished || self->closed) return;
        if (ec) return failed("resolve", ec);
        conn->lowest().async_connect(
            results, [self, job, conn, then, failed](const beast::error_code& cec, const tcp::endpoint&) {
              if (job->finished || self->closed) return;
              if (cec) return failed("connect", cec);
              beast::error_code ignored;
              conn->lowest().socket().set_option(tcp::no_delay(true), ignored);
              if (!conn->tls) return then({});
              const std::string& host = self->endpoints[conn->endpoint].host;
              SSL_set_tlsext_host_name(conn->tls->native_handle(), host.c_str());
              conn->tls->set_verify_callback(ssl::host_name_verification(host));
              conn->tls->async_handshake(ssl::stream_base::client,
                                         [self, job, conn, then, failed](const beast::error_code& hec) {
                                           (void)conn;  // alive until the handshake ends
                                           if (job->finished || self->closed) return;
                                           if (hec) return failed("TLS handshake", hec);
                                           then({});
                                         });
            });
      });
}

void EtcdClient::Core::submit(std::string target, std::string body, RawHandler done) {
  auto call = std::make_shared<Call>(io);
  call->target = std::move(target);
  call->body = std::move(body);
  call->done = std::move(done);
  ++counters.calls;
  if (closed) return;
  track(call);
  auto self = shared_from_this();
  call->timer.expires_after(options.timeout);
  call->timer.async_wait([self, call](const beast::error_code& ec) {
    if (ec || call->finished || self->closed) return;
    ++self->counters.timeouts;
    self->finish(call,
                 error_of(EtcdErrorKind::Timeout, "no answer to " + call->target + " within " +
                                                      std::to_string(self->options.timeout.count()) + " ms"),
                 0, {});
  });
  queue.push_back(call);
  pump();
}

void EtcdClient::Core::pump() {
  while (!closed && !queue.empty() && active < options.max_connections) {
    auto call = std::static_pointer_cast<Call>(queue.front());
    queue.pop_front();
    call->queued = false;
    ++active;
    // An idle kept-alive connection to the current endpoint, else a new one.
    auto it = std::find_if(idle.rbegin(), idle.rend(), [this](const auto& c) { return c->endpoint == current; });
    if (it != idle.rend()) {
      call->conn = *it;
      idle.erase(std::next(it).base());
      call->reused = true;
      send(call);
    } else {
      connect(call);
    }
  }
}

void EtcdClient::Core::connect(const std::shared_ptr<Job>& job) {
  auto self = shared_from_this();
  auto call = std::static_pointer_cast<Call>(job);
  call->reused = false;
  open(call, [self, call](const EtcdError& e) {
    if (e) return self->finish(call, e, 0, {});
    self->send(call);
  });
}

void EtcdClient::Core::send(const std::shared_ptr<Job>& job) {
  auto self = shared_from_this();
  auto call = std::static_pointer_cast<Call>(job);
  const EtcdEndpoint& ep = endpoints[call->conn->endpoint];
  call->request = http::request<http::string_body>(http::verb::post, call->target, 11);
  call->request.set(http::field::host, ep.host + ":" + std::to_string(ep.port));
  call->request.set(http::field::content_type, "application/json");
  call->request.keep_alive(true);
  call->request.body() = call->body;
  call->request.prepare_payload();
  call->parser.emplace();
  call->parser->body_limit(options.max_answer_bytes);
  auto conn = call->conn;
  auto lost = [self, call](const char* what, const beast::error_code& ec) {
    if (call->finished || self->closed) return;
    // A kept-alive connection the server closed meanwhile: once more on a
    // fresh one (nothing of the request was answered).
    if (call->reused && !call->retried_stale && stale_connection_error(ec) && !call->parser->got_some()) {
      call->retried_stale = true;
      call->conn->close();
      return self->connect(call);
    }
    if (ec == http::error::body_limit)
      return self->finish(call,
                          error_of(EtcdErrorKind::Malformed,
                                   "answer larger than " + std::to_string(self->options.max_answer_bytes) + " bytes"),
                          0, {});
    if (ec == http::error::bad_version || ec == http::error::bad_status || ec == http::error::bad_field ||
        ec == http::error::bad_chunk || ec == http::error::bad_line_ending || ec == http::error::bad_content_length ||
        ec == http::error::bad_value || ec == http::error::bad_method || ec == http::error::bad_target)
      return self->finish(call, error_of(EtcdErrorKind::Malformed, std::string("not an HTTP answer: ") + ec.message()),
                          0, {});
    // Calls that follow try the next endpoint first.
    if (self->current == call->conn->endpoint) self->current = (self->current + 1) % self->endpoints.size();
    self->finish(call,
                 error_of(EtcdErrorKind::ConnectionLost,
                          self->endpoints[call->conn->endpoint].to_string() + ": " + what + ": " + ec.message()),
                 0, {});
  };
  conn->with_stream([&](auto& stream) {
    http::async_write(stream, call->request, [self, call, conn, lost](const beast::error_code& ec, std::size_t) {
      if (call->finished || self->closed) return;
      if (ec) return lost("sending", ec);
      conn->with_stream([&](auto& s) {
        http::async_read(s, conn->buffer, *call->parser,
                         [self, call, conn, lost](const beast::error_code& rec, std::size_t) {
                           (void)conn;  // alive until the read ends
                           if (call->finished || self->closed) return;
                           if (rec) return lost("reading the answer", rec);
                           auto& answer = call->parser->get();
                           const bool keep = answer.keep_alive();
                           unsigned status = answer.result_int();
                           std::string body = std::move(answer.body());
                           if (!keep) call->conn->close();
                           self->finish(call, {}, status, std::move(body));
                         });
      });
    });
  });
}

void EtcdClient::Core::finish(const std::shared_ptr<Job>& job, const EtcdError& error, unsigned status,
                              std::string body) {
  auto call = std::static_pointer_cast<Call>(job);
  if (call->finished) return;
  call->finished = true;
  call->timer.cancel();
  if (call->queued) {
    std::erase(queue, job);
  } else {
    --active;
  }
  if (call->conn) {
    if (!error && call->conn->is_open() && idle.size() < options.max_connections && !closed) {
      idle.push_back(call->conn);
    } else {
      call->conn->close();
    }
    call->conn.reset();
  }
  if (error) ++counters.failures;
  pump();
  if (closed) return;
  RawHandler done = std::move(call->done);
  done(error, status, std::move(body));
}

namespace {

template <typename Answer>
RawHandler decode_into(EtcdCounters* counters, EtcdClient::Handler<Answer> done) {
  // The counters live as long as the core, which outlives every handler.
  return [counters, done = std::move(done)](const EtcdError& e, unsigned status, std::string body) {
    Answer answer;
    if (e) return done(e, std::move(answer));
    EtcdError d = etcd_decode_answer(status, body, answer);
    if (d) ++counters->failures;
    done(d, std::move(answer));
  };
}

}  // namespace

void EtcdClient::range(const etcdserverpb::RangeRequest& r, Handler<etcdserverpb::RangeResponse> done) {
  core_->submit("/v3/kv/range", etcd_encode(r), decode_into(&core_->counters, std::move(done)));
}

void EtcdClient::put(const etcdserverpb::PutRequest& r, Handler<etcdserverpb::PutResponse> done) {
  core_->submit("/v3/kv/put", etcd_encode(r), decode_into(&core_->counters, std::move(done)));
}

void EtcdClient::delete_range(const etcdserverpb::DeleteRangeRequest& r,
                              Handler<etcdserverpb::DeleteRangeResponse> done) {
  core_->submit("/v3/kv/deleterange", etcd_encode(r), decode_into(&core_->counters, std::move(done)));
}

void EtcdClient::txn(const etcdserverpb::TxnRequest& r, Handler<etcdserverpb::TxnResponse> done) {
  core_->submit("/v3/kv/txn", etcd_encode(r), decode_into(&core_->counters, std::move(done)));
}

void EtcdClient::lease_grant(const etcdserverpb::LeaseGrantRequest& r, Handler<etcdserverpb::LeaseGrantResponse> done) {
  core_->submit("/v3/lease/grant", etcd_encode(r), decode_into(&core_->counters, std::move(done)));
}

void EtcdClient::lease_keepalive(const etcdserverpb::LeaseKeepAliveRequest& r,
                                 Handler<etcdserverpb::LeaseKeepAliveResponse> done) {
  // A streaming call in gRPC: the gateway answers one {"result": ...} line
  // per request line and ends the stream when the request body ends.
  core_->submit("/v3/lease/keepalive", etcd_encode(r),
                [done = std::move(done)](const EtcdError& e, unsigned status, std::string body) {
                  etcdserverpb::LeaseKeepAliveResponse answer;
                  if (e) return done(e, std::move(answer));
                  etcdserverpb::KeepAliveStreamItem item;
                  if (status != 200) return done(etcd_decode_answer(status, body, item), std::move(answer));
                  std::vector<std::string> lines;
                  body += '\n';
                  etcd_take_lines(body, lines);
                  if (lines.empty()) {
                    EtcdError empty;
                    empty.kind = EtcdErrorKind::Malformed;
                    empty.message = "empty keepalive answer";
                    return done(empty, std::move(answer));
                  }
                  EtcdError d = etcd_decode_stream_line(lines.front(), item);
                  if (!d) answer = std::move(*item.mutable_result());
                  done(d, std::move(answer));
                });
}

}  // namespace wownet::io
