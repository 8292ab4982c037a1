// What a re-read config file (SIGHUP, systemctl reload, wownetctl reload)
// changes in a running hostd: the pure comparison of the running config
// with the new one. The daemon carries the plan out.
#pragma once

#include <string>
#include <vector>

#include "config.h"

namespace wownet {

struct ReloadPlan {
  // The config to run on from now: the running one with every key that can
  // change live taken from the new file; the others keep their old values.
  HostdConfig next;
  // One entry per changed key that applies live: "dns.ttl 60 -> 5".
  std::vector<std::string> applied;
  // One entry per changed key that needs a restart:
  // "network.prefix 10.128.0.0/9 -> 10.0.0.0/8 (needs a restart)".
  std::vector<std::string> refused;
  // Which live parts changed, for the daemon to act on.
  bool log_level = false, metrics = false, engine = false, relay = false, rendezvous_nodes = false, crl = false;
  bool reservations = false;  // dhcp.reservation or dns.static
};

// Compares the running config with `fresh` (already validated, with the
// command line's overrides applied). Keys that can change while hostd
// runs: hostd.log_level, network.lease_time (not on a rendezvous, whose
// registry keeps it), network.learn_static, dns.ttl, dhcp.reservation,
// dns.static, metrics.listen,
// overlay.crl, overlay.crl_refresh, overlay.relay, overlay.relay_after,
// overlay.direct_retry, overlay.punch_ttl, overlay.rendezvous. Every other
// key is refused.
ReloadPlan plan_reload(const HostdConfig& running, HostdConfig fresh);

// "dns.ttl 60 -> 5, metrics.listen off -> 127.0.0.1:9770", or "nothing".
std::string join_changes(const std::vector<std::string>& items);

}  // namespace wownet
