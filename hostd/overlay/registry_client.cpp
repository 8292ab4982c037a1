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
  rendezvous_.push_back(node_id);
  if (rendezvous_.size() != 1) return;
  for (auto& [id, p] : pending_) send(now_ms, id, p, out);
}

void RegistryClient::on_rendezvous_down(std::string_view node_id) {
  std::erase_if(rendezvous_, [&](const std::string& r) { return r == node_id; });
}

bool RegistryClient::is_rendezvous(std::string_view node_id) const {
  return std::find(rendezvous_.begin(), rendezvous_.end(), node_id) != rendezvous_.end();
}

std::string_view RegistryClient::current() const {
  return rendezvous_.empty() ? std::string_view{} : std::string_view(rendezvous_.front());
}

void RegistryClient::send(std::int64_t now_ms, std::uint64_t id, Pending& p, Actions& out) {
  if (rendezvous_.empty()) return;
  if (p.tries > 0) ++counters_.retries;
  ++p.tries;
  p.sent_ms = now_ms;
  ++counters_.sent;
  // A retry goes to the next rendezvous up: the first may be the one that
  // does not answer.
  const std::string& to = rendezvous_[std::size_t(p.tries - 1) % rendezvous_.size()];
  out.push_back(SendControl{to, encode(id, p.ask)});
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
  out.push_back(SendControl{rendezvous_.front(), m.SerializeAsString()});
  return true;
}

void RegistryClient::on_timer(std::int64_t now_ms, Actions& out) {
  if (rendezvous_.empty()) return;
  for (auto it = pending_.begin(); it != pending_.end();) {
    Pending& p = it->second;
    if (p.tries > 0 && now_ms - p.sent_ms < options_.retry_ms) {
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
  for (const auto& [id, p] : pending_) next = std::min(next, p.tries == 0 ? 0 : p.sent_ms + options_.retry_ms);
  return next;
}

}  // namespace wownet::overlay
