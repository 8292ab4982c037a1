#include "metrics.h"

#include <array>
#include <map>
#include <utility>

namespace wownet::metrics {
namespace {

using util::PromType;

// Help texts by family name. A family missing here is still exported, with
// kUndocumented as its help.
const std::map<std::string_view, std::string_view>& catalogue() {
  static const std::map<std::string_view, std::string_view> c{
      // The engine (HostEngine's EngineCounters; drops by reason).
      {"wownet_engine_arp_replies_total", "ARP requests for the gateway answered"},
      {"wownet_engine_arp_unanswered_total", "ARP requests left unanswered (probes, or addresses nobody holds)"},
      {"wownet_engine_icmp_echo_replies_total", "ICMP echo requests to the gateway answered"},
      {"wownet_engine_forwarded_total", "Frames forwarded between VMs on this host"},
      {"wownet_engine_learned_total", "Statically configured VM addresses learned"},
      {"wownet_engine_to_peers_total", "Packets from VMs here sent to other nodes"},
      {"wownet_engine_from_peers_total", "Packets from other nodes delivered to VMs here"},
      {"wownet_engine_registry_waits_total", "DHCP messages waiting for the registry to grant an address"},
      {"wownet_engine_drops_total", "Frames from VMs dropped, by reason"},
      {"wownet_engine_peer_drops_total", "Packets from other nodes dropped on arrival, by reason"},
      // The daemon around the engine (Daemon::visit_counters).
      {"wownet_engine_tap_write_errors_total", "Frames that could not be written to a TAP"},
      {"wownet_engine_offload_mismatch_total", "TAP frames whose virtio-net header could not be honoured"},
      {"wownet_engine_taps_lost_total", "TAP devices that failed under hostd and were recreated"},
      {"wownet_engine_replies_deferred_total", "DHCP replies not sent because the state file could not be written"},
      {"wownet_engine_state_saves_total", "State file saves (at most one per turn of the event loop)"},
      {"wownet_engine_replies_after_save_total", "DHCP replies sent after the save of their turn"},
      {"wownet_engine_no_overlay_total", "Packets for other nodes dropped because the overlay is off"},
      {"wownet_engine_agent_reports_total", "Guest agent reports applied"},
      {"wownet_engine_agent_reports_ignored_total", "Guest agent reports ignored (unknown channel, malformed)"},
      {"wownet_engine_agent_reports_limited_total", "Guest agent reports over the per-channel rate"},
      {"wownet_engine_agent_reports_malformed_total", "Guest agent reports that did not decode"},
      {"wownet_engine_agent_reports_bad_utf8_total", "Guest agent reports with invalid UTF-8"},
      // Per attachment.
      {"wownet_attachment_rx_frames_total", "Frames received from the VM"},
      {"wownet_attachment_rx_bytes_total", "Bytes of the frames received from the VM"},
      {"wownet_attachment_tx_frames_total", "Frames written to the VM"},
      {"wownet_attachment_tx_bytes_total", "Bytes of the frames written to the VM"},
      {"wownet_attachment_drops_total", "Frames from the VM dropped, by reason"},
      {"wownet_attachment_up", "1 while the attachment's bridge and TAP are up"},
      {"wownet_attachments", "VM attachments"},
      {"wownet_leases_active", "Active DHCP leases"},
      // DHCP and DNS.
      {"wownet_dhcp_discovers_total", "DHCPDISCOVER messages from VMs"},
      {"wownet_dhcp_offers_total", "DHCPOFFER messages sent"},
      {"wownet_dhcp_requests_total", "DHCPREQUEST messages from VMs"},
      {"wownet_dhcp_acks_total", "DHCPACK messages sent"},
      {"wownet_dhcp_naks_total", "DHCPNAK messages sent"},
      {"wownet_dhcp_releases_total", "DHCPRELEASE messages from VMs"},
      {"wownet_dhcp_declines_total", "DHCPDECLINE messages from VMs"},
      {"wownet_dhcp_informs_total", "DHCPINFORM messages from VMs"},
      {"wownet_dhcp_ignored_total", "DHCP messages ignored (malformed, wrong server, unknown type)"},
      {"wownet_dns_queries_total", "DNS queries from VMs"},
      {"wownet_dns_answered_total", "DNS queries answered with records"},
      {"wownet_dns_nxdomain_total", "DNS queries answered NXDOMAIN"},
      {"wownet_dns_refused_total", "DNS queries refused (outside the overlay's domain)"},
      {"wownet_dns_formerr_total", "DNS queries answered FORMERR"},
      {"wownet_dns_notimp_total", "DNS queries answered NOTIMP"},
      {"wownet_dns_dropped_total", "DNS messages dropped without an answer"},
      {"wownet_dns_servfail_total", "DNS queries answered SERVFAIL"},
      {"wownet_dns_badvers_total", "DNS queries answered BADVERS (EDNS version other than 0)"},
      {"wownet_dns_truncated_total", "DNS answers cut to fit (TC set)"},
      {"wownet_dns_tcp_segments_total", "TCP segments from VMs to the gateway's DNS port"},
      {"wownet_dns_tcp_connections_total", "DNS-over-TCP connections accepted"},
      {"wownet_dns_tcp_closed_total", "DNS-over-TCP connections closed by FIN exchange"},
      {"wownet_dns_tcp_queries_total", "DNS messages taken off TCP connections"},
      {"wownet_dns_tcp_refused_limit_total", "DNS-over-TCP connections refused at the per-VM or host limit"},
      {"wownet_dns_tcp_resets_sent_total", "TCP resets sent by the gateway"},
      {"wownet_dns_tcp_resets_received_total", "DNS-over-TCP connections reset by the VM"},
      {"wownet_dns_tcp_idle_resets_total", "DNS-over-TCP connections reset after the idle timeout"},
      {"wownet_dns_tcp_retransmits_total", "DNS-over-TCP segments sent again on the retransmission timer"},
      {"wownet_dns_tcp_timeouts_total", "DNS-over-TCP connections reset after too many retransmissions"},
      {"wownet_dns_tcp_oversized_total", "DNS-over-TCP connections reset for a query longer than the buffer"},
      {"wownet_dns_tcp_out_of_order_total", "DNS-over-TCP segments past the expected sequence number (not kept)"},
      {"wownet_dns_tcp_closed_port_total", "TCP segments to the gateway's other ports (answered with a reset)"},
      // The overlay: sessions (PeerManager), registry client, relay, socket.
      {"wownet_overlay_malformed_total", "Overlay datagrams dropped as malformed"},
      {"wownet_overlay_unknown_receiver_total", "Data packets for no live session"},
      {"wownet_overlay_replayed_total", "Data packets dropped as replayed or too old"},
      {"wownet_overlay_bad_tag_total", "Data packets that failed authentication"},
      {"wownet_overlay_handshake_failures_total", "DTLS handshakes that failed or timed out"},
      {"wownet_overlay_queue_drops_total", "Packets dropped from the queues of nodes without a session"},
      {"wownet_overlay_no_endpoint_total", "Packets for nodes with neither a session nor an endpoint"},
      {"wownet_overlay_not_allowed_total", "Datagrams refused (DTLS without a session, unusable Hello, ...)"},
      {"wownet_overlay_handshakes_total", "DTLS handshakes completed"},
      {"wownet_overlay_registry_requests_sent_total", "Lease requests sent to the rendezvous"},
      {"wownet_overlay_registry_retries_total", "Lease requests sent again for want of an answer"},
      {"wownet_overlay_registry_answers_total", "Registry answers matched to a pending request"},
      {"wownet_overlay_registry_replaced_total", "Lease requests replaced by a newer one of the same VM"},
      {"wownet_overlay_registry_given_up_total", "Lease requests given up"},
      {"wownet_overlay_registry_failovers_total", "Rendezvous judged silent (requests moved to another)"},
      {"wownet_overlay_registry_resolves_total", "Resolve requests sent to the rendezvous"},
      {"wownet_overlay_relayed_packets_total", "Datagrams relayed for other nodes"},
      {"wownet_overlay_relayed_bytes_total", "Payload bytes relayed for other nodes"},
      {"wownet_overlay_relay_drops_total", "Relay datagrams refused"},
      {"wownet_overlay_relay_rate_limited_total", "Relay datagrams refused because their source was over its rate"},
      {"wownet_overlay_relay_over_quota_total", "Relay datagrams refused because their source was over its quota"},
      {"wownet_overlay_relay_not_a_relay_total", "Relay datagrams refused because this node does not relay"},
      {"wownet_overlay_relay_malformed_total", "Relay datagrams refused as too short or not node-to-node"},
      {"wownet_overlay_relay_unknown_source_total", "Relay datagrams refused from endpoints without a session"},
      {"wownet_overlay_relay_bad_destination_total", "Relay datagrams refused for naming the relay or their source"},
      {"wownet_overlay_relay_destination_offline_total", "Relay datagrams refused for nodes without a session here"},
      {"wownet_overlay_relay_not_our_relay_total", "Relayed deliveries refused from endpoints that are not our relays"},
      {"wownet_overlay_relay_other_drops_total", "Relayed deliveries refused otherwise (naming us, no name left)"},
      {"wownet_overlay_send_errors_total", "Overlay datagrams the socket would not send"},
      {"wownet_overlay_tap_errors_total", "Packets from other nodes that could not be written to a TAP"},
      {"wownet_overlay_unresolved_total", "Packets for nodes without a known endpoint (the registry is asked)"},
      {"wownet_overlay_probes_sent_total", "NAT punch probes sent"},
      {"wownet_overlay_gro_frames_total", "Frames written to TAPs after receive coalescing"},
      {"wownet_overlay_gro_super_frames_total", "Coalesced TCP frames delivered to TAPs"},
      {"wownet_overlay_gro_segments_merged_total", "TCP segments merged into coalesced frames"},
      {"wownet_overlay_udp_trains_total", "UDP GSO trains sent"},
      {"wownet_overlay_udp_train_datagrams_total", "Datagrams sent inside UDP GSO trains"},
      {"wownet_overlay_stray_probes_total",
       "Punch probes that reached this node (they are meant to expire on the way)"},
      {"wownet_overlay_enrolling", "1 while this host waits for its certificate"},
      {"wownet_overlay_rendezvous_up", "Rendezvous nodes with a keyed session"},
      {"wownet_overlay_registry_pending", "Lease requests waiting for the registry"},
      {"wownet_overlay_udp_gso", "1 while UDP segmentation offload is in use"},
      {"wownet_overlay_udp_gro", "1 while UDP receive offload is in use"},
      {"wownet_overlay_sessions", "Keyed overlay sessions (two per node during a rekey)"},
      {"wownet_peers", "Nodes with a keyed session, by path (direct or relayed)"},
      // Per peer node.
      {"wownet_peer_tx_packets_total", "Packets sent to the node"},
      {"wownet_peer_tx_bytes_total", "IPv4 bytes sent to the node"},
      {"wownet_peer_rx_packets_total", "Packets received from the node"},
      {"wownet_peer_rx_bytes_total", "IPv4 bytes received from the node"},
      {"wownet_peer_established", "1 while the node has a keyed session"},
      {"wownet_peer_relayed", "1 while the node is reached through a relay"},
      {"wownet_peer_last_rtt_seconds", "Round trip of the node's last answered keepalive"},
      {"wownet_peer_handshake_seconds", "Time from our ClientHello to a keyed session (DTLS and Hello)"},
      {"wownet_peer_rtt_seconds", "Round trips of answered keepalives, every node"},
      // The registry (rendezvous only).
      {"wownet_registry_lease_requests_total", "Lease requests handled"},
      {"wownet_registry_lease_refused_total", "Lease requests refused"},
      {"wownet_registry_releases_total", "Lease releases handled"},
      {"wownet_registry_resolves_total", "Resolve requests handled"},
      {"wownet_registry_registers_total", "Node registrations handled"},
      {"wownet_registry_pushes_total", "Messages queued for nodes other than a requester"},
      {"wownet_registry_store_failures_total", "Registry commits that failed and were undone"},
      {"wownet_registry_commit_conflicts_total", "etcd: commits that lost their compare to another rendezvous"},
      {"wownet_registry_commit_retries_total", "etcd: requests handled again after a lost compare"},
      {"wownet_registry_shared_changes_total", "etcd: lease records changed by other rendezvous, applied"},
      {"wownet_registry_group_commits_total",
       "SQLite: transactions, each for the lease changes of one turn of the loop"},
      {"wownet_registry_group_replies_total", "SQLite: lease replies sent after their group's transaction"},
      {"wownet_registry_etcd_txns_total", "etcd: transactions sent"},
      {"wownet_registry_etcd_conflicts_total", "etcd: transactions whose compare failed"},
      {"wownet_registry_etcd_failures_total", "etcd: calls that failed (unreachable, error, bad answer)"},
      {"wownet_registry_etcd_loads_total", "etcd: full loads of the shared registry"},
      {"wownet_registry_etcd_watch_events_total", "etcd: watch events received"},
      {"wownet_registry_etcd_watch_errors_total", "etcd: watches that ended with an error (then re-loaded)"},
      {"wownet_registry_etcd_crl_taken_total", "etcd: CRLs of other rendezvous taken (CA-signed, newer)"},
      {"wownet_registry_etcd_crl_refused_total", "etcd: values of the CRL key refused (not a CRL of the CA)"},
      {"wownet_registry_etcd_crl_writes_total", "etcd: CRLs this rendezvous wrote to the registry"},
      {"wownet_registry_nodes", "Nodes the registry knows, by state (online or offline)"},
      {"wownet_registry_etcd_lease_grants_total", "etcd: leases granted to this rendezvous (its presence)"},
      {"wownet_registry_etcd_lease_keepalives_total", "etcd: keepalives of this rendezvous' lease answered"},
      {"wownet_registry_etcd_presence_failures_total", "etcd: presence calls that failed (grant, keepalive, put)"},
      {"wownet_registry_etcd_leases_lost_total", "etcd: times etcd had let this rendezvous' lease expire"},
      {"wownet_registry_etcd_watch_stalls_total", "etcd: watches that missed this rendezvous' heartbeat (replaced)"},
      {"wownet_registry_etcd_punches_sent_total", "etcd: punches sent for nodes with a session at another rendezvous"},
      {"wownet_registry_etcd_punches_passed_total", "etcd: punches from other rendezvous passed to nodes here"},
      {"wownet_registry_rendezvous_alive", "Rendezvous alive on the shared registry, this one included"},
      // The metrics endpoint itself.
      {"wownet_metrics_http_requests_total", "HTTP requests answered by the metrics endpoint"},
      {"wownet_metrics_http_bad_requests_total", "Metrics connections closed for a malformed or oversized request"},
      {"wownet_metrics_http_not_found_total", "Metrics requests for another path or method"},
      {"wownet_metrics_http_refused_total", "Metrics connections refused at the connection cap"},
      {"wownet_metrics_http_timeouts_total", "Metrics connections closed for a read or write timeout"},
      // The process.
      {"wownet_build_info", "Always 1; the labels name the version and role"},
      {"wownet_start_time_seconds", "When hostd started, in seconds since the Unix epoch"},
  };
  return c;
}

void ensure(util::PromText& out, std::string_view name, PromType type) {
  if (out.declared(name)) return;
  const std::string_view help = help_of(name);
  out.declare(name, type, help.empty() ? kUndocumented : help);
}

}  // namespace

std::string_view help_of(std::string_view name) {
  const auto& c = catalogue();
  const auto it = c.find(name);
  return it == c.end() ? std::string_view{} : it->second;
}

Sink::Sink(util::PromText& out, std::string_view group, std::vector<util::PromLabel> labels, PromType type)
    : out_(out), prefix_("wownet_" + std::string(group) + "_"), labels_(std::move(labels)), type_(type) {}

void Sink::operator()(std::string_view name, std::uint64_t value) const {
  std::string family = prefix_ + std::string(name);
  if (type_ == PromType::Counter) family += "_total";
  ensure(out_, family, type_);
  if (type_ == PromType::Counter) {
    out_.sample(family, labels_, value);
  } else {
    out_.sample(family, labels_, double(value));
  }
}

void gauge(util::PromText& out, std::string_view name, util::PromLabels labels, double value) {
  ensure(out, name, PromType::Gauge);
  out.sample(name, labels, value);
}

void counter(util::PromText& out, std::string_view name, util::PromLabels labels, std::uint64_t value) {
  ensure(out, name, PromType::Counter);
  out.sample(name, labels, value);
}

void drops(util::PromText& out, std::string_view name, std::vector<util::PromLabel> labels,
           const std::array<std::uint64_t, std::size_t(DropReason::Count)>& by_reason) {
  ensure(out, name, PromType::Counter);
  labels.push_back({"reason", {}});
  for (std::size_t i = 0; i < by_reason.size(); ++i) {
    labels.back().value = to_string(DropReason(i));
    out.sample(name, labels, by_reason[i]);
  }
}

void histogram(util::PromText& out, std::string_view name, const overlay::LatencyHistogram& h) {
  ensure(out, name, PromType::Histogram);
  std::array<double, overlay::LatencyHistogram::kBoundsMs.size()> bounds{};
  for (std::size_t i = 0; i < bounds.size(); ++i) bounds[i] = double(overlay::LatencyHistogram::kBoundsMs[i]) / 1000;
  out.histogram(name, {}, bounds, h.buckets, double(h.sum_ms) / 1000);
}

void write_engine(util::PromText& out, const HostEngine& engine, UnixTime now) {
  const EngineCounters& c = engine.counters();
  c.visit(counters(out, "engine"));
  drops(out, "wownet_engine_drops_total", {}, c.drops);
  drops(out, "wownet_engine_peer_drops_total", {}, c.peer_drops);
  engine.dhcp_counters().visit(counters(out, "dhcp"));
  engine.dns_counters().visit(counters(out, "dns"));
  engine.dns_tcp_counters().visit(counters(out, "dns_tcp"));
  gauge(out, "wownet_leases_active", {}, double(engine.leases().active_count(now)));
  for (const auto& [id, a] : engine.attachments()) {
    a.counters.visit(counters(out, "attachment", {{"vm", a.vm}}));
    drops(out, "wownet_attachment_drops_total", {{"vm", a.vm}}, a.counters.drops);
  }
}

}  // namespace wownet::metrics
