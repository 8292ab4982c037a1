// EtcdClient::watch: POST /v3/watch on a connection of its own; the
// gateway answers with a chunked stream of {"result": WatchResponse} lines.
#include "io/etcd_connection.h"

namespace wownet::io {

struct EtcdWatch::State : etcd_detail::Job {
  State(asio::io_context& io, std::shared_ptr<EtcdClient::Core> c) : core(std::move(c)), timer(io) {}
  std::shared_ptr<EtcdClient::Core> core;
  EtcdClient::WatchHandler handler;
  std::string body;
  asio::steady_timer timer;
  http::request<http::string_body> request;
  std::optional<http::response_parser<http::string_body>> parser;
  std::string pending;  // bytes of the stream not yet split into lines
  bool header_seen = false, overflow = false;
  std::function<std::size_t(std::uint64_t, beast::string_view, beast::error_code&)> on_chunk =
      [this](std::uint64_t, beast::string_view data, beast::error_code& ec) -> std::size_t {
    if (pending.size() + data.size() > core->options.max_answer_bytes) {
      overflow = true;
      ec = http::error::body_limit;
      return 0;
    }
    pending.append(data.data(), data.size());
    return data.size();
  };

  void stop() override {
    Job::stop();
    timer.cancel();
  }
  void end(const EtcdError& e) {
    if (finished) return;
    stop();
    auto h = std::move(handler);
    if (!core->closed) h(e, etcdserverpb::WatchResponse{});
  }
  // Delivers every complete line; false once the watch ended.
  bool deliver() {
    std::vector<std::string> lines;
    etcd_take_lines(pending, lines);
    for (const std::string& line : lines) {
      etcdserverpb::WatchStreamItem item;
      if (EtcdError e = etcd_decode_stream_line(line, item)) {
        end(e);
        return false;
      }
      const etcdserverpb::WatchResponse& w = item.result();
      if (w.canceled()) {
        EtcdError e;
        e.kind = EtcdErrorKind::Gateway;
        e.message = "watch canceled by etcd: " + (w.cancel_reason().empty() ? "no reason given" : w.cancel_reason());
        if (w.compact_revision() != 0)
          e.message += " (compacted at revision " + std::to_string(w.compact_revision()) + ")";
        end(e);
        return false;
      }
      handler(EtcdError{}, w);
      if (finished) return false;  // the handler dropped the watch
    }
    return true;
  }
};

namespace {

EtcdError watch_error(EtcdErrorKind kind, std::string message) {
  EtcdError e;
  e.kind = kind;
  e.message = std::move(message);
  return e;
}

void read_stream(const std::shared_ptr<EtcdWatch::State>& w) {
  w->conn->with_stream([&](auto& stream) {
    http::async_read_some(stream, w->conn->buffer, *w->parser, [w](const beast::error_code& ec, std::size_t) {
      if (w->finished || w->core->closed) return;
      if (w->overflow)
        return w->end(
            watch_error(EtcdErrorKind::Malformed,
                        "watch message larger than " + std::to_string(w->core->options.max_answer_bytes) + " bytes"));
      if (ec) return w->end(watch_error(EtcdErrorKind::ConnectionLost, "watch stream: " + ec.message()));
      // An answer that is not chunked carries its lines in the body.
      w->pending += w->parser->get().body();
      w->parser->get().body().clear();
      if (!w->deliver()) return;
      if (w->parser->is_done()) {
        w->pending += '\n';
        if (!w->deliver()) return;
        return w->end(watch_error(EtcdErrorKind::ConnectionLost, "watch stream ended"));
      }
      read_stream(w);
    });
  });
}

}  // namespace

std::unique_ptr<EtcdWatch> EtcdClient::watch(const etcdserverpb::WatchCreateRequest& r, WatchHandler on_message) {
  auto w = std::make_shared<EtcdWatch::State>(core_->io, core_);
  w->handler = std::move(on_message);
  etcdserverpb::WatchRequest request;
  *request.mutable_create_request() = r;
  w->body = etcd_encode(request);
  ++core_->counters.calls;
  if (core_->closed) return std::make_unique<EtcdWatch>(w);
  core_->track(w);
  auto core = core_;
  w->timer.expires_after(core->options.timeout);
  w->timer.async_wait([w](const beast::error_code& ec) {
    if (ec || w->finished || w->header_seen || w->core->closed) return;
    ++w->core->counters.timeouts;
    w->end(watch_error(EtcdErrorKind::Timeout,
                       "no watch answer within " + std::to_string(w->core->options.timeout.count()) + " ms"));
  });
  core->open(w, [w](const EtcdError& e) {
    if (e) return w->end(e);
    const EtcdEndpoint& ep = w->core->endpoints[w->conn->endpoint];
    w->request = http::request<http::string_body>(http::verb::post, "/v3/watch", 11);
    w->request.set(http::field::host, ep.host + ":" + std::to_string(ep.port));
    w->request.set(http::field::content_type, "application/json");
    w->request.body() = w->body;
    w->request.prepare_payload();
    w->parser.emplace();
    // Chunks go to `pending` as they come; lines are cut from there.
    // (Beast keeps a reference to the callback: it lives in the state.)
    w->parser->on_chunk_body(w->on_chunk);
    w->conn->with_stream([&](auto& stream) {
      http::async_write(stream, w->request, [w](const beast::error_code& ec, std::size_t) {
        if (w->finished || w->core->closed) return;
        if (ec) return w->end(watch_error(EtcdErrorKind::ConnectionLost, "sending the watch: " + ec.message()));
        w->conn->with_stream([&](auto& s) {
          http::async_read_header(s, w->conn->buffer, *w->parser, [w](const beast::error_code& hec, std::size_t) {
            if (w->finished || w->core->closed) return;
            if (hec) return w->end(watch_error(EtcdErrorKind::ConnectionLost, "watch answer: " + hec.message()));
            unsigned status = w->parser->get().result_int();
            if (status != 200) {
              // The error body is short: read it whole, then report it.
              w->parser->body_limit(std::uint64_t(64) << 10);
              w->conn->with_stream([&](auto& s2) {
                http::async_read(s2, w->conn->buffer, *w->parser, [w, status](const beast::error_code&, std::size_t) {
                  if (w->finished || w->core->closed) return;
                  etcdserverpb::WatchResponse ignored;
                  w->end(etcd_decode_answer(status, w->pending + w->parser->get().body(), ignored));
                });
              });
              return;
            }
            w->header_seen = true;
            w->timer.cancel();
            // The stream has no end: on_chunk bounds what waits for a newline.
            // (Beast 1.74 compares a Content-Length with an unset limit
            // wrongly, so a stream that is not chunked keeps a finite one.)
            if (w->parser->chunked()) {
              w->parser->body_limit(boost::none);
            } else {
              w->parser->body_limit(w->core->options.max_answer_bytes);
            }
            read_stream(w);
          });
        });
      });
    });
  });
  return std::make_unique<EtcdWatch>(w);
}

EtcdWatch::~EtcdWatch() {
  if (state_) state_->stop();
}

}  // namespace wownet::io
