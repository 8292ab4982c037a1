// The registry's KvStore on the wire: io::EtcdClient, with retries timed
// on the daemon's io_context.
#pragma once

#include <memory>

#include "io/etcd_client.h"
#include "registry/kv_store.h"

namespace wownet {

class EtcdKvStore : public registry::KvStore {
 public:
  EtcdKvStore(boost::asio::io_context& io, io::EtcdClient& client) : io_(io), client_(client) {}
  ~EtcdKvStore() override { *alive_ = false; }
  void range(const etcdserverpb::RangeRequest& r, Done<etcdserverpb::RangeResponse> done) override;
  void put(const etcdserverpb::PutRequest& r, Done<etcdserverpb::PutResponse> done) override;
  void txn(const etcdserverpb::TxnRequest& r, Done<etcdserverpb::TxnResponse> done) override;
  std::unique_ptr<Watch> watch(const etcdserverpb::WatchCreateRequest& r, WatchDone on_message) override;
  void lease_grant(const etcdserverpb::LeaseGrantRequest& r, Done<etcdserverpb::LeaseGrantResponse> done) override;
  void lease_keepalive(const etcdserverpb::LeaseKeepAliveRequest& r,
                       Done<etcdserverpb::LeaseKeepAliveResponse> done) override;
  void after(std::chrono::milliseconds delay, std::function<void()> f) override;

 private:
  boost::asio::io_context& io_;
  io::EtcdClient& client_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace wownet
