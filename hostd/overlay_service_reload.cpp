// OverlayService and a config reload (SIGHUP, wownetctl reload): the relay
// settings, the rendezvous list and the CRL change while sessions run.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "overlay_service.h"
#include "registry/registry.h"
#include "util/file_io.h"

namespace wownet {

void OverlayService::apply_reload(const HostdConfig& old, std::vector<std::string>& applied,
                                  std::vector<std::string>& refused) {
  const OverlayConfig& o = config_.overlay;
  nat_.set_options(overlay::NatTraversal::Options{std::uint8_t(o.punch_ttl), std::int64_t(o.direct_retry) * 1000});
  if (peers_) {
    peers_->set_relay_after_ms(std::int64_t(o.relay_after) * 1000);
    if (o.relay_after == 0 && old.overlay.relay_after != 0) {
      // 0: never relay. Peers already offered the relay would otherwise try
      // it at once (after 0 s of waiting for a direct session).
      for (const auto& p : peers_->peers()) peers_->set_relay(p.node_id, std::nullopt);
    }
    relay_.configure(node_id_, relay_limits(o));
  }
  if (registry_) registry_->set_relay(o.relay);  // told to hosts as they register
  // A host that starts or stops relaying tells the rendezvous, which tell
  // the other hosts.
  if (!registry_ && o.relay != old.overlay.relay)
    for (const auto& [id, ep] : rendezvous_up_) send_register(id);

  // Host role: rendezvous that left the list are no longer kept up (their
  // registry no longer speaks for ours); new ones are connected at once.
  if (!registry_) {
    const auto listed = [](const std::vector<ConfigEndpoint>& list, const ConfigEndpoint& e) {
      return std::find(list.begin(), list.end(), e) != list.end();
    };
    for (const ConfigEndpoint& e : old.overlay.rendezvous_nodes) {
      if (listed(o.rendezvous_nodes, e)) continue;
      const overlay::UdpEndpoint ep = to_endpoint(e);
      if (peers_) peers_->disconnect(ep);
      for (auto it = rendezvous_up_.begin(); it != rendezvous_up_.end();) {
        if (it->second != ep) {
          ++it;
          continue;
        }
        registry_client_.on_rendezvous_down(it->first);
        relay_offers_.erase(it->first);
        relay_lists_.erase(it->first);
        it = rendezvous_up_.erase(it);
        refresh_relays();
      }
    }
    if (peers_)
      for (const ConfigEndpoint& e : o.rendezvous_nodes)
        if (!listed(old.overlay.rendezvous_nodes, e))
          with_peers(
              [&](overlay::PeerManager& pm, overlay::Outbox& box) { pm.connect(now_ms(), to_endpoint(e), box); });
  }
  reload_crl(applied, refused);
  arm_timer();
}

void OverlayService::reload_crl(std::vector<std::string>& applied, std::vector<std::string>& refused) {
  const std::string path = crl_file();
  if (path.empty() || !trust_) return;  // a host without one gets the registry's
  std::string pem, error;
  if (!util::read_file(path, pem, error)) {
    refused.push_back("overlay.crl: " + error + " (keeping CRL " + std::to_string(trust_->crl_number()) + ")");
    return;
  }
  if (pem == crl_pem_) return;
  const long before = trust_->crl_number();
  if (!trust_->update_crl(pem, error)) {
    refused.push_back("overlay.crl " + path + ": " + error + " (keeping CRL " + std::to_string(before) + ")");
    return;
  }
  crl_pem_ = pem;
  applied.push_back("CRL " + std::to_string(before) + " -> " + std::to_string(trust_->crl_number()) + " from " + path);
  if (registry_) {
    std::vector<registry::Outgoing> out;
    if (!registry_->set_crl(pem, out, error)) spdlog::warn("cannot store the CRL: {}", error);
    send_outgoing(out);
  } else {
    persist_crl();
  }
  if (peers_) with_peers([&](overlay::PeerManager& pm, overlay::Outbox& box) { pm.recheck(now_ms(), box); });
}

}  // namespace wownet
