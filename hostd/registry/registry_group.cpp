// Registry, group commit on SQLite: the lease changes of every request
// handled in one turn of the loop are written in one transaction, then the
// replies that waited for it go out, with one LeaseUpdate per node for all
// the changes of the turn (instead of one per change).
#include <set>
#include <string_view>
#include <utility>

#include "registry/registry.h"

namespace wownet::registry {

namespace ov = wownet::overlay;

void Registry::commit_group(UnixTime now, std::vector<Outgoing>& out) {
  if (!grouped_ || (held_.empty() && group_touched_.empty() && group_pushes_.empty())) return;
  StoreBatch batch;
  for (std::uint32_t value : group_touched_) {
    const Lease* l = leases_.find(Ipv4Addr{value});
    if (l) {
      batch.put_leases.push_back(*l);
    } else {
      batch.erase_leases.push_back(Ipv4Addr{value});
    }
  }
  group_touched_.clear();
  std::map<std::uint32_t, std::string> pushes = std::exchange(group_pushes_, {});
  std::vector<Outgoing> held = std::exchange(held_, {});
  const std::size_t replies = std::exchange(held_replies_, 0);
  std::string error;
  if (store_ && !batch.empty() && !store_->commit(batch, error)) {
    ++counters_.store_failures;
    // Undo the whole group in memory: the store holds the last committed state.
    std::string reload_error;
    if (!reload(now, reload_error)) {
      storage_failed_ = true;
      error += "; re-reading the store failed: " + reload_error;
    }
    for (Outgoing& o : held) {
      if (!o.message.has_lease_reply()) continue;  // a push of what did not happen
      if (o.message.lease_reply().ok()) *o.message.mutable_lease_reply() = refuse("registry storage failure: " + error);
      out.push_back(std::move(o));
    }
    return;  // and nothing is pushed
  }
  if (!batch.empty()) ++counters_.group_commits;
  counters_.group_replies += replies;
  for (Outgoing& o : held) out.push_back(std::move(o));
  group_pushes_ = std::move(pushes);
  push_group(out);
}

void Registry::push_group(std::vector<Outgoing>& out) {
  std::map<std::uint32_t, std::string> pushes = std::exchange(group_pushes_, {});
  // Each record serialized once; who asked for it does not get it again.
  std::vector<std::pair<const std::string*, ov::Lease>> changed;
  std::set<std::string_view> askers;
  for (const auto& [value, requester] : pushes) {
    const Lease* l = leases_.find(Ipv4Addr{value});
    if (!l) continue;
    changed.emplace_back(&requester, lease_to_proto(*l, node_name(l->node)));
    askers.insert(requester);
  }
  if (changed.empty()) return;
  auto pack = [&](const std::string& node, std::vector<Outgoing>& into) {
    std::size_t bytes = 0;
    for (const auto& [requester, proto] : changed) {
      if (*requester == node) continue;
      // A lease field: its bytes, a tag and a length of up to 3 bytes.
      const std::size_t size = proto.ByteSizeLong() + 4;
      if (into.empty() || (bytes + size > kMaxLeaseMessageBytes - 8 && bytes > 0)) {
        into.push_back(Outgoing{node, {}});
        into.back().message.mutable_lease_update();
        bytes = 0;
      }
      *into.back().message.mutable_lease_update()->add_leases() = proto;
      bytes += size;
    }
  };
  std::vector<Outgoing> common;  // for the nodes that asked for nothing
  bool common_built = false;
  for (const auto& [id, n] : nodes_) {
    if (!n.online || id == self_id_) continue;
    if (askers.count(id)) {
      std::vector<Outgoing> mine;
      pack(id, mine);
      counters_.pushes += mine.size();
      for (Outgoing& o : mine) out.push_back(std::move(o));
      continue;
    }
    if (!common_built) {
      pack(std::string{}, common);
      common_built = true;
    }
    for (const Outgoing& o : common) out.push_back(Outgoing{id, o.message});
    counters_.pushes += common.size();
  }
}

}  // namespace wownet::registry
