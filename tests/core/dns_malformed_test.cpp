// The DNS responder against malformed and hostile queries (FORMERR,
// compression loops, opcodes), truncation, counters, automatic names, fuzz.
#include "dns_fixture.h"

namespace wownet::dns_test {
namespace {

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
  for (const char* name : {"web.wow", "nosuch.wow", "example.com"}) answer(make_query(name, kA));
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
}  // namespace wownet::dns_test
