#include "config_reload.h"

#include <type_traits>

namespace wownet {
namespace {

std::string show(const std::string& s) { return "\"" + s + "\""; }
std::string show(bool b) { return b ? "true" : "false"; }
template <typename T>
  requires std::is_integral_v<T>
std::string show(T v) {
  return std::to_string(v);
}
std::string show(const Ipv4Prefix& p) { return p.to_string(); }
std::string show(const Ipv4Addr& a) { return a.to_string(); }
std::string show(const MacAddr& m) { return m.to_string(); }
std::string show(const ConfigEndpoint& e) { return e.address.to_string() + ":" + std::to_string(e.port); }
std::string show(const std::vector<ConfigEndpoint>& list) {
  std::string out = "[";
  for (const auto& e : list) out += (out.size() > 1 ? ", " : "") + show(e);
  return out + "]";
}
std::string show(const MetricsConfig& m) { return m.enabled ? show(m.listen) : "off"; }

struct Differ {
  ReloadPlan& plan;
  HostdConfig& fresh;

  // Compares one key; a live one is copied into plan.next. True if it changed.
  template <typename Get>
  bool key(const char* name, Get get, bool live, const char* why = "needs a restart") {
    auto& running = get(plan.next);
    auto& wanted = get(fresh);
    if (running == wanted) return false;
    std::string change = std::string(name) + " " + show(running) + " -> " + show(wanted);
    if (live) {
      running = wanted;
      plan.applied.push_back(std::move(change));
    } else {
      plan.refused.push_back(change + " (" + why + ")");
    }
    return live;
  }
};

}  // namespace

ReloadPlan plan_reload(const HostdConfig& running, HostdConfig fresh) {
  ReloadPlan plan{running, {}, {}};
  Differ d{plan, fresh};
  using C = HostdConfig;
  d.key("hostd.state_dir", [](C& c) -> auto& { return c.state_dir; }, false);
  d.key("hostd.control_socket", [](C& c) -> auto& { return c.control_socket; }, false);
  plan.log_level = d.key("hostd.log_level", [](C& c) -> auto& { return c.log_level; }, true);

  d.key("network.prefix", [](C& c) -> auto& { return c.network.network; }, false);
  d.key("network.gateway", [](C& c) -> auto& { return c.network.gateway; }, false);
  d.key("network.gateway_mac", [](C& c) -> auto& { return c.network.gateway_mac; }, false);
  d.key("network.domain", [](C& c) -> auto& { return c.network.domain; }, false);
  d.key("network.mtu", [](C& c) -> auto& { return c.network.mtu; }, false);
  const bool registry_here = running.overlay.enabled && running.overlay.rendezvous;
  plan.engine |= d.key("network.lease_time", [](C& c) -> auto& { return c.network.lease_time; }, !registry_here,
                       "needs a restart on a rendezvous, whose registry holds it");
  plan.engine |= d.key("network.learn_static", [](C& c) -> auto& { return c.network.learn_static; }, true);
  plan.engine |= d.key("dns.ttl", [](C& c) -> auto& { return c.network.dns_ttl; }, true);
  d.key("agent.port", [](C& c) -> auto& { return c.agent_port; }, false);
  plan.metrics = d.key("metrics.listen", [](C& c) -> auto& { return c.metrics; }, true);

  // Turning the overlay on or off, or changing the role, is one refusal:
  // the other [overlay] keys mean nothing across it.
  const OverlayConfig& was = running.overlay;
  const OverlayConfig& now = fresh.overlay;
  if (was.enabled != now.enabled) {
    plan.refused.push_back(std::string("overlay ") + (was.enabled ? "on -> off" : "off -> on") + " (needs a restart)");
    return plan;
  }
  if (!was.enabled) return plan;
  if (was.rendezvous != now.rendezvous) {
    plan.refused.push_back(std::string("overlay.role ") + (was.rendezvous ? "\"rendezvous\" -> \"host\"" : "\"host\" -> \"rendezvous\"") +
                           " (needs a restart)");
    return plan;
  }
  d.key("overlay.listen", [](C& c) -> auto& { return c.overlay.listen; }, false);
  d.key("overlay.cert", [](C& c) -> auto& { return c.overlay.cert; }, false);
  d.key("overlay.key", [](C& c) -> auto& { return c.overlay.key; }, false);
  d.key("overlay.ca", [](C& c) -> auto& { return c.overlay.ca; }, false);
  d.key("overlay.csr", [](C& c) -> auto& { return c.overlay.csr; }, false);
  d.key("overlay.ca_dir", [](C& c) -> auto& { return c.overlay.ca_dir; }, false);
  d.key("overlay.node_name", [](C& c) -> auto& { return c.overlay.node_name; }, false);
  d.key("overlay.cipher", [](C& c) -> auto& { return c.overlay.cipher; }, false);
  d.key("overlay.keepalive", [](C& c) -> auto& { return c.overlay.keepalive; }, false);
  d.key("overlay.udp_gso", [](C& c) -> auto& { return c.overlay.udp_gso; }, false);
  d.key("overlay.udp_gro", [](C& c) -> auto& { return c.overlay.udp_gro; }, false);
  plan.crl |= d.key("overlay.crl", [](C& c) -> auto& { return c.overlay.crl; }, true);
  d.key("overlay.crl_refresh", [](C& c) -> auto& { return c.overlay.crl_refresh; }, true);
  plan.relay |= d.key("overlay.relay", [](C& c) -> auto& { return c.overlay.relay; }, true);
  plan.relay |= d.key("overlay.relay_after", [](C& c) -> auto& { return c.overlay.relay_after; }, true);
  plan.relay |= d.key("overlay.direct_retry", [](C& c) -> auto& { return c.overlay.direct_retry; }, true);
  plan.relay |= d.key("overlay.punch_ttl", [](C& c) -> auto& { return c.overlay.punch_ttl; }, true);
  plan.rendezvous_nodes =
      d.key("overlay.rendezvous", [](C& c) -> auto& { return c.overlay.rendezvous_nodes; }, true);
  return plan;
}

std::string join_changes(const std::vector<std::string>& items) {
  if (items.empty()) return "nothing";
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

}  // namespace wownet
