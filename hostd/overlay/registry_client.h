// A host's side of the registry, sans I/O: the engine's lease requests and
// the resolves of peers on their way to the rendezvous nodes.
//
// A lease request stays until the registry answers it: it is sent as soon
// as a rendezvous is up, sent again every retry_ms without an answer (to
// the next live rendezvous, when there are several) and given up after
// max_tries (the VM's DHCP client asks again anyway).
//
// Failover: a killed rendezvous looks alive to its session until the
// session's dead_after has passed (15 s or more). So with several
// rendezvous up, one that leaves a request unanswered for
// suspect_after_ms (or a resolve: the registry answers every one) and has
// said nothing since it was sent is suspected:
// its requests go to the next one at once, and new requests and resolves
// go to the first rendezvous not suspected, until the suspect speaks again
// (on_heard). With every one suspected, the one suspected longest ago is
// asked. Every request has its
// own id; one VM has at most one request of each kind (lease or release)
// outstanding: a newer ask replaces an older one. A resolve of a node goes
// out at most once per resolve_interval_ms.
//
// Outputs are SendControl actions carrying serialized NodeMessages.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/dhcp.h"
#include "core/lease_table.h"
#include "core/types.h"
#include "overlay/action.h"

namespace wownet::overlay {

class RegistryClient {
 public:
  struct Options {
    std::int64_t retry_ms = 3000;
    int max_tries = 10;
    std::size_t max_pending = 4096;
    std::int64_t resolve_interval_ms = 1000;
    std::int64_t suspect_after_ms = 1000;
  };
  struct Counters {
    std::uint64_t sent = 0;       // lease requests sent, first tries and retries
    std::uint64_t retries = 0;    // of those, sent again for want of an answer
    std::uint64_t answered = 0;   // answers matched to a pending request
    std::uint64_t replaced = 0;   // requests a newer ask of the same VM replaced
    std::uint64_t given_up = 0;   // requests dropped after max_tries or for room
    std::uint64_t resolves = 0;   // resolves sent
    std::uint64_t failovers = 0;  // rendezvous suspected silent, their requests moved
    template <typename F>
    void visit(F&& f) const {
      f("registry_requests_sent", sent), f("registry_retries", retries), f("registry_answers", answered);
      f("registry_replaced", replaced), f("registry_given_up", given_up), f("registry_resolves", resolves);
      f("registry_failovers", failovers);
    }
  };

  RegistryClient() = default;
  explicit RegistryClient(Options options) : options_(options) {}

  // A rendezvous (by node ID) has a keyed session now: every pending
  // request goes to it if no other one up is trusted.
  void on_rendezvous_up(std::int64_t now_ms, const std::string& node_id, Actions& out);
  // Its session ended: its pending requests move to the next one at the
  // next on_timer.
  void on_rendezvous_down(std::string_view node_id);
  // A message came from rendezvous `node_id`: it is alive (no longer
  // suspected, if it was).
  void on_heard(std::int64_t now_ms, std::string_view node_id);
  bool is_rendezvous(std::string_view node_id) const;
  bool suspected(std::string_view node_id) const;
  std::size_t rendezvous_up() const { return rendezvous_.size(); }
  // The rendezvous requests go to first; empty if none is up.
  std::string_view current() const;

  // Queues the engine's ask (replacing an outstanding one of that VM and
  // kind) and sends it if a rendezvous is up. Returns the request's id.
  std::uint64_t ask(std::int64_t now_ms, const LeaseAsk& ask, Actions& out);
  // The registry answered request `id`: the MAC it was for, or nullopt if
  // no such request is pending (answered before, replaced, given up).
  std::optional<MacAddr> on_answer(std::uint64_t id);
  // Asks where the node holding `address` (or, with an empty address, node
  // `node_id`) is, unless that was asked within resolve_interval_ms. False
  // if nothing was sent (throttled, or no rendezvous up).
  bool resolve(std::int64_t now_ms, std::string_view node_id, std::optional<Ipv4Addr> address, Actions& out);
  // Sends again what waited retry_ms without an answer; gives up after max_tries.
  void on_timer(std::int64_t now_ms, Actions& out);
  // When on_timer next has work (kNever if nothing is pending).
  std::int64_t next_deadline_ms() const;
  static constexpr std::int64_t kNever = INT64_MAX;

  std::size_t pending() const { return pending_.size(); }
  // The serialized NodeMessage of `ask` as request `id` (also for a
  // rendezvous' own VMs, whose asks go to its registry directly).
  static std::string encode(std::uint64_t id, const LeaseAsk& ask);
  const Counters& counters() const { return counters_; }

 private:
  struct Pending {
    LeaseAsk ask;
    std::int64_t sent_ms = 0;  // when last sent
    int tries = 0;             // 0: not sent yet
    std::string to;            // the rendezvous it was last sent to
  };
  struct Rendezvous {
    std::string id;
    std::int64_t heard_ms = 0;            // when it last said something (or came up)
    std::int64_t suspect_since = kNever;  // kNever: trusted
    std::int64_t resolve_since = kNever;  // oldest resolve sent since it last spoke
    bool trusted() const { return suspect_since == kNever; }
  };
  void send(std::int64_t now_ms, std::uint64_t id, Pending& p, Actions& out);
  // Index of the rendezvous to ask first, after `after` (cyclic) if given;
  // -1 if none is up.
  int pick(std::string_view after = {}) const;
  const Rendezvous* find(std::string_view node_id) const;
  // Suspects rendezvous silent on a request for suspect_after_ms.
  void suspect_silent(std::int64_t now_ms);
  // Whether pending request `p` waits on a rendezvous that is trusted and up.
  bool placed(const Pending& p) const;

  Options options_;
  Counters counters_;
  std::vector<Rendezvous> rendezvous_;  // up, in the order they came up
  std::map<std::uint64_t, Pending> pending_;
  // The pending request of each VM (MAC) and kind (true: release or
  // decline), so that an ask finds the one it replaces without a walk.
  std::map<std::pair<MacAddr, bool>, std::uint64_t> by_vm_;
  void erase_pending(std::map<std::uint64_t, Pending>::iterator it);
  std::uint64_t next_id_ = 1;
  // When each resolve last went out, by (node, address); address 0: by
  // node. Looked up without allocating: a send to an unresolved node asks
  // once per packet.
  using ResolveKey = std::pair<std::string, std::uint32_t>;
  struct ResolveLess {
    using is_transparent = void;
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return std::pair<std::string_view, std::uint32_t>(a.first, a.second) <
             std::pair<std::string_view, std::uint32_t>(b.first, b.second);
    }
  };
  std::map<ResolveKey, std::int64_t, ResolveLess> resolved_at_;
};

}  // namespace wownet::overlay
