// Small wrappers over the operating system: clocks, files, host name and
// executable lookup.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "core/agent_time.h"

namespace wownet::agent {

// The monotonic clock (CLOCK_MONOTONIC) now.
MonoTime monotonic_now();

// The wall clock now, in seconds since the Unix epoch.
UnixTime unix_now();

// Finds the executable `name` in $PATH, then in /usr/local/sbin, /usr/sbin
// and /sbin; nullopt if there is none.
std::optional<std::string> find_executable(std::string_view name);

// The kernel's host name (gethostname); nullopt on error.
std::optional<std::string> system_host_name();

// Creates `dir` and any missing parents with mode 0755.
std::error_code make_directories(const std::string& dir);

// Replaces the file at `path` with `text` (written to a temporary file in the
// same directory, then renamed over it).
std::error_code write_file(const std::string& path, std::string_view text);

// Reads a file of at most `limit` bytes; nullopt if it cannot be read.
std::optional<std::string> read_small_file(const std::string& path, std::size_t limit = 4096);

}  // namespace wownet::agent
