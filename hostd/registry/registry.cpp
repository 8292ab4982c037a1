#include "registry/registry.h"

#include <algorithm>
#include <limits>

namespace wownet::registry {

namespace ov = wownet::overlay;

namespace {

bool same_lease(const Lease& a, const Lease& b) {
  return a.address == b.address && a.mac == b.mac && a.vm == b.vm && a.host_name == b.host_name && a.node == b.node &&
         a.expiry == b.expiry && a.state == b.state && a.origin == b.origin;
}

bool same_record(const std::optional<Lease>& a, const Lease* b) {
  if (!a || !b) return !a && !b;
  return same_lease(*a, *b);
}

// True for well-formed UTF-8 without control characters.
bool valid_text(const std::string& s) {
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7f) return false;
      ++i;
      continue;
    }
    std::size_t n;
    std::uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      n = 1, cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2, cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // truncated sequence
    for (std::size_t k = 1; k <= n; ++k) {
      auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    // Overlong forms, surrogates and values past U+10FFFF.
    static constexpr std::uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    // C1 controls.
    if (cp >= 0x80 && cp < 0xa0) return false;
    i += n + 1;
  }
  return true;
}

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
    : network_(std::move(network)), store_(store), leases_(network_.network, network_.gateway) {}

void Registry::set_self(const std::string& id, const std::string& name, std::vector<Endpoint> endpoints) {
  self_id_ = id;
  self_name_ = name;
  self_endpoints_ = std::move(endpoints);
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

bool Registry::reload(UnixTime now, std::string& error) {
  leases_ = LeaseTable(network_.network, network_.gateway);
  deadlines_.clear();
  if (!store_) return true;
  std::vector<Lease> leases;
  std::vector<NodeInfo> nodes;
  std::string crl;
  if (!store_->load(leases, nodes, crl, error)) return false;
  for (const Lease& l : leases) leases_.apply(l);
  for (const Lease& l : leases_.snapshot()) track_deadline(l, now);
  return true;
}

bool Registry::restore(UnixTime now, std::string& error) {
  leases_ = LeaseTable(network_.network, network_.gateway);
  deadlines_.clear();
  nodes_.clear();
  crl_.clear();
  storage_failed_ = false;
  if (!store_) return true;
  std::vector<Lease> leases;
  std::vector<NodeInfo> nodes;
  std::string crl;
  if (!store_->load(leases, nodes, crl, error)) return false;
  for (const Lease& l : leases) leases_.apply(l);
  // Bound leases that expired before the restart were announced then; only
  // what is still due is tracked.
  for (const Lease& l : leases_.snapshot()) track_deadline(l, now);
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

Registry::Before Registry::capture(std::initializer_list<Ipv4Addr> addresses) const {
  Before before;
  for (Ipv4Addr a : addresses) {
    if (std::any_of(before.begin(), before.end(), [a](const auto& b) { return b.first == a; })) continue;
    const Lease* l = leases_.find(a);
    before.emplace_back(a, l ? std::optional<Lease>(*l) : std::nullopt);
  }
  return before;
}

bool Registry::commit(UnixTime now, const Before& before, const std::string& requester, std::vector<Outgoing>& pushes,
                      std::string& error) {
  StoreBatch batch;
  for (const auto& [addr, old] : before) {
    const Lease* l = leases_.find(addr);
    if (same_record(old, l)) continue;
    if (l) {
      batch.put_leases.push_back(*l);
    } else {
      batch.erase_leases.push_back(addr);
    }
  }
  if (batch.empty()) return true;
  if (store_ && !store_->commit(batch, error)) {
    ++counters_.store_failures;
    // Undo the change in memory: the store holds the last committed state.
    std::string reload_error;
    if (!reload(now, reload_error)) {
      storage_failed_ = true;
      error += "; re-reading the store failed: " + reload_error;
    }
    return false;
  }
  for (const Lease& l : batch.put_leases) track_deadline(l, now);
  // An erased record needs no update of its own: the records that replaced
  // it (same address or same MAC) supersede it where they are applied.
  push_to_others(requester, batch.put_leases, pushes);
  return true;
}

ov::LeaseReply Registry::refuse(const std::string& reason) {
  ++counters_.lease_refused;
  ov::LeaseReply r;
  r.set_ok(false);
  r.set_reason(reason);
  return r;
}

ov::LeaseReply Registry::accept(const Lease& lease, const std::string& reason) const {
  ov::LeaseReply r;
  r.set_ok(true);
  *r.mutable_lease() = lease_to_proto(lease, node_name(lease.node));
  if (!reason.empty()) r.set_reason(reason);
  return r;
}

void Registry::drop_taken_name(Ipv4Addr addr, UnixTime now) {
  // LeaseTable::put keeps a record's previous host name when none is asked
  // for, without checking that no other VM took the name meanwhile (while
  // this lease was expired). The first claimant keeps a name, so the
  // revived lease goes without.
  const Lease* l = leases_.find(addr);
  if (!l || l->host_name.empty() || l->state == LeaseState::Declined) return;
  if (leases_.name_available(l->host_name, l->mac, now)) return;
  Lease copy = *l;
  copy.host_name.clear();
  leases_.apply(copy);
}

bool Registry::may_take_mac(const std::string& node, MacAddr mac, const std::string& vm, UnixTime now) const {
  const Lease* cur = leases_.find_by_mac(mac);
  if (!cur) return true;
  bool held = cur->state != LeaseState::Declined && cur->expiry > now;
  if (!held) return true;
  // The binding is its VM's until it expires, on its own node too (that VM
  // may be detached and attached again): a different VM name presenting
  // the MAC does not get its address or host name. The same VM renews it
  // where it is, or takes it along when it migrates (same MAC, same name).
  if (cur->node == node) return vm == cur->vm;
  return !vm.empty() && vm == cur->vm;
}

ov::LeaseReply Registry::handle_request(UnixTime now, const std::string& node, const ov::LeaseRequest& r,
                                        std::vector<Outgoing>& pushes) {
  ++counters_.lease_requests;
  if (storage_failed_) return refuse("registry storage failure");
  if (node.empty()) return refuse("no node ID");
  auto mac = MacAddr::parse(r.mac());
  if (!mac || mac->is_zero() || mac->is_multicast()) return refuse("malformed MAC address");
  if (r.vm().size() > kMaxVmNameBytes || !valid_text(r.vm())) return refuse("malformed VM name");
  std::optional<Ipv4Addr> requested;
  if (!r.requested_address().empty()) {
    requested = Ipv4Addr::parse(r.requested_address());
    if (!requested) return refuse("malformed requested address");
    if (!network_.network.contains(*requested)) return refuse("requested address outside the network");
  }
  std::string host_name = sanitize_host_name(r.host_name());
  leases_.set_now(now);
  if (!may_take_mac(node, *mac, r.vm(), now)) return refuse("MAC address in use by another VM");

  Ipv4Addr target;
  Before before;
  const Lease* own = leases_.find_by_mac(*mac);
  std::optional<Ipv4Addr> own_addr = own ? std::optional<Ipv4Addr>(own->address) : std::nullopt;
  switch (r.kind()) {
    case ov::LeaseRequest::OFFER: {
      if (r.learned()) return refuse("a learned address is bound, not offered");
      auto addr = leases_.choose(*mac, requested, now);
      if (!addr) return refuse("address pool exhausted");
      target = *addr;
      before = own_addr ? capture({target, *own_addr}) : capture({target});
      const Lease* cur = leases_.find(target);
      if (cur && cur->mac == *mac && cur->active(now)) {
        // Keep an active binding as it is (RFC 2131 §4.3.1); a VM that
        // migrated takes it along to its new node.
        if (cur->node == node) return accept(*cur);
        leases_.put(target, *mac, r.vm(), host_name, cur->expiry, LeaseState::Bound, cur->origin, node);
      } else {
        leases_.put(target, *mac, r.vm(), host_name, now + network_.offer_hold, LeaseState::Offered, LeaseOrigin::Dhcp,
                    node);
      }
      drop_taken_name(target, now);
      break;
    }
    case ov::LeaseRequest::BIND: {
      if (!requested) return refuse("BIND needs an address");
      if (!network_.network.is_host(*requested) || *requested == network_.gateway)
        return refuse("address not assignable");
      if (!leases_.is_available(*requested, *mac, now)) return refuse("address in use");
      target = *requested;
      before = own_addr ? capture({target, *own_addr}) : capture({target});
      LeaseOrigin origin = r.learned() ? LeaseOrigin::Learned : LeaseOrigin::Dhcp;
      // Traffic seen from a VM with a DHCP lease renews it; it stays DHCP.
      if (const Lease* cur = leases_.find(target); r.learned() && cur && cur->mac == *mac && cur->active(now))
        origin = cur->origin;
      // A learned address is renewed by traffic, a DHCP one by its client.
      const UnixTime hold = UnixTime(r.learned() ? network_.lease_time : network_.hold_time());
      leases_.put(target, *mac, r.vm(), host_name, now + hold, LeaseState::Bound, origin, node);
      drop_taken_name(target, now);
      break;
    }
    default: return refuse("unknown request kind");
  }
  std::string error;
  if (!commit(now, before, node, pushes, error)) return refuse("registry storage failure: " + error);
  const Lease* l = leases_.find(target);
  if (!l) return refuse("internal error: lease vanished");
  std::string note;
  if (!host_name.empty() && l->host_name != host_name) note = "host name not available";
  return accept(*l, note);
}

ov::LeaseReply Registry::handle_release(UnixTime now, const std::string& node, const ov::LeaseRelease& r,
                                        std::vector<Outgoing>& pushes) {
  ++counters_.releases;
  if (storage_failed_) return refuse("registry storage failure");
  auto mac = MacAddr::parse(r.mac());
  if (!mac || mac->is_zero() || mac->is_multicast()) return refuse("malformed MAC address");
  auto addr = Ipv4Addr::parse(r.address());
  if (!addr) return refuse("malformed address");
  if (!network_.network.contains(*addr)) return refuse("address outside the network");
  const Lease* l = leases_.find(*addr);
  // Only the node holding the lease may end it.
  if (node.empty() || !l || l->state == LeaseState::Declined || l->mac != *mac || l->node != node)
    return refuse("no such lease on this node");
  if (l->expiry <= now) return refuse("lease not active");
  Before before = capture({*addr});
  if (r.declined()) {
    // DHCPDECLINE: an address this VM was offered or given is in use by
    // something else; keep it out of the pool for a while.
    leases_.decline(*addr, now + network_.decline_hold);
  } else if (!leases_.release(*addr, *mac, now)) {
    return refuse("lease not active");
  }
  std::string error;
  if (!commit(now, before, node, pushes, error)) return refuse("registry storage failure: " + error);
  l = leases_.find(*addr);
  if (!l) return refuse("internal error: lease vanished");
  return accept(*l);
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
  ov::Registered* r = reply.message.mutable_registered();
  set_endpoint(r->mutable_reflexive(), updated.reflexive);
  r->set_node_id(node);
  r->set_relay(relay_);
  out.push_back(std::move(reply));
}

void Registry::on_node_up(UnixTime now, const std::string& id, const std::string& name,
                          const std::string& reflexive_address, std::uint16_t reflexive_port,
                          std::vector<Outgoing>& out) {
  if (id.empty() || id == self_id_) return;
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
    ov::Registered* r = first.message.mutable_registered();
    set_endpoint(r->mutable_reflexive(), n.reflexive);
    r->set_node_id(id);
    r->set_relay(relay_);
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
  auto reply_lease = [&](ov::LeaseReply reply, std::vector<Outgoing>& pushes) {
    Outgoing o;
    o.node_id = from_id;
    o.message.set_request_id(m.request_id());
    *o.message.mutable_lease_reply() = std::move(reply);
    out.push_back(std::move(o));
    for (Outgoing& p : pushes) out.push_back(std::move(p));
  };
  switch (m.body_case()) {
    case ov::NodeMessage::kRegister: handle_register(now, from_id, m, out); return;
    case ov::NodeMessage::kLeaseRequest: {
      std::vector<Outgoing> pushes;
      ov::LeaseReply reply = handle_request(now, from_id, m.lease_request(), pushes);
      reply_lease(std::move(reply), pushes);
      return;
    }
    case ov::NodeMessage::kLeaseRelease: {
      std::vector<Outgoing> pushes;
      ov::LeaseReply reply = handle_release(now, from_id, m.lease_release(), pushes);
      reply_lease(std::move(reply), pushes);
      return;
    }
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
      // Tell the target to send toward the asker now (hole punching).
      if (asker && target && target->online && target->id != from_id && target->id != self_id_) {
        Outgoing p;
        p.node_id = target->id;
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
  out.set_online(n->online);
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

ov::LeaseReply Registry::request_local(UnixTime now, const ov::LeaseRequest& r, std::vector<Outgoing>& out) {
  return handle_request(now, self_id_, r, out);
}

ov::LeaseReply Registry::release_local(UnixTime now, const ov::LeaseRelease& r, std::vector<Outgoing>& out) {
  return handle_release(now, self_id_, r, out);
}

}  // namespace wownet::registry
