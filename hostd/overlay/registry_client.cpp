#include "overlay/registry_client.h"

#include <algorithm>

#include "proto/overlay.pb.h"

namespace wownet::overlay {
namespace {

constexpr std::size_t kMaxResolveMemory = 4096;

bool is_release(LeaseAsk::Kind k) { return k == LeaseAsk::Kind::Release || k == LeaseAsk::Kind::Decline; }

}  // namespace

std::string RegistryClient::encode(std::uint64_t id, const LeaseAsk& a) {
  NodeMessage m;
  m.set_request_id(id);
  if (!is_release(a.kind)) {
    auto* q = m.mutable_lease_request();
    q->set_kind(a.kind == LeaseAsk::Kind::Offer ? LeaseRequest::OFFER : LeaseRequest::BIND);
    q->set_mac(a.mac.to_string());
    q->set_vm(a.vm);
    q->set_host_name(a.host_name);
    if (a.address) q->set_requested_address(a.address->to_string());
    q->set_learned(a.learned);
  } else {
    auto* r = m.mutable_lease_release();
    if (a.address) r->set_address(a.address->to_string());
    r->set_mac(a.mac.to_string());
    r->set_declined(a.kind == LeaseAsk::Kind::Decline);
  }
  return m.SerializeAsString();
}

void RegistryClient::on_rendezvous_up(std::int64_t now_ms, const std::string& node_id, Actions& out) {
  if (is_rendezvous(node_id)) return;
  const bool none_trusted =
      std::none_of(rendezvous_.begin(), rendezvous_.end(), [](const auto& r) { return r.trusted(); });
  rendezvous_.push_back(Rendezvous{node_id, now_ms});
  if (!none_trusted) return;
  // The first one to trust: what waited, or waits on a suspect, goes now.
  for (auto& [id, p] : pending_)
    if (p.to != node_id) send(now_ms, id, p, out);
}

void RegistryClient::on_rendezvous_down(std::string_view node_id) {
  std::erase_if(rendezvous_, [&](const Rendezvous& r) { return r.id == node_id; });
}

void RegistryClient::on_heard(std::int64_t now_ms, std::string_view node_id) {
  for (Rendezvous& r : rendezvous_) {
    if (r.id != node_id) continue;
    r.heard_ms = now_ms;
    r.suspect_since = kNever;
    r.resolve_since = kNever;
  }
}

const RegistryClient::Rendezvous* RegistryClient::find(std::string_view node_id) const {
  for (const Rendezvous& r : rendezvous_)
    if (r.id == node_id) return &r;
  return nullptr;
}

bool RegistryClient::is_rendezvous(std::string_view node_id) const { return find(node_id) != nullptr; }

bool RegistryClient::suspected(std::string_view node_id) const {
  const Rendezvous* r = find(node_id);
  return r && !r->trusted();
}

int RegistryClient::pick(std::string_view after) const {
  const int n = int(rendezvous_.size());
  if (n == 0) return -1;
  int start = 0;
  for (int i = 0; i < n && !after.empty(); ++i)
    if (rendezvous_[std::size_t(i)].id == after) start = i + 1;
  for (int k = 0; k < n; ++k) {
    const int i = (start + k) % n;
    if (rendezvous_[std::size_t(i)].trusted()) return i;
  }
  int oldest = 0;  // every one suspected: the one suspected longest ago
  for (int i = 1; i < n; ++i)
    if (rendezvous_[std::size_t(i)].suspect_since < rendezvous_[std::size_t(oldest)].suspect_since) oldest = i;
  return oldest;
}

std::string_view RegistryClient::current() const {
  const int i = pick();
  return i < 0 ? std::string_view{} : std::string_view(rendezvous_[std::size_t(i)].id);
}

void RegistryClient::send(std::int64_t now_ms, std::uint64_t id, Pending& p, Actions& out) {
  // A first try goes to the rendezvous asked first; a retry to the next
  // one after where it went last: that one may be the one not answering.
  const int i = pick(p.tries > 0 ? std::string_view(p.to) : std::string_view{});
  if (i < 0) return;
  if (p.tries > 0) ++counters_.retries;
  ++p.tries;
  p.sent_ms = now_ms;
  p.to = rendezvous_[std::size_t(i)].id;
  ++counters_.sent;
  out.push_back(SendControl{p.to, encode(id, p.ask)});
}

std::uint64_t RegistryClient::ask(std::int64_t now_ms, const LeaseAsk& a, Actions& out) {
  // The id is taken before anything else: every request has its own.
  const std::uint64_t id = next_id_++;
  if (auto old = by_vm_.find({a.mac, is_release(a.kind)}); old != by_vm_.end()) {
    ++counters_.replaced;
    erase_pending(pending_.find(old->second));
  }
  if (pending_.size() >= options_.max_pending) {
    ++counters_.given_up;
    erase_pending(pending_.begin());
  }
  Pending& p = pending_[id];
  p.ask = a;
  by_vm_[{a.mac, is_release(a.kind)}] = id;
  send(now_ms, id, p, out);
  return id;
}

void RegistryClient::erase_pending(std::map<std::uint64_t, Pending>::iterator it) {
  if (it == pending_.end()) return;
  auto v = by_vm_.find({it->second.ask.mac, is_release(it->second.ask.kind)});
  if (v != by_vm_.end() && v->second == it->first) by_vm_.erase(v);
  pending_.erase(it);
}

std::optional<MacAddr> RegistryClient::on_answer(std::uint64_t id) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return std::nullopt;
  MacAddr mac = it->second.ask.mac;
  erase_pending(it);
  ++counters_.answered;
  return mac;
}

