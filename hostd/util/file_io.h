// Whole-file reads and atomic replacement, the one way wownet reads and
// writes its own files (state, certificates, CRL, enrollment records).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <system_error>

namespace wownet::util {

// Files wownet reads whole (configs, PEM, state) are small; anything larger
// is refused rather than read into memory.
inline constexpr std::size_t kMaxReadSize = 64u << 20;

// Reads the whole file at `path` into `out`. On failure returns false with
// `error` = "PATH: cannot open|read: REASON" (or "PATH: larger than N bytes").
bool read_file(const std::string& path, std::string& out, std::string& error, std::size_t max = kMaxReadSize);

// Replaces `path` with `data` so that a crash leaves the old or the new
// file, never a mix: writes PATH.tmp.PID with `mode`, fsyncs it, renames it
// over `path` and fsyncs the directory. Does not follow a link at the
// temporary name. On failure the temporary file is removed.
std::error_code write_file_atomic(const std::string& path, const std::string& data, mode_t mode = 0644);

// Creates `path` with `data` and `mode` (set from the start: for private
// keys), fsynced; never replaces an existing file (EEXIST).
std::error_code write_file_new(const std::string& path, const std::string& data, mode_t mode = 0600);

}  // namespace wownet::util
