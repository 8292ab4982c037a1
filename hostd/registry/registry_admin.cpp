// Registry, the admin's side: reservations and static names from the
// rendezvous' config, and leases ended by the admin (wownetctl lease
// release). Each change is committed and pushed like a node's request.
#include "registry/registry.h"

namespace wownet::registry {

LeaseTable Registry::fresh_table() const {
  LeaseTable t(network_.network, network_.gateway);
  t.set_reservations(network_.reservations);
  std::vector<std::string> names;
  for (const StaticName& s : network_.static_names) names.push_back(s.name);
  t.set_static_names(std::move(names));
  return t;
}

bool Registry::revoke(UnixTime now, Ipv4Addr addr, std::vector<Outgoing>& out, std::string& error) {
  if (storage_failed_) {
    error = "registry storage failure";
    return false;
  }
  Before before = capture({addr});
  if (!leases_.revoke(addr, now)) {
    error = "no lease of " + addr.to_string();
    return false;
  }
  if (!commit(now, before, std::string{}, out, error)) {
    error = "registry storage failure: " + error;
    return false;
  }
  // The record (an ended offer) goes at the next expiry pass.
  if (const Lease* ended = leases_.find(addr)) track_deadline(*ended, now);
  return true;
}

void Registry::set_reservations(UnixTime now, std::vector<Reservation> reservations,
                                std::vector<StaticName> static_names, std::vector<Outgoing>& out) {
  network_.reservations = std::move(reservations);
  network_.static_names = std::move(static_names);
  const std::vector<Lease> was = leases_.snapshot();
  leases_.set_reservations(network_.reservations);
  std::vector<std::string> names;
  for (const StaticName& s : network_.static_names) names.push_back(s.name);
  leases_.set_static_names(std::move(names));
  const std::vector<Ipv4Addr> changed = leases_.revoke_reservation_conflicts(now, true);
  if (changed.empty()) return;
  Before before;
  for (Ipv4Addr a : changed) {
    std::optional<Lease> old;
    for (const Lease& l : was) {
      if (l.address == a) old = l;
    }
    before.emplace_back(a, old);
  }
  std::string error;
  if (!commit(now, before, std::string{}, out, error)) return;  // undone, counted; the next reload tries again
  for (Ipv4Addr a : changed) {
    if (const Lease* l = leases_.find(a)) track_deadline(*l, now);
  }
}

}  // namespace wownet::registry
