// An asynchronous etcd v3 client on the daemon's io_context, through etcd's
// JSON gateway (POST /v3/kv/range, /v3/kv/put, /v3/kv/txn,
// /v3/kv/deleterange, /v3/lease/grant, /v3/lease/keepalive, and /v3/watch
// as a streaming answer) over HTTP/1.1 (Boost.Beast).
//
// Why the gateway and not gRPC: gRPC's C++ async API runs on its own
// completion queue that needs a thread of its own to poll it, and every
// answer would have to be posted back to the io_context; the gateway is
// plain HTTP that runs on the io_context like every other socket of
// hostd, and the messages are etcd's own (proto/etcd_rpc.proto, in the
// proto3 JSON mapping), so no new dependency is needed.
//
// - Connections are kept alive and reused (at most max_connections at
//   once; further calls wait their turn within their own timeout).
// - Several endpoints: a call goes to the endpoint that answered last; an
//   endpoint that cannot be reached is skipped for the next one, within
//   the call's timeout.
// - TLS (https:// endpoints) with a client certificate and key and the CA
//   that signed etcd's certificate (checked, with the endpoint's host name).
// - Every call ends, exactly once, with its handler: an answer, or an
//   EtcdError (timeout, connection, HTTP status, etcd's error, malformed
//   answer). Handlers run on the io_context; never after the client is
//   destroyed (calls still open then are dropped silently).
// Not thread-safe: use it from the io_context's thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "io/asio.h"
#include "io/etcd_codec.h"
#include "proto/etcd_rpc.pb.h"

namespace wownet::io {

struct EtcdOptions {
  std::vector<std::string> endpoints;       // http://HOST:PORT or https://HOST:PORT
  std::string cert, key, ca;                // PEM files; https endpoints need ca (cert and key optional, together)
  std::chrono::milliseconds timeout{3000};  // per call: queueing, connecting, sending and the answer
  std::size_t max_connections = 8;
  std::size_t max_answer_bytes = std::size_t(256) << 20;
};

struct EtcdCounters {
  std::uint64_t calls = 0, failures = 0, timeouts = 0, failovers = 0, connections = 0;
  template <typename F>
  void visit(F&& f) const {
    f("calls", calls), f("failures", failures), f("timeouts", timeouts), f("failovers", failovers);
    f("connections", connections);
  }
};

class EtcdWatch;

class EtcdClient {
 public:
  template <typename Answer>
  using Handler = std::function<void(const EtcdError&, Answer&&)>;
  // One message of a watch: an error ends the watch.
  using WatchHandler = std::function<void(const EtcdError&, const etcdserverpb::WatchResponse&)>;

  // Checks the options (endpoint URLs, TLS files); nullptr with `error`
  // naming what is wrong.
  static std::unique_ptr<EtcdClient> create(boost::asio::io_context& io, EtcdOptions options, std::string& error);
  // Closes every connection and watch; open calls are dropped.
  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  void range(const etcdserverpb::RangeRequest& r, Handler<etcdserverpb::RangeResponse> done);
  void put(const etcdserverpb::PutRequest& r, Handler<etcdserverpb::PutResponse> done);
  void delete_range(const etcdserverpb::DeleteRangeRequest& r, Handler<etcdserverpb::DeleteRangeResponse> done);
  void txn(const etcdserverpb::TxnRequest& r, Handler<etcdserverpb::TxnResponse> done);
  void lease_grant(const etcdserverpb::LeaseGrantRequest& r, Handler<etcdserverpb::LeaseGrantResponse> done);
  // One keepalive of one lease; TTL 0 in the answer: the lease is gone.
  void lease_keepalive(const etcdserverpb::LeaseKeepAliveRequest& r,
                       Handler<etcdserverpb::LeaseKeepAliveResponse> done);

  // Starts a watch on its own connection: `on_message` gets every message
  // (the first one has created = true), until an error (connection lost,
  // watch canceled by etcd, malformed message) which is the last. The
  // answer header must come within the timeout; afterwards the stream may
  // stay quiet for any time. The watch stops when the returned object is
  // destroyed (no call after that).
  std::unique_ptr<EtcdWatch> watch(const etcdserverpb::WatchCreateRequest& r, WatchHandler on_message);

  const EtcdCounters& counters() const;
  // The endpoint calls go to now.
  std::string current_endpoint() const;

  struct Core;  // etcd_client.cpp

 private:
  explicit EtcdClient(std::shared_ptr<Core> core) : core_(std::move(core)) {}
  std::shared_ptr<Core> core_;
};

class EtcdWatch {
 public:
  ~EtcdWatch();
  EtcdWatch(const EtcdWatch&) = delete;
  EtcdWatch& operator=(const EtcdWatch&) = delete;
  struct State;  // etcd_client.cpp
  explicit EtcdWatch(std::shared_ptr<State> state) : state_(std::move(state)) {}

 private:
  std::shared_ptr<State> state_;
};

}  // namespace wownet::io
