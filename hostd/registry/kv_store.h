// What the registry's etcd backend needs of etcd: the calls it makes, with
// etcd's own messages (proto/etcd_rpc.proto), answered asynchronously.
// io::EtcdClient implements it on the wire (hostd/registry_etcd_io.cpp);
// tests use an in-memory fake with the same transaction semantics.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "proto/etcd_rpc.pb.h"

namespace wownet::registry {

class KvStore {
 public:
  // `error` empty: the call succeeded and the answer is valid.
  template <typename Answer>
  using Done = std::function<void(const std::string& error, Answer&& answer)>;
  // Watch messages until an error, which is the last call.
  using WatchDone = std::function<void(const std::string& error, const etcdserverpb::WatchResponse& answer)>;
  // Stops its watch when destroyed.
  class Watch {
   public:
    virtual ~Watch() = default;
  };

  virtual ~KvStore() = default;
  virtual void range(const etcdserverpb::RangeRequest& r, Done<etcdserverpb::RangeResponse> done) = 0;
  virtual void put(const etcdserverpb::PutRequest& r, Done<etcdserverpb::PutResponse> done) = 0;
  virtual void txn(const etcdserverpb::TxnRequest& r, Done<etcdserverpb::TxnResponse> done) = 0;
  virtual std::unique_ptr<Watch> watch(const etcdserverpb::WatchCreateRequest& r, WatchDone on_message) = 0;
  // etcd leases: keys put with a lease go when it expires (TTL 0 in a
  // keepalive's answer: it is gone).
  virtual void lease_grant(const etcdserverpb::LeaseGrantRequest& r, Done<etcdserverpb::LeaseGrantResponse> done) = 0;
  virtual void lease_keepalive(const etcdserverpb::LeaseKeepAliveRequest& r,
                               Done<etcdserverpb::LeaseKeepAliveResponse> done) = 0;
  // Runs `f` once after `delay` (a retry), unless the store is gone.
  virtual void after(std::chrono::milliseconds delay, std::function<void()> f) = 0;
};

}  // namespace wownet::registry
