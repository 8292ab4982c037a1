#include "overlay/relay.h"

#include <algorithm>

namespace wownet::overlay {

Action Relay::drop(std::string_view reason) {
  ++counters_.drops;
  return Drop{reason};
}

bool Relay::within_rate(std::int64_t now_ms, std::string_view source) {
  if (limits_.per_node_rate == 0) return true;
  const double rate = limits_.per_node_rate;
  auto it = buckets_.find(source);
  if (it == buckets_.end()) {
    if (buckets_.size() >= kMaxSources) {
      // Forget the source idle longest: it starts again with a full bucket.
      auto oldest = std::min_element(buckets_.begin(), buckets_.end(),
                                     [](const auto& a, const auto& b) { return a.second.at_ms < b.second.at_ms; });
      buckets_.erase(oldest);
    }
    it = buckets_.emplace(std::string(source), Bucket{rate, now_ms}).first;
  }
  Bucket& b = it->second;
  if (now_ms > b.at_ms) {
    b.tokens = std::min(rate, b.tokens + rate * double(now_ms - b.at_ms) / 1000.0);
    b.at_ms = now_ms;
  }
  if (b.tokens < 1.0) return false;
  b.tokens -= 1.0;
  return true;
}

Action Relay::on_request(std::int64_t now_ms, const UdpEndpoint& from, ByteSpan datagram, const Directory& directory) {
  if (!limits_.forwarding) return drop("not_a_relay");
  if (datagram.size() <= wire::kRelayHeaderSize) return drop("short");
  if (!wire::relayable(datagram[wire::kRelayHeaderSize])) return drop("not_node_protocol");
  const std::string_view source = directory.node_at(from);
  if (source.empty()) return drop("unknown_source");
  char destination_text[32];
  const std::string_view destination = hex_node_id(datagram.data() + 1, destination_text);
  if (destination == self_id_ || destination == source) return drop("bad_destination");
  const auto to = directory.endpoint_of(destination);
  if (!to || to->relayed()) return drop("destination_offline");
  const auto source_raw = raw_node_id(source);
  if (!source_raw) return drop("unknown_source");
  if (!within_rate(now_ms, source)) {
    ++counters_.rate_limited;
    return drop("rate_limited");
  }
  datagram[0] = std::uint8_t(wire::DatagramType::Relayed);
  std::copy(source_raw->begin(), source_raw->end(), datagram.begin() + 1);
  ++counters_.relayed_packets;
  counters_.relayed_bytes += datagram.size() - wire::kRelayHeaderSize;
  return SendDatagram{*to, datagram};
}

Action Relay::on_relayed(const UdpEndpoint& from, ByteSpan datagram, const std::optional<UdpEndpoint>& our_relay) {
  if (!our_relay || from != *our_relay) return drop("not_our_relay");
  if (datagram.size() <= wire::kRelayHeaderSize) return drop("short");
  RawNodeId source;
  std::copy_n(datagram.begin() + 1, source.size(), source.begin());
  char source_text[32];
  if (hex_node_id(source.data(), source_text) == self_id_) return drop("from_self");
  const auto path = name(from, source);
  if (!path) return drop("names_full");
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