bool RegistryClient::resolve(std::int64_t now_ms, std::string_view node_id, std::optional<Ipv4Addr> address,
                             Actions& out) {
  if (rendezvous_.empty()) return false;
  const std::pair<std::string_view, std::uint32_t> key(node_id, address ? address->value : 0);
  auto it = resolved_at_.find(key);
  if (it != resolved_at_.end() && now_ms - it->second < options_.resolve_interval_ms) return false;
  if (it == resolved_at_.end() && resolved_at_.size() >= kMaxResolveMemory) {
    std::erase_if(resolved_at_, [&](const auto& e) { return now_ms - e.second >= options_.resolve_interval_ms; });
    if (resolved_at_.size() >= kMaxResolveMemory) resolved_at_.erase(resolved_at_.begin());
  }
  if (it != resolved_at_.end()) {
    it->second = now_ms;
  } else {
    resolved_at_.emplace(ResolveKey(node_id, key.second), now_ms);
  }
  NodeMessage m;
  if (address) {
    m.mutable_resolve()->set_address(address->to_string());
  } else {
    m.mutable_resolve()->set_node_id(std::string(node_id));
  }
  ++counters_.resolves;
  Rendezvous& to = rendezvous_[std::size_t(pick())];
  if (to.resolve_since == kNever) to.resolve_since = now_ms;
  out.push_back(SendControl{to.id, m.SerializeAsString()});
  return true;
}

bool RegistryClient::placed(const Pending& p) const {
  const Rendezvous* r = find(p.to);
  return r && r->trusted();
}

void RegistryClient::suspect_silent(std::int64_t now_ms) {
  if (rendezvous_.size() < 2) return;  // nobody to move to
  for (Rendezvous& r : rendezvous_) {
    if (!r.trusted() || r.resolve_since == kNever || now_ms - r.resolve_since < options_.suspect_after_ms) continue;
    r.suspect_since = now_ms;
    r.resolve_since = kNever;
    ++counters_.failovers;
  }
  for (const auto& [id, p] : pending_) {
    if (p.tries == 0 || now_ms - p.sent_ms < options_.suspect_after_ms) continue;
    for (Rendezvous& r : rendezvous_) {
      if (r.id != p.to || !r.trusted() || r.heard_ms > p.sent_ms) continue;
      r.suspect_since = now_ms;
      ++counters_.failovers;
    }
  }
}

void RegistryClient::on_timer(std::int64_t now_ms, Actions& out) {
  if (rendezvous_.empty()) return;
  suspect_silent(now_ms);
  const std::string_view first = current();
  for (auto it = pending_.begin(); it != pending_.end();) {
    Pending& p = it->second;
    // Due: never sent, unanswered for retry_ms, or waiting on a rendezvous
    // that is gone or suspected while another one is to be asked first.
    const bool due = p.tries == 0 || now_ms - p.sent_ms >= options_.retry_ms || (!placed(p) && p.to != first);
    if (!due) {
      ++it;
      continue;
    }
    if (p.tries >= options_.max_tries) {
      ++counters_.given_up;
      auto next = std::next(it);
      erase_pending(it);
      it = next;
      continue;
    }
    send(now_ms, it->first, p, out);
    ++it;
  }
}

std::int64_t RegistryClient::next_deadline_ms() const {
  std::int64_t next = kNever;
  for (const auto& [id, p] : pending_) {
    if (p.tries == 0) return 0;
    next = std::min(next, p.sent_ms + options_.retry_ms);
    if (rendezvous_.size() > 1 && placed(p)) next = std::min(next, p.sent_ms + options_.suspect_after_ms);
  }
  return next;
}

}  // namespace wownet::overlay
