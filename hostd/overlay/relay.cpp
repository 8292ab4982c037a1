#include "overlay/relay.h"

#include <algorithm>

namespace wownet::overlay {

Action Relay::drop(std::string_view reason, std::uint64_t& counter) {
  ++counters_.drops;
  ++counter;
  return Drop{reason};
}

const char* Relay::admit(std::int64_t now_ms, std::string_view source, std::size_t bytes) {
  if (limits_.per_node_rate == 0 && limits_.quota_bytes == 0) return nullptr;
  const double rate = limits_.per_node_rate;
  auto it = buckets_.find(source);
  if (it == buckets_.end()) {
    if (buckets_.size() >= kMaxSources) {
      // Forget the source idle longest: it starts again with a full bucket.
      auto oldest = std::min_element(buckets_.begin(), buckets_.end(),
                                     [](const auto& a, const auto& b) { return a.second.at_ms < b.second.at_ms; });
      buckets_.erase(oldest);
    }
    it = buckets_.emplace(std::string(source), Bucket{rate, now_ms, 0, now_ms}).first;
  }
  Bucket& b = it->second;
  if (now_ms > b.at_ms) {
    b.tokens = std::min(rate, b.tokens + rate * double(now_ms - b.at_ms) / 1000.0);
    b.at_ms = now_ms;
  }
  if (limits_.per_node_rate != 0 && b.tokens < 1.0) return "rate_limited";
  if (limits_.quota_bytes != 0) {
    if (now_ms - b.window_ms >= limits_.quota_interval_ms) {
      b.window_ms = now_ms;
      b.quota_used = 0;
    }
    if (b.quota_used + bytes > limits_.quota_bytes) return "over_quota";
    b.quota_used += bytes;
  }
  if (limits_.per_node_rate != 0) b.tokens -= 1.0;
  return nullptr;
}

Action Relay::on_request(std::int64_t now_ms, const UdpEndpoint& from, ByteSpan datagram, const Directory& directory) {
  if (!limits_.forwarding) return drop("not_a_relay", counters_.not_a_relay);
  if (datagram.size() <= wire::kRelayHeaderSize) return drop("short", counters_.malformed);
  if (!wire::relayable(datagram[wire::kRelayHeaderSize])) return drop("not_node_protocol", counters_.malformed);
  const std::string_view source = directory.node_at(from);
  if (source.empty()) return drop("unknown_source", counters_.unknown_source);
  char destination_text[32];
  const std::string_view destination = hex_node_id(datagram.data() + 1, destination_text);
  if (destination == self_id_ || destination == source) return drop("bad_destination", counters_.bad_destination);
  const auto to = directory.endpoint_of(destination);
  if (!to || to->relayed()) return drop("destination_offline", counters_.destination_offline);
  const auto source_raw = raw_node_id(source);
  if (!source_raw) return drop("unknown_source", counters_.unknown_source);
  const std::size_t payload = datagram.size() - wire::kRelayHeaderSize;
  if (const char* refused = admit(now_ms, source, payload))
    return drop(refused, refused[0] == 'r' ? counters_.rate_limited : counters_.over_quota);
  datagram[0] = std::uint8_t(wire::DatagramType::Relayed);
  std::copy(source_raw->begin(), source_raw->end(), datagram.begin() + 1);
  ++counters_.relayed_packets;
  counters_.relayed_bytes += payload;
  return SendDatagram{*to, datagram};
}

Action Relay::on_relayed(const UdpEndpoint& from, ByteSpan datagram, const std::set<UdpEndpoint>& relays) {
  if (!relays.count(from)) return drop("not_our_relay", counters_.not_our_relay);
  if (datagram.size() <= wire::kRelayHeaderSize) return drop("short", counters_.malformed);
  RawNodeId source;
  std::copy_n(datagram.begin() + 1, source.size(), source.begin());
  char source_text[32];
  if (hex_node_id(source.data(), source_text) == self_id_) return drop("from_self", counters_.other);
  const auto path = name(from, source);
  if (!path) return drop("names_full", counters_.other);
  return DeliverDatagram{*path, datagram.subspan(wire::kRelayHeaderSize)};
}

std::optional<UdpEndpoint> Relay::name(const UdpEndpoint& relay, const RawNodeId& node) {
  const auto key = std::make_pair(relay, node);
  if (const auto it = names_.find(key); it != names_.end()) return it->second;
  if (names_.size() >= kMaxNames) return std::nullopt;
  // 0.x.y.z:1, never an address on the wire.
  const UdpEndpoint n{Ipv4Addr{next_name_++ & 0x00ffffffu}, 1};
  names_.emplace(key, n);
  routes_.emplace(n, key);
  return n;
}

std::optional<Relay::Route> Relay::route(const UdpEndpoint& name) const {
  const auto it = routes_.find(name);
  if (it == routes_.end()) return std::nullopt;
  Route r;
  r.relay = it->second.first;
  r.header[0] = std::uint8_t(wire::DatagramType::Relay);
  std::copy(it->second.second.begin(), it->second.second.end(), r.header.begin() + 1);
  return r;
}

}  // namespace wownet::overlay
