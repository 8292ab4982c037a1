#include "config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "config_leases.h"
#include "core/lease_table.h"

namespace wownet {
namespace {

// A host keeps a session to every rendezvous it lists.
constexpr std::size_t kMaxRendezvous = 16;

struct Reader {
  const std::string& file;
  std::string& error;             // the first problem
  std::vector<std::string>* all;  // every problem, if wanted

  bool fail(const std::string& key, const std::string& what) {
    std::string line = file + ": " + key + ": " + what;
    if (error.empty()) error = line;
    if (all) all->push_back(std::move(line));
    return false;
  }

  // Rejects keys this version does not know, so typos do not pass silently.
  bool only_keys(const toml::table& t, const std::string& where, const std::set<std::string>& known) {
    for (const auto& [k, v] : t) {
      std::string key(k.str());
      if (!known.count(key)) return fail(where.empty() ? key : where + "." + key, "unknown key");
    }
    return true;
  }

  bool get_string(const toml::table& t, const std::string& table, const char* key, std::string& out) {
    const toml::node* n = t.get(key);
    if (!n) return true;
    auto v = n->value<std::string>();
    if (!n->is_string() || !v) return fail(table + "." + key, "expected a string");
    out = *v;
    return true;
  }

  template <typename T>
  bool get_int(const toml::table& t, const std::string& table, const char* key, T& out, std::int64_t lo,
               std::int64_t hi) {
    const toml::node* n = t.get(key);
    if (!n) return true;
    if (!n->is_integer())
      return fail(table + "." + key, "expected an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
    std::int64_t v = *n->value<std::int64_t>();
    if (v < lo || v > hi)
      return fail(table + "." + key, "expected an integer from " + std::to_string(lo) + " to " + std::to_string(hi) +
                                         ", got " + std::to_string(v));
    out = T(v);
    return true;
  }

  bool get_bool(const toml::table& t, const std::string& table, const char* key, bool& out) {
    const toml::node* n = t.get(key);
    if (!n) return true;
    if (!n->is_boolean()) return fail(table + "." + key, "expected true or false");
    out = *n->value<bool>();
    return true;
  }

  const toml::table* table(const toml::table& root, const char* name) {
    const toml::node* n = root.get(name);
    if (!n) return nullptr;
    if (!n->is_table()) {
      fail(name, "expected a table ([" + std::string(name) + "])");
      return nullptr;
    }
    return n->as_table();
  }
};

bool valid_domain(const std::string& d) {
  if (d.empty() || d.size() > 200) return false;
  std::size_t start = 0;
  while (true) {
    auto dot = d.find('.', start);
    std::string label = d.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (label.empty() || sanitize_host_name(label) != label) return false;
    if (dot == std::string::npos) return true;
    start = dot + 1;
  }
}

// True for http://HOST:PORT or https://HOST:PORT (HOST: letters, digits,
// '.', '-', or a bracketed IPv6 address; PORT 1-65535; no path).
bool valid_etcd_url(const std::string& url) {
  std::string_view rest(url);
  if (rest.rfind("http://", 0) == 0) {
    rest.remove_prefix(7);
  } else if (rest.rfind("https://", 0) == 0) {
    rest.remove_prefix(8);
  } else {
    return false;
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  auto colon = rest.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view host = rest.substr(0, colon), port = rest.substr(colon + 1);
  if (host.front() == '[') {
    if (host.back() != ']' || host.size() < 3) return false;
    host = host.substr(1, host.size() - 2);
  }
  for (char ch : host)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '-' && ch != ':' && ch != '_') return false;
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos) return false;
  const unsigned p = unsigned(std::stoul(std::string(port)));
  return p >= 1 && p <= 65535;
}

// [registry]: the backend and, for etcd, where and how to reach it.
bool read_registry(Reader& r, const toml::table& t, HostdConfig& c) {
  RegistryConfig& g = c.registry;
  std::string backend = "sqlite";
  if (!r.only_keys(t, "registry", {"backend", "endpoints", "prefix", "cert", "key", "ca"}) ||
      !r.get_string(t, "registry", "backend", backend) || !r.get_string(t, "registry", "prefix", g.prefix) ||
      !r.get_string(t, "registry", "cert", g.cert) || !r.get_string(t, "registry", "key", g.key) ||
      !r.get_string(t, "registry", "ca", g.ca))
    return false;
  if (backend != "sqlite" && backend != "etcd") return r.fail("registry.backend", "expected \"sqlite\" or \"etcd\"");
  g.backend = backend == "etcd" ? RegistryConfig::Backend::Etcd : RegistryConfig::Backend::Sqlite;
  if (const toml::node* n = t.get("endpoints")) {
    const toml::array* list = n->as_array();
    if (!list) return r.fail("registry.endpoints", "expected a list of etcd URLs like [\"http://127.0.0.1:2379\"]");
    for (const toml::node& item : *list) {
      auto v = item.value<std::string>();
      if (!item.is_string() || !v || !valid_etcd_url(*v))
        return r.fail("registry.endpoints",
                      "expected a list of etcd URLs, http://HOST:PORT or https://HOST:PORT, like "
                      "[\"http://127.0.0.1:2379\"]");
      g.endpoints.push_back(*v);
    }
  }
  if (g.backend == RegistryConfig::Backend::Sqlite) {
    // etcd's keys at their defaults are fine (the example file shows them).
    const RegistryConfig d;
    for (const auto& [key, set] : {std::pair<const char*, bool>{"endpoints", !g.endpoints.empty()},
                                   {"prefix", g.prefix != d.prefix},
                                   {"cert", !g.cert.empty()},
                                   {"key", !g.key.empty()},
                                   {"ca", !g.ca.empty()}})
      if (set) return r.fail(std::string("registry.") + key, "only with backend = \"etcd\"");
    return true;
  }
  if (!c.overlay.rendezvous) return r.fail("registry.backend", "\"etcd\" is for a rendezvous (overlay.role)");
  if (g.endpoints.empty()) return r.fail("registry.endpoints", "backend = \"etcd\" needs at least one endpoint");
  if (g.prefix.empty() || g.prefix.front() != '/' || g.prefix.back() != '/' || g.prefix.size() > 200 ||
      g.prefix.find_first_of(" \t\r\n") != std::string::npos)
    return r.fail("registry.prefix", "expected a key prefix that starts and ends with '/', like \"/wownet/\"");
  for (const auto& [key, value] :
       {std::pair<const char*, const std::string*>{"cert", &g.cert}, {"key", &g.key}, {"ca", &g.ca}}) {
    if (!value->empty() && value->front() != '/')
      return r.fail(std::string("registry.") + key, "expected the absolute path of a PEM file");
  }
  if (g.cert.empty() != g.key.empty()) return r.fail("registry.cert", "cert and key go together");
  return true;
}

}  // namespace

bool is_valid_log_level(const std::string& level) {
  static const std::set<std::string> levels{"trace", "debug", "info", "warn", "error", "critical", "off"};
  return levels.count(level) != 0;
}

std::optional<HostdConfig> load_config(const std::string& path, std::string& error,
                                       std::vector<std::string>* all_errors) {
  // toml::parse_file would report a missing file as "path:0:0: ..." and read
  // a directory as an empty file, i.e. as all defaults.
  std::error_code fs_error;
  if (std::filesystem::is_directory(path, fs_error)) {
    error = path + ": is a directory, expected a TOML file";
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = path + ": cannot open: " + std::strerror(errno);
    return std::nullopt;
  }
  toml::table root;
  try {
    root = toml::parse(in, path);
  } catch (const toml::parse_error& e) {
    const auto& src = e.source();
    error = path + ":" + std::to_string(src.begin.line) + ":" + std::to_string(src.begin.column) + ": " +
            std::string(e.description());
    return std::nullopt;
  }
  HostdConfig c;
  Reader r{path, error, all_errors};
  r.only_keys(root, "", {"hostd", "network", "dhcp", "dns", "agent", "overlay", "metrics", "registry"});
  const ConfigFail fail = [&r](const std::string& key, const std::string& what) { r.fail(key, what); };

  // Each table on its own: a problem in one does not hide those of the next.
  const auto parse_hostd = [&]() -> bool {
    if (const toml::table* t = r.table(root, "hostd")) {
      if (!r.only_keys(*t, "hostd", {"state_dir", "control_socket", "log_level"})) return false;
      if (!r.get_string(*t, "hostd", "state_dir", c.state_dir) ||
          !r.get_string(*t, "hostd", "control_socket", c.control_socket) ||
          !r.get_string(*t, "hostd", "log_level", c.log_level))
        return false;
      if (!is_valid_log_level(c.log_level)) {
        r.fail("hostd.log_level", "expected one of trace, debug, info, warn, error, critical, off");
        return false;
      }
      if (c.state_dir.empty() || c.state_dir[0] != '/') {
        r.fail("hostd.state_dir", "expected an absolute path");
        return false;
      }
      if (c.control_socket.empty() || c.control_socket[0] != '/' || c.control_socket.size() > 100) {
        r.fail("hostd.control_socket", "expected an absolute path of at most 100 characters");
        return false;
      }
    }
    return true;
  };
  parse_hostd();

  // Each table on its own: a problem in one does not hide those of the next.
  const auto parse_network = [&]() -> bool {
    if (const toml::table* t = r.table(root, "network")) {
      if (!r.only_keys(*t, "network",
                       {"prefix", "gateway", "gateway_mac", "domain", "mtu", "lease_time", "learn_static"}))
        return false;
      std::string prefix, gateway, mac;
      NetworkConfig& n = c.network;
      if (!r.get_string(*t, "network", "prefix", prefix) || !r.get_string(*t, "network", "gateway", gateway) ||
          !r.get_string(*t, "network", "gateway_mac", mac) || !r.get_string(*t, "network", "domain", n.domain) ||
          !r.get_int(*t, "network", "mtu", n.mtu, 576, 9000) ||
          !r.get_int(*t, "network", "lease_time", n.lease_time, 10, 365 * 86400) ||
          !r.get_bool(*t, "network", "learn_static", n.learn_static))
        return false;
      if (t->contains("prefix")) {
        auto p = Ipv4Prefix::parse(prefix);
        if (!p || p->length < 8 || p->length > 30) {
          r.fail("network.prefix", "expected a network address with a length from 8 to 30, like \"10.128.0.0/9\"");
          return false;
        }
        n.network = *p;
        if (!t->contains("gateway")) n.gateway = Ipv4Addr{p->network.value + 1};
      }
      if (t->contains("gateway")) {
        auto g = Ipv4Addr::parse(gateway);
        if (!g) {
          r.fail("network.gateway", "expected an IPv4 address like \"10.128.0.1\"");
          return false;
        }
        n.gateway = *g;
      }
      if (!n.network.is_host(n.gateway)) {
        r.fail("network.gateway", "expected a host address inside network.prefix " + n.network.to_string());
        return false;
      }
      if (t->contains("gateway_mac")) {
        auto m = MacAddr::parse(mac);
        if (!m || m->is_multicast() || m->is_zero()) {
          r.fail("network.gateway_mac", "expected a unicast MAC address like \"02:77:6e:00:00:01\"");
          return false;
        }
        n.gateway_mac = *m;
      }
      for (char& ch : n.domain) ch = char(std::tolower(static_cast<unsigned char>(ch)));
      if (!valid_domain(n.domain)) {
        r.fail("network.domain", "expected a DNS domain of letters, digits and '-', like \"wow\"");
        return false;
      }
    }
    return true;
  };
  parse_network();

  // Each table on its own: a problem in one does not hide those of the next.
  const auto parse_dhcp = [&]() -> bool {
    if (const toml::table* t = r.table(root, "dhcp")) {
      if (!r.only_keys(*t, "dhcp", {"reservation"})) return false;
      if (const toml::node* n = t->get("reservation"); n && !read_reservations(*n, c.network, fail)) return false;
    }
    return true;
  };
  parse_dhcp();
  // Each table on its own: a problem in one does not hide those of the next.
  const auto parse_dns = [&]() -> bool {
    if (const toml::table* t = r.table(root, "dns")) {
      if (!r.only_keys(*t, "dns", {"ttl", "static"}) || !r.get_int(*t, "dns", "ttl", c.network.dns_ttl, 0, 86400))
        return false;
      if (const toml::node* n = t->get("static"); n && !read_static_names(*n, c.network, fail)) return false;
    }
    return true;
  };
  parse_dns();
  // Each table on its own: a problem in one does not hide those of the next.
  const auto parse_agent = [&]() -> bool {
    if (const toml::table* t = r.table(root, "agent")) {
      if (!r.only_keys(*t, "agent", {"port"}) || !r.get_int(*t, "agent", "port", c.agent_port, 1, 65535)) return false;
    }
    return true;
  };
  parse_agent();

  // Each table on its own: a problem in one does not hide those of the next.
  const auto parse_metrics = [&]() -> bool {
    if (const toml::table* t = r.table(root, "metrics")) {
      std::string listen;
      if (!r.only_keys(*t, "metrics", {"listen"}) || !r.get_string(*t, "metrics", "listen", listen)) return false;
      if (!listen.empty()) {
        auto e = parse_endpoint(listen);
        if (!e) {
          r.fail("metrics.listen",
                 "expected ADDRESS:PORT like \"127.0.0.1:9770\" (an IPv4 address, a port from 1 to 65535)");
          return false;
        }
        c.metrics.listen = *e;
        c.metrics.enabled = true;
      }
    }
    return true;
  };
  parse_metrics();

  // Each table on its own: a problem in one does not hide those of the next.
  const auto parse_overlay = [&]() -> bool {
    if (const toml::table* t = r.table(root, "overlay")) {
      OverlayConfig& o = c.overlay;
      std::string role = "host", listen;
      if (!r.only_keys(*t, "overlay", {"role",        "listen",       "rendezvous",  "cert",
                                       "key",         "ca",           "crl",         "cipher",
                                       "crl_refresh", "keepalive",    "node_name",   "csr",
                                       "ca_dir",      "relay",        "relay_quota", "relay_quota_interval",
                                       "relay_after", "direct_retry", "punch_ttl",   "udp_gso",
                                       "udp_gro"}) ||
          !r.get_bool(*t, "overlay", "udp_gso", o.udp_gso) || !r.get_bool(*t, "overlay", "udp_gro", o.udp_gro) ||
          !r.get_string(*t, "overlay", "csr", o.csr) || !r.get_string(*t, "overlay", "ca_dir", o.ca_dir) ||
          !r.get_string(*t, "overlay", "role", role) || !r.get_string(*t, "overlay", "listen", listen) ||
          !r.get_string(*t, "overlay", "cert", o.cert) || !r.get_string(*t, "overlay", "key", o.key) ||
          !r.get_string(*t, "overlay", "ca", o.ca) || !r.get_string(*t, "overlay", "crl", o.crl) ||
          !r.get_string(*t, "overlay", "cipher", o.cipher) || !r.get_string(*t, "overlay", "node_name", o.node_name) ||
          !r.get_int(*t, "overlay", "crl_refresh", o.crl_refresh, 1, 86400) ||
          !r.get_int(*t, "overlay", "keepalive", o.keepalive, 1, 3600) ||
          !r.get_bool(*t, "overlay", "relay", o.relay) ||
          !r.get_int(*t, "overlay", "relay_quota", o.relay_quota, 0, 1u << 30) ||
          !r.get_int(*t, "overlay", "relay_quota_interval", o.relay_quota_interval, 1, 86400) ||
          !r.get_int(*t, "overlay", "relay_after", o.relay_after, 0, 3600) ||
          !r.get_int(*t, "overlay", "direct_retry", o.direct_retry, 5, 86400) ||
          !r.get_int(*t, "overlay", "punch_ttl", o.punch_ttl, 0, 255))
        return false;
      if (role != "host" && role != "rendezvous") {
        r.fail("overlay.role", "expected \"host\" or \"rendezvous\"");
        return false;
      }
      o.rendezvous = role == "rendezvous";
      bool configured = o.rendezvous || !o.cert.empty() || !o.key.empty() || !o.ca.empty() || t->get("rendezvous");
      if (!configured) return true;  // an empty [overlay]: single-host mode
      if (!listen.empty()) {
        auto e = parse_endpoint(listen);
        if (!e) {
          r.fail("overlay.listen", "expected ADDRESS:PORT like \"0.0.0.0:7700\"");
          return false;
        }
        o.listen = *e;
      }
      if (const toml::node* n = t->get("rendezvous")) {
        const toml::array* arr = n->as_array();
        if (!arr) {
          r.fail("overlay.rendezvous", "expected a list of \"ADDRESS:PORT\" strings");
          return false;
        }
        for (const toml::node& item : *arr) {
          auto v = item.value<std::string>();
          auto e = v ? parse_endpoint(*v) : std::nullopt;
          if (!item.is_string() || !e || e->address.is_zero()) {
            r.fail("overlay.rendezvous", "expected a list of \"ADDRESS:PORT\" strings, like [\"192.0.2.10:7700\"]");
            return false;
          }
          if (std::find(o.rendezvous_nodes.begin(), o.rendezvous_nodes.end(), *e) != o.rendezvous_nodes.end()) {
            r.fail("overlay.rendezvous", "lists " + *v + " twice");
            return false;
          }
          o.rendezvous_nodes.push_back(*e);
        }
        if (o.rendezvous_nodes.size() > kMaxRendezvous) {
          r.fail("overlay.rendezvous", "expected at most " + std::to_string(kMaxRendezvous) + " endpoints");
          return false;
        }
      }
      if (o.cipher != "aes-256-gcm" && o.cipher != "chacha20-poly1305") {
        r.fail("overlay.cipher", "expected \"aes-256-gcm\" or \"chacha20-poly1305\"");
        return false;
      }
      // An enrolling host without a cert path gets one in the state dir
      // (complete_config), which the systemd unit lets hostd write.
      const bool cert_default = o.cert.empty() && !o.csr.empty() && !o.rendezvous;
      for (auto [key, value] : {std::pair{"cert", &o.cert}, {"key", &o.key}, {"ca", &o.ca}}) {
        if (value == &o.cert && cert_default) continue;
        if (value->empty() || (*value)[0] != '/') {
          r.fail(std::string("overlay.") + key, "expected the absolute path of a PEM file");
          return false;
        }
      }
      if (!o.crl.empty() && o.crl[0] != '/') {
        r.fail("overlay.crl", "expected the absolute path of a PEM file");
        return false;
      }
      if (!o.csr.empty() && o.csr[0] != '/') {
        r.fail("overlay.csr", "expected the absolute path of a PEM file");
        return false;
      }
      if (!o.ca_dir.empty() && (o.ca_dir[0] != '/' || !o.rendezvous)) {
        r.fail("overlay.ca_dir", "expected the absolute path of a CA directory, on a rendezvous");
        return false;
      }
      // A host relays only when asked to, and only from an address the
      // other hosts can reach: the rendezvous hand that out.
      if (!o.rendezvous && !t->get("relay")) o.relay = false;
      if (!o.rendezvous && o.relay && o.listen.address.is_zero()) {
        r.fail("overlay.relay",
               "a relaying host needs listen = \"ADDRESS:PORT\" with the address the other hosts reach it at");
        return false;
      }
      if (!o.rendezvous && o.rendezvous_nodes.empty()) {
        r.fail("overlay.rendezvous", "a host needs at least one rendezvous endpoint (or role = \"rendezvous\")");
        return false;
      }
      o.enabled = true;
    }
    return true;
  };
  parse_overlay();
  if (c.overlay.enabled && !c.overlay.rendezvous && !c.network.reservations.empty())
    r.fail("dhcp.reservation",
           "only in the config of the node that allocates addresses: the rendezvous (role = \"rendezvous\"), or a "
           "host without [overlay]");
  if (!error.empty()) return std::nullopt;
  if (const toml::table* t = r.table(root, "registry")) {
    if (!read_registry(r, *t, c)) return std::nullopt;
  }
  if (!error.empty()) return std::nullopt;
  return c;
}

void complete_config(HostdConfig& c) {
  OverlayConfig& o = c.overlay;
  if (o.enabled && o.cert.empty() && !o.csr.empty() && !o.rendezvous) o.cert = c.state_dir + "/node.crt";
}

std::optional<ConfigEndpoint> parse_endpoint(std::string_view s) {
  auto colon = s.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  auto addr = Ipv4Addr::parse(s.substr(0, colon));
  std::string_view port = s.substr(colon + 1);
  if (!addr || port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos)
    return std::nullopt;
  unsigned p = unsigned(std::stoul(std::string(port)));
  if (p == 0 || p > 65535) return std::nullopt;
  return ConfigEndpoint{*addr, std::uint16_t(p)};
}

}  // namespace wownet
