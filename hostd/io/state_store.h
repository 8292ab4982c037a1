// hostd's durable state (attachments and leases) in STATE_DIR/state.txt,
// protobuf text format, replaced atomically (write, fsync, rename).
#pragma once

#include <string>
#include <system_error>

#include "proto/state.pb.h"

namespace wownet::io {

class StateStore {
 public:
  explicit StateStore(std::string dir) : dir_(std::move(dir)) {}

  // Creates the state directory (mode 0700) if needed.
  std::error_code prepare();
  // Reads the state file. A missing file yields an empty state; a corrupt
  // one is an error whose `detail` says where (the file is left alone).
  std::error_code load(wownet::state::State& out, std::string& detail) const;
  // Writes the state so that a crash at any point leaves either the old or
  // the new file, never a mix.
  std::error_code save(const wownet::state::State& state) const;
  std::string path() const { return dir_ + "/state.txt"; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

}  // namespace wownet::io
