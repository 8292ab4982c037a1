// io/etcd_client against a real etcd 3.4 (started by the test on 127.0.0.1):
// put and range, txn with a compare that holds and one that fails, a
// lease's grant, keepalive and expiry, watch events, and TLS with a client
// certificate (label: etcd).
#include <gtest/gtest.h>

#include "etcd_server.h"
#include "io/etcd_client.h"

namespace wownet::io {
namespace {

using namespace std::chrono_literals;

class EtcdLive : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::EtcdServer::available()) GTEST_SKIP() << "no " << testing::EtcdServer::binary();
    ASSERT_TRUE(etcd_.start());
    EtcdOptions o;
    o.endpoints = {etcd_.url()};
    o.timeout = 1000ms;
    std::string error;
    client_ = EtcdClient::create(io_, o, error);
    ASSERT_TRUE(client_) << error;
    // Ready once a range is answered (within 10 s).
    const auto stop = std::chrono::steady_clock::now() + 10s;
    for (;;) {
      EtcdError e = range("x").first;
      if (!e) break;
      ASSERT_LT(std::chrono::steady_clock::now(), stop) << "etcd not ready: " << e.message << "; " << etcd_.log_path();
      std::this_thread::sleep_for(50ms);
    }
  }
  void TearDown() override { client_.reset(); }

  template <typename Answer, typename Start>
  std::pair<EtcdError, Answer> call(Start start) {
    bool done = false;
    std::pair<EtcdError, Answer> out;
    start([&](const EtcdError& e, Answer&& a) {
      out = {e, std::move(a)};
      done = true;
    });
    const auto stop = std::chrono::steady_clock::now() + 5s;
    while (!done && std::chrono::steady_clock::now() < stop) io_.run_for(5ms);
    EXPECT_TRUE(done);
    return out;
  }
  std::pair<EtcdError, etcdserverpb::RangeResponse> range(const std::string& key, bool prefix = false) {
    etcdserverpb::RangeRequest r;
    r.set_key(key);
    if (prefix) r.set_range_end(etcd_prefix_end(key));
    return call<etcdserverpb::RangeResponse>([&](auto h) { client_->range(r, std::move(h)); });
  }
  std::pair<EtcdError, etcdserverpb::PutResponse> put(const std::string& key, const std::string& value,
                                                      std::int64_t lease = 0) {
    etcdserverpb::PutRequest r;
    r.set_key(key);
    r.set_value(value);
    r.set_lease(lease);
    return call<etcdserverpb::PutResponse>([&](auto h) { client_->put(r, std::move(h)); });
  }

  boost::asio::io_context io_;
  // run_for() would stop the context whenever no call is open.
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{io_.get_executor()};
  testing::EtcdServer etcd_;
  std::unique_ptr<EtcdClient> client_;
};

TEST_F(EtcdLive, PutRangeDelete) {
  auto [e, p] = put("/t/a", std::string("v\0\xff", 3));
  ASSERT_FALSE(e) << e.message;
  put("/t/b", "w");
  auto [re, r] = range("/t/", true);
  ASSERT_FALSE(re) << re.message;
  ASSERT_EQ(r.kvs_size(), 2);
  EXPECT_EQ(r.kvs(0).value(), std::string("v\0\xff", 3));
  EXPECT_EQ(r.kvs(0).mod_revision(), p.header().revision());
  etcdserverpb::DeleteRangeRequest d;
  d.set_key("/t/a");
  auto [de, da] = call<etcdserverpb::DeleteRangeResponse>([&](auto h) { client_->delete_range(d, std::move(h)); });
  ASSERT_FALSE(de) << de.message;
  EXPECT_EQ(da.deleted(), 1);
  EXPECT_EQ(range("/t/", true).second.kvs_size(), 1);
}

TEST_F(EtcdLive, TxnComparesModRevision) {
  auto txn = [&](std::int64_t expected_mod, const std::string& value) {
    etcdserverpb::TxnRequest t;
    auto* c = t.add_compare();
    c->set_key("/t/lease");
    c->set_target(etcdserverpb::Compare::MOD);
    c->set_result(etcdserverpb::Compare::EQUAL);
    c->set_mod_revision(expected_mod);
    auto* put_op = t.add_success()->mutable_request_put();
    put_op->set_key("/t/lease");
    put_op->set_value(value);
    t.add_failure()->mutable_request_range()->set_key("/t/lease");
    return call<etcdserverpb::TxnResponse>([&](auto h) { client_->txn(t, std::move(h)); });
  };
  auto [e1, first] = txn(0, "one");  // absent: mod_revision 0
  ASSERT_FALSE(e1) << e1.message;
  EXPECT_TRUE(first.succeeded());
  auto [e2, second] = txn(0, "two");  // no longer absent
  ASSERT_FALSE(e2) << e2.message;
  EXPECT_FALSE(second.succeeded());
  ASSERT_EQ(second.responses_size(), 1);
  ASSERT_EQ(second.responses(0).response_range().kvs_size(), 1);
  EXPECT_EQ(second.responses(0).response_range().kvs(0).value(), "one");
  auto [e3, third] = txn(first.header().revision(), "three");
  ASSERT_FALSE(e3) << e3.message;
  EXPECT_TRUE(third.succeeded());
  EXPECT_EQ(range("/t/lease").second.kvs(0).value(), "three");
}

