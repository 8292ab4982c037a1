// The protobuf edge (guest-agent/io/report_wire): round trips and the size
// limit with real wownet.agent.Report encoding.
#include <gtest/gtest.h>

#include <string>

#include "core/datagram.h"
#include "io/report_wire.h"
#include "proto/agent.pb.h"

namespace wownet::agent {
namespace {

ReportFields full_report() {
  ReportFields f;
  f.agent_version = "0.1.0";
  f.host_name = std::string(63, 'h');
  f.nic = "eth0";
  f.address = "10.20.0.5";
  f.prefix_length = 24;
  f.lease_expiry_unix = 1'700'000'600;
  f.uptime_seconds = 123456;
  f.dhcp_client = "dhclient";
  f.sequence = 99;
  f.mac = "52:54:00:ab:cd:0f";
  return f;
}

TEST(ReportWire, RoundTrip) {
  const auto d = encode_report(full_report());
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->starts_with("WNA1"));
  EXPECT_LE(d->size(), kMaxDatagramSize);
  EXPECT_EQ(decode_report(*d), full_report());
}

TEST(ReportWire, PayloadIsAPlainReportMessage) {
  const auto d = encode_report(full_report());
  ASSERT_TRUE(d);
  Report msg;
  ASSERT_TRUE(msg.ParseFromString(d->substr(4)));
  EXPECT_EQ(msg.host_name(), std::string(63, 'h'));
  EXPECT_EQ(msg.address(), "10.20.0.5");
  EXPECT_EQ(msg.prefix_length(), 24u);
  EXPECT_EQ(msg.lease_expiry_unix(), 1'700'000'600);
  EXPECT_EQ(msg.sequence(), 99u);
  EXPECT_EQ(msg.mac(), "52:54:00:ab:cd:0f");
}

TEST(ReportWire, RealisticReportsAreFarBelowTheLimit) {
  auto f = full_report();
  f.nic = std::string(15, 'n');
  f.address = "255.255.255.255";
  f.uptime_seconds = ~std::uint64_t{0};
  f.sequence = ~std::uint64_t{0};
  const auto d = encode_report(f);
  ASSERT_TRUE(d);
  EXPECT_LT(d->size(), 300u);
}

TEST(ReportWire, OversizedReportIsRefused) {
  auto f = full_report();
  f.agent_version = std::string(1200, 'v');
  EXPECT_EQ(encode_report(f), std::nullopt);
}

TEST(ReportWire, DecodeRejectsGarbage) {
  EXPECT_EQ(decode_report("WNA2"), std::nullopt);
  EXPECT_EQ(decode_report(std::string("WNA1\x0a\x10"
                                      "abc",
                                      7)),
            std::nullopt);  // truncated field
}

}  // namespace
}  // namespace wownet::agent
