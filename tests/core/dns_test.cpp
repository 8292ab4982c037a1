#include "core/dns.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace wownet {
namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr std::uint16_t kA = 1, kPtr = 12, kAaaa = 28, kTxt = 16, kAny = 255;

class FakeDirectory : public NameDirectory {
 public:
  std::optional<Ipv4Addr> find_host_name(std::string_view name) const override {
    looked_up.emplace_back(name);
    auto it = hosts.find(std::string(name));
    if (it == hosts.end()) return std::nullopt;
    return it->second;
  }
  bool is_leased(Ipv4Addr addr) const override { return leased.count(addr.value) != 0; }
  std::string host_name_of(Ipv4Addr addr) const override {
    for (const auto& [name, a] : hosts)
      if (a == addr) return name;
    return {};
  }

  std::map<std::string, Ipv4Addr> hosts;
  std::set<std::uint32_t> leased;
  mutable std::vector<std::string> looked_up;
};

Ipv4Addr ip(const char* s) { return *Ipv4Addr::parse(s); }

Bytes encode_name(std::string_view name) {
  Bytes out;
  while (!name.empty()) {
    auto dot = name.find('.');
    auto label = name.substr(0, dot);
    out.push_back(std::uint8_t(label.size()));
    out.insert(out.end(), label.begin(), label.end());
    name = dot == std::string_view::npos ? std::string_view{} : name.substr(dot + 1);
  }
  out.push_back(0);
  return out;
}

void append16(Bytes& b, std::uint16_t v) {
  b.push_back(std::uint8_t(v >> 8));
  b.push_back(std::uint8_t(v));
}

