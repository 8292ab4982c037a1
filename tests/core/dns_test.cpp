// The DNS responder: answers byte for byte (A, PTR, NXDOMAIN, NODATA,
// REFUSED), EDNS.
#include "dns_fixture.h"

namespace wownet::dns_test {
namespace {

TEST_F(DnsTest, AutoNameResolvesToLeasedAddressByteExact) {
  Bytes q = make_query("C128000005.wow", kA);
  Bytes expected{0x12, 0x34, 0x85, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,  // header: QR AA RD
                 10,   'C',  '1',  '2',  '8',  '0',  '0',  '0',  '0',  '0',  '5',  3,
                 'w',  'o',  'w',  0,    0x00, 0x01, 0x00, 0x01,                          // A IN
                 0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x04,  // answer
                 10,   128,  0,    5};
  EXPECT_EQ(answer(q), expected);
  EXPECT_EQ(counters_.queries, 1u);
  EXPECT_EQ(counters_.answered, 1u);
}

TEST_F(DnsTest, MixedCaseMatchesAndQuestionIsEchoedAsAsked) {
  Bytes q = make_query("c128000005.WOW", kA);
  Decoded d = decode(answer(q));
  EXPECT_EQ(d.rcode, 0u);
  EXPECT_TRUE(d.aa);
  EXPECT_EQ(d.question, question_of(q));
  EXPECT_EQ(d.rdata, (Bytes{10, 128, 0, 5}));
}

TEST_F(DnsTest, HostNameLookupIsLowercased) {
  Decoded d = decode(answer(make_query("WeB.Wow", kA)));
  EXPECT_EQ(d.rcode, 0u);
  EXPECT_EQ(d.answer_type, kA);
  EXPECT_EQ(d.ttl, 60u);
  EXPECT_EQ(d.rdata, (Bytes{10, 128, 0, 7}));
  ASSERT_EQ(dir_.looked_up.size(), 1u);
  EXPECT_EQ(dir_.looked_up[0], "web");
}

TEST_F(DnsTest, GatewayAndTtl) {
  zone_.ttl = 300;
  Decoded d = decode(answer(make_query("gateway.wow", kA)));
  EXPECT_EQ(d.rcode, 0u);
  EXPECT_EQ(d.ttl, 300u);
  EXPECT_EQ(d.rdata, (Bytes{10, 128, 0, 1}));
}

TEST_F(DnsTest, GatewayNameCannotBeTakenByALease) {
  dir_.hosts["gateway"] = ip("10.128.0.5");
  Decoded d = decode(answer(make_query("gateway.wow", kA)));
  EXPECT_EQ(d.rdata, (Bytes{10, 128, 0, 1}));
}

TEST_F(DnsTest, AnyReturnsTheARecord) {
  Decoded d = decode(answer(make_query("web.wow", kAny)));
  EXPECT_EQ(d.rcode, 0u);
  EXPECT_EQ(d.answer_type, kA);
  EXPECT_EQ(d.rdata, (Bytes{10, 128, 0, 7}));
}

TEST_F(DnsTest, NxDomainInTheZone) {
  for (const char* name : {"C128000006.wow", "nosuch.wow", "a.web.wow", "x.C128000005.wow", "C010000005.wow"}) {
    SCOPED_TRACE(name);
    Bytes q = make_query(name, kA);
    Decoded d = decode(answer(q));
    EXPECT_EQ(d.id, 0x1234);
    EXPECT_TRUE(d.qr);
    EXPECT_TRUE(d.aa);
    EXPECT_TRUE(d.rd);
    EXPECT_FALSE(d.ra);
    EXPECT_EQ(d.rcode, 3u);
    EXPECT_EQ(d.ancount, 0u);
    EXPECT_EQ(d.question, question_of(q));
  }
  EXPECT_EQ(counters_.nxdomain, 5u);
  EXPECT_EQ(counters_.answered, 0u);
}

TEST_F(DnsTest, UnleasedAutoNameIsNotLookedUpAsHostName) {
  dir_.hosts["c128000006"] = ip("10.128.0.7");
  EXPECT_EQ(decode(answer(make_query("C128000006.wow", kA))).rcode, 3u);
}

TEST_F(DnsTest, ApexIsNoData) {
  for (std::uint16_t t : {kA, kAaaa, kAny, std::uint16_t(6)}) {
    Decoded d = decode(answer(make_query("WOW", t)));
    EXPECT_EQ(d.rcode, 0u);
    EXPECT_TRUE(d.aa);
    EXPECT_EQ(d.ancount, 0u);
  }
}

TEST_F(DnsTest, OtherTypesOfExistingNamesAreNoData) {
  for (const char* name : {"web.wow", "C128000005.wow", "gateway.wow"}) {
    for (std::uint16_t t : {kAaaa, kTxt, kPtr}) {
      Bytes q = make_query(name, t);
      Bytes r = answer(q);
      Decoded d = decode(r);
      EXPECT_EQ(d.rcode, 0u);
      EXPECT_TRUE(d.aa);
      EXPECT_EQ(d.ancount, 0u);
      EXPECT_EQ(r.size(), 12 + question_of(q).size());
    }
  }
}

TEST_F(DnsTest, RefusesNamesOutsideItsAuthority) {
  for (const char* name : {"example.com", "wow.example.com", "xwow", "1.0.0.127.in-addr.arpa", "5.0.128.in-addr.arpa",
                           "005.0.128.10.in-addr.arpa", "in-addr.arpa", ""}) {
    SCOPED_TRACE(name);
    Bytes q = make_query(name, kA);
    Decoded d = decode(answer(q));
    EXPECT_EQ(d.rcode, 5u);
    EXPECT_FALSE(d.aa);
    EXPECT_EQ(d.ancount, 0u);
    EXPECT_EQ(d.question, question_of(q));
  }
  EXPECT_EQ(counters_.refused, 8u);
}

TEST_F(DnsTest, RefusesClassesOtherThanIn) {
  Decoded d = decode(answer(make_query("web.wow", kA, false, 3)));  // CHAOS
  EXPECT_EQ(d.rcode, 5u);
  EXPECT_EQ(counters_.refused, 1u);
}

TEST_F(DnsTest, PtrToHostNameByteExact) {
  Bytes q = make_query("7.0.128.10.in-addr.arpa", kPtr);
  Bytes expected{0x12, 0x34, 0x85, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00};
  Bytes qs = question_of(q);
  expected.insert(expected.end(), qs.begin(), qs.end());
  Bytes rr{0xc0, 0x0c, 0x00, 0x0c, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3c, 0x00,
           0x09, 3,    'w',  'e',  'b',  3,    'w',  'o',  'w',  0};
  expected.insert(expected.end(), rr.begin(), rr.end());
  EXPECT_EQ(answer(q), expected);
}

TEST_F(DnsTest, PtrToAutoNameWithoutHostName) {
  Decoded d = decode(answer(make_query("5.0.128.10.IN-ADDR.ARPA", kPtr)));
  EXPECT_EQ(d.rcode, 0u);
  EXPECT_TRUE(d.aa);
  EXPECT_EQ(d.answer_type, kPtr);
  EXPECT_EQ(d.rdata, encode_name("C128000005.wow"));

  d = decode(answer(make_query("2.1.200.10.in-addr.arpa", kAny)));
  EXPECT_EQ(d.rdata, encode_name("C200001002.wow"));
}

TEST_F(DnsTest, PtrForGateway) {
  Decoded d = decode(answer(make_query("1.0.128.10.in-addr.arpa", kPtr)));
  EXPECT_EQ(d.rcode, 0u);
  EXPECT_EQ(d.rdata, encode_name("gateway.wow"));
}

TEST_F(DnsTest, PtrForUnleasedAddressIsNxDomain) {
  Decoded d = decode(answer(make_query("6.0.128.10.in-addr.arpa", kPtr)));
  EXPECT_EQ(d.rcode, 3u);
  EXPECT_TRUE(d.aa);
  EXPECT_EQ(d.ancount, 0u);
}

TEST_F(DnsTest, OtherTypesOfLeasedReverseNamesAreNoData) {
  Decoded d = decode(answer(make_query("5.0.128.10.in-addr.arpa", kA)));
  EXPECT_EQ(d.rcode, 0u);
  EXPECT_TRUE(d.aa);
  EXPECT_EQ(d.ancount, 0u);
}

TEST_F(DnsTest, InvalidHostNameFallsBackToAutoName) {
  dir_.hosts = {{"a.b", ip("10.128.0.5")}};
  Decoded d = decode(answer(make_query("5.0.128.10.in-addr.arpa", kPtr)));
  EXPECT_EQ(d.rdata, encode_name("C128000005.wow"));
}

TEST_F(DnsTest, MultiLabelDomain) {
  zone_.domain = "vm.example";
  EXPECT_EQ(decode(answer(make_query("web.VM.example", kA))).rdata, (Bytes{10, 128, 0, 7}));
  EXPECT_EQ(decode(answer(make_query("web.example", kA))).rcode, 5u);
  EXPECT_EQ(decode(answer(make_query("vm.example", kA))).rcode, 0u);
  EXPECT_EQ(decode(answer(make_query("7.0.128.10.in-addr.arpa", kPtr))).rdata, encode_name("web.vm.example"));
}

TEST_F(DnsTest, EdnsIsEchoedWithPlainOpt) {
  Bytes q = make_query("web.wow", kA, true);
  Bytes r = answer(q);
  Decoded d = decode(r);
  EXPECT_EQ(d.rcode, 0u);
  EXPECT_EQ(d.arcount, 1u);
  Bytes opt(r.end() - 11, r.end());
  EXPECT_EQ(opt, (Bytes{0x00, 0x00, 0x29, 0x04, 0xd0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}));

  d = decode(answer(make_query("web.wow", kA, false)));
  EXPECT_EQ(d.arcount, 0u);
}

TEST_F(DnsTest, DigStyleQueryByteExact) {
  // What `dig @host web.wow` sends: RD and AD set, OPT with UDP size 1232 and a client cookie.
  Bytes q{0xab, 0xcd, 0x01, 0x20, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01};
  Bytes n = encode_name("web.wow");
  q.insert(q.end(), n.begin(), n.end());
  append16(q, kA);
  append16(q, 1);
  Bytes o = opt_record(true);
  q.insert(q.end(), o.begin(), o.end());

  Bytes expected{0xab, 0xcd, 0x85, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01,  // AD not echoed
                 3,    'w',  'e',  'b',  3,    'w',  'o',  'w',  0,    0x00, 0x01, 0x00, 0x01, 0xc0,
                 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x04, 10,   128,  0,
                 7,    0x00, 0x00, 0x29, 0x04, 0xd0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  EXPECT_EQ(answer(q), expected);
}

TEST_F(DnsTest, EdnsDnssecOkBitIsCopied) {
  Bytes q = make_query("web.wow", kA);
  q[11] = 1;
  Bytes o = opt_record(false, 0, true);
  q.insert(q.end(), o.begin(), o.end());
  Bytes r = answer(q);
  EXPECT_EQ(r[r.size() - 4], 0x80);
}

TEST_F(DnsTest, EdnsVersionOtherThanZeroIsBadVers) {
  Bytes q = make_query("web.wow", kA);
  q[11] = 1;
  Bytes o = opt_record(false, 1);
  q.insert(q.end(), o.begin(), o.end());
  Bytes r = answer(q);
  Decoded d = decode(r);
  EXPECT_EQ(d.rcode, 0u);  // low 4 bits of BADVERS (16)
  EXPECT_EQ(d.ancount, 0u);
  EXPECT_EQ(r[r.size() - 6], 1);  // extended RCODE
  EXPECT_EQ(counters_.badvers, 1u);
}

TEST_F(DnsTest, DuplicateOrMisplacedOptIsFormErr) {
  Bytes q = make_query("web.wow", kA, true);
  q[11] = 2;
  Bytes o = opt_record(false);
  q.insert(q.end(), o.begin(), o.end());
  Decoded d = decode(answer(q));
  EXPECT_EQ(d.rcode, 1u);
  EXPECT_EQ(d.arcount, 0u);
  EXPECT_EQ(d.question, question_of(q));

  q = make_query("web.wow", kA, true);
  q[7] = 1;  // the OPT record now counts as an answer record
  q[11] = 0;
  EXPECT_EQ(decode(answer(q)).rcode, 1u);
}

}  // namespace
}  // namespace wownet::dns_test
