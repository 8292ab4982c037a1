// The DNS responder and the config's static names ([[dns.static]]): A
// records before any lease's name, PTR records for their addresses whether
// leased or not, over TCP as over UDP.
#include "dns_fixture.h"

namespace wownet::dns_test {
namespace {

class DnsStaticTest : public DnsTest {
 protected:
  DnsStaticTest() {
    zone_.static_names = {StaticName{"printer", ip("10.128.0.40")}, StaticName{"web", ip("10.128.0.9")},
                          StaticName{"lp", ip("10.128.0.40")}};
  }
};

TEST_F(DnsStaticTest, AStaticNameAnswersItsAddress) {
  Decoded d = decode(answer(make_query("Printer.wow", kA)));
  EXPECT_EQ(d.rcode, 0u);
  EXPECT_TRUE(d.aa);
  EXPECT_EQ(d.answer_type, kA);
  EXPECT_EQ(d.ttl, 60u);
  EXPECT_EQ(d.rdata, (Bytes{10, 128, 0, 40}));
  EXPECT_TRUE(dir_.looked_up.empty());  // the leases were not asked
}

TEST_F(DnsStaticTest, AStaticNameGoesBeforeALeasesHostName) {
  // "web" is also a VM's host name (10.128.0.7): the admin's name wins.
  Decoded d = decode(answer(make_query("web.wow", kA)));
  EXPECT_EQ(d.rdata, (Bytes{10, 128, 0, 9}));
}

TEST_F(DnsStaticTest, TheStaticAddressHasAPtrRecordLeasedOrNot) {
  Decoded d = decode(answer(make_query("40.0.128.10.in-addr.arpa", kPtr)));
  EXPECT_EQ(d.rcode, 0u);
  EXPECT_EQ(d.answer_type, kPtr);
  EXPECT_EQ(d.rdata, encode_name("printer.wow"));  // the first of its names
  // An A query for the reverse name exists but has no A record (NODATA).
  d = decode(answer(make_query("40.0.128.10.in-addr.arpa", kA)));
  EXPECT_EQ(d.rcode, 0u);
  EXPECT_EQ(d.ancount, 0u);
  // Unleased and without a static name: NXDOMAIN, as before.
  d = decode(answer(make_query("41.0.128.10.in-addr.arpa", kPtr)));
  EXPECT_EQ(d.rcode, 3u);
}

TEST_F(DnsStaticTest, OtherNamesAreAnsweredAsBefore) {
  EXPECT_EQ(decode(answer(make_query("nothing.wow", kA))).rcode, 3u);
  EXPECT_EQ(decode(answer(make_query("gateway.wow", kA))).rdata, (Bytes{10, 128, 0, 1}));
  EXPECT_EQ(decode(answer(make_query("C128000005.wow", kA))).rdata, (Bytes{10, 128, 0, 5}));
  EXPECT_EQ(decode(answer(make_query("printer.example", kA))).rcode, 5u);  // REFUSED: not our domain
}

TEST_F(DnsStaticTest, TcpAnswersTheSame) {
  transport_ = DnsTransport::Tcp;
  EXPECT_EQ(decode(answer(make_query("lp.wow", kA))).rdata, (Bytes{10, 128, 0, 40}));
}

}  // namespace
}  // namespace wownet::dns_test
