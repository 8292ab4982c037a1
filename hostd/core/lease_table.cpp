#include "core/lease_table.h"

#include <algorithm>

namespace wownet {

const char* to_string(LeaseState s) {
  switch (s) {
    case LeaseState::Offered: return "offered";
    case LeaseState::Bound: return "bound";
    case LeaseState::Declined: return "declined";
  }
  return "?";
}

const char* to_string(LeaseOrigin o) { return o == LeaseOrigin::Dhcp ? "dhcp" : "learned"; }

std::optional<LeaseState> lease_state_from_string(std::string_view s) {
  if (s == "offered") return LeaseState::Offered;
  if (s == "bound") return LeaseState::Bound;
  if (s == "declined") return LeaseState::Declined;
  return std::nullopt;
}

std::optional<LeaseOrigin> lease_origin_from_string(std::string_view s) {
  if (s == "dhcp") return LeaseOrigin::Dhcp;
  if (s == "learned") return LeaseOrigin::Learned;
  return std::nullopt;
}

std::string sanitize_host_name(std::string_view name) {
  auto dot = name.find('.');
  if (dot != std::string_view::npos) name = name.substr(0, dot);
  std::string out;
  for (char c : name) {
    if (out.size() == 63) break;
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') out.push_back(c);
  }
  while (!out.empty() && out.front() == '-') out.erase(out.begin());
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

LeaseTable::LeaseTable(Ipv4Prefix network, Ipv4Addr gateway) : network_(network), gateway_(gateway) {}

const Lease* LeaseTable::find(Ipv4Addr addr) const {
  auto it = by_address_.find(addr.value);
  return it == by_address_.end() ? nullptr : &it->second;
}

const Lease* LeaseTable::find_by_mac(MacAddr mac) const {
  auto it = by_mac_.find(mac);
  return it == by_mac_.end() ? nullptr : find(Ipv4Addr{it->second});
}

const Lease* LeaseTable::find_active(Ipv4Addr addr, UnixTime now) const {
  const Lease* l = find(addr);
  return l && l->active(now) ? l : nullptr;
}

bool LeaseTable::is_available(Ipv4Addr addr, MacAddr mac, UnixTime now, const std::string& vm) const {
  if (!network_.is_host(addr) || addr == gateway_) return false;
  if (const Reservation* r = reservation_at(addr); r && !r->matches(mac, vm)) return false;
  if (const Reservation* r = reservation_for(mac, vm); r && r->address != addr) return false;
  const Lease* l = find(addr);
  if (!l) return true;
  switch (l->state) {
    case LeaseState::Declined: return l->expiry <= now;
    case LeaseState::Offered:
    case LeaseState::Bound: return l->mac == mac || l->expiry <= now;
  }
  return false;
}

std::optional<Ipv4Addr> LeaseTable::choose(MacAddr mac, std::optional<Ipv4Addr> requested, UnixTime now,
                                           const std::string& vm) const {
  if (const Reservation* r = reservation_for(mac, vm)) {
    if (is_available(r->address, mac, now, vm)) return r->address;
    return std::nullopt;  // held by another client until revoke_reservation_conflicts()
  }
  if (const Lease* own = find_by_mac(mac); own && is_available(own->address, mac, now, vm)) return own->address;
  if (requested && is_available(*requested, mac, now, vm)) {
    // Do not hand out another MAC's remembered address while unused ones remain.
    const Lease* l = find(*requested);
    if (!l || l->mac == mac) return requested;
  }
  // Lowest address with no record at all; every address below the hint
  // has one, so a table filled from the bottom is not walked again.
  std::uint32_t first = std::max(network_.network.value + 1, free_hint_);
  std::uint32_t last = network_.broadcast().value - 1;
  auto it = by_address_.lower_bound(first);
  for (std::uint32_t a = first; a <= last; ++a) {
    if (a == gateway_.value || reservation_at(Ipv4Addr{a})) continue;
    while (it != by_address_.end() && it->first < a) ++it;
    if (it == by_address_.end() || it->first != a) {
      free_hint_ = a;
      return Ipv4Addr{a};
    }
  }
  // Pool full of records: reuse the one that expired longest ago.
  const Lease* oldest = nullptr;
  for (const auto& [addr, l] : by_address_) {
    if (l.expiry <= now && !reservation_at(l.address) && (!oldest || l.expiry < oldest->expiry)) oldest = &l;
  }
  if (oldest) return oldest->address;
  return std::nullopt;
}

void LeaseTable::erase(std::map<std::uint32_t, Lease>::iterator it) {
  auto m = by_mac_.find(it->second.mac);
  if (m != by_mac_.end() && m->second == it->first) by_mac_.erase(m);
  if (own_.erase(it->first)) ++own_version_;
  rename(it->first, it->second.host_name, std::string{});
  free_hint_ = std::min(free_hint_, it->first);
  by_address_.erase(it);
  ++version_;
}

void LeaseTable::rename(std::uint32_t addr, const std::string& from, const std::string& to) {
  if (from == to) return;
  if (!from.empty()) {
    auto [b, e] = by_name_.equal_range(from);
    for (auto it = b; it != e; ++it) {
      if (it->second == addr) {
        by_name_.erase(it);
        break;
      }
    }
  }
  if (!to.empty()) by_name_.emplace(to, addr);
}

void LeaseTable::note_record(std::uint32_t addr, const std::string& node) {
  const bool is = node == own_node_;
  const bool was = is ? !own_.insert(addr).second : own_.erase(addr) != 0;
  if (is || was) ++own_version_;
}

void LeaseTable::set_own_node(const std::string& node) {
  own_node_ = node;
  own_.clear();
  for (const auto& [a, l] : by_address_)
    if (l.node == own_node_) own_.insert(a);
  ++own_version_;
}

std::vector<Lease> LeaseTable::own_leases() const {
  std::vector<Lease> out;
  out.reserve(own_.size());
  for (std::uint32_t a : own_) out.push_back(by_address_.at(a));
  return out;
}

const Lease& LeaseTable::put(Ipv4Addr addr, MacAddr mac, const std::string& vm, const std::string& host_name,
                             UnixTime expiry, LeaseState state, LeaseOrigin origin, const std::string& node) {
  // A MAC holds one record: forget its other address.
  if (auto m = by_mac_.find(mac); m != by_mac_.end() && m->second != addr.value) {
    auto old = by_address_.find(m->second);
    if (old != by_address_.end()) erase(old);
  }
  std::string keep_name;
  if (auto it = by_address_.find(addr.value); it != by_address_.end()) {
    // The name is the VM's: a new VM behind the same MAC does not inherit it.
    if (it->second.mac == mac && it->second.vm == vm) keep_name = it->second.host_name;
    if (it->second.mac != mac) {
      auto m = by_mac_.find(it->second.mac);
      if (m != by_mac_.end() && m->second == addr.value) by_mac_.erase(m);
    }
  }
  // A kept name may have been taken by another VM while this lease lapsed.
  if (!keep_name.empty() && !name_available(keep_name, mac, now_, vm)) keep_name.clear();
  std::string name = host_name.empty() || !name_available(host_name, mac, now_, vm) ? keep_name : host_name;
  if (const Reservation* r = reservation_at(addr);
      r && r->matches(mac, vm) && !r->name.empty() && state != LeaseState::Declined)
    name = r->name;
  auto existing = by_address_.find(addr.value);
  if (existing != by_address_.end()) {
    Lease& e = existing->second;
    if (e.mac == mac && e.vm == vm && e.host_name == name && e.state == state && e.origin == origin && e.node == node) {
      // Only the expiry moves (a renewal): nothing a crash could lose that
      // the client would not repair by renewing again.
      if (e.expiry != expiry) {
        e.expiry = expiry;
        ++expiry_version_;
        if (own_.count(addr.value)) ++own_expiry_version_;
      }
      return e;
    }
  }
  Lease& l = by_address_[addr.value];
  if (l.mac != mac || l.address != addr) l.registry_expiry = 0;  // a new lease: the registry knows nothing of it
  rename(addr.value, l.host_name, name);
  l.address = addr;
  l.mac = mac;
  l.vm = vm;
  l.host_name = name;
  l.expiry = expiry;
  l.state = state;
  l.origin = origin;
  l.node = node;
  if (state != LeaseState::Declined) by_mac_[mac] = addr.value;
  note_record(addr.value, node);
  ++version_;
  return l;
}

void LeaseTable::apply(const Lease& lease) {
  if (!network_.is_host(lease.address) || lease.address == gateway_) return;
  if (lease.state == LeaseState::Declined) {
    decline(lease.address, lease.expiry);
    return;
  }
  if (auto m = by_mac_.find(lease.mac); m != by_mac_.end() && m->second != lease.address.value) {
    auto old = by_address_.find(m->second);
    if (old != by_address_.end()) erase(old);
  }
  if (auto it = by_address_.find(lease.address.value); it != by_address_.end() && it->second.mac != lease.mac) {
    auto m = by_mac_.find(it->second.mac);
    if (m != by_mac_.end() && m->second == lease.address.value) by_mac_.erase(m);
  }
  Lease& l = by_address_[lease.address.value];
  rename(lease.address.value, l.host_name, lease.host_name);
  l = lease;
  l.registry_expiry = lease.expiry;
  by_mac_[lease.mac] = lease.address.value;
  note_record(lease.address.value, lease.node);
  ++version_;
}

void LeaseTable::forget(Ipv4Addr addr) {
  if (auto it = by_address_.find(addr.value); it != by_address_.end()) erase(it);
}

bool LeaseTable::release(Ipv4Addr addr, MacAddr mac, UnixTime now) {
  auto it = by_address_.find(addr.value);
  if (it == by_address_.end() || it->second.mac != mac || !it->second.active(now)) return false;
  it->second.expiry = now;
  note_record(it->first, it->second.node);
  ++version_;
  return true;
}

void LeaseTable::decline(Ipv4Addr addr, UnixTime until) {
  if (auto it = by_address_.find(addr.value); it != by_address_.end()) erase(it);
  Lease& l = by_address_[addr.value];
  l = Lease{};
  l.address = addr;
  l.expiry = until;
  l.state = LeaseState::Declined;
  note_record(addr.value, l.node);
  ++version_;
}

bool LeaseTable::reserved_for_other_vm(MacAddr mac, const std::string& vm, UnixTime now) const {
  const Lease* l = find_by_mac(mac);
  return l && l->active(now) && l->vm != vm;
}

bool LeaseTable::name_available(const std::string& name, MacAddr mac, UnixTime now, const std::string& vm) const {
  if (name.empty() || name == "gateway" || parse_auto_name(name, network_)) return false;
  if (std::find(static_names_.begin(), static_names_.end(), name) != static_names_.end()) return false;
  for (const Reservation& r : reservations_) {
    if (r.name == name && !r.matches(mac, vm)) return false;
  }
  // Also refuse anything shaped like an automatic name, in or out of the network.
  if (name.size() == 10 && (name[0] == 'c' || name[0] == 'C') &&
      name.find_first_not_of("0123456789", 1) == std::string::npos)
    return false;
  auto [b, e] = by_name_.equal_range(name);
  for (auto it = b; it != e; ++it) {
    const Lease& l = by_address_.at(it->second);
    if (l.mac != mac && l.active(now)) return false;
  }
  return true;
}

bool LeaseTable::set_host_name(Ipv4Addr addr, const std::string& host_name) {
  auto it = by_address_.find(addr.value);
  if (it == by_address_.end() || it->second.state != LeaseState::Bound) return false;
  if (!name_available(host_name, it->second.mac, now_, it->second.vm)) return false;
  // A reserved name stays: the admin chose it over the VM's own.
  if (const Reservation* r = reservation_at(addr); r && r->matches(it->second.mac, it->second.vm) && !r->name.empty())
    return host_name == r->name;
  if (it->second.host_name != host_name) {
    rename(it->first, it->second.host_name, host_name);
    it->second.host_name = host_name;
    note_record(it->first, it->second.node);
    ++version_;
  }
  return true;
}

bool LeaseTable::extend(Ipv4Addr addr, MacAddr mac, UnixTime expiry) {
  auto it = by_address_.find(addr.value);
  if (it == by_address_.end() || it->second.mac != mac || it->second.state != LeaseState::Bound) return false;
  it->second.expiry = expiry;
  ++expiry_version_;
  if (own_.count(it->first)) ++own_expiry_version_;
  return true;
}

void LeaseTable::expire(UnixTime now) {
  for (auto it = by_address_.begin(); it != by_address_.end();) {
    auto next = std::next(it);
    if (it->second.state != LeaseState::Bound && it->second.expiry <= now) erase(it);
    it = next;
  }
}

std::vector<Lease> LeaseTable::snapshot() const {
  std::vector<Lease> out;
  out.reserve(by_address_.size());
  for (const auto& [a, l] : by_address_) out.push_back(l);
  return out;
}

void LeaseTable::restore(const std::vector<Lease>& leases) {
  by_address_.clear();
  by_mac_.clear();
  by_name_.clear();
  free_hint_ = 0;
  own_.clear();
  ++own_version_;
  for (const Lease& l : leases) {
    if (!network_.is_host(l.address) || l.address == gateway_) continue;
    if (l.state == LeaseState::Declined) {
      decline(l.address, l.expiry);
    } else {
      put(l.address, l.mac, l.vm, l.host_name, l.expiry, l.state, l.origin, l.node);
    }
  }
  ++version_;
}

void LeaseTable::set_reservations(std::vector<Reservation> reservations) {
  reservations_ = std::move(reservations);
  ++version_;
}

const Reservation* LeaseTable::reservation_at(Ipv4Addr addr) const {
  for (const Reservation& r : reservations_) {
    if (r.address == addr) return &r;
  }
  return nullptr;
}

const Reservation* LeaseTable::reservation_for(MacAddr mac, const std::string& vm) const {
  for (const Reservation& r : reservations_) {
    if (r.mac && *r.mac == mac) return &r;
  }
  if (vm.empty()) return nullptr;
  for (const Reservation& r : reservations_) {
    if (!r.mac && r.vm == vm) return &r;
  }
  return nullptr;
}

bool LeaseTable::revoke(Ipv4Addr addr, UnixTime now) {
  auto it = by_address_.find(addr.value);
  if (it == by_address_.end() || it->second.state == LeaseState::Declined) return false;
  if (it->second.state == LeaseState::Offered && it->second.expiry <= now) return false;  // already ended
  it->second.state = LeaseState::Offered;
  it->second.expiry = now;
  ++version_;
  if (own_.count(it->first)) ++own_version_;
  return true;
}

std::vector<Ipv4Addr> LeaseTable::revoke_reservation_conflicts(UnixTime now, bool end_leases) {
  std::vector<Ipv4Addr> changed;
  for (auto& [a, l] : by_address_) {
    if (l.state == LeaseState::Declined || l.expiry <= now) continue;
    const Reservation* at = reservation_at(l.address);
    const Reservation* mine = reservation_for(l.mac, l.vm);
    if ((at && !at->matches(l.mac, l.vm)) || (mine && mine->address != l.address)) {
      if (end_leases && revoke(l.address, now)) changed.push_back(l.address);
      if (end_leases || (at && !at->matches(l.mac, l.vm))) continue;
    }
    if (at && !at->name.empty()) {
      if (l.host_name != at->name) {
        rename(a, l.host_name, at->name);
        l.host_name = at->name;  // the reservation's name, given since
        ++version_;
        if (own_.count(a)) ++own_version_;
        changed.push_back(l.address);
      }
      continue;
    }
    const std::string& name = l.host_name;
    bool taken = std::find(static_names_.begin(), static_names_.end(), name) != static_names_.end();
    for (const Reservation& r : reservations_) taken |= r.name == name && !r.matches(l.mac, l.vm);
    if (!name.empty() && taken) {
      rename(a, l.host_name, std::string{});
      l.host_name.clear();
      ++version_;
      if (own_.count(a)) ++own_version_;
      changed.push_back(l.address);
    }
  }
  return changed;
}

std::size_t LeaseTable::active_count(UnixTime now) const {
  return std::size_t(
      std::count_if(by_address_.begin(), by_address_.end(), [now](const auto& e) { return e.second.active(now); }));
}

const Lease* LeaseTable::find_active_by_vm(const std::string& vm, UnixTime now) const {
  if (vm.empty()) return nullptr;
  for (const auto& [a, l] : by_address_) {
    if (l.vm == vm && l.state != LeaseState::Declined && l.active(now)) return &l;
  }
  return nullptr;
}

std::optional<Ipv4Addr> LeaseTable::find_host_name(std::string_view name) const {
  // The most recently renewed active lease wins if two VMs claim one name.
  const Lease* best = nullptr;
  auto [b, e] = by_name_.equal_range(name);
  for (auto it = b; it != e; ++it) {
    const Lease& l = by_address_.at(it->second);
    if (l.active(now_) && (!best || l.expiry > best->expiry)) best = &l;
  }
  if (!best) return std::nullopt;
  return best->address;
}

bool LeaseTable::is_leased(Ipv4Addr addr) const { return find_active(addr, now_) != nullptr; }

std::string LeaseTable::host_name_of(Ipv4Addr addr) const {
  const Lease* l = find_active(addr, now_);
  return l ? l->host_name : std::string{};
}

}  // namespace wownet
