// io/etcd_codec: endpoint URLs, request bodies in etcd's JSON mapping and
// the checks on every answer, without a server (label: unit).
#include "io/etcd_codec.h"

#include <gtest/gtest.h>

namespace wownet::io {
namespace {

TEST(EtcdEndpoint, ParsesHttpAndHttps) {
  std::string error;
  auto e = parse_etcd_endpoint("http://127.0.0.1:2379", error);
  ASSERT_TRUE(e) << error;
  EXPECT_FALSE(e->tls);
  EXPECT_EQ(e->host, "127.0.0.1");
  EXPECT_EQ(e->port, 2379);
  e = parse_etcd_endpoint("https://etcd-1.example.org:2379/", error);
  ASSERT_TRUE(e) << error;
  EXPECT_TRUE(e->tls);
  EXPECT_EQ(e->host, "etcd-1.example.org");
  EXPECT_EQ(e->to_string(), "https://etcd-1.example.org:2379");
  e = parse_etcd_endpoint("http://[::1]:2379", error);
  ASSERT_TRUE(e) << error;
  EXPECT_EQ(e->host, "::1");
  EXPECT_EQ(e->to_string(), "http://[::1]:2379");
}

TEST(EtcdEndpoint, RefusesBadUrls) {
  for (const char* bad : {"127.0.0.1:2379", "ftp://a:1", "http://a", "http://a:0", "http://a:65536", "http://a:x",
                          "http://:2379", "http://a:2379/v3", "http://[::1:2379", "http://a b:1"}) {
    std::string error;
    EXPECT_FALSE(parse_etcd_endpoint(bad, error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

TEST(EtcdCodec, EncodesInt64AsStringAndBytesAsBase64) {
  etcdserverpb::TxnRequest t;
  auto* c = t.add_compare();
  c->set_key("/w/lease/10.128.0.5");
  c->set_target(etcdserverpb::Compare::MOD);
  c->set_result(etcdserverpb::Compare::EQUAL);
  c->set_mod_revision(0);  // "absent": must still be sent (oneof member)
  t.add_success()->mutable_request_put()->set_key("k");
  const std::string json = etcd_encode(t);
  EXPECT_NE(json.find("\"key\":\"L3cvbGVhc2UvMTAuMTI4LjAuNQ==\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"target\":\"MOD\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"mod_revision\":\"0\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"request_put\":{\"key\":\"aw==\"}"), std::string::npos) << json;
  etcdserverpb::LeaseGrantRequest g;
  g.set_ttl(10);
  EXPECT_EQ(etcd_encode(g), "{\"TTL\":\"10\"}");
}

TEST(EtcdCodec, DecodesAnAnswer) {
  etcdserverpb::RangeResponse r;
  EtcdError e = etcd_decode_answer(
      200,
      R"({"header":{"cluster_id":"1","member_id":"2","revision":"7","raft_term":"2"},)"
      R"("kvs":[{"key":"YQ==","create_revision":"2","mod_revision":"5","version":"1","value":"Yg=="}],"count":"1","x":1})",
      r);
  ASSERT_FALSE(e) << e.message;
  EXPECT_EQ(r.header().revision(), 7);
  ASSERT_EQ(r.kvs_size(), 1);
  EXPECT_EQ(r.kvs(0).key(), "a");
  EXPECT_EQ(r.kvs(0).value(), "b");
  EXPECT_EQ(r.kvs(0).mod_revision(), 5);
}

TEST(EtcdCodec, ReportsEveryBadAnswer) {
  etcdserverpb::RangeResponse r;
  EtcdError e = etcd_decode_answer(200, "{\"header\":{\"revision\":\"1\"", r);
  EXPECT_EQ(e.kind, EtcdErrorKind::Malformed);
  e = etcd_decode_answer(200, "", r);
  EXPECT_EQ(e.kind, EtcdErrorKind::Malformed);
  e = etcd_decode_answer(200, "[1,2]", r);
  EXPECT_EQ(e.kind, EtcdErrorKind::Malformed);
  // Wrong types: a revision that is an object, kvs that is a string.
  e = etcd_decode_answer(200, R"({"header":{"revision":{}}})", r);
  EXPECT_EQ(e.kind, EtcdErrorKind::Malformed);
  e = etcd_decode_answer(200, R"({"header":{},"kvs":"no"})", r);
  EXPECT_EQ(e.kind, EtcdErrorKind::Malformed);
  e = etcd_decode_answer(200, R"({"header":{},"kvs":[{"key":"not base64!"}]})", r);
  EXPECT_EQ(e.kind, EtcdErrorKind::Malformed);
  // Not from etcd: no header.
  e = etcd_decode_answer(200, R"({"kvs":[]})", r);
  EXPECT_EQ(e.kind, EtcdErrorKind::Malformed);
  EXPECT_NE(e.message.find("without a header"), std::string::npos) << e.message;
  // etcd's own error, and a plain HTTP error.
  e = etcd_decode_answer(400,
                         R"({"error":"etcdserver: mvcc: required revision has been compacted",)"
                         R"("message":"etcdserver: mvcc: required revision has been compacted","code":11})",
                         r);
  EXPECT_EQ(e.kind, EtcdErrorKind::Gateway);
  EXPECT_EQ(e.grpc_code, 11);
  EXPECT_EQ(e.http_status, 400u);
  EXPECT_NE(e.message.find("compacted"), std::string::npos);
  e = etcd_decode_answer(404, "Not Found\n", r);
  EXPECT_EQ(e.kind, EtcdErrorKind::Http);
  EXPECT_EQ(e.message, "HTTP 404: Not Found?");
  e = etcd_decode_answer(502, std::string(1000, 'x'), r);
  EXPECT_EQ(e.kind, EtcdErrorKind::Http);
  EXPECT_LT(e.message.size(), 200u);
}

TEST(EtcdCodec, DecodesStreamLines) {
  etcdserverpb::WatchStreamItem w;
  EtcdError e = etcd_decode_stream_line(
      R"({"result":{"header":{"revision":"3"},"events":[{"kv":{"key":"YQ==","mod_revision":"3"}},)"
      R"({"type":"DELETE","kv":{"key":"Yg=="}}]}})",
      w);
  ASSERT_FALSE(e) << e.message;
  ASSERT_EQ(w.result().events_size(), 2);
  EXPECT_EQ(w.result().events(0).type(), mvccpb::Event::PUT);
  EXPECT_EQ(w.result().events(1).type(), mvccpb::Event::DELETE);
  e = etcd_decode_stream_line(R"({"error":{"grpc_code":14,"http_code":503,"message":"no leader"}})", w);
  EXPECT_EQ(e.kind, EtcdErrorKind::Gateway);
  EXPECT_EQ(e.grpc_code, 14);
  EXPECT_EQ(etcd_decode_stream_line("{}", w).kind, EtcdErrorKind::Malformed);
  EXPECT_EQ(etcd_decode_stream_line(R"({"result":{"events":[]}})", w).kind, EtcdErrorKind::Malformed);
  EXPECT_EQ(etcd_decode_stream_line("garbage", w).kind, EtcdErrorKind::Malformed);
}

TEST(EtcdCodec, SplitsLinesAndKeepsTheRest) {
  std::string buffer = "a\r\n\nbc\nde";
  std::vector<std::string> lines;
  etcd_take_lines(buffer, lines);
  EXPECT_EQ(lines, (std::vector<std::string>{"a", "bc"}));
  EXPECT_EQ(buffer, "de");
}

TEST(EtcdCodec, PrefixEnd) {
  EXPECT_EQ(etcd_prefix_end("/wownet/"), "/wownet0");
  EXPECT_EQ(etcd_prefix_end("a\xff"), "b");
  EXPECT_EQ(etcd_prefix_end(""), std::string(1, '\0'));
}

}  // namespace
}  // namespace wownet::io
