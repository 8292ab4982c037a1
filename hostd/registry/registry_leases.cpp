// Registry, lease allocation: LeaseRequest and LeaseRelease (remote or for
// the rendezvous' own VMs) under LeaseTable's rules, and the commit of each
// change to the store before its reply. Node records, Resolve and the CRL
// are in registry.cpp.
#include "registry/registry.h"

#include <algorithm>

namespace wownet::registry {

namespace ov = wownet::overlay;

bool same_lease(const Lease& a, const Lease& b) {
  return a.address == b.address && a.mac == b.mac && a.vm == b.vm && a.host_name == b.host_name && a.node == b.node &&
         a.expiry == b.expiry && a.state == b.state && a.origin == b.origin;
}

bool same_record(const std::optional<Lease>& a, const Lease* b) {
  if (!a || !b) return !a && !b;
  return same_lease(*a, *b);
}

namespace {

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

}  // namespace

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
  if (shared_) {
    defer_commit(now, before, requester);
    return true;
  }
  if (grouped_) {
    // Written by commit_group(), which then pushes every change of the
    // group to the other nodes at once.
    for (const auto& [addr, old] : before) {
      const Lease* l = leases_.find(addr);
      if (same_record(old, l)) continue;
      group_touch(addr);
      if (l) {
        track_deadline(*l, now);
        group_pushes_[addr.value] = requester;
      }
    }
    return true;
  }
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
  if (leases_.name_available(l->host_name, l->mac, now, l->vm)) return;
  if (const Reservation* r = leases_.reservation_at(addr); r && r->name == l->host_name && r->matches(l->mac, l->vm))
    return;
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
      auto addr = leases_.choose(*mac, requested, now, r.vm());
      if (!addr)
        return refuse(leases_.reservation_for(*mac, r.vm()) ? "reserved address in use" : "address pool exhausted");
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
      if (const Reservation* res = leases_.reservation_at(*requested); res && !res->matches(*mac, r.vm()))
        return refuse("address reserved for another VM");
      if (!leases_.is_available(*requested, *mac, now, r.vm()))
        return refuse(leases_.reservation_for(*mac, r.vm()) ? "another address is reserved for this VM"
                                                            : "address in use");
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

ov::LeaseReply Registry::request_local(UnixTime now, const ov::LeaseRequest& r, std::vector<Outgoing>& out) {
  return handle_request(now, self_id_, r, out);
}

ov::LeaseReply Registry::release_local(UnixTime now, const ov::LeaseRelease& r, std::vector<Outgoing>& out) {
  return handle_release(now, self_id_, r, out);
}

}  // namespace wownet::registry
