// Helpers shared by the Daemon's source files (daemon.cpp,
// daemon_attachments.cpp, daemon_reload.cpp). Not for use elsewhere.
#pragma once

#include <ctime>
#include <regex>
#include <string>

#include "core/types.h"
#include "proto/control.pb.h"

namespace wownet::daemon_internal {

inline UnixTime wall_now() { return UnixTime(std::time(nullptr)); }

// A VM name as attach accepts it (and the state file keeps it).
inline bool valid_vm_name(const std::string& s) {
  static const std::regex re("[A-Za-z0-9][A-Za-z0-9._-]{0,63}");
  return std::regex_match(s, re);
}

inline void set_error(control::Response& r, control::Code code, const std::string& msg) {
  r.set_code(code);
  r.set_message(msg);
}

}  // namespace wownet::daemon_internal
