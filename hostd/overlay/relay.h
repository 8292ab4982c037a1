// Relaying, sans I/O (datagram types 9 and 10, core/overlay_wire.h).
//
// On a relay: a relay request from a node is forwarded to its destination
// only if the source endpoint is a keyed session of a node, the
// destination is a node with a direct session, not the relay itself, the
// inner datagram is of the node-to-node protocol (DTLS or sealed data), and
// the source is within its rate and its quota. The header is rewritten in place (type 10,
// the source's node ID) and nothing else is read: the relay cannot open or
// alter what it carries.
//
// On a node: every (relay, node) pair gets a name in 0.0.0.0/8 (at most
// kMaxNames), which the session layer uses as that node's endpoint; a
// relayed datagram from any relay we keep a session with (not only the one
// we send through: the far node may use another) is delivered under that
// name, and what is sent to the name goes to the relay behind a relay header.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <utility>

#include "core/overlay_wire.h"
#include "overlay/action.h"
#include "overlay/endpoint.h"

namespace wownet::overlay {

class Relay {
 public:
  static constexpr std::size_t kMaxNames = 4096;
  static constexpr std::size_t kMaxSources = 4096;  // sources whose rate is tracked

  struct Limits {
    bool forwarding = false;  // this node relays for others (relay = true)
    // Datagrams per second one source node may have relayed (a token
    // bucket holding one second's worth); 0: no limit.
    std::uint32_t per_node_rate = 250'000;
    // Payload bytes one source node may have relayed per quota interval
    // (fixed windows starting at its first datagram); 0: no quota.
    std::uint64_t quota_bytes = 0;
    std::int64_t quota_interval_ms = 3'600'000;
  };
  // Where the relay looks nodes up: the session layer.
  class Directory {
   public:
    virtual ~Directory() = default;
    // The node whose keyed session uses `endpoint`; empty if none.
    virtual std::string_view node_at(const UdpEndpoint& endpoint) const = 0;
    // The endpoint of the node's sending session; nullopt without one.
    virtual std::optional<UdpEndpoint> endpoint_of(std::string_view node_id) const = 0;
  };
  struct Counters {
    std::uint64_t relayed_packets = 0, relayed_bytes = 0;  // forwarded (payload bytes)
    std::uint64_t drops = 0;                               // every refused datagram, of both kinds
    // Of those, by reason: a source over its rate, over its quota; this
    // node does not relay; too short or not the node-to-node protocol; a
    // source without a keyed session; to itself or to the relay; to a node
    // without a session here; a delivery from an endpoint that is none of
    // our relays; no name left (names_full) or naming ourselves (from_self).
    std::uint64_t rate_limited = 0, over_quota = 0, not_a_relay = 0, malformed = 0, unknown_source = 0;
    std::uint64_t bad_destination = 0, destination_offline = 0, not_our_relay = 0, other = 0;
    template <typename F>
    void visit(F&& f) const {
      f("relayed_packets", relayed_packets), f("relayed_bytes", relayed_bytes), f("relay_drops", drops);
      f("relay_rate_limited", rate_limited), f("relay_over_quota", over_quota);
      f("relay_not_a_relay", not_a_relay), f("relay_malformed", malformed), f("relay_unknown_source", unknown_source);
      f("relay_bad_destination", bad_destination), f("relay_destination_offline", destination_offline);
      f("relay_not_our_relay", not_our_relay), f("relay_other_drops", other);
    }
  };

  Relay() = default;
  explicit Relay(std::string self_id) : self_id_(std::move(self_id)) {}
  Relay(std::string self_id, Limits limits) : self_id_(std::move(self_id)), limits_(limits) {}
  // Our own node ID (known once the certificate is loaded) and limits.
  void configure(std::string self_id, Limits limits) {
    self_id_ = std::move(self_id);
    limits_ = limits;
  }

  // A relay request (type 9) from `from`: SendDatagram to the destination
  // (the datagram rewritten in place as type 10), or Drop (also when this
  // node does not relay).
  Action on_request(std::int64_t now_ms, const UdpEndpoint& from, ByteSpan datagram, const Directory& directory);
  // A relayed datagram (type 10) from `from`, which must be one of `relays`
  // (the relays we keep a keyed session with): DeliverDatagram of the inner
  // datagram under the (relay, source) name, or Drop.
  Action on_relayed(const UdpEndpoint& from, ByteSpan datagram, const std::set<UdpEndpoint>& relays);

  // The name of the path to `node` through `relay`; nullopt if the table is full.
  std::optional<UdpEndpoint> name(const UdpEndpoint& relay, const RawNodeId& node);
  // Where a relayed name leads: the relay and the relay header to put
  // before the datagram. nullopt for a name we never gave out.
  struct Route {
    UdpEndpoint relay;
    std::array<std::uint8_t, wire::kRelayHeaderSize> header{};
  };
  std::optional<Route> route(const UdpEndpoint& name) const;

  const Counters& counters() const { return counters_; }

 private:
  Action drop(std::string_view reason, std::uint64_t& counter);
  // Takes one datagram of `bytes` payload from the source's rate and quota;
  // nullptr if it fits, else the reason it does not.
  const char* admit(std::int64_t now_ms, std::string_view source, std::size_t bytes);

  struct Bucket {
    double tokens = 0;
    std::int64_t at_ms = 0;
    std::uint64_t quota_used = 0;  // payload bytes in the current quota window
    std::int64_t window_ms = 0;    // when that window started
  };
  std::string self_id_;
  Limits limits_;
  Counters counters_;
  std::map<std::string, Bucket, std::less<>> buckets_;
  std::map<std::pair<UdpEndpoint, RawNodeId>, UdpEndpoint> names_;
  std::map<UdpEndpoint, std::pair<UdpEndpoint, RawNodeId>> routes_;
  std::uint32_t next_name_ = 1;
};

}  // namespace wownet::overlay
