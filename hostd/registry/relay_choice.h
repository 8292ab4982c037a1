// Which relays a rendezvous hands out (Registered.relays), pure: the nodes
// that relay (hosts that said so in Register, and the rendezvous itself
// when it relays), ordered least loaded first for each host. A host's load
// on a relay is that the relay came first in the last list it was given
// (the one it uses); ties go by node ID, so every rendezvous orders alike.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "registry/registry_store.h"

namespace wownet::registry {

// At most this many relays in one list.
inline constexpr std::size_t kMaxRelays = 8;

struct RelayCandidate {
  std::string id, name;
  Endpoint endpoint;  // empty address: the rendezvous itself (hosts reach it where they do)
  bool operator==(const RelayCandidate&) const = default;
};

class RelayChoice {
 public:
  // Adds or updates a relay; false if nothing changed.
  bool add(RelayCandidate c);
  // Removes a relay (gone, or no longer relaying) and what was assigned to
  // it; false if it was not one.
  bool remove(const std::string& id);
  // A node gone: no longer counted on its relay.
  void forget(const std::string& node);
  // The relays for `node` (never itself), least loaded first, at most
  // kMaxRelays; the first is counted as assigned to it.
  std::vector<RelayCandidate> choose(const std::string& node);
  // Hosts whose first relay is `id`.
  std::size_t load(const std::string& id) const;
  bool empty() const { return relays_.empty(); }

 private:
  std::map<std::string, RelayCandidate> relays_;  // by id
  std::map<std::string, std::string> assigned_;   // node -> its first relay
};

}  // namespace wownet::registry
