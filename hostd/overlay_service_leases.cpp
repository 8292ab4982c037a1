// OverlayService and the admin's lease work on a rendezvous: its registry's
// reservations and static names, and leases the admin ends.
#include <spdlog/spdlog.h>

#include "overlay_service.h"
#include "registry/registry.h"

namespace wownet {

bool OverlayService::revoke_lease(Ipv4Addr addr, std::string& error) {
  if (!registry_) {
    error = "addresses are allocated by the rendezvous: run wownetctl lease release there";
    return false;
  }
  std::vector<registry::Outgoing> out;
  if (!registry_->revoke(now_s(), addr, out, error)) return false;
  send_outgoing(out);  // to every node, and to this node's own engine
  commit_registry();   // now, not at the end of the loop's turn: the admin's reply reports it done
  return true;
}

void OverlayService::apply_reservations() {
  if (!registry_) return;
  std::vector<registry::Outgoing> out;
  registry_->set_reservations(now_s(), config_.network.reservations, config_.network.static_names, out);
  send_outgoing(out);
  commit_registry();
}

}  // namespace wownet