TEST_F(EtcdLive, LeaseGrantKeepaliveAndExpiry) {
  etcdserverpb::LeaseGrantRequest g;
  g.set_ttl(1);
  auto [ge, grant] = call<etcdserverpb::LeaseGrantResponse>([&](auto h) { client_->lease_grant(g, std::move(h)); });
  ASSERT_FALSE(ge) << ge.message;
  ASSERT_NE(grant.id(), 0);
  ASSERT_FALSE(put("/t/alive", "x", grant.id()).first);
  etcdserverpb::LeaseKeepAliveRequest k;
  k.set_id(grant.id());
  auto [ke, kept] =
      call<etcdserverpb::LeaseKeepAliveResponse>([&](auto h) { client_->lease_keepalive(k, std::move(h)); });
  ASSERT_FALSE(ke) << ke.message;
  EXPECT_EQ(kept.id(), grant.id());
  EXPECT_GT(kept.ttl(), 0);
  // Without keepalives the key goes with its lease.
  const auto stop = std::chrono::steady_clock::now() + 6s;
  while (range("/t/alive").second.kvs_size() != 0 && std::chrono::steady_clock::now() < stop)
    std::this_thread::sleep_for(100ms);
  EXPECT_EQ(range("/t/alive").second.kvs_size(), 0);
  auto [ke2, gone] =
      call<etcdserverpb::LeaseKeepAliveResponse>([&](auto h) { client_->lease_keepalive(k, std::move(h)); });
  ASSERT_FALSE(ke2) << ke2.message;
  EXPECT_EQ(gone.ttl(), 0);
}

TEST_F(EtcdLive, WatchSeesPutsAndDeletesFromARevision) {
  auto [e, before] = put("/w/old", "1");
  ASSERT_FALSE(e);
  std::vector<mvccpb::Event> events;
  bool created = false;
  EtcdError ended;
  etcdserverpb::WatchCreateRequest r;
  r.set_key("/w/");
  r.set_range_end(etcd_prefix_end("/w/"));
  r.set_start_revision(before.header().revision());  // includes the put above
  auto watch = client_->watch(r, [&](const EtcdError& err, const etcdserverpb::WatchResponse& m) {
    if (err) {
      ended = err;
      return;
    }
    created |= m.created();
    for (const auto& ev : m.events()) events.push_back(ev);
  });
  put("/w/new", "2");
  etcdserverpb::DeleteRangeRequest d;
  d.set_key("/w/old");
  call<etcdserverpb::DeleteRangeResponse>([&](auto h) { client_->delete_range(d, std::move(h)); });
  const auto stop = std::chrono::steady_clock::now() + 5s;
  while (events.size() < 3 && std::chrono::steady_clock::now() < stop) io_.run_for(10ms);
  EXPECT_FALSE(ended) << ended.message;
  EXPECT_TRUE(created);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].kv().key(), "/w/old");
  EXPECT_EQ(events[1].kv().key(), "/w/new");
  EXPECT_EQ(events[2].type(), mvccpb::Event::DELETE);
  // etcd going away ends the watch with an error, and calls fail cleanly.
  etcd_.stop();
  const auto stop2 = std::chrono::steady_clock::now() + 5s;
  while (!ended && std::chrono::steady_clock::now() < stop2) io_.run_for(10ms);
  EXPECT_EQ(ended.kind, EtcdErrorKind::ConnectionLost) << ended.message;
  EXPECT_TRUE(range("/w/").first);
}

TEST(EtcdLiveTls, ClientCertificateAndCaAreChecked) {
  if (!testing::EtcdServer::available()) GTEST_SKIP() << "no " << testing::EtcdServer::binary();
  testing::EtcdServer etcd;
  ASSERT_TRUE(etcd.make_certificates()) << etcd.path("openssl.log");
  ASSERT_TRUE(etcd.start(true));
  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  auto try_put = [&](const std::string& cert, const std::string& key, const std::string& ca) {
    EtcdOptions o;
    o.endpoints = {etcd.url()};
    o.cert = cert;
    o.key = key;
    o.ca = ca;
    o.timeout = 1000ms;
    std::string error;
    auto c = EtcdClient::create(io, o, error);
    EXPECT_TRUE(c) << error;
    EtcdError result;
    bool done = false;
    etcdserverpb::PutRequest p;
    p.set_key("/tls");
    p.set_value("x");
    c->put(p, [&](const EtcdError& e, etcdserverpb::PutResponse&&) {
      result = e;
      done = true;
    });
    while (!done) io.run_for(5ms);
    return result;
  };
  // Ready within 10 s.
  const auto stop = std::chrono::steady_clock::now() + 10s;
  EtcdError e;
  while ((e = try_put(etcd.path("client.crt"), etcd.path("client.key"), etcd.path("ca.crt"))) &&
         std::chrono::steady_clock::now() < stop)
    std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(e) << e.message;
  // Without a client certificate etcd refuses the handshake; with the
  // server's CA unknown the client does.
  EXPECT_TRUE(try_put("", "", etcd.path("ca.crt")));
  EtcdError unknown_ca = try_put(etcd.path("client.crt"), etcd.path("client.key"), "");
  EXPECT_EQ(unknown_ca.kind, EtcdErrorKind::Connect) << unknown_ca.message;
  EXPECT_NE(unknown_ca.message.find("TLS handshake"), std::string::npos) << unknown_ca.message;
}

}  // namespace
}  // namespace wownet::io