// An OPT record (RFC 6891) with UDP size 4096 and, optionally, a DNS cookie option as dig sends it.
Bytes opt_record(bool cookie, std::uint8_t version = 0, bool dnssec_ok = false) {
  Bytes b{0x00, 0x00, 0x29, 0x10, 0x00, 0x00, version, std::uint8_t(dnssec_ok ? 0x80 : 0), 0x00};
  if (cookie) {
    append16(b, 12);
    Bytes opt{0x00, 0x0a, 0x00, 0x08, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
    b.insert(b.end(), opt.begin(), opt.end());
  } else {
    append16(b, 0);
  }
  return b;
}

// A query with ID 0x1234, RD set, one question and optionally an OPT record.
Bytes make_query(std::string_view name, std::uint16_t qtype, bool edns = false, std::uint16_t qclass = 1) {
  Bytes q{0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, std::uint8_t(edns ? 1 : 0)};
  Bytes n = encode_name(name);
  q.insert(q.end(), n.begin(), n.end());
  append16(q, qtype);
  append16(q, qclass);
  if (edns) {
    Bytes o = opt_record(false);
    q.insert(q.end(), o.begin(), o.end());
  }
  return q;
}

// The fields of a response the tests look at.
struct Decoded {
  std::uint16_t id = 0;
  bool qr = false, aa = false, tc = false, rd = false, ra = false;
  unsigned opcode = 0, rcode = 0;
  std::uint16_t qdcount = 0, ancount = 0, nscount = 0, arcount = 0;
  Bytes question;  // raw question section (name + type + class), if qdcount == 1
  std::uint16_t answer_type = 0;
  std::uint32_t ttl = 0;
  Bytes rdata;
};

class DnsTest : public ::testing::Test {
 protected:
  DnsTest() {
    zone_.domain = "wow";
    zone_.network = *Ipv4Prefix::parse("10.128.0.0/9");
    zone_.gateway = ip("10.128.0.1");
    zone_.ttl = 60;
    dir_.leased = {ip("10.128.0.5").value, ip("10.128.0.7").value, ip("10.200.1.2").value};
    dir_.hosts = {{"web", ip("10.128.0.7")}};
  }

  Bytes answer(const Bytes& query, std::size_t out_size = 1500) {
    Bytes out(out_size + 16, 0xee);  // guard bytes after `out_size` must stay untouched
    std::size_t n = answer_dns_query(zone_, dir_, query, ByteSpan(out.data(), out_size), counters_, transport_);
    EXPECT_LE(n, out_size);
    for (std::size_t i = out_size; i < out.size(); ++i) EXPECT_EQ(out[i], 0xee);
    out.resize(n);
    return out;
  }

  // Decodes a response that this module produced: at most one question (uncompressed), at most one answer
  // whose owner is a pointer to the question.
  static Decoded decode(const Bytes& r) {
    Decoded d;
    EXPECT_GE(r.size(), 12u);
    if (r.size() < 12) return d;
    d.id = std::uint16_t(r[0] << 8 | r[1]);
    d.qr = r[2] & 0x80;
    d.opcode = (r[2] >> 3) & 0xf;
    d.aa = r[2] & 0x04;
    d.tc = r[2] & 0x02;
    d.rd = r[2] & 0x01;
    d.ra = r[3] & 0x80;
    d.rcode = r[3] & 0x0f;
    d.qdcount = std::uint16_t(r[4] << 8 | r[5]);
    d.ancount = std::uint16_t(r[6] << 8 | r[7]);
    d.nscount = std::uint16_t(r[8] << 8 | r[9]);
    d.arcount = std::uint16_t(r[10] << 8 | r[11]);
    std::size_t pos = 12;
    if (d.qdcount == 1) {
      while (pos < r.size() && r[pos] != 0) pos += 1 + r[pos];
      pos += 5;
      EXPECT_LE(pos, r.size());
      d.question.assign(r.begin() + 12, r.begin() + std::min(pos, r.size()));
    }
    if (d.ancount == 1) {
      EXPECT_EQ(r[pos], 0xc0);
      EXPECT_EQ(r[pos + 1], 0x0c);
      d.answer_type = std::uint16_t(r[pos + 2] << 8 | r[pos + 3]);
      EXPECT_EQ(r[pos + 4], 0);
      EXPECT_EQ(r[pos + 5], 1);  // class IN
      d.ttl = std::uint32_t(r[pos + 6]) << 24 | std::uint32_t(r[pos + 7]) << 16 | std::uint32_t(r[pos + 8]) << 8 |
              r[pos + 9];
      std::size_t len = std::size_t(r[pos + 10] << 8 | r[pos + 11]);
      pos += 12;
      EXPECT_LE(pos + len, r.size());
      d.rdata.assign(r.begin() + pos, r.begin() + pos + len);
      pos += len;
    }
    if (d.arcount == 1) {
      Bytes opt(r.begin() + std::ptrdiff_t(pos), r.end());
      EXPECT_EQ(opt.size(), 11u);
      pos = r.size();
    }
    EXPECT_EQ(pos, r.size());
    return d;
  }

  static Bytes question_of(const Bytes& query) {
    std::size_t pos = 12;
    while (query[pos] != 0) pos += 1 + query[pos];
    return Bytes(query.begin() + 12, query.begin() + std::ptrdiff_t(pos) + 5);
  }

  DnsZone zone_;
  FakeDirectory dir_;
  DnsCounters counters_;
  DnsTransport transport_ = DnsTransport::Udp;
};

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

TEST_F(DnsTest, FormErrForQuestionCount) {
  Bytes q = make_query("web.wow", kA);
  q[5] = 2;
  Bytes r = answer(q);
  EXPECT_EQ(r, (Bytes{0x12, 0x34, 0x81, 0x01, 0, 0, 0, 0, 0, 0, 0, 0}));
  q[5] = 0;
  EXPECT_EQ(decode(answer(q)).rcode, 1u);
  EXPECT_EQ(counters_.formerr, 2u);
}

TEST_F(DnsTest, FormErrForTruncatedQuestion) {
  Bytes q = make_query("web.wow", kA);
  for (std::size_t len = 12; len < q.size(); ++len) {
    SCOPED_TRACE(len);
    Bytes t(q.begin(), q.begin() + std::ptrdiff_t(len));
    EXPECT_EQ(answer(t), (Bytes{0x12, 0x34, 0x81, 0x01, 0, 0, 0, 0, 0, 0, 0, 0}));
  }
}

TEST_F(DnsTest, FormErrForBadLabels) {
  Bytes base{0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  auto with_name = [&](Bytes name) {
    Bytes q = base;
    q.insert(q.end(), name.begin(), name.end());
    append16(q, kA);
    append16(q, 1);
    return q;
  };
  EXPECT_EQ(decode(answer(with_name({0x40, 'a', 0}))).rcode, 1u);       // extended label type 01
  EXPECT_EQ(decode(answer(with_name({0x80, 'a', 0}))).rcode, 1u);       // reserved label type 10
  EXPECT_EQ(decode(answer(with_name({0x05, 'a', 'b', 0}))).rcode, 1u);  // label runs into type/class
  // 5 labels of 63 bytes: more than 255 bytes.
  Bytes longname;
  for (int i = 0; i < 5; ++i) {
    longname.push_back(63);
    longname.insert(longname.end(), 63, 'a');
  }
  longname.push_back(0);
  EXPECT_EQ(decode(answer(with_name(longname))).rcode, 1u);
  // Exactly 255 bytes is fine (and outside the zone).
  Bytes maxname;
  for (int i = 0; i < 3; ++i) {
    maxname.push_back(63);
    maxname.insert(maxname.end(), 63, 'a');
  }
  maxname.push_back(61);
  maxname.insert(maxname.end(), 61, 'a');
  maxname.push_back(0);
  ASSERT_EQ(maxname.size(), 255u);
  EXPECT_EQ(decode(answer(with_name(maxname))).rcode, 5u);
}

TEST_F(DnsTest, CompressionPointerLoopsAreFormErr) {
  Bytes base{0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  for (Bytes name : {Bytes{0xc0, 0x0c},              // points at itself
                     Bytes{0x01, 'a', 0xc0, 0x0c},   // label, then back to its start
                     Bytes{0xc0, 0x0e, 0xc0, 0x0c},  // forward pointer
                     Bytes{0xc0},                    // truncated pointer
                     Bytes{0x3f, 0xc0, 0x0c}}) {     // label running into the pointer
    Bytes q = base;
    q.insert(q.end(), name.begin(), name.end());
    append16(q, kA);
    append16(q, 1);
    Bytes r = answer(q);
    ASSERT_EQ(r.size(), 12u);
    EXPECT_EQ(r[3] & 0x0f, 1);
  }
}

TEST_F(DnsTest, CompressedQuestionIsDecodedAndEchoedUncompressed) {
  // "wow" followed by a pointer to header byte 6 (ANCOUNT's high byte, 0): the root label.
  Bytes q{0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
          0x00, 0x03, 'W',  'o',  'w',  0xc0, 0x06, 0x00, 0x01, 0x00, 0x01};
  Bytes r = answer(q);
  Decoded d = decode(r);
  EXPECT_EQ(d.rcode, 0u);
  EXPECT_TRUE(d.aa);
  EXPECT_EQ(d.question, (Bytes{0x03, 'W', 'o', 'w', 0x00, 0x00, 0x01, 0x00, 0x01}));
}

TEST_F(DnsTest, ResponsesAndShortMessagesAreDropped) {
  Bytes q = make_query("web.wow", kA);
  q[2] |= 0x80;
  EXPECT_TRUE(answer(q).empty());
  EXPECT_TRUE(answer(Bytes(11, 0)).empty());
  EXPECT_TRUE(answer(Bytes{}).empty());
  EXPECT_EQ(counters_.dropped, 3u);
  EXPECT_EQ(counters_.queries, 0u);
}

TEST_F(DnsTest, OtherOpcodesAreNotImp) {
  Bytes q = make_query("web.wow", kA, true);
  q[2] = 0x10 | 0x01;  // opcode 2 (STATUS), RD
  Decoded d = decode(answer(q));
  EXPECT_EQ(d.opcode, 2u);
  EXPECT_EQ(d.rcode, 4u);
  EXPECT_FALSE(d.aa);
  EXPECT_EQ(d.ancount, 0u);
  EXPECT_EQ(d.question, question_of(q));  // echoed since it parses
  EXPECT_EQ(d.arcount, 1u);               // OPT in, OPT out

  q[5] = 0;  // no question: header only
  EXPECT_EQ(answer(q), (Bytes{0x12, 0x34, 0x91, 0x04, 0, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(counters_.notimp, 2u);
}

TEST_F(DnsTest, TruncatesToTheOutputBuffer) {
  Bytes q = make_query("7.0.128.10.in-addr.arpa", kPtr, true);
  std::size_t question = question_of(q).size();
  Bytes r = answer(q, 12 + question + 11);
  Decoded d = decode(r);
  EXPECT_TRUE(d.tc);
  EXPECT_EQ(d.ancount, 0u);
  EXPECT_EQ(d.arcount, 1u);
  EXPECT_EQ(r.size(), 12 + question + 11);

  d = decode(answer(q, 12 + question));
  EXPECT_TRUE(d.tc);
  EXPECT_EQ(d.qdcount, 1u);
  EXPECT_EQ(d.arcount, 0u);

  d = decode(answer(q, 20));
  EXPECT_TRUE(d.tc);
  EXPECT_EQ(d.qdcount, 0u);

  EXPECT_TRUE(answer(q, 11).empty());
}

// Every cut of a response is a well-formed message no larger than the room
// it had: whole sections from the front, TC set exactly when something was
// left out, the OPT record (last) kept while it fits (RFC 1035 §4.2.1, RFC
// 6891 §7). Counted as truncated.
TEST_F(DnsTest, EveryTruncationIsWellFormedAndFlagged) {
  for (bool edns : {false, true}) {
    for (const Bytes& q : {make_query("7.0.128.10.in-addr.arpa", kPtr, edns), make_query("web.wow", kA, edns)}) {
      const Bytes full = answer(q);
      ASSERT_FALSE(decode(full).tc);
      const std::size_t question = question_of(q).size();
      const std::size_t opt = edns ? 11 : 0;
      for (std::size_t room = 0; room < full.size(); ++room) {
        const std::uint64_t before = counters_.truncated;
        const Bytes r = answer(q, room);
        if (room < 12) {
          EXPECT_TRUE(r.empty()) << room;
          continue;
        }
        const Decoded d = decode(r);  // checks that every section is whole
        EXPECT_TRUE(d.tc) << room;
        EXPECT_EQ(counters_.truncated, before + 1) << room;
        EXPECT_EQ(d.ancount, 0u) << room;  // the one answer is what did not fit
        EXPECT_EQ(d.qdcount, room >= 12 + question ? 1u : 0u) << room;
        EXPECT_EQ(d.arcount, edns && room >= 12 + question + opt ? 1u : 0u) << room;
        EXPECT_EQ(d.id, 0x1234u);
        EXPECT_EQ(d.rcode, 0u);
      }
    }
  }
}

// The largest responses this server can give, a PTR to a 255-byte name for
// the longest reverse name and an A record for a 255-byte name, fit in 512
// bytes: over UDP nothing real is ever truncated, with or without EDNS, and
// an EDNS size below 512 counts as 512 (RFC 6891 §6.2.5).
TEST_F(DnsTest, LargestResponsesFitInTheUdpMinimum) {
  zone_.domain =
      std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." + std::string(50, 'd');
  zone_.network = *Ipv4Prefix::parse("100.0.0.0/8");
  zone_.gateway = ip("100.0.0.1");
  dir_.leased = {ip("100.200.200.200").value};
  Bytes q = make_query("200.200.200.100.in-addr.arpa", kPtr, true);
  q[q.size() - 8] = 0;  // EDNS UDP size 0: means 512
  q[q.size() - 7] = 0;
  Bytes r = answer(q);
  Decoded d = decode(r);
  EXPECT_FALSE(d.tc);
  EXPECT_EQ(d.rdata.size(), 255u);
  EXPECT_EQ(r.size(), 12u + 34 + 12 + 255 + 11);

  const std::string longest = "gateway." + zone_.domain;  // 8 + 242 characters: a 252-byte wire name
  r = answer(make_query(longest, kA, true));
  d = decode(r);
  EXPECT_FALSE(d.tc);
  EXPECT_EQ(d.ancount, 1u);
  EXPECT_EQ(counters_.truncated, 0u);
}

// Over TCP the answers are the same bytes as over UDP; only the room given
// limits them (the 512-byte rule is UDP's).
TEST_F(DnsTest, TcpAnswersAreTheUdpAnswers) {
  for (const Bytes& q : {make_query("web.wow", kA, true), make_query("7.0.128.10.in-addr.arpa", kPtr),
                         make_query("nosuch.wow", kA), make_query("example.com", kA, true)}) {
    transport_ = DnsTransport::Udp;
    const Bytes udp = answer(q);
    transport_ = DnsTransport::Tcp;
    EXPECT_EQ(answer(q), udp);
    EXPECT_TRUE(decode(answer(q, 20)).tc);
  }
}

TEST_F(DnsTest, PtrTargetTooLongFallsBackToAutoNameThenServFail) {
  // 242 characters: "<40-char host>.<domain>" exceeds 255 bytes, "C128000005.<domain>" is exactly 255.
  zone_.domain =
      std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." + std::string(50, 'd');
  dir_.hosts = {{std::string(40, 'h'), ip("10.128.0.5")}};
  Bytes q = make_query("5.0.128.10.in-addr.arpa", kPtr);
  Decoded d = decode(answer(q));
  EXPECT_EQ(d.rcode, 0u);
  EXPECT_EQ(d.rdata, encode_name("C128000005." + zone_.domain));
  EXPECT_EQ(d.rdata.size(), 255u);

  zone_.domain += "dddddd";  // now even the auto name does not fit: SERVFAIL rather than a broken name
  d = decode(answer(q));
  EXPECT_EQ(d.rcode, 2u);
  EXPECT_EQ(d.ancount, 0u);
  EXPECT_EQ(counters_.servfail, 1u);
}

TEST_F(DnsTest, Counters) {
  answer(make_query("web.wow", kA));
  answer(make_query("nosuch.wow", kA));
  answer(make_query("example.com", kA));
  EXPECT_EQ(counters_.queries, 3u);
  EXPECT_EQ(counters_.answered, 1u);
  EXPECT_EQ(counters_.nxdomain, 1u);
  EXPECT_EQ(counters_.refused, 1u);
  EXPECT_EQ(counters_.formerr, 0u);
  EXPECT_EQ(counters_.dropped, 0u);
}

TEST(DnsAutoName, FormatsAndParses) {
  const Ipv4Prefix net = *Ipv4Prefix::parse("10.128.0.0/9");
  EXPECT_EQ(auto_name(ip("10.128.0.5")), "C128000005");
  EXPECT_EQ(auto_name(ip("10.255.255.254")), "C255255254");
  EXPECT_EQ(auto_name(ip("10.200.10.1")), "C200010001");
  EXPECT_EQ(parse_auto_name("C128000005", net), ip("10.128.0.5"));
  EXPECT_EQ(parse_auto_name("c200010001", net), ip("10.200.10.1"));
  for (const char* s : {"10.128.0.1", "10.128.0.5", "10.255.255.255", "10.170.3.250"})
    EXPECT_EQ(parse_auto_name(auto_name(ip(s)), net), ip(s)) << s;
}

TEST(DnsAutoName, Rejections) {
  const Ipv4Prefix net = *Ipv4Prefix::parse("10.128.0.0/9");
  for (const char* s : {"C12800000", "C1280000055", "C128000999", "C256000001", "C128300001", "D128000005",
                        "C12800000x", "C-28000005", "", "C", "C128 00005"})
    EXPECT_FALSE(parse_auto_name(s, net)) << s;
  EXPECT_FALSE(parse_auto_name("C127000005", net));  // 10.127.0.5 is outside 10.128.0.0/9
  EXPECT_EQ(parse_auto_name("C127000005", *Ipv4Prefix::parse("10.0.0.0/8")), ip("10.127.0.5"));
  EXPECT_EQ(parse_auto_name("C127000005", *Ipv4Prefix::parse("192.168.0.0/16")), std::nullopt);
  EXPECT_EQ(parse_auto_name("C168000005", *Ipv4Prefix::parse("192.168.0.0/16")), ip("192.168.0.5"));
}

TEST(DnsDomain, Validation) {
  for (const char* s : {"wow", "vm.example", "a-b.c1", "0"}) EXPECT_TRUE(is_valid_dns_domain(s)) << s;
  for (const char* s : {"", "Wow", "wow.", ".wow", "a..b", "-a", "a-", "a_b", "a b"})
    EXPECT_FALSE(is_valid_dns_domain(s)) << s;
  EXPECT_TRUE(is_valid_dns_domain(std::string(63, 'a')));
  EXPECT_FALSE(is_valid_dns_domain(std::string(64, 'a')));
}

TEST_F(DnsTest, FuzzNeverOverrunsOrCrashes) {
  std::mt19937 rng(12345);
  std::vector<Bytes> seeds = {make_query("C128000005.wow", kA), make_query("web.wow", kAny, true),
                              make_query("7.0.128.10.in-addr.arpa", kPtr, true), make_query("example.com", kAaaa)};
  Bytes compressed{0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
                   0x00, 0x03, 'w',  'e',  'b',  0xc0, 0x06, 0x00, 0x01, 0x00, 0x01};
  seeds.push_back(compressed);
  std::array<std::uint8_t, 1500> out{};
  for (int iter = 0; iter < 20000; ++iter) {
    Bytes q;
    if (iter % 4 == 0) {
      q.resize(rng() % 80);
      for (auto& b : q) b = std::uint8_t(rng());
      if (q.size() >= 6) {
        q[2] &= 0x7f;  // make most of them reach the parser
        q[4] = 0;
        q[5] = 1;
      }
    } else {
      q = seeds[rng() % seeds.size()];
      int edits = 1 + int(rng() % 6);
      for (int e = 0; e < edits; ++e) {
        switch (rng() % 5) {
          case 0: q[rng() % q.size()] = std::uint8_t(rng()); break;
          case 1: q[rng() % q.size()] ^= std::uint8_t(1u << (rng() % 8)); break;
          case 2: q.resize(rng() % (q.size() + 1)); break;
          case 3: q.insert(q.begin() + std::ptrdiff_t(rng() % (q.size() + 1)), std::uint8_t(0xc0 | (rng() % 4))); break;
          case 4: q.push_back(std::uint8_t(rng())); break;
        }
        if (q.empty()) break;
      }
    }
    std::size_t out_size = iter % 7 == 0 ? rng() % 64 : out.size();
    std::size_t n = answer_dns_query(zone_, dir_, q, ByteSpan(out.data(), out_size), counters_);
    ASSERT_LE(n, out_size);
    if (n != 0) {
      ASSERT_GE(n, 12u);
      EXPECT_EQ(out[0], q[0]);
      EXPECT_EQ(out[1], q[1]);
      EXPECT_TRUE(out[2] & 0x80);
      if (n > 512) {
        EXPECT_EQ(out[11], 1);  // only EDNS responses may exceed 512 bytes
      }
    }
  }
  EXPECT_GT(counters_.queries, 10000u);
  EXPECT_GT(counters_.answered, 0u);
  EXPECT_GT(counters_.formerr, 0u);
}

}  // namespace
}  // namespace wownet
