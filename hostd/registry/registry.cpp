// Registry: node records (Register, sessions up, moved and down), Resolve,
// the lease table and CRL pushed to nodes, expiry timers and the store.
// Lease allocation is in registry_leases.cpp.
#include "registry/registry.h"

#include <algorithm>
#include <limits>

namespace wownet::registry {

namespace ov = wownet::overlay;

namespace {

void set_endpoint(ov::Endpoint* e, const Endpoint& from) {
  e->set_address(from.address);
  e->set_port(from.port);
}

}  // namespace

ov::Lease lease_to_proto(const Lease& lease, const std::string& node_name) {
  ov::Lease p;
  p.set_address(lease.address.to_string());
  if (lease.state != LeaseState::Declined) p.set_mac(lease.mac.to_string());
  p.set_node_id(lease.node);
  p.set_node_name(node_name);
  p.set_vm(lease.vm);
  p.set_host_name(lease.host_name);
  p.set_expiry_unix(lease.expiry);
  p.set_state(to_string(lease.state));
  p.set_origin(to_string(lease.origin));
  return p;
}

std::optional<Lease> lease_from_proto(const ov::Lease& p) {
  auto address = Ipv4Addr::parse(p.address());
  auto state = lease_state_from_string(p.state());
  auto origin = lease_origin_from_string(p.origin());
  if (!address || !state || !origin) return std::nullopt;
  Lease l;
  l.address = *address;
  if (*state != LeaseState::Declined) {
    auto mac = MacAddr::parse(p.mac());
    if (!mac) return std::nullopt;
    l.mac = *mac;
  }
  l.node = p.node_id();
  l.vm = p.vm();
  l.host_name = p.host_name();
  l.expiry = p.expiry_unix();
  l.state = *state;
  l.origin = *origin;
  return l;
}

Registry::Registry(NetworkConfig network, RegistryStore* store)
    : network_(std::move(network)), store_(store), leases_(fresh_table()) {}

void Registry::set_self(const std::string& id, const std::string& name, std::vector<Endpoint> endpoints) {
  self_id_ = id;
  self_name_ = name;
  self_endpoints_ = std::move(endpoints);
  set_relay(relay_);
}

const NodeInfo* Registry::node(const std::string& id) const {
  auto it = nodes_.find(id);
  return it == nodes_.end() ? nullptr : &it->second;
}

const std::string& Registry::node_name(const std::string& id) const {
  static const std::string kNone;
  if (!id.empty() && id == self_id_) return self_name_;
  const NodeInfo* n = node(id);
  return n ? n->name : kNone;
}

UnixTime Registry::next_deadline() const {
  return deadlines_.empty() ? std::numeric_limits<UnixTime>::max() : deadlines_.begin()->first;
}

void Registry::track_deadline(const Lease& lease, UnixTime now) {
  // Bound leases already past their expiry have been announced; offers and
  // declines must still be dropped.
  if (lease.expiry > now || lease.state != LeaseState::Bound) deadlines_.emplace(lease.expiry, lease.address.value);
}

bool Registry::load_leases(UnixTime now, std::vector<NodeInfo>& nodes, std::string& crl, std::string& error) {
  leases_ = fresh_table();
  deadlines_.clear();
  if (!store_) return true;
  std::vector<Lease> leases;
  if (!store_->load(leases, nodes, crl, error)) return false;
  for (const Lease& l : leases) leases_.apply(l);
  // Bound leases that expired before a restart were announced then; only
  // what is still due is tracked.
  for (const Lease& l : leases_.snapshot()) track_deadline(l, now);
  return true;
}

bool Registry::reload(UnixTime now, std::string& error) {
  std::vector<NodeInfo> nodes;
  std::string crl;
  return load_leases(now, nodes, crl, error);
}

bool Registry::restore(UnixTime now, std::string& error) {
  nodes_.clear();
  crl_.clear();
  storage_failed_ = false;
  std::vector<NodeInfo> nodes;
  std::string crl;
  if (!load_leases(now, nodes, crl, error)) return false;
  crl_ = std::move(crl);
  std::vector<NodeInfo> stale;  // online when the process died
  for (NodeInfo& n : nodes) {
    if (n.online) {
      n.online = false;
      stale.push_back(n);
    }
    std::string id = n.id;
    nodes_.emplace(std::move(id), std::move(n));
  }
  return stale.empty() || store_nodes(std::move(stale), error);
}

bool Registry::store_nodes(std::vector<NodeInfo> nodes, std::string& error) {
  if (shared_) {
    for (NodeInfo& n : nodes) node_writes_.push_back(std::move(n));
    return true;
  }
  if (!store_) return true;
  StoreBatch batch;
  batch.put_nodes = std::move(nodes);
  if (store_->commit(batch, error)) return true;
  ++counters_.store_failures;
  return false;
}

void Registry::queue_leases(const std::string& node_id, const std::vector<Lease>& leases, bool snapshot,
                            std::vector<Outgoing>& out) const {
  auto start = [&](bool first) {
    Outgoing o;
    o.node_id = node_id;
    if (first && snapshot) {
      o.message.mutable_lease_snapshot();
    } else {
      o.message.mutable_lease_update();
    }
    out.push_back(std::move(o));
  };
  auto list = [&]() {
    ov::NodeMessage& m = out.back().message;
    return m.has_lease_snapshot() ? m.mutable_lease_snapshot()->mutable_leases()
                                  : m.mutable_lease_update()->mutable_leases();
  };
  if (leases.empty()) {
    if (snapshot) start(true);
    return;
  }
  start(true);
  for (const Lease& l : leases) {
    *list()->Add() = lease_to_proto(l, node_name(l.node));
    if (list()->size() > 1 && out.back().message.ByteSizeLong() > kMaxLeaseMessageBytes) {
      ov::Lease last = std::move(*list()->Mutable(list()->size() - 1));
      list()->RemoveLast();
      start(false);
      *list()->Add() = std::move(last);
    }
  }
}

void Registry::push_to_others(const std::string& except, const std::vector<Lease>& leases, std::vector<Outgoing>& out) {
  if (leases.empty()) return;
  std::vector<Outgoing> messages;
  for (const auto& [id, n] : nodes_) {
    if (!n.online || id == except || id == self_id_) continue;
    if (messages.empty()) queue_leases(id, leases, false, messages);
    for (const Outgoing& o : messages) {
      out.push_back(Outgoing{id, o.message});
      ++counters_.pushes;
    }
  }
}

void Registry::handle_register(UnixTime now, const std::string& node, const ov::NodeMessage& m,
                               std::vector<Outgoing>& out) {
  ++counters_.registers;
  Outgoing reply;
  reply.node_id = node;
  reply.message.set_request_id(m.request_id());
  const ov::Register& reg = m.register_();
  std::vector<Endpoint> locals;
  bool ok = reg.local_endpoints_size() <= int(kMaxLocalEndpoints);
  for (int i = 0; ok && i < reg.local_endpoints_size(); ++i) {
    const ov::Endpoint& e = reg.local_endpoints(i);
    auto a = Ipv4Addr::parse(e.address());
    ok = a && !a->is_zero() && e.port() > 0 && e.port() <= 65535;
    if (ok) locals.push_back(Endpoint{a->to_string(), std::uint16_t(e.port())});
  }
  if (!ok) {
    reply.message.mutable_error()->set_message("malformed local endpoints");
    out.push_back(std::move(reply));
    return;
  }
  NodeInfo updated = nodes_[node];
  updated.local_endpoints = std::move(locals);
  updated.last_seen = now;
  std::string error;
  if (!store_nodes({updated}, error)) {
    reply.message.mutable_error()->set_message("registry storage failure: " + error);
    out.push_back(std::move(reply));
    return;
  }
  nodes_[node] = updated;
  const bool relays_changed = reg.relay() ? relays_.add({node, updated.name, updated.reflexive}) : relays_.remove(node);
  fill_registered(reply.message.mutable_registered(), node, updated.reflexive);
  out.push_back(std::move(reply));
  if (!relays_changed) return;
  // The other hosts keep sessions with every relay they are given.
  for (const auto& [id, n] : nodes_) {
    if (!n.online || id == node) continue;
    Outgoing o;
    o.node_id = id;
    fill_registered(o.message.mutable_registered(), id, n.reflexive);
    out.push_back(std::move(o));
  }
}

void Registry::fill_registered(ov::Registered* r, const std::string& node, const Endpoint& reflexive) {
  set_endpoint(r->mutable_reflexive(), reflexive);
  r->set_node_id(node);
  r->set_relay(relay_);
  for (const RelayCandidate& c : relays_.choose(node)) {
    ov::RelayNode* x = r->add_relays();
    x->set_node_id(c.id);
    x->set_node_name(c.name);
    if (!c.endpoint.address.empty()) set_endpoint(x->mutable_endpoint(), c.endpoint);
  }
}

void Registry::set_relay(bool relay) {
  relay_ = relay;
  if (self_id_.empty()) return;
  if (relay)
    relays_.add({self_id_, self_name_, {}});
  else
    relays_.remove(self_id_);
}

void Registry::on_node_up(UnixTime now, const std::string& id, const std::string& name,
                          const std::string& reflexive_address, std::uint16_t reflexive_port,
                          std::vector<Outgoing>& out) {
  if (id.empty() || id == self_id_) return;
  // The snapshot below must not show what is not on disk yet.
  commit_group(now, out);
  NodeInfo& n = nodes_[id];
  n.id = id;
  n.name = name;
  n.reflexive = Endpoint{reflexive_address, reflexive_port};
  n.last_seen = now;
  n.online = true;
  Outgoing first;
  first.node_id = id;
  std::string error;
  if (store_nodes({n}, error)) {
    fill_registered(first.message.mutable_registered(), id, n.reflexive);
  } else {
    first.message.mutable_error()->set_message("registry storage failure: " + error);
  }
  out.push_back(std::move(first));
  queue_leases(id, leases_.snapshot(), true, out);
  if (!crl_.empty()) {
    Outgoing c;
    c.node_id = id;
    c.message.mutable_crl()->set_pem(crl_);
    out.push_back(std::move(c));
  }
}

void Registry::on_node_down(UnixTime now, const std::string& id) {
  auto it = nodes_.find(id);
  relays_.remove(id);  // its hosts notice their session with it end and take the next
  relays_.forget(id);
  if (it == nodes_.end() || !it->second.online) return;
  it->second.online = false;
  it->second.last_seen = now;
  std::string error;
  store_nodes({it->second}, error);  // nothing waits on it; counted on failure
}

void Registry::on_message(UnixTime now, const std::string& from_id, const ov::NodeMessage& m,
                          std::vector<Outgoing>& out) {
  auto reply_error = [&](const std::string& text) {
    Outgoing o;
    o.node_id = from_id;
    o.message.set_request_id(m.request_id());
    o.message.mutable_error()->set_message(text);
    out.push_back(std::move(o));
  };
  const NodeInfo* from = node(from_id);
  if (!from || !from->online) {
    if (m.body_case() != ov::NodeMessage::kError) reply_error("session not registered");
    return;
  }
  switch (m.body_case()) {
    case ov::NodeMessage::kRegister: handle_register(now, from_id, m, out); return;
    case ov::NodeMessage::kLeaseRequest:
    case ov::NodeMessage::kLeaseRelease: handle_lease_message(now, from_id, m, 1, out); return;
    case ov::NodeMessage::kResolve: {
      ++counters_.resolves;
      Outgoing o;
      o.node_id = from_id;
      o.message.set_request_id(m.request_id());
      std::string error;
      const bool by_node = !m.resolve().node_id().empty();
      if (by_node ? !resolve_node(m.resolve().node_id(), *o.message.mutable_resolved(), error)
                  : !resolve(now, m.resolve().address(), *o.message.mutable_resolved(), error)) {
        o.message.mutable_error()->set_message(error);
        out.push_back(std::move(o));
        return;
      }
      const NodeInfo* asker = node(from_id);
      const NodeInfo* target = node(o.message.resolved().node_id());
      // Two nodes behind the same NAT (same reflexive address) reach each
      // other on their local endpoints: those go first.
      if (asker && target && !asker->reflexive.address.empty() &&
          asker->reflexive.address == target->reflexive.address) {
        auto* eps = o.message.mutable_resolved()->mutable_endpoints();
        if (eps->size() > 1) std::rotate(eps->begin(), eps->begin() + 1, eps->end());
      }
      // Tell the target to send toward the asker now (hole punching):
      // through its session here, or through the rendezvous it has one
      // with (shared registry).
      const bool elsewhere = asker && target && !target->online && online_elsewhere_ && online_elsewhere_(target->id);
      if (asker && target && (target->online || elsewhere) && target->id != from_id && target->id != self_id_) {
        Outgoing p;
        p.node_id = target->id;
        p.elsewhere = elsewhere;
        auto* punch = p.message.mutable_punch();
        punch->set_node_id(asker->id);
        punch->set_node_name(asker->name);
        bool same_nat = !asker->reflexive.address.empty() && asker->reflexive.address == target->reflexive.address;
        if (!same_nat && !asker->reflexive.address.empty()) set_endpoint(punch->add_endpoints(), asker->reflexive);
        for (const Endpoint& e : asker->local_endpoints) set_endpoint(punch->add_endpoints(), e);
        if (same_nat && !asker->reflexive.address.empty()) set_endpoint(punch->add_endpoints(), asker->reflexive);
        out.push_back(std::move(p));
        o.message.mutable_resolved()->set_punched(true);
      }
      out.push_back(std::move(o));
      return;
    }
    case ov::NodeMessage::kHello:      // the transport's business
    case ov::NodeMessage::kKeepalive:  // the session's liveness, not ours
    case ov::NodeMessage::kError:      // never answer an error (no loops)
      return;
    case ov::NodeMessage::BODY_NOT_SET: reply_error("empty message"); return;
    default: reply_error("unexpected message for a rendezvous node"); return;
  }
}

bool Registry::resolve(UnixTime now, const std::string& address, ov::Resolved& out, std::string& error) const {
  auto addr = Ipv4Addr::parse(address);
  if (!addr) {
    error = "malformed address";
    return false;
  }
  const Lease* l = leases_.find_active(*addr, now);
  if (!l) {
    error = "address not leased";
    return false;
  }
  if (!resolve_node(l->node, out, error)) {
    error = "node of the address unknown";
    return false;
  }
  out.set_address(addr->to_string());
  return true;
}

bool Registry::resolve_node(const std::string& id, ov::Resolved& out, std::string& error) const {
  out.Clear();
  if (!id.empty() && id == self_id_) {
    out.set_node_id(id);
    out.set_node_name(self_name_);
    out.set_online(true);
    for (const Endpoint& e : self_endpoints_) set_endpoint(out.add_endpoints(), e);
    return true;
  }
  const NodeInfo* n = node(id);
  if (!n) {
    error = "node unknown";
    return false;
  }
  out.set_node_id(id);
  out.set_node_name(n->name);
  out.set_online(n->online || (online_elsewhere_ && online_elsewhere_(id)));
  if (!n->reflexive.address.empty()) set_endpoint(out.add_endpoints(), n->reflexive);
  for (const Endpoint& e : n->local_endpoints) set_endpoint(out.add_endpoints(), e);
  return true;
}

void Registry::on_node_moved(UnixTime now, const std::string& id, const std::string& reflexive_address,
                             std::uint16_t reflexive_port) {
  const auto it = nodes_.find(id);
  if (it == nodes_.end() || id == self_id_) return;
  const Endpoint moved{reflexive_address, reflexive_port};
  if (it->second.reflexive.address == moved.address && it->second.reflexive.port == moved.port) return;
  NodeInfo updated = it->second;
  updated.reflexive = moved;
  updated.last_seen = now;
  std::string error;
  if (!store_nodes({updated}, error)) ++counters_.store_failures;  // memory still follows the node
  it->second = updated;
}

void Registry::on_timer(UnixTime now, std::vector<Outgoing>& out) {
  std::vector<Lease> due;
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    auto [expiry, value] = *deadlines_.begin();
    deadlines_.erase(deadlines_.begin());
    const Lease* l = leases_.find(Ipv4Addr{value});
    // Stale entries (the record changed since) are skipped.
    if (l && l->expiry == expiry &&
        std::none_of(due.begin(), due.end(), [&, value = value](const Lease& d) { return d.address.value == value; }))
      due.push_back(*l);
  }
  if (due.empty()) return;
  leases_.set_now(now);
  leases_.expire(now);
  if (shared_) {
    // One commit per record: each stands alone (another rendezvous may
    // have dropped it first).
    for (const Lease& l : due) defer_commit(now, Before{{l.address, l}}, std::string{});
    push_to_others(std::string{}, due, out);
    return;
  }
  if (grouped_) {
    // Written with the group; the updates wait for it.
    for (const Lease& l : due)
      if (!leases_.find(l.address)) group_touch(l.address);
    push_to_others(std::string{}, due, held_);
    return;
  }
  StoreBatch batch;
  for (const Lease& l : due) {
    if (!leases_.find(l.address)) batch.erase_leases.push_back(l.address);
  }
  if (store_ && !batch.empty()) {
    std::string error;
    // Rows left behind are expired offers and declines: harmless, dropped
    // again after a restart.
    if (!store_->commit(batch, error)) ++counters_.store_failures;
  }
  push_to_others(std::string{}, due, out);
}

bool Registry::set_crl(const std::string& pem, std::vector<Outgoing>& out, std::string& error) {
  if (shared_) crl_write_ = pem;
  if (store_) {
    StoreBatch batch;
    batch.crl = pem;
    if (!store_->commit(batch, error)) {
      ++counters_.store_failures;
      return false;
    }
  }
  crl_ = pem;
  for (const auto& [id, n] : nodes_) {
    if (!n.online || id == self_id_) continue;
    Outgoing o;
    o.node_id = id;
    o.message.mutable_crl()->set_pem(pem);
    out.push_back(std::move(o));
    ++counters_.pushes;
  }
  return true;
}

}  // namespace wownet::registry
