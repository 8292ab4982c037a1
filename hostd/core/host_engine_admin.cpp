// HostEngine, the admin's side of the lease table: reservations and static
// names from the config, and leases ended by the admin.
#include "core/host_engine.h"

namespace wownet {

void HostEngine::set_names_and_reservations() {
  std::vector<std::string> names;
  for (const StaticName& s : config_.static_names) names.push_back(s.name);
  leases_.set_static_names(std::move(names));
  // With a registry the rendezvous allocates, under its own reservations.
  leases_.set_reservations(registry_mode() ? std::vector<Reservation>{} : config_.reservations);
}

void HostEngine::unbind_ended(UnixTime now) {
  for (auto& [id, att] : attachments_) {
    if (!att.ip) continue;
    const Lease* l = leases_.find(*att.ip);
    if (!l || !att.mac || l->mac != *att.mac || l->vm != att.vm || !l->active(now)) unbind(att);
  }
}

std::vector<Ipv4Addr> HostEngine::apply_reservations(UnixTime now) {
  if (registry_mode()) return {};
  leases_.set_now(now);
  // Leases the reservations forbid end at their next renewal (a NAK):
  // meanwhile the VMs keep their addresses.
  std::vector<Ipv4Addr> changed = leases_.revoke_reservation_conflicts(now, false);
  leases_.expire(now);
  unbind_ended(now);
  return changed;
}

bool HostEngine::revoke_lease(UnixTime now, Ipv4Addr addr) {
  if (registry_mode() || !leases_.revoke(addr, now)) return false;
  leases_.set_now(now);
  leases_.expire(now);
  unbind_ended(now);
  return true;
}

}  // namespace wownet
