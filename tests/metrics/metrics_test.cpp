// hostd/metrics: counters reach the exposition through their visit
// functions, under documented names.
#include "metrics.h"

#include <gtest/gtest.h>

#include <string>

#include "core/test_frames.h"
#include "io/metrics_server.h"
#include "overlay/peer_manager.h"
#include "overlay/registry_client.h"
#include "overlay/relay.h"
#include "registry/registry.h"
#include "registry/registry_etcd.h"

namespace wownet {
namespace {

using test::Bytes;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Every name a visit function reports has a help text under its group.
template <typename Counters>
void expect_documented(const Counters& c, const std::string& group, bool counter = true) {
  c.visit([&](std::string_view name, std::uint64_t) {
    const std::string family = "wownet_" + group + "_" + std::string(name) + (counter ? "_total" : "");
    EXPECT_FALSE(metrics::help_of(family).empty()) << family << " has no help text in hostd/metrics.cpp";
  });
}

TEST(Metrics, EveryVisitedCounterIsDocumented) {
  expect_documented(EngineCounters{}, "engine");
  expect_documented(DhcpCounters{}, "dhcp");
  expect_documented(DnsCounters{}, "dns");
  expect_documented(DnsTcpCounters{}, "dns_tcp");
  expect_documented(AttachmentCounters{}, "attachment");
  expect_documented(overlay::PeerManager::Counters{}, "overlay");
  expect_documented(overlay::PeerManager::PeerStats{}, "peer");
  expect_documented(overlay::RegistryClient::Counters{}, "overlay");
  expect_documented(registry::SharedRegistryCounters{}, "registry");
  expect_documented(registry::PresenceCounters{}, "registry");
  expect_documented(overlay::Relay::Counters{}, "overlay");
  expect_documented(registry::RegistryCounters{}, "registry");
  expect_documented(io::MetricsServer::Counters{}, "metrics_http");
}

TEST(Metrics, SinksNameCountersAndGauges) {
  util::PromText out;
  const auto c = metrics::counters(out, "dhcp", {{"vm", "a"}});
  c("offers", 2);
  c("acks", 1);
  metrics::gauges(out, "overlay")("rendezvous_up", 1);
  metrics::gauges(out, "overlay")("no_such_gauge", 5);
  EXPECT_EQ(out.text(),
            "# HELP wownet_dhcp_offers_total DHCPOFFER messages sent\n"
            "# TYPE wownet_dhcp_offers_total counter\n"
            "wownet_dhcp_offers_total{vm=\"a\"} 2\n"
            "# HELP wownet_dhcp_acks_total DHCPACK messages sent\n"
            "# TYPE wownet_dhcp_acks_total counter\n"
            "wownet_dhcp_acks_total{vm=\"a\"} 1\n"
            "# HELP wownet_overlay_rendezvous_up Rendezvous nodes with a keyed session\n"
            "# TYPE wownet_overlay_rendezvous_up gauge\n"
            "wownet_overlay_rendezvous_up 1\n"
            "# HELP wownet_overlay_no_such_gauge " +
                std::string(metrics::kUndocumented) +
                "\n"
                "# TYPE wownet_overlay_no_such_gauge gauge\n"
                "wownet_overlay_no_such_gauge 5\n");
}

TEST(Metrics, EngineCountersPerAttachmentAndDropReasons) {
  HostEngine engine{NetworkConfig{}};
  engine.add_attachment(1, "vm-a", std::nullopt, 1000);
  engine.add_attachment(2, "vm-b", std::nullopt, 1000);
  const MacAddr vm_mac{{0x52, 0x54, 0, 0, 0, 1}};
  // An IPv6 frame: received, then dropped for its ethertype.
  Bytes frame = test::ethernet(NetworkConfig{}.gateway_mac, vm_mac, 0x86dd, Bytes(40, 0));
  (void)engine.on_tap_frame(1000, 1, frame);
  util::PromText out;
  metrics::write_engine(out, engine, 1000);
  const std::string text = out.text();
  EXPECT_TRUE(contains(text, "# TYPE wownet_attachment_rx_frames_total counter\n")) << text;
  EXPECT_TRUE(contains(text, "wownet_attachment_rx_frames_total{vm=\"vm-a\"} 1\n")) << text;
  EXPECT_TRUE(contains(text, "wownet_attachment_rx_bytes_total{vm=\"vm-a\"} " + std::to_string(frame.size()) + "\n"));
  EXPECT_TRUE(contains(text, "wownet_attachment_rx_frames_total{vm=\"vm-b\"} 0\n"));
  EXPECT_TRUE(contains(text, "wownet_attachment_drops_total{vm=\"vm-a\",reason=\"ethertype\"} 1\n"));
  EXPECT_TRUE(contains(text, "wownet_attachment_drops_total{vm=\"vm-b\",reason=\"ethertype\"} 0\n"));
  EXPECT_TRUE(contains(text, "wownet_engine_drops_total{reason=\"ethertype\"} 1\n"));
  EXPECT_TRUE(contains(text, "wownet_engine_peer_drops_total{reason=\"no_route\"} 0\n"));
  EXPECT_TRUE(contains(text, "# TYPE wownet_dhcp_discovers_total counter\nwownet_dhcp_discovers_total 0\n"));
  EXPECT_TRUE(contains(text, "# TYPE wownet_dns_queries_total counter\nwownet_dns_queries_total 0\n"));
  EXPECT_TRUE(contains(text, "# TYPE wownet_leases_active gauge\nwownet_leases_active 0\n"));
  EXPECT_FALSE(contains(text, std::string(metrics::kUndocumented))) << text;
  // One TYPE line per family: the two attachments' samples share theirs.
  std::size_t types = 0;
  for (std::size_t at = 0; (at = text.find("# TYPE wownet_attachment_rx_frames_total ", at)) != std::string::npos; ++at)
    ++types;
  EXPECT_EQ(types, 1u);
}

TEST(Metrics, HistogramInSeconds) {
  overlay::LatencyHistogram h;
  h.add(3);
  h.add(40);
  util::PromText out;
  metrics::histogram(out, "wownet_peer_rtt_seconds", h);
  const std::string text = out.text();
  EXPECT_TRUE(contains(text, "# TYPE wownet_peer_rtt_seconds histogram\n")) << text;
  EXPECT_TRUE(contains(text, "wownet_peer_rtt_seconds_bucket{le=\"0.002\"} 0\n")) << text;
  EXPECT_TRUE(contains(text, "wownet_peer_rtt_seconds_bucket{le=\"0.005\"} 1\n")) << text;
  EXPECT_TRUE(contains(text, "wownet_peer_rtt_seconds_bucket{le=\"0.05\"} 2\n")) << text;
  EXPECT_TRUE(contains(text, "wownet_peer_rtt_seconds_bucket{le=\"30\"} 2\n")) << text;
  EXPECT_TRUE(contains(text, "wownet_peer_rtt_seconds_bucket{le=\"+Inf\"} 2\n")) << text;
  EXPECT_TRUE(contains(text, "wownet_peer_rtt_seconds_sum 0.043\n")) << text;
  EXPECT_TRUE(contains(text, "wownet_peer_rtt_seconds_count 2\n")) << text;
}

}  // namespace
}  // namespace wownet
