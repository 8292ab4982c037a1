// wownet-hostd's configuration: the TOML file (packaging/hostd.toml documents
// every key) and the built-in defaults used without one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "network_config.h"

namespace wownet {

struct HostdConfig {
  NetworkConfig network;
  std::string state_dir = "/var/lib/wownet";
  std::string control_socket = "/run/wownet/hostd.sock";
  std::string log_level = "info";
  std::uint16_t agent_port = 6570;
};

// Reads and validates a config file. On error returns nullopt and sets
// `error` to one line naming the file, the key and what was expected.
std::optional<HostdConfig> load_config(const std::string& path, std::string& error);

// Validates values that may also come from the command line.
bool is_valid_log_level(const std::string& level);

}  // namespace wownet
