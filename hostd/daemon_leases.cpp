// The Daemon's lease requests: `wownetctl leases` (this node's leases, or
// the network's with --all, and the config's reservations and static
// names) and `wownetctl lease release`.
#include <spdlog/spdlog.h>

#include "daemon.h"
#include "daemon_internal.h"

namespace wownet {

using daemon_internal::set_error;
using daemon_internal::wall_now;

void Daemon::leases(const control::LeasesRequest& req, control::Response& resp) {
  UnixTime now = wall_now();
  auto* out = resp.mutable_leases();
  // A host's table holds the whole network's leases (the registry pushes
  // them); without --all only this node's VMs'.
  const std::string self = overlay_ ? overlay_->node_id() : std::string{};
  const std::string domain = "." + config_.network.domain;
  for (const Lease& l : engine_.leases().snapshot()) {
    if (!req.all() && !l.node.empty() && l.node != self) continue;
    auto* r = out->add_leases();
    r->set_kind("lease");
    r->set_address(l.address.to_string());
    if (l.state != LeaseState::Declined) r->set_mac(l.mac.to_string());
    r->set_vm(l.vm);
    r->set_host_name(l.host_name);
    r->set_auto_name(auto_name(l.address) + domain);
    r->set_expiry_unix(l.expiry);
    r->set_state(l.state == LeaseState::Bound && !l.active(now) ? "expired" : to_string(l.state));
    r->set_origin(to_string(l.origin));
    r->set_node(l.node);
  }
  // The config's entries: reservations where this node allocates (a host
  // with the overlay has none), static names everywhere.
  for (const Reservation& x : config_.network.reservations) {
    auto* r = out->add_leases();
    r->set_kind("reservation");
    r->set_address(x.address.to_string());
    if (x.mac) r->set_mac(x.mac->to_string());
    r->set_vm(x.vm);
    r->set_host_name(x.name);
    r->set_auto_name(auto_name(x.address) + domain);
    r->set_state("reserved");
    r->set_origin("config");
  }
  for (const StaticName& x : config_.network.static_names) {
    auto* r = out->add_leases();
    r->set_kind("static");
    r->set_address(x.address.to_string());
    r->set_host_name(x.name);
    r->set_auto_name(auto_name(x.address) + domain);
    r->set_state("static");
    r->set_origin("config");
  }
}

void Daemon::lease_release(const control::LeaseReleaseRequest& req, control::Response& resp) {
  auto addr = Ipv4Addr::parse(req.address());
  if (!addr || !config_.network.network.is_host(*addr)) {
    set_error(resp, control::INVALID_ARGUMENT,
              "expected an address inside the network " + config_.network.network.to_string() + ", got \"" +
                  req.address() + "\"");
    return;
  }
  std::string error;
  if (overlay_) {
    if (!overlay_->allocates()) {
      set_error(resp, control::FAILED_PRECONDITION,
                "addresses are allocated by the rendezvous: run wownetctl lease release there");
      return;
    }
    if (!overlay_->revoke_lease(*addr, error)) {
      set_error(resp, error.rfind("no lease", 0) == 0 ? control::NOT_FOUND : control::INTERNAL, error);
      return;
    }
  } else {
    const Lease* l = engine_.leases().find(*addr);
    const std::string who = l ? (l->vm.empty() ? l->mac.to_string() : l->vm) : std::string{};
    if (!engine_.revoke_lease(wall_now(), *addr)) {
      set_error(resp, control::NOT_FOUND, "no lease of " + addr->to_string());
      return;
    }
    // On disk before the admin hears it is done.
    if (!save_state()) {
      set_error(resp, control::INTERNAL, "released, but the state could not be saved: see hostd's log");
      return;
    }
    spdlog::info("lease of {} ({}) released by the admin", addr->to_string(), who);
    resp.set_message("released " + addr->to_string());
    return;
  }
  spdlog::info("lease of {} released by the admin", addr->to_string());
  resp.set_message("released " + addr->to_string());
}

}  // namespace wownet
