#include "overlay/nat_traversal.h"

#include <algorithm>

namespace wownet::overlay {

void NatTraversal::on_punch(const std::string& node_id, const std::vector<UdpEndpoint>& endpoints, Actions& out) {
  if (endpoints.empty()) return;
  const std::size_t n = std::min(endpoints.size(), kMaxEndpoints);
  if (options_.punch_ttl != 0) {
    probes_.assign(n, {});
    for (std::size_t i = 0; i < n; ++i) {
      auto& probe = probes_[i];
      probe[0] = std::uint8_t(wire::DatagramType::Probe);
      random_(std::span<std::uint8_t>(probe.data() + 1, probe.size() - 1));
      out.push_back(SendDatagram{endpoints[i], ConstByteSpan(probe.data(), probe.size()), options_.punch_ttl});
      ++probes_sent_;
    }
  }
  out.push_back(SetPeerPath{node_id, std::vector<UdpEndpoint>(endpoints.begin(), endpoints.begin() + long(n)), true});
}

void NatTraversal::on_resolved(std::int64_t now_ms, const std::string& node_id, std::vector<UdpEndpoint> endpoints,
                               bool punched, std::int64_t rendezvous_rtt_ms, Actions& out) {
  if (endpoints.empty()) return;
  if (endpoints.size() > kMaxEndpoints) endpoints.resize(kMaxEndpoints);
  if (!punched) {
    out.push_back(SetPeerPath{node_id, std::move(endpoints), true});
    return;
  }
  const std::int64_t wait = rendezvous_rtt_ms >= 0 ? std::clamp<std::int64_t>(rendezvous_rtt_ms + 50, 50, 1000) : 100;
  auto [it, fresh] = attempts_.try_emplace(node_id);
  if (fresh) it->second.at_ms = now_ms + wait;  // a repeated answer does not push it back
  it->second.endpoints = std::move(endpoints);
}

void NatTraversal::on_timer(std::int64_t now_ms, Actions& out) {
  for (auto it = attempts_.begin(); it != attempts_.end();) {
    if (it->second.at_ms > now_ms) {
      ++it;
      continue;
    }
    out.push_back(SetPeerPath{it->first, std::move(it->second.endpoints), true});
    out.push_back(TryDirect{it->first});
    it = attempts_.erase(it);
  }
}

void NatTraversal::retry_relayed(std::int64_t now_ms, const std::vector<PeerPath>& peers, Actions& out) {
  const std::int64_t every = options_.direct_retry_ms;
  for (const auto& p : peers) {
    if (!p.established || !p.relayed) {
      if (auto it = retries_.find(p.node_id); it != retries_.end()) retries_.erase(it);
      continue;
    }
    auto it = retries_.find(p.node_id);
    if (it == retries_.end()) {
      retries_.emplace(std::string(p.node_id), Retry{now_ms, 0});  // the first attempt just failed
      continue;
    }
    if (now_ms - it->second.last_ms < (every << std::min(it->second.tries, 3))) continue;
    it->second.last_ms = now_ms;
    ++it->second.tries;
    out.push_back(ResolveNode{std::string(p.node_id)});
  }
}

std::int64_t NatTraversal::next_deadline_ms() const {
  std::int64_t next = kNever;
  for (const auto& [node, a] : attempts_) next = std::min(next, a.at_ms);
  return next;
}

}  // namespace wownet::overlay
