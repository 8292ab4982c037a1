// Protobuf logs every message it fails to parse; fuzzed input fails all the
// time. The targets that parse protobuf call quiet_protobuf() first.
#pragma once

#include <google/protobuf/stubs/logging.h>

#include <string>

namespace wownet::fuzz {

// Drops protobuf's log lines from now on (the handler is set once).
inline void quiet_protobuf() {
  static const bool quiet = [] {
    google::protobuf::SetLogHandler([](google::protobuf::LogLevel, const char*, int, const std::string&) {});
    return true;
  }();
  (void)quiet;
}

}  // namespace wownet::fuzz
