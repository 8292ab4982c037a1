// NAT traversal, sans I/O: when to open our NAT and when to try a peer's
// direct path (see overlay_service.h for the protocol).
//
// - A Punch from the rendezvous (another node is about to call): punch
//   probes with a low TTL toward each of its endpoints, which open our NAT
//   toward it and die before its NAT; then its endpoints become the node's path.
// - A Resolved that says the target was punched: the direct attempt waits
//   about one rendezvous round trip (rtt + 50 ms, 50..1000 ms; 100 ms if
//   unknown) so that the target's probes have opened its NAT first. A
//   repeated answer does not push the attempt back.
// - A node reached only through a relay: a new punch is asked for every
//   direct_retry_ms, backing off to 8 times that. A failed attempt leaves
//   the far NAT tracking our packets as unsolicited for its UDP timeout
//   (30 s on Linux), hence no shorter interval.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/overlay_wire.h"
#include "overlay/action.h"

namespace wownet::overlay {

class NatTraversal {
 public:
  struct Options {
    std::uint8_t punch_ttl = 2;  // 0: no probes
    std::int64_t direct_retry_ms = 45'000;
  };
  // Fills a probe's payload with random bytes.
  using Random = std::function<void(std::span<std::uint8_t>)>;
  // What the caller knows of a peer, for the retry schedule.
  struct PeerPath {
    std::string_view node_id;
    bool established = false;
    bool relayed = false;
  };
  static constexpr std::size_t kMaxEndpoints = 8;
  static constexpr std::int64_t kNever = INT64_MAX;

  NatTraversal(Options options, Random random) : options_(options), random_(std::move(random)) {}
  // New options from now on (a config reload); attempts already waiting keep their times.
  void set_options(Options options) { options_ = options; }

  // A Punch for node `node_id` at `endpoints`: probes (SendDatagram with
  // the punch TTL) and SetPeerPath.
  void on_punch(const std::string& node_id, const std::vector<UdpEndpoint>& endpoints, Actions& out);
  // A Resolved for `node_id`: SetPeerPath now (not punched), or an attempt
  // due later (punched). `rendezvous_rtt_ms` < 0 if unknown.
  void on_resolved(std::int64_t now_ms, const std::string& node_id, std::vector<UdpEndpoint> endpoints, bool punched,
                   std::int64_t rendezvous_rtt_ms, Actions& out);
  // Due attempts: SetPeerPath and TryDirect each.
  void on_timer(std::int64_t now_ms, Actions& out);
  // Every second or so with every peer's path: ResolveNode for relayed
  // nodes whose retry is due.
  void retry_relayed(std::int64_t now_ms, const std::vector<PeerPath>& peers, Actions& out);
  std::int64_t next_deadline_ms() const;

  std::uint64_t probes_sent() const { return probes_sent_; }
  std::size_t attempts_waiting() const { return attempts_.size(); }

 private:
  struct Attempt {
    std::int64_t at_ms = 0;
    std::vector<UdpEndpoint> endpoints;
  };
  struct Retry {
    std::int64_t last_ms = 0;
    int tries = 0;
  };
  Options options_;
  Random random_;
  std::map<std::string, Attempt, std::less<>> attempts_;
  std::map<std::string, Retry, std::less<>> retries_;
  std::vector<std::array<std::uint8_t, wire::kProbeSize>> probes_;  // payloads of the last on_punch
  std::uint64_t probes_sent_ = 0;
};

}  // namespace wownet::overlay
