#include "registry_etcd_io.h"

namespace wownet {

namespace {

template <typename Answer>
io::EtcdClient::Handler<Answer> adapt(registry::KvStore::Done<Answer> done) {
  return [done = std::move(done)](const io::EtcdError& e, Answer&& a) {
    done(e ? std::string(io::to_string(e.kind)) + ": " + e.message : std::string{}, std::move(a));
  };
}

struct EtcdKvWatch : registry::KvStore::Watch {
  std::unique_ptr<io::EtcdWatch> watch;
};

}  // namespace

void EtcdKvStore::range(const etcdserverpb::RangeRequest& r, Done<etcdserverpb::RangeResponse> done) {
  client_.range(r, adapt(std::move(done)));
}

void EtcdKvStore::put(const etcdserverpb::PutRequest& r, Done<etcdserverpb::PutResponse> done) {
  client_.put(r, adapt(std::move(done)));
}

void EtcdKvStore::txn(const etcdserverpb::TxnRequest& r, Done<etcdserverpb::TxnResponse> done) {
  client_.txn(r, adapt(std::move(done)));
}

void EtcdKvStore::lease_grant(const etcdserverpb::LeaseGrantRequest& r, Done<etcdserverpb::LeaseGrantResponse> done) {
  client_.lease_grant(r, adapt(std::move(done)));
}

void EtcdKvStore::lease_keepalive(const etcdserverpb::LeaseKeepAliveRequest& r,
                                  Done<etcdserverpb::LeaseKeepAliveResponse> done) {
  client_.lease_keepalive(r, adapt(std::move(done)));
}

std::unique_ptr<registry::KvStore::Watch> EtcdKvStore::watch(const etcdserverpb::WatchCreateRequest& r,
                                                             WatchDone on_message) {
  auto w = std::make_unique<EtcdKvWatch>();
  w->watch = client_.watch(
      r, [on_message = std::move(on_message)](const io::EtcdError& e, const etcdserverpb::WatchResponse& m) {
        on_message(e ? std::string(io::to_string(e.kind)) + ": " + e.message : std::string{}, m);
      });
  return w;
}

void EtcdKvStore::after(std::chrono::milliseconds delay, std::function<void()> f) {
  auto timer = std::make_shared<boost::asio::steady_timer>(io_, delay);
  timer->async_wait([timer, alive = alive_, f = std::move(f)](const boost::system::error_code& ec) {
    if (!ec && *alive) f();
  });
}

}  // namespace wownet
