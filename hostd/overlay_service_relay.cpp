// OverlayService and relaying: which relays this host keeps sessions with
// (what the rendezvous hand out), which one it sends through, and the
// limits it relays for others under (relay = true).
#include <spdlog/spdlog.h>

#include "io/local_addresses.h"
#include "overlay_service.h"

namespace wownet {

overlay::Relay::Limits OverlayService::relay_limits(const OverlayConfig& o) {
  overlay::Relay::Limits limits;
  limits.forwarding = o.relay;  // a host's relay defaults to false (config.cpp)
  limits.quota_bytes = std::uint64_t(o.relay_quota) << 20;
  limits.quota_interval_ms = std::int64_t(o.relay_quota_interval) * 1000;
  return limits;
}

void OverlayService::send_register(const std::string& id) {
  overlay::NodeMessage reg;
  auto* r = reg.mutable_register_();
  for (const Ipv4Addr a : io::local_ipv4_addresses()) {
    if (a.octet(0) == 127 || (!config_.overlay.listen.address.is_zero() && a != config_.overlay.listen.address))
      continue;
    auto* e = r->add_local_endpoints();
    e->set_address(a.to_string());
    e->set_port(config_.overlay.listen.port);
  }
  r->set_relay(config_.overlay.relay);
  with_peers([&](overlay::PeerManager& pm, overlay::Outbox& box) { return pm.send_control(now_ms(), id, reg, box); });
}

void OverlayService::on_registered(const std::string& from, const overlay::Registered& r) {
  std::string names;
  for (const auto& x : r.relays())
    names += (names.empty() ? "" : ", ") + (x.node_name().empty() ? x.node_id() : x.node_name());
  spdlog::info("registered; the rendezvous sees us at {}:{}{}{}", r.reflexive().address(), r.reflexive().port(),
               r.relay() ? " and relays for us" : "", names.empty() ? "" : "; relays: " + names);
  if (!rendezvous_up_.count(from)) return;
  if (r.relay())
    relay_offers_.insert(from);
  else
    relay_offers_.erase(from);
  std::vector<RelayEntry> list;
  for (const auto& x : r.relays()) {
    if (list.size() == 8 || x.node_id().empty() || x.node_id() == node_id_) continue;
    RelayEntry e{x.node_id(), std::nullopt};
    if (x.has_endpoint()) {
      const auto a = Ipv4Addr::parse(x.endpoint().address());
      if (!a || a->is_zero() || x.endpoint().port() == 0 || x.endpoint().port() > 65535) continue;
      e.endpoint = overlay::UdpEndpoint{*a, std::uint16_t(x.endpoint().port())};
    }
    learn_name(x.node_id(), x.node_name());
    list.push_back(std::move(e));
  }
  relay_lists_[from] = std::move(list);
  refresh_relays();
}

void OverlayService::refresh_relays() {
  // Relay hosts listed by any rendezvous: keep a session with each, so
  // that whichever one a sender uses can reach us.
  std::map<std::string, overlay::UdpEndpoint> wanted;
  for (const auto& [rv, list] : relay_lists_)
    for (const RelayEntry& e : list)
      if (e.endpoint && !rendezvous_up_.count(e.id)) wanted.emplace(e.id, *e.endpoint);
  for (auto it = relay_nodes_.begin(); it != relay_nodes_.end();) {
    const auto w = wanted.find(it->first);
    if (w != wanted.end() && w->second == it->second) {
      ++it;
      continue;
    }
    if (peers_) peers_->disconnect(it->second);
    relays_up_.erase(it->first);
    it = relay_nodes_.erase(it);
  }
  for (const auto& [id, ep] : wanted) {
    if (relay_nodes_.count(id)) continue;
    relay_nodes_.emplace(id, ep);
    spdlog::info("keeping a session with relay {} at {}", peer_label(id), ep.to_string());
    if (peers_)
      with_peers([&, to = ep](overlay::PeerManager& pm, overlay::Outbox& box) { pm.connect(now_ms(), to, box); });
  }

  relay_endpoints_.clear();
  for (const auto& [id, ep] : relays_up_) relay_endpoints_.insert(ep);
  for (const auto& id : relay_offers_)
    if (const auto it = rendezvous_up_.find(id); it != rendezvous_up_.end()) relay_endpoints_.insert(it->second);

  const auto usable = [&](const RelayEntry& e) {
    return e.endpoint ? relays_up_.count(e.id) != 0 : relay_offers_.count(e.id) != 0 && rendezvous_up_.count(e.id);
  };
  // Keep the relay we have while it is usable: a switch moves every
  // relayed path.
  const bool keep = (relays_up_.count(relay_node_) && relay_nodes_.count(relay_node_)) ||
                    (relay_offers_.count(relay_node_) && rendezvous_up_.count(relay_node_));
  if (keep && our_relay_) return;
  std::string pick;
  const std::string first(registry_client_.current());
  const auto scan = [&](const std::vector<RelayEntry>& list) {
    for (const RelayEntry& e : list)
      if (pick.empty() && usable(e)) pick = e.id;
  };
  if (const auto it = relay_lists_.find(first); it != relay_lists_.end()) scan(it->second);
  for (const auto& [rv, list] : relay_lists_) scan(list);
  if (pick.empty() && !relay_offers_.empty()) {
    for (const auto& id : relay_offers_)
      if (pick.empty() && rendezvous_up_.count(id)) pick = id;
  }
  if (pick != relay_node_ || !our_relay_) use_relay(pick);
}

void OverlayService::use_relay(const std::string& node) {
  // Our relayed paths follow the relay: through the new one, or none.
  const auto up = relays_up_.find(node);
  const auto rv = rendezvous_up_.find(node);
  if (node.empty() || (up == relays_up_.end() && rv == rendezvous_up_.end())) {
    our_relay_.reset();
    relay_node_.clear();
  } else {
    our_relay_ = up != relays_up_.end() ? up->second : rv->second;
    relay_node_ = node;
    spdlog::info("relaying through {} at {}", peer_label(node), our_relay_->to_string());
  }
  if (!peers_) return;
  for (const auto& p : peers_->peers()) {
    if (!p.relayed || rendezvous_up_.count(p.node_id) || relay_nodes_.count(p.node_id)) continue;
    const auto raw = overlay::raw_node_id(p.node_id);
    peers_->set_relay(p.node_id, our_relay_ && raw && config_.overlay.relay_after > 0
                                     ? std::optional(relay_.name(*our_relay_, *raw))
                                     : std::nullopt);
  }
}

}  // namespace wownet
