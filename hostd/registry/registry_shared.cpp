// Registry on a shared store (etcd, several rendezvous): changes become
// CommitRequests that the store writes only if none of their records
// changed meanwhile; the reply that reports a change waits for its
// commit; a lost compare undoes the change and handles the request again;
// other rendezvous' changes come in through apply_shared().
#include "registry/registry.h"

namespace wownet::registry {

namespace ov = wownet::overlay;

void Registry::load_shared(UnixTime now, const std::vector<Lease>& leases, const std::vector<NodeInfo>& nodes,
                           const std::string& crl) {
  leases_ = fresh_table();
  deadlines_.clear();
  for (const Lease& l : leases) leases_.apply(l);
  for (const Lease& l : leases_.snapshot()) track_deadline(l, now);
  for (const NodeInfo& n : nodes) apply_shared_node(n);
  if (!crl.empty()) crl_ = crl;
}

std::vector<CommitRequest> Registry::take_commits() { return std::exchange(commits_, {}); }

std::vector<NodeInfo> Registry::take_node_writes() { return std::exchange(node_writes_, {}); }

std::optional<std::string> Registry::take_crl_write() { return std::exchange(crl_write_, std::nullopt); }

void Registry::handle_lease_message(UnixTime now, const std::string& from, const ov::NodeMessage& m, int attempt,
                                    std::vector<Outgoing>& out) {
  handling_ = &m;
  handling_from_ = from;
  handling_attempt_ = attempt;
  deferred_id_ = 0;
  std::vector<Outgoing> pushes;
  ov::LeaseReply reply = m.has_lease_request() ? handle_request(now, from, m.lease_request(), pushes)
                                               : handle_release(now, from, m.lease_release(), pushes);
  handling_ = nullptr;
  Outgoing o;
  o.node_id = from;
  o.message.set_request_id(m.request_id());
  *o.message.mutable_lease_reply() = std::move(reply);
  if (grouped_) {
    // Every lease reply waits for the group's commit, also one that
    // changed nothing itself: it may report what an earlier request of
    // the group changed.
    held_.push_back(std::move(o));
    ++held_replies_;
    for (Outgoing& p : pushes) held_.push_back(std::move(p));
    return;
  }
  if (deferred_id_ != 0) {
    auto& held = in_flight_[deferred_id_].held;
    held.insert(held.begin(), std::move(o));
    deferred_id_ = 0;
    return;
  }
  out.push_back(std::move(o));
  for (Outgoing& p : pushes) out.push_back(std::move(p));
}

void Registry::on_local_message(UnixTime now, const ov::NodeMessage& m, std::vector<Outgoing>& out) {
  if (m.has_lease_request() || m.has_lease_release()) handle_lease_message(now, self_id_, m, 1, out);
}

void Registry::defer_commit(UnixTime now, const Before& before, const std::string& requester) {
  CommitRequest c;
  c.id = next_commit_++;
  for (const auto& [addr, old] : before) {
    const Lease* l = leases_.find(addr);
    if (same_record(old, l)) continue;
    c.before.emplace_back(addr, old);
    c.after.emplace_back(addr, l ? std::optional<Lease>(*l) : std::nullopt);
  }
  if (c.before.empty()) return;
  InFlight f;
  f.requester = requester;
  if (handling_) {
    f.request = *handling_;
    f.attempt = handling_attempt_;
    deferred_id_ = c.id;
  }
  std::vector<Lease> puts;
  for (const auto& [addr, rec] : c.after) {
    if (!rec) continue;
    track_deadline(*rec, now);
    puts.push_back(*rec);
  }
  // Other nodes hear of the change once it is written.
  push_to_others(requester, puts, f.held);
  f.commit = c;
  in_flight_.emplace(c.id, std::move(f));
  commits_.push_back(std::move(c));
}

void Registry::undo(const InFlight& f) {
  // Only what still reads as this commit left it: a later change of ours
  // stands (its own commit decides about it).
  for (std::size_t i = 0; i < f.commit.before.size(); ++i) {
    const auto& [addr, old] = f.commit.before[i];
    if (!same_record(f.commit.after[i].second, leases_.find(addr))) continue;
    if (old) {
      leases_.apply(*old);
    } else {
      leases_.forget(addr);
    }
  }
}

void Registry::on_commit_result(UnixTime now, std::uint64_t id, CommitOutcome outcome, const LeaseRecords& fresh,
                                const std::string& error, std::vector<Outgoing>& out) {
  auto it = in_flight_.find(id);
  if (it == in_flight_.end()) return;
  InFlight f = std::move(it->second);
  in_flight_.erase(it);
  if (outcome == CommitOutcome::Committed) {
    for (Outgoing& o : f.held) out.push_back(std::move(o));
    return;
  }
  if (outcome == CommitOutcome::Conflict) {
    ++counters_.commit_conflicts;
  } else {
    ++counters_.store_failures;
  }
  undo(f);
  apply_shared(now, fresh, out);
  const bool has_request = f.request.has_lease_request() || f.request.has_lease_release();
  if (!has_request || f.requester.empty()) return;
  if (outcome == CommitOutcome::Conflict && f.attempt < kMaxCommitAttempts) {
    ++counters_.commit_retries;
    handle_lease_message(now, f.requester, f.request, f.attempt + 1, out);
    return;
  }
  Outgoing o;
  o.node_id = f.requester;
  o.message.set_request_id(f.request.request_id());
  *o.message.mutable_lease_reply() =
      refuse(outcome == CommitOutcome::Conflict ? "registry busy (conflicting changes), try again"
                                                : "registry storage unavailable: " + error);
  out.push_back(std::move(o));
}

void Registry::apply_shared(UnixTime now, const LeaseRecords& changes, std::vector<Outgoing>& out) {
  std::vector<Lease> changed;
  for (const auto& [addr, rec] : changes) {
    const Lease* cur = leases_.find(addr);
    if (rec) {
      if (cur && same_lease(*cur, *rec)) continue;
      leases_.apply(*rec);
      track_deadline(*rec, now);
      changed.push_back(*rec);
    } else if (cur && !cur->active(now)) {
      // Deleted by another rendezvous: an expired offer or decline. (A
      // record deleted because its MAC moved is replaced by the put of
      // the new address, which comes with it.)
      leases_.forget(addr);
    }
  }
  counters_.shared_changes += changed.size();
  push_to_others(std::string{}, changed, out);
}

void Registry::apply_shared_crl(const std::string& pem, std::vector<Outgoing>& out) {
  crl_ = pem;
  for (const auto& [id, n] : nodes_) {
    if (!n.online || id == self_id_) continue;
    Outgoing o;
    o.node_id = id;
    o.message.mutable_crl()->set_pem(pem);
    out.push_back(std::move(o));
    ++counters_.pushes;
  }
}

void Registry::apply_shared_node(const NodeInfo& node) {
  if (node.id.empty() || node.id == self_id_) return;
  auto it = nodes_.find(node.id);
  if (it != nodes_.end() && it->second.online) return;  // its session is with us: ours is fresher
  NodeInfo n = node;
  n.online = false;  // "online" here means a session with this rendezvous
  nodes_[node.id] = std::move(n);
}

}  // namespace wownet::registry
