// OverlayService's reports: the peer list, the status counters, the
// registry's nodes and the path to a VM or node that the control socket
// hands out.
#include "overlay_service.h"

#include <map>
#include <optional>

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
    x->set_asked_first(x->rendezvous() && registry_client_.current() == p.node_id);
    x->set_suspected(x->rendezvous() && registry_client_.suspected(p.node_id));
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
  if (presence_) {
    presence_->counters().visit(put_registry);
    put_registry("etcd_bad_presence_keys", presence_->bad_keys());
    for (const auto& [id, rv] : presence_->others()) {
      auto* x = s.add_other_rendezvous();
      x->set_node_id(id);
      x->set_node_name(rv.name);
      x->set_endpoint(rv.endpoint);
      x->set_nodes_online(rv.nodes_online);
      x->set_beat_unix(rv.beat_unix);
    }
  }
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
    if (presence_) {
      presence_->counters().visit(metrics::counters(out, "registry"));
      metrics::gauge(out, "wownet_registry_rendezvous_alive", {}, double(presence_->others().size() + 1));
    }
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

bool OverlayService::fill_nodes(control::NodeList& out, std::string& error) const {
  if (!registry_) {
    error = "only a rendezvous keeps the node registry: run `wownetctl nodes` on one";
    return false;
  }
  const UnixTime now = now_s();
  std::map<std::string, std::uint32_t> leases;
  for (const Lease& l : registry_->leases().snapshot())
    if (l.active(now)) ++leases[l.node];
  for (const auto& [id, n] : registry_->nodes()) {
    auto* r = out.add_nodes();
    r->set_node_id(id);
    r->set_node_name(n.name);
    r->set_online(n.online);
    r->set_last_seen_unix(n.last_seen);
    if (!n.reflexive.address.empty()) r->set_reflexive(n.reflexive.address + ":" + std::to_string(n.reflexive.port));
    for (const auto& e : n.local_endpoints) r->add_local_endpoints(e.address + ":" + std::to_string(e.port));
    r->set_active_leases(leases[id]);
    if (presence_)
      for (const std::string& rv : presence_->online_elsewhere(id)) {
        const auto it = presence_->others().find(rv);
        r->add_online_at(it != presence_->others().end() && !it->second.name.empty() ? it->second.name : rv);
      }
  }
  return true;
}

bool OverlayService::fill_path(const std::string& target, control::PathInfo& out, std::string& error) const {
  out.set_target(target);
  const UnixTime now = now_s();
  const LeaseTable& table = registry_ ? registry_->leases() : engine_.leases();
  const std::string domain = "." + engine_.config().domain;
  std::string short_name = target;
  if (short_name.size() > domain.size() && short_name.ends_with(domain))
    short_name.resize(short_name.size() - domain.size());
  std::optional<Lease> lease;
  if (const auto addr = Ipv4Addr::parse(target)) {
    if (const Lease* l = table.find_active(*addr, now)) lease = *l;
    if (!lease) {
      error = "no active lease for " + target;
      return false;
    }
  } else {
    for (const Lease& l : table.snapshot())
      if (l.active(now) && (l.vm == target || (!l.host_name.empty() && l.host_name == short_name))) lease = l;
  }
  std::string node;
  if (lease) {
    out.set_address(lease->address.to_string());
    out.set_vm(lease->vm);
    node = lease->node;
  }
  const auto peers = peers_ ? peers_->peers() : std::vector<overlay::PeerManager::PeerStats>{};
  if (!lease) {
    for (const auto& p : peers)
      if (p.node_id == target || (!p.node_name.empty() && p.node_name == target)) node = p.node_id;
    if (node.empty() && registry_)
      for (const auto& [id, n] : registry_->nodes())
        if (id == target || n.name == target) node = id;
    if (node.empty()) {
      error = "no VM, address or node named " + target;
      return false;
    }
  }
  out.set_node_id(node);
  if (node.empty() || node == node_id_) {
    out.set_node_id(node_id_);
    out.set_node_name(node_name_);
    out.set_path("local");
    return true;
  }
  out.set_path("none");
  control::PeerList list;
  fill_peers(list);
  for (const auto& p : list.peers()) {
    if (p.node_id() != node) continue;
    out.set_node_name(p.node_name());
    *out.mutable_peer() = p;
    if (p.established()) out.set_path(p.path());
  }
  if (out.node_name().empty()) out.set_node_name(peer_label(node));
  return true;
}

}  // namespace wownet
