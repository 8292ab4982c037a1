// OverlayService and the registry: sessions with nodes coming up and going
// down, control messages to and from the registry (our own on a rendezvous,
// else the rendezvous' over the overlay), leases, punches and the CRL.
#include <spdlog/spdlog.h>

#include "io/etcd_client.h"
#include "io/local_addresses.h"
#include "overlay/peer_label.h"
#include "overlay_service.h"
#include "registry/registry.h"
#include "registry/registry_etcd.h"
#include "registry/registry_store.h"
#include "registry_etcd_io.h"
#include "util/file_io.h"

namespace wownet {
namespace {

std::optional<Lease> from_wire(const overlay::Lease& w) {
  auto l = registry::lease_from_proto(w);
  if (l) l->host_name = sanitize_host_name(l->host_name);
  return l;
}

}  // namespace

std::string OverlayService::peer_label(std::string_view node_id) const {
  auto it = peer_names_.find(node_id);
  return overlay::peer_label(it == peer_names_.end() ? std::string_view{} : std::string_view(it->second), node_id);
}

// The registry this rendezvous keeps: SQLite in the state directory, or
// shared with other rendezvous in etcd.
bool OverlayService::start_registry(std::string& error) {
  const OverlayConfig& o = config_.overlay;
  const RegistryConfig& rc = config_.registry;
  const bool etcd = rc.backend == RegistryConfig::Backend::Etcd;
  if (etcd) {
    io::EtcdOptions eo;
    eo.endpoints = rc.endpoints;
    eo.cert = rc.cert;
    eo.key = rc.key;
    eo.ca = rc.ca;
    etcd_client_ = io::EtcdClient::create(io_, eo, error);
    if (!etcd_client_) {
      error = "registry: " + error;
      return false;
    }
    etcd_kv_ = std::make_unique<EtcdKvStore>(io_, *etcd_client_);
  } else {
    store_ = registry::RegistryStore::open(config_.state_dir + "/registry.db", error);
    if (!store_) return false;
  }
  registry_ = std::make_unique<registry::Registry>(config_.network, store_.get());
  if (etcd) {
    registry_->share_commits();
  } else {
    registry_->group_commits();  // one transaction per turn of the loop: commit_registry()
  }
  registry_->set_relay(o.relay);
  std::vector<registry::Endpoint> self_endpoints;
  if (!o.listen.address.is_zero()) self_endpoints.push_back({o.listen.address.to_string(), o.listen.port});
  registry_->set_self(node_id_, node_name_, self_endpoints);
  if (!etcd && !registry_->restore(now_s(), error)) return false;
  std::vector<registry::Outgoing> out;
  if (!crl_pem_.empty() && !registry_->set_crl(crl_pem_, out, error)) return false;
  if (etcd) {
    // Loads the shared registry and follows it; lease requests wait (the
    // hosts ask again) until it is loaded.
    shared_ = std::make_unique<registry::SharedRegistry>(
        *registry_, *etcd_kv_, rc.prefix, [this] { return now_s(); },
        [this](std::vector<registry::Outgoing>& late) { send_outgoing(late); });
    shared_->set_crl_check([this](const std::string& pem) { return take_shared_crl(pem); });
    shared_->start();
    presence_ = std::make_unique<registry::Presence>(*etcd_kv_, rc.prefix, [this] { return now_s(); });
    presence_->set_self(node_id_, node_name_, o.listen.address.to_string() + ":" + std::to_string(o.listen.port));
    // Punches for nodes with a session elsewhere go through etcd, and
    // those for ours come from it.
    registry_->set_online_elsewhere([this](const std::string& id) { return !presence_->online_elsewhere(id).empty(); });
    presence_->on_punch([this](const std::string& node, const overlay::Punch& punch) {
      overlay::NodeMessage m;
      *m.mutable_punch() = punch;
      with_peers(
          [&](overlay::PeerManager& pm, overlay::Outbox& box) { return pm.send_control(now_ms(), node, m, box); });
    });
    shared_->attach_presence(*presence_);
    spdlog::info("registry in etcd at {} under {}", etcd_client_->current_endpoint(), rc.prefix);
  }
  return true;
}

void OverlayService::learn_name(std::string_view node_id, std::string_view node_name) {
  if (node_id.empty() || node_name.empty()) return;
  auto it = peer_names_.find(node_id);
  if (it == peer_names_.end())
    peer_names_.emplace(std::string(node_id), std::string(node_name));
  else if (it->second != node_name)
    it->second.assign(node_name);
}

void OverlayService::peer_up(std::string_view node_id, std::string_view node_name, const overlay::UdpEndpoint& ep) {
  std::string id(node_id);
  learn_name(node_id, node_name);
  spdlog::info("peer {} up at {}", peer_label(id), ep.to_string());
  if (registry_) {
    std::vector<registry::Outgoing> out;
    registry_->on_node_up(now_s(), id, std::string(node_name), ep.address.to_string(), ep.port, out);
    if (presence_) presence_->node_up(id);
    send_outgoing(out);
    return;
  }
  bool is_rendezvous = false;
  for (const auto& e : config_.overlay.rendezvous_nodes) is_rendezvous |= to_endpoint(e) == ep;
  if (!is_rendezvous) {
    if (relay_nodes_.count(id)) {
      relays_up_[id] = ep;
      refresh_relays();
    }
    return;
  }
  rendezvous_up_[id] = ep;
  send_register(id);
  // Send what waited for a rendezvous, and re-assert what the VMs here hold.
  overlay::Actions out;
  registry_client_.on_rendezvous_up(now_ms(), id, out);
  for (const Lease& l : engine_.leases().snapshot()) {
    if (l.node != node_id_ || l.state != LeaseState::Bound || !l.active(now_s())) continue;
    registry_client_.ask(
        now_ms(), LeaseAsk{LeaseAsk::Kind::Bind, l.mac, l.vm, l.host_name, l.address, l.origin == LeaseOrigin::Learned},
        out);
  }
  carry_out(out);
}

void OverlayService::peer_down(std::string_view node_id, std::string_view reason) {
  std::string id(node_id);
  spdlog::info("peer {} down: {}", peer_label(id), reason);
  if (registry_) {
    registry_->on_node_down(now_s(), id);
    if (presence_) presence_->node_down(id);
    if (shared_) shared_->flush();
  }
  const bool was_rendezvous = rendezvous_up_.erase(id) != 0;
  registry_client_.on_rendezvous_down(id);
  bool relays_changed = relays_up_.erase(id) != 0;
  if (was_rendezvous) relays_changed |= (relay_offers_.erase(id) + relay_lists_.erase(id)) != 0;
  if (relays_changed) refresh_relays();
  if (!registry_ && !was_rendezvous && !rendezvous_up_.empty()) {
    // Its endpoints may be stale (a NAT rebinding) and its NAT closed: the
    // next packet resolves it again, with a fresh punch.
    peers_->set_endpoints(id, {});
    peers_->set_relay(id, std::nullopt);
  }
}

void OverlayService::deliver_control(std::string_view node_id, const overlay::NodeMessage& message) {
  std::string from(node_id);
  if (registry_) {
    // On etcd, lease requests wait for the shared registry to be loaded
    // (the host asks again).
    if (shared_ && !shared_->loaded() && (message.has_lease_request() || message.has_lease_release())) return;
    if (message.has_resolve()) refresh_reflexive(from);
    std::vector<registry::Outgoing> out;
    registry_->on_message(now_s(), from, message, out);
    send_outgoing(out);
    return;
  }
  if (!rendezvous_up_.count(from)) return;  // only the registry speaks for the registry
  registry_client_.on_heard(now_ms(), from);
  handle_registry_message(from, message);
}

void OverlayService::persist_crl() {
  // Kept so that a restarted host still refuses revoked nodes, even before
  // it reaches the rendezvous again.
  std::string path = config_.state_dir + "/crl.pem";
  if (auto ec = util::write_file_atomic(path, crl_pem_, 0644)) spdlog::warn("cannot write {}: {}", path, ec.message());
}

void OverlayService::send_outgoing(const std::vector<registry::Outgoing>& out) {
  for (const auto& o : out) {
    if (o.elsewhere) {
      if (presence_ && o.message.has_punch()) presence_->send_punch(o.node_id, o.message.punch());
    } else if (o.node_id == node_id_) {
      handle_registry_message(node_id_, o.message);
    } else {
      with_peers([&](overlay::PeerManager& pm, overlay::Outbox& box) {
        return pm.send_control(now_ms(), o.node_id, o.message, box);
      });
    }
  }
  // A registry's writes (one SQLite transaction, or etcd txns shared by
  // the commits of the turn) wait for the end of the turn:
  // commit_registry(); on SQLite the sync too.
  if (registry_ && !registry_->grouped()) sync_from_registry();
}

void OverlayService::commit_registry() {
  if (!registry_) return;
  if (shared_) {
    shared_->flush();
    sync_from_registry();
    return;
  }
  if (!registry_->grouped()) return;
  std::vector<registry::Outgoing> out;
  registry_->commit_group(now_s(), out);
  if (!out.empty()) send_outgoing(out);
  sync_from_registry();
}

void OverlayService::sync_from_registry() {
  // On a rendezvous the registry's table is this node's view too (its own
  // VMs ask it directly; nothing is pushed to itself).
  std::uint64_t v = registry_->leases().version() + registry_->leases().expiry_version();
  if (v == synced_version_) return;
  synced_version_ = v;
  UnixTime now = now_s();
  for (const Lease& l : registry_->leases().snapshot()) {
    const Lease* mine = engine_.leases().find(l.address);
    if (mine && mine->mac == l.mac && mine->node == l.node && mine->expiry == l.expiry && mine->state == l.state &&
        mine->host_name == l.host_name)
      continue;
    FrameAction act = engine_.on_registry_lease(now, l);
    if (act.kind == FrameAction::Kind::WriteToTap && !taps_.write_frame(act.to, act.frame, true)) ++tap_errors_;
  }
}

void OverlayService::send_to_registry(overlay::NodeMessage message) {
  if (registry_) {
    // This node's own VMs: straight to the registry.
    std::vector<registry::Outgoing> out;
    overlay::NodeMessage reply;
    reply.set_request_id(message.request_id());
    UnixTime now = now_s();
    if (message.has_lease_request() || message.has_lease_release()) {
      // The reply comes to this node through `out` (at once, or when etcd
      // has written the change).
      if (shared_ && !shared_->loaded()) return;  // asked again later
      registry_->on_local_message(now, message, out);
      send_outgoing(out);
      return;
    }
    if (message.has_resolve()) {
      std::string error;
      if (!registry_->resolve(now, message.resolve().address(), *reply.mutable_resolved(), error)) return;
    } else {
      return;
    }
    handle_registry_message(node_id_, reply);
    send_outgoing(out);
    return;
  }
  const std::string_view to = registry_client_.current();
  if (!to.empty())
    with_peers([&](overlay::PeerManager& pm, overlay::Outbox& box) {
      return pm.send_control(now_ms(), to, message, box);
    });  // else asked again later
}

void OverlayService::flush_lease_asks() {
  overlay::Actions out;
  for (const LeaseAsk& a : engine_.take_lease_asks()) {
    if (!registry_) {
      registry_client_.ask(now_ms(), a, out);
      continue;
    }
    // This node's own VMs: straight to its registry.
    overlay::NodeMessage m;
    if (m.ParseFromString(overlay::RegistryClient::encode(next_local_request_++, a))) send_to_registry(std::move(m));
  }
  carry_out(out);
  commit_registry();
}

void OverlayService::handle_registry_message(const std::string& from, const overlay::NodeMessage& m) {
  UnixTime now = now_s();
  auto apply = [&](const overlay::Lease& w) {
    auto l = from_wire(w);
    if (!l) return;
    FrameAction act = engine_.on_registry_lease(now, *l);
    if (act.kind == FrameAction::Kind::WriteToTap && !taps_.write_frame(act.to, act.frame, true)) ++tap_errors_;
  };
  switch (m.body_case()) {
    case overlay::NodeMessage::kLeaseReply: {
      const auto mac = registry_ ? std::optional<MacAddr>{} : registry_client_.on_answer(m.request_id());
      if (m.lease_reply().ok()) {
        apply(m.lease_reply().lease());
      } else if (mac) {
        spdlog::info("registry refused a lease for {}: {}", mac->to_string(), m.lease_reply().reason());
        FrameAction act = engine_.on_registry_refusal(now, *mac);
        if (act.kind == FrameAction::Kind::WriteToTap && !taps_.write_frame(act.to, act.frame, true)) ++tap_errors_;
      }
      break;
    }
    case overlay::NodeMessage::kLeaseSnapshot:
      for (const auto& l : m.lease_snapshot().leases()) apply(l);
      break;
    case overlay::NodeMessage::kLeaseUpdate:
      for (const auto& l : m.lease_update().leases()) apply(l);
      break;
    case overlay::NodeMessage::kResolved: on_resolved(m.resolved()); break;
    case overlay::NodeMessage::kCrl: {
      if (registry_ || m.crl().pem() == crl_pem_) break;
      std::string error;
      if (!trust_->update_crl(m.crl().pem(), error)) {
        spdlog::warn("CRL from the registry refused: {}", error);
        break;
      }
      crl_pem_ = m.crl().pem();
      spdlog::info("CRL {} from the registry", trust_->crl_number());
      persist_crl();
      with_peers([&](overlay::PeerManager& pm, overlay::Outbox& box) { return pm.recheck(now_ms(), box); });
      break;
    }
    case overlay::NodeMessage::kPunch: {
      // Another node is about to send to us: send toward it now so that
      // both NATs open (the rendezvous told it our endpoints too).
      const auto& p = m.punch();
      if (p.node_id().empty() || p.node_id() == node_id_ || !peers_) break;
      std::vector<overlay::UdpEndpoint> eps = endpoints_of(p.endpoints(), 8);
      if (eps.empty()) break;
      // Open our NAT toward it with probes that die before its NAT (a
      // full packet arriving there before its own first one would make a
      // Linux NAT remap its port), and record where it is.
      learn_name(p.node_id(), p.node_name());
      spdlog::debug("punch: peer {} calls from {}", peer_label(p.node_id()), eps.front().to_string());
      overlay::Actions out;
      nat_.on_punch(p.node_id(), eps, out);
      carry_out(out);
      break;
    }
    case overlay::NodeMessage::kRegistered: on_registered(from, m.registered()); break;
    case overlay::NodeMessage::kError: spdlog::warn("registry: {}", m.error().message()); break;
    default: break;
  }
}

}  // namespace wownet
