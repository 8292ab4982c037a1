// OverlayService's reports: the peer list and the status counters that
// the control socket hands out.
#include "overlay_service.h"

#include "io/etcd_client.h"
#include "metrics.h"
#include "registry/registry.h"
#include "registry/registry_etcd.h"

namespace wownet {

void OverlayService::fill_peers(control::PeerList& out) const {
  if (!peers_) return;
  const auto peers = peers_->peers();
  for (const auto& p : peers) {
    auto* x = out.add_peers();
    x->set_node_id(p.node_id);
    x->set_node_name(p.node_name);
    x->set_endpoint(p.endpoint.to_string());
    x->set_path("direct");
    if (const auto route = relay_.route(p.endpoint)) {
      std::string relay_name = route->relay.to_string();
      for (const auto& q : peers)
        if (q.endpoint == route->relay && !q.node_name.empty()) relay_name = q.node_name + " " + relay_name;
      x->set_endpoint(route->relay.to_string());
      x->set_path(p.established && p.relayed ? "relayed" : "direct");
      x->set_relay(relay_name);
    }
    x->set_established(p.established);
    x->set_tx_packets(p.tx_packets);
    x->set_tx_bytes(p.tx_bytes);
    x->set_rx_packets(p.rx_packets);
    x->set_rx_bytes(p.rx_bytes);
    x->set_last_handshake_unix(p.last_handshake_ms > 0 ? now_s() - (now_ms() - p.last_handshake_ms) / 1000 : 0);
    x->set_rtt_ms(p.rtt_ms);
    x->set_rendezvous(rendezvous_up_.count(p.node_id) != 0);
  }
}

template <typename F>
void OverlayService::visit_counters(F&& f) const {
  if (!peers_) return;
  peers_->counters().visit(f);
  registry_client_.counters().visit(f);
  relay_.counters().visit(f);
  f("send_errors", send_errors_), f("tap_errors", tap_errors_), f("unresolved", unresolved_);
  f("probes_sent", nat_.probes_sent()), f("gro_frames", gro_frames_), f("gro_super_frames", gro_super_frames_);
  f("gro_segments_merged", gro_.stats().segments_merged), f("udp_trains", trains_sent_);
  f("udp_train_datagrams", train_datagrams_), f("stray_probes", stray_probes_);
}

template <typename F>
void OverlayService::visit_gauges(F&& f) const {
  f("enrolling", std::uint64_t(enrolling_ ? 1 : 0));
  if (!peers_) return;
  f("rendezvous_up", std::uint64_t(rendezvous_up_.size())), f("registry_pending", registry_client_.pending());
  f("udp_gso", std::uint64_t(socket_.gso_enabled() ? 1 : 0)),
      f("udp_gro", std::uint64_t(socket_.gro_enabled() ? 1 : 0));
}

void OverlayService::fill_status(control::Status& s) const {
  s.set_node_id(node_id_);
  s.set_node_name(node_name_);
  s.set_role(registry_ ? "rendezvous" : "host");
  auto& o = *s.mutable_overlay();
  const auto put = [&o](const char* name, std::uint64_t v) { o[name] = v; };
  visit_gauges(put);
  visit_counters(put);
  if (!registry_) return;
  auto& r = *s.mutable_registry();
  const auto put_registry = [&r](const char* name, std::uint64_t v) { r[name] = v; };
  registry_->counters().visit(put_registry);
  if (!shared_) {
    s.set_registry_backend("sqlite");
    return;
  }
  s.set_registry_backend("etcd");
  shared_->counters().visit(put_registry);
  put_registry("commits_in_flight", registry_->commits_in_flight());
  if (!shared_->loaded()) {
    s.set_registry_state("loading from " + etcd_client_->current_endpoint() +
                         (shared_->last_error().empty() ? "" : ": " + shared_->last_error()));
  } else if (shared_->reachable()) {
    s.set_registry_state("reachable at " + etcd_client_->current_endpoint() + ", revision " +
                         std::to_string(shared_->revision()));
  } else {
    s.set_registry_state("unreachable: " + shared_->last_error());
  }
}

void OverlayService::write_metrics(util::PromText& out) const {
  visit_counters(metrics::counters(out, "overlay"));
  visit_gauges(metrics::gauges(out, "overlay"));
  if (registry_) {
    registry_->counters().visit(metrics::counters(out, "registry"));
    if (shared_) shared_->counters().visit(metrics::counters(out, "registry"));
    std::uint64_t online = 0, offline = 0;
    for (const auto& [id, n] : registry_->nodes()) ++(n.online ? online : offline);
    metrics::gauge(out, "wownet_registry_nodes", {{"state", "online"}}, double(online));
    metrics::gauge(out, "wownet_registry_nodes", {{"state", "offline"}}, double(offline));
  }
  if (!peers_) return;
  metrics::gauge(out, "wownet_overlay_sessions", {}, double(peers_->keyed_sessions()));
  std::uint64_t direct = 0, relayed = 0;
  const auto peers = peers_->peers();
  for (const auto& p : peers) {
    if (p.established) ++(p.relayed ? relayed : direct);
  }
  metrics::gauge(out, "wownet_peers", {{"path", "direct"}}, double(direct));
  metrics::gauge(out, "wownet_peers", {{"path", "relayed"}}, double(relayed));
  for (const auto& p : peers) {
    p.visit(metrics::counters(out, "peer", {{"node", p.node_id}, {"node_name", p.node_name}}));
    metrics::gauge(out, "wownet_peer_established", {{"node", p.node_id}, {"node_name", p.node_name}},
                   p.established ? 1 : 0);
    metrics::gauge(out, "wownet_peer_relayed", {{"node", p.node_id}, {"node_name", p.node_name}},
                   p.established && p.relayed ? 1 : 0);
    if (p.rtt_ms >= 0)
      metrics::gauge(out, "wownet_peer_last_rtt_seconds", {{"node", p.node_id}, {"node_name", p.node_name}},
                     double(p.rtt_ms) / 1000);
  }
  metrics::histogram(out, "wownet_peer_handshake_seconds", peers_->counters().handshake_ms);
  metrics::histogram(out, "wownet_peer_rtt_seconds", peers_->counters().rtt_ms);
}

}  // namespace wownet
