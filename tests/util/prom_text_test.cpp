// util/prom_text: the Prometheus text exposition writer, byte-exact.
#include "util/prom_text.h"

#include <gtest/gtest.h>

#include <array>
#include <limits>
#include <string>

namespace wownet::util {
namespace {

TEST(PromText, CounterWithHelpTypeAndLabels) {
  PromText p;
  p.declare("wownet_dhcp_offers_total", PromType::Counter, "DHCPOFFERs sent to VMs");
  p.sample("wownet_dhcp_offers_total", {}, std::uint64_t{3});
  p.declare("wownet_attachment_rx_bytes_total", PromType::Counter, "Bytes the VM sent");
  p.sample("wownet_attachment_rx_bytes_total", {{"vm", "alpha"}}, std::uint64_t{18446744073709551615u});
  p.sample("wownet_attachment_rx_bytes_total", {{"vm", "bravo"}, {"reason", "x"}}, std::uint64_t{0});
  EXPECT_EQ(p.text(),
            "# HELP wownet_dhcp_offers_total DHCPOFFERs sent to VMs\n"
            "# TYPE wownet_dhcp_offers_total counter\n"
            "wownet_dhcp_offers_total 3\n"
            "# HELP wownet_attachment_rx_bytes_total Bytes the VM sent\n"
            "# TYPE wownet_attachment_rx_bytes_total counter\n"
            "wownet_attachment_rx_bytes_total{vm=\"alpha\"} 18446744073709551615\n"
            "wownet_attachment_rx_bytes_total{vm=\"bravo\",reason=\"x\"} 0\n");
}

TEST(PromText, SamplesOfAFamilyStayTogetherWhateverTheOrderOfCalls) {
  PromText p;
  p.declare("a", PromType::Gauge, "first");
  p.declare("b", PromType::Counter, "second");
  p.sample("a", {{"vm", "1"}}, 1.0);
  p.sample("b", {{"vm", "1"}}, std::uint64_t{2});
  p.sample("a", {{"vm", "2"}}, 3.0);
  p.declare("a", PromType::Counter, "ignored: declared before");
  EXPECT_EQ(p.text(),
            "# HELP a first\n# TYPE a gauge\na{vm=\"1\"} 1\na{vm=\"2\"} 3\n"
            "# HELP b second\n# TYPE b counter\nb{vm=\"1\"} 2\n");
}

TEST(PromText, FamiliesWithoutSamplesAreLeftOut) {
  PromText p;
  p.declare("empty", PromType::Counter, "nothing");
  EXPECT_TRUE(p.declared("empty"));
  EXPECT_FALSE(p.declared("other"));
  p.declare("one", PromType::Gauge, "");
  p.sample("one", {}, 0.5);
  EXPECT_EQ(p.text(), "# HELP one\n# TYPE one gauge\none 0.5\n");
}

TEST(PromText, LabelValuesAreEscaped) {
  EXPECT_EQ(prom_escape_label_value("plain"), "plain");
  EXPECT_EQ(prom_escape_label_value("a\\b"), "a\\\\b");
  EXPECT_EQ(prom_escape_label_value("say \"hi\""), "say \\\"hi\\\"");
  EXPECT_EQ(prom_escape_label_value("two\nlines"), "two\\nlines");
  EXPECT_EQ(prom_escape_label_value("tab\tstays"), "tab\tstays");
  EXPECT_EQ(prom_escape_label_value("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  // Invalid UTF-8 (stray continuation, overlong, surrogate, truncated, above U+10FFFF) becomes U+FFFD.
  EXPECT_EQ(prom_escape_label_value("a\x80z"), "a\xef\xbf\xbdz");
  EXPECT_EQ(prom_escape_label_value("\xc0\xaf"), "\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(prom_escape_label_value("\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(prom_escape_label_value("\xe2\x82"), "\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(prom_escape_label_value("\xf4\x90\x80\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(prom_escape_label_value(std::string("nul\0in", 6)), std::string("nul\0in", 6));

  PromText p;
  p.declare("m", PromType::Gauge, "h");
  p.sample("m", {{"vm", "evil\"} 1\nm{vm=\"x"}}, 1.0);
  EXPECT_EQ(p.text(), "# HELP m h\n# TYPE m gauge\nm{vm=\"evil\\\"} 1\\nm{vm=\\\"x\"} 1\n");
}

TEST(PromText, HelpIsEscapedButQuotesStay) {
  EXPECT_EQ(prom_escape_help("a \"quoted\" \\ path\nnext"), "a \"quoted\" \\\\ path\\nnext");
  PromText p;
  p.declare("m", PromType::Counter, "line one\nline two");
  p.sample("m", {}, std::uint64_t{1});
  EXPECT_EQ(p.text(), "# HELP m line one\\nline two\n# TYPE m counter\nm 1\n");
}

TEST(PromText, MetricNamesAreMadeValid) {
  EXPECT_EQ(prom_metric_name("wownet_ok:sub_1"), "wownet_ok:sub_1");
  EXPECT_EQ(prom_metric_name("bad-name.with space"), "bad_name_with_space");
  EXPECT_EQ(prom_metric_name("9lives"), "_9lives");
  EXPECT_EQ(prom_metric_name(""), "_");
  PromText p;
  p.declare("x-y", PromType::Counter, "h");
  p.sample("x-y", {}, std::uint64_t{1});
  EXPECT_TRUE(p.declared("x_y"));
  EXPECT_EQ(p.text(), "# HELP x_y h\n# TYPE x_y counter\nx_y 1\n");
}

TEST(PromText, Values) {
  EXPECT_EQ(prom_format_value(0.0), "0");
  EXPECT_EQ(prom_format_value(42.0), "42");
  EXPECT_EQ(prom_format_value(-3.0), "-3");
  EXPECT_EQ(prom_format_value(0.001), "0.001");
  EXPECT_EQ(prom_format_value(2.5), "2.5");
  EXPECT_EQ(prom_format_value(1e300), "1e+300");
  EXPECT_EQ(prom_format_value(std::numeric_limits<double>::quiet_NaN()), "NaN");
  EXPECT_EQ(prom_format_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(prom_format_value(-std::numeric_limits<double>::infinity()), "-Inf");
}

TEST(PromText, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  PromText p;
  p.declare("wownet_peer_rtt_seconds", PromType::Histogram, "Keepalive round trips");
  const std::array<double, 3> bounds{0.001, 0.01, 0.1};
  const std::array<std::uint64_t, 4> counts{2, 0, 3, 1};  // the last: above 0.1
  p.histogram("wownet_peer_rtt_seconds", {}, bounds, counts, 0.75);
  p.histogram("wownet_peer_rtt_seconds", {{"node", "b"}}, bounds, std::array<std::uint64_t, 4>{}, 0.0);
  EXPECT_EQ(p.text(),
            "# HELP wownet_peer_rtt_seconds Keepalive round trips\n"
            "# TYPE wownet_peer_rtt_seconds histogram\n"
            "wownet_peer_rtt_seconds_bucket{le=\"0.001\"} 2\n"
            "wownet_peer_rtt_seconds_bucket{le=\"0.01\"} 2\n"
            "wownet_peer_rtt_seconds_bucket{le=\"0.1\"} 5\n"
            "wownet_peer_rtt_seconds_bucket{le=\"+Inf\"} 6\n"
            "wownet_peer_rtt_seconds_sum 0.75\n"
            "wownet_peer_rtt_seconds_count 6\n"
            "wownet_peer_rtt_seconds_bucket{node=\"b\",le=\"0.001\"} 0\n"
            "wownet_peer_rtt_seconds_bucket{node=\"b\",le=\"0.01\"} 0\n"
            "wownet_peer_rtt_seconds_bucket{node=\"b\",le=\"0.1\"} 0\n"
            "wownet_peer_rtt_seconds_bucket{node=\"b\",le=\"+Inf\"} 0\n"
            "wownet_peer_rtt_seconds_sum{node=\"b\"} 0\n"
            "wownet_peer_rtt_seconds_count{node=\"b\"} 0\n");
}

TEST(PromText, HistogramWithMismatchedSizesWritesNothing) {
  PromText p;
  p.declare("h", PromType::Histogram, "x");
  const std::array<double, 2> bounds{1, 2};
  p.histogram("h", {}, bounds, std::array<std::uint64_t, 2>{1, 1}, 1.0);
  EXPECT_EQ(p.text(), "");
}

}  // namespace
}  // namespace wownet::util
