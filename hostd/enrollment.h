// Online certificate enrollment on a rendezvous that holds the network's CA:
// hosts submit CSRs (overlay.proto EnrollRequest), an admin lists and
// decides them with wownetctl, and a host that polls again gets its
// certificate. Requests live as files under STATE_DIR/enroll/ so that a
// restart loses none:
//   pending/<id>.csr, pending/<id>.from   awaiting a decision
//   issued/<id>.crt                       approved: signed by the CA
//   denied/<id>                           denied
// <id> is the node ID the certificate will carry (from the CSR's key).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/types.h"
#include "proto/overlay.pb.h"

namespace wownet {

class EnrollmentDesk {
 public:
  static constexpr std::size_t kMaxPending = 64;
  static constexpr UnixTime kPendingLifetime = 86400;

  // `ca_dir` is the CA directory (wownetctl ca init) used for signing.
  EnrollmentDesk(std::string state_dir, std::string ca_dir);
  // Creates the directories; false with `error` if it cannot.
  bool prepare(std::string& error);

  // Answers one request from `from` (address:port).
  overlay::EnrollReply on_request(UnixTime now, const overlay::EnrollRequest& request, const std::string& from);

  struct Entry {
    std::string id, name, from, state;
    UnixTime submitted = 0;
  };
  std::vector<Entry> list() const;
  // Approves (signs for `days`) or denies request `id`. Empty on success,
  // else why not.
  std::string decide(UnixTime now, const std::string& id, bool approve, int days);

 private:
  std::string dir_, ca_dir_;
};

}  // namespace wownet
