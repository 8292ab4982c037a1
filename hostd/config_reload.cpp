#include "config_reload.h"

#include <type_traits>

namespace wownet {
namespace {

std::string show(const std::string& s) { return "\"" + s + "\""; }
std::string show(bool b) { return b ? "true" : "false"; }
template <typename T>
std::enable_if_t<std::is_integral_v<T>, std::string> show(T v) {
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
std::string show(const std::vector<Reservation>& list) {
  std::string out = "[";
  for (const auto& r : list)
    out += (out.size() > 1 ? ", " : "") + r.address.to_string() + " " + (r.mac ? r.mac->to_string() : "vm " + r.vm) +
           (r.name.empty() ? "" : " " + r.name);
  return out + "]";
}
std::string show(const std::vector<StaticName>& list) {
  std::string out = "[";
  for (const auto& n : list) out += (out.size() > 1 ? ", " : "") + n.name + " " + n.address.to_string();
  return out + "]";
}
std::string show(const MetricsConfig& m) { return m.enabled ? show(m.listen) : "off"; }
std::string show(const RegistryConfig& r) {
  if (r.backend == RegistryConfig::Backend::Sqlite) return "sqlite";
  std::string out = "etcd " + r.prefix + " [";
  for (const auto& e : r.endpoints) out += (out.back() == '[' ? "" : ", ") + e;
  return out + "]";
}

struct Differ {
  ReloadPlan& plan;
  HostdConfig& fresh;

  // Compares one key's running and wanted values; a live one is copied
  // into plan.next. True if it changed and applies. key() names the key by
  // its member (and its table's member) of HostdConfig.
  template <typename T>
  bool compare(const char* name, T& running, const T& wanted, bool live, const char* why) {
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
  template <typename T>
  bool key(const char* name, T HostdConfig::*m, bool live, const char* why = kRestart) {
    return compare(name, plan.next.*m, fresh.*m, live, why);
  }
  template <typename S, typename T>
  bool key(const char* name, S HostdConfig::*table, T S::*m, bool live, const char* why = kRestart) {
    return compare(name, plan.next.*table.*m, fresh.*table.*m, live, why);
  }
  static constexpr const char* kRestart = "needs a restart";
};

}  // namespace

ReloadPlan plan_reload(const HostdConfig& running, HostdConfig fresh) {
  ReloadPlan plan{running, {}, {}};
  Differ d{plan, fresh};
  using C = HostdConfig;
  using N = NetworkConfig;
  using O = OverlayConfig;
  d.key("hostd.state_dir", &C::state_dir, false);
  d.key("hostd.control_socket", &C::control_socket, false);
  plan.log_level = d.key("hostd.log_level", &C::log_level, true);

  d.key("network.prefix", &C::network, &N::network, false);
  d.key("network.gateway", &C::network, &N::gateway, false);
  d.key("network.gateway_mac", &C::network, &N::gateway_mac, false);
  d.key("network.domain", &C::network, &N::domain, false);
  d.key("network.mtu", &C::network, &N::mtu, false);
  const bool registry_here = running.overlay.enabled && running.overlay.rendezvous;
  plan.engine |= d.key("network.lease_time", &C::network, &N::lease_time, !registry_here,
                       "needs a restart on a rendezvous, whose registry holds it");
  plan.engine |= d.key("network.learn_static", &C::network, &N::learn_static, true);
  plan.engine |= d.key("dns.ttl", &C::network, &N::dns_ttl, true);
  plan.reservations |= d.key("dhcp.reservation", &C::network, &N::reservations, true);
  plan.reservations |= d.key("dns.static", &C::network, &N::static_names, true);
  plan.engine |= plan.reservations;
  d.key("agent.port", &C::agent_port, false);
  plan.metrics = d.key("metrics.listen", &C::metrics, true);
  d.key("registry", &C::registry, false);

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
    plan.refused.push_back(std::string("overlay.role ") +
                           (was.rendezvous ? "\"rendezvous\" -> \"host\"" : "\"host\" -> \"rendezvous\"") +
                           " (needs a restart)");
    return plan;
  }
  d.key("overlay.listen", &C::overlay, &O::listen, false);
  d.key("overlay.cert", &C::overlay, &O::cert, false);
  d.key("overlay.key", &C::overlay, &O::key, false);
  d.key("overlay.ca", &C::overlay, &O::ca, false);
  d.key("overlay.csr", &C::overlay, &O::csr, false);
  d.key("overlay.ca_dir", &C::overlay, &O::ca_dir, false);
  d.key("overlay.node_name", &C::overlay, &O::node_name, false);
  d.key("overlay.cipher", &C::overlay, &O::cipher, false);
  d.key("overlay.keepalive", &C::overlay, &O::keepalive, false);
  d.key("overlay.udp_gso", &C::overlay, &O::udp_gso, false);
  d.key("overlay.udp_gro", &C::overlay, &O::udp_gro, false);
  plan.crl |= d.key("overlay.crl", &C::overlay, &O::crl, true);
  d.key("overlay.crl_refresh", &C::overlay, &O::crl_refresh, true);
  // A rendezvous tells hosts whether it relays only when they register.
  plan.relay |= d.key("overlay.relay", &C::overlay, &O::relay, !registry_here,
                      "needs a restart on a rendezvous: hosts learn it when they register");
  plan.relay |= d.key("overlay.relay_quota", &C::overlay, &O::relay_quota, true);
  plan.relay |= d.key("overlay.relay_quota_interval", &C::overlay, &O::relay_quota_interval, true);
  plan.relay |= d.key("overlay.relay_after", &C::overlay, &O::relay_after, true);
  plan.relay |= d.key("overlay.direct_retry", &C::overlay, &O::direct_retry, true);
  plan.relay |= d.key("overlay.punch_ttl", &C::overlay, &O::punch_ttl, true);
  plan.rendezvous_nodes = d.key("overlay.rendezvous", &C::overlay, &O::rendezvous_nodes, true);
  return plan;
}

std::string join_changes(const std::vector<std::string>& items) {
  if (items.empty()) return "nothing";
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

}  // namespace wownet
