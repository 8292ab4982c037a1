// wownet-hostd's configuration: the TOML file (packaging/hostd.toml documents
// every key) and the built-in defaults used without one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/network_config.h"

namespace wownet {

// A UDP endpoint in a config file: "192.0.2.10:7700".
struct ConfigEndpoint {
  Ipv4Addr address;
  std::uint16_t port = 0;
  bool operator==(const ConfigEndpoint&) const = default;
};
std::optional<ConfigEndpoint> parse_endpoint(std::string_view s);

// The encrypted overlay between hosts ([overlay]). Without it (no cert),
// hostd serves only the VMs on this host and keeps its own registry.
struct OverlayConfig {
  bool enabled = false;     // true once [overlay] names a certificate
  bool rendezvous = false;  // role = "rendezvous": keeps the registry
  ConfigEndpoint listen{Ipv4Addr{0}, 7700};
  std::vector<ConfigEndpoint> rendezvous_nodes;  // where hosts register
  std::string cert, key, ca, crl;                // PEM files; crl optional (a rendezvous re-reads it)
                                                 // cert: <state_dir>/node.crt for a host with csr (complete_config)
  std::string cipher = "aes-256-gcm";
  std::uint32_t crl_refresh = 60;  // seconds between CRL checks
  std::uint32_t keepalive = 10;    // seconds
  bool relay = true;               // relays sealed datagrams between nodes (a host: default false, needs listen)
  std::uint32_t relay_quota = 0;   // relay: MiB one node may have relayed per relay_quota_interval; 0: none
  std::uint32_t relay_quota_interval = 3600;  // seconds
  std::uint32_t relay_after = 3;    // seconds without a direct session before the relay is tried; 0: never relay
  std::uint32_t direct_retry = 45;  // seconds before a direct attempt while relayed (backing off to 8x)
  std::uint32_t punch_ttl = 2;      // TTL of punch probes; 0: none
  bool udp_gso = true;              // send datagram trains with UDP_SEGMENT where the kernel can
  bool udp_gro = true;              // receive with UDP_GRO where the kernel can
  std::string node_name;            // from the certificate when empty
  std::string csr;                  // host: CSR to submit while `cert` does not exist yet
  std::string ca_dir;               // rendezvous: CA directory for approving submitted CSRs
};

// The Prometheus endpoint ([metrics]); off unless listen is set.
struct MetricsConfig {
  bool enabled = false;
  ConfigEndpoint listen{Ipv4Addr{0x7f000001}, 9770};  // 127.0.0.1:9770
  // Off is off, whatever listen says.
  bool operator==(const MetricsConfig& o) const { return enabled == o.enabled && (!enabled || listen == o.listen); }
};

// Where a rendezvous keeps the registry ([registry]).
struct RegistryConfig {
  enum class Backend { Sqlite, Etcd };
  Backend backend = Backend::Sqlite;   // sqlite: STATE_DIR/registry.db, this rendezvous alone
  std::vector<std::string> endpoints;  // etcd client URLs: http://HOST:PORT or https://HOST:PORT
  std::string prefix = "/wownet/";     // every key of the registry starts with it
  std::string cert, key, ca;           // PEM files for TLS to etcd; cert and key together
  bool operator==(const RegistryConfig&) const = default;
};

struct HostdConfig {
  NetworkConfig network;
  OverlayConfig overlay;
  RegistryConfig registry;
  MetricsConfig metrics;
  std::string state_dir = "/var/lib/wownet";
  std::string control_socket = "/run/wownet/hostd.sock";
  std::string log_level = "info";
  std::uint16_t agent_port = 6570;
};

// Reads and validates a config file. On error returns nullopt and sets
// `error` to one line naming the file, the key and what was expected (the
// first problem found); with `all_errors`, every problem found goes there,
// one line each (each table is checked even when an earlier one failed;
// within a table the first problem ends its check).
std::optional<HostdConfig> load_config(const std::string& path, std::string& error,
                                       std::vector<std::string>* all_errors = nullptr);

// Fills the defaults that depend on other keys, once the command line's
// overrides are in: an enrolling host (overlay.csr) without overlay.cert
// writes its certificate to <state_dir>/node.crt.
void complete_config(HostdConfig& c);

// What --check-config checks beyond the file's syntax: every file the
// config names exists and is readable, private keys are not readable by
// group or others (0600 or stricter), the directories hostd writes exist
// or can be created. One line per problem, all of them, each naming the
// key, the path and what is wrong; empty if nothing is.
std::vector<std::string> check_config_files(const HostdConfig& c);

// Validates values that may also come from the command line.
bool is_valid_log_level(const std::string& level);

}  // namespace wownet
