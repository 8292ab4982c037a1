// OverlayService's reports: the peer list and the status counters that
// the control socket hands out.
#include "overlay_service.h"

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

void OverlayService::fill_status(control::Status& s) const {
  s.set_node_id(node_id_);
  s.set_node_name(node_name_);
  s.set_role(registry_ ? "rendezvous" : "host");
  auto& o = *s.mutable_overlay();
  o["enrolling"] = enrolling_ ? 1 : 0;
  if (!peers_) return;
  const auto put = [&o](const char* name, std::uint64_t v) { o[name] = v; };
  peers_->counters().visit(put);
  registry_client_.counters().visit(put);
  relay_.counters().visit(put);
  o["send_errors"] = send_errors_;
  o["tap_errors"] = tap_errors_;
  o["unresolved"] = unresolved_;
  o["rendezvous_up"] = rendezvous_up_.size();
  o["registry_pending"] = registry_client_.pending();
  o["probes_sent"] = nat_.probes_sent();
  o["gro_frames"] = gro_frames_;
  o["gro_super_frames"] = gro_super_frames_;
  o["gro_segments_merged"] = gro_.stats().segments_merged;
  o["udp_gso"] = socket_.gso_enabled() ? 1 : 0;
  o["udp_trains"] = trains_sent_;
  o["udp_train_datagrams"] = train_datagrams_;
  o["udp_gro"] = socket_.gro_enabled() ? 1 : 0;
  o["stray_probes"] = stray_probes_;
}

}  // namespace wownet
