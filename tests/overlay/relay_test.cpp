// The relay's forwarding rules and the node side's relayed names, without
// sockets: datagrams as bytes, time as milliseconds.
#include "overlay/relay.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

namespace wownet::overlay {
namespace {

const std::string kA(32, 'a'), kB(32, 'b'), kRelay(32, 'c');
const UdpEndpoint kEpA{Ipv4Addr{0xc6336401}, 7700}, kEpB{Ipv4Addr{0xc6336402}, 7701},
    kEpRelay{Ipv4Addr{0xc6336403}, 7700};

class FakeDirectory : public Relay::Directory {
 public:
  std::map<UdpEndpoint, std::string> at;
  std::map<std::string, UdpEndpoint, std::less<>> of;
  std::string_view node_at(const UdpEndpoint& e) const override {
    auto it = at.find(e);
    return it == at.end() ? std::string_view{} : std::string_view(it->second);
  }
  std::optional<UdpEndpoint> endpoint_of(std::string_view node) const override {
    auto it = of.find(node);
    if (it == of.end()) return std::nullopt;
    return it->second;
  }
};

std::vector<std::uint8_t> request(const std::string& to, std::uint8_t inner_type, std::size_t inner_size = 40) {
  std::vector<std::uint8_t> d(wire::kRelayHeaderSize + inner_size, 0x5a);
  d[0] = std::uint8_t(wire::DatagramType::Relay);
  auto raw = raw_node_id(to);
  std::copy(raw->begin(), raw->end(), d.begin() + 1);
  d[wire::kRelayHeaderSize] = inner_type;
  return d;
}

class RelayForwardingTest : public ::testing::Test {
 protected:
  RelayForwardingTest() {
    dir.at[kEpA] = kA;
    dir.at[kEpB] = kB;
    dir.of[kA] = kEpA;
    dir.of[kB] = kEpB;
  }
  FakeDirectory dir;
  Relay relay{kRelay, Relay::Limits{true}};
};

TEST_F(RelayForwardingTest, ForwardsBetweenNodesWithSessionsRewritingOnlyTheHeader) {
  auto d = request(kB, 23);
  const auto inner = std::vector<std::uint8_t>(d.begin() + wire::kRelayHeaderSize, d.end());
  Action a = relay.on_request(0, kEpA, d, dir);
  auto* send = std::get_if<SendDatagram>(&a);
  ASSERT_NE(send, nullptr);
  EXPECT_EQ(send->to, kEpB);
  ASSERT_EQ(send->bytes.size(), d.size());
  EXPECT_EQ(send->bytes[0], std::uint8_t(wire::DatagramType::Relayed));
  auto src = raw_node_id(kA);
  EXPECT_TRUE(std::equal(src->begin(), src->end(), send->bytes.begin() + 1));
  EXPECT_TRUE(std::equal(inner.begin(), inner.end(), send->bytes.begin() + wire::kRelayHeaderSize));
  EXPECT_EQ(relay.counters().relayed_packets, 1u);
  EXPECT_EQ(relay.counters().relayed_bytes, inner.size());
}

TEST_F(RelayForwardingTest, CarriesSealedDataAndEveryDtlsRecordTypeButNothingElse) {
  for (std::uint8_t t : {std::uint8_t(4), std::uint8_t(20), std::uint8_t(25)}) {
    auto d = request(kB, t);
    EXPECT_TRUE(std::holds_alternative<SendDatagram>(relay.on_request(0, kEpA, d, dir))) << int(t);
  }
  for (std::uint8_t t : {std::uint8_t(0), std::uint8_t(6), std::uint8_t(8), std::uint8_t(9), std::uint8_t(10),
                         std::uint8_t(26), std::uint8_t(255)}) {
    auto d = request(kB, t);
    Action a = relay.on_request(0, kEpA, d, dir);
    ASSERT_TRUE(std::holds_alternative<Drop>(a)) << int(t);
    EXPECT_EQ(std::get<Drop>(a).reason, "not_node_protocol");
  }
}

TEST_F(RelayForwardingTest, RefusesStrangersOfflineDestinationsItselfAndShortDatagrams) {
  auto d = request(kB, 23);
  EXPECT_EQ(std::get<Drop>(relay.on_request(0, UdpEndpoint{Ipv4Addr{0x0a000001}, 1}, d, dir)).reason, "unknown_source");
  auto offline = request(std::string(32, 'd'), 23);
  EXPECT_EQ(std::get<Drop>(relay.on_request(0, kEpA, offline, dir)).reason, "destination_offline");
  auto self = request(kRelay, 23);
  EXPECT_EQ(std::get<Drop>(relay.on_request(0, kEpA, self, dir)).reason, "bad_destination");
  auto loop = request(kA, 23);
  EXPECT_EQ(std::get<Drop>(relay.on_request(0, kEpA, loop, dir)).reason, "bad_destination");
  std::vector<std::uint8_t> header_only(wire::kRelayHeaderSize, 9);
  EXPECT_EQ(std::get<Drop>(relay.on_request(0, kEpA, header_only, dir)).reason, "short");
  // A destination reached only through a relay is not relayed again.
  dir.of[kB] = UdpEndpoint{Ipv4Addr{0x00000005}, 1};
  EXPECT_EQ(std::get<Drop>(relay.on_request(0, kEpA, d, dir)).reason, "destination_offline");
  EXPECT_EQ(relay.counters().drops, 6u);
  EXPECT_EQ(relay.counters().relayed_packets, 0u);
}

TEST(RelayLimits, ANodeThatDoesNotRelayDropsEveryRequest) {
  FakeDirectory dir;
  dir.at[kEpA] = kA;
  dir.of[kB] = kEpB;
  Relay relay(kRelay);
  auto d = request(kB, 23);
  EXPECT_EQ(std::get<Drop>(relay.on_request(0, kEpA, d, dir)).reason, "not_a_relay");
  EXPECT_EQ(relay.counters().drops, 1u);
}

TEST(RelayLimits, ASourceOverItsRateIsDroppedAndRecoversWithTime) {
  FakeDirectory dir;
  dir.at[kEpA] = kA;
  dir.at[kEpB] = kB;
  dir.of[kA] = kEpA;
  dir.of[kB] = kEpB;
  Relay relay(kRelay, Relay::Limits{true, 100});
  int sent = 0;
  for (int i = 0; i < 150; ++i) {
    auto d = request(kB, 4);
    sent += std::holds_alternative<SendDatagram>(relay.on_request(1000, kEpA, d, dir));
  }
  EXPECT_EQ(sent, 100);  // one second's worth at once
  EXPECT_EQ(relay.counters().rate_limited, 50u);
  // The other direction has a bucket of its own.
  auto back = request(kA, 4);
  EXPECT_TRUE(std::holds_alternative<SendDatagram>(relay.on_request(1000, kEpB, back, dir)));
  // Half a second later, half a bucket.
  sent = 0;
  for (int i = 0; i < 100; ++i) {
    auto d = request(kB, 4);
    sent += std::holds_alternative<SendDatagram>(relay.on_request(1500, kEpA, d, dir));
  }
  EXPECT_EQ(sent, 50);
}

TEST(RelayNames, ARelayedDatagramIsDeliveredUnderTheNameOfItsSourceThroughThatRelay) {
  Relay node(kA);
  auto d = request(kA, 23);  // as a relay rewrites it: type 10 and the source's ID
  d[0] = std::uint8_t(wire::DatagramType::Relayed);
  auto src = raw_node_id(kB);
  std::copy(src->begin(), src->end(), d.begin() + 1);
  Action a = node.on_relayed(kEpRelay, d, {kEpRelay});
  auto* deliver = std::get_if<DeliverDatagram>(&a);
  ASSERT_NE(deliver, nullptr);
  EXPECT_TRUE(deliver->from.relayed());
  EXPECT_EQ(deliver->bytes.data(), d.data() + wire::kRelayHeaderSize);
  EXPECT_EQ(deliver->bytes.size(), d.size() - wire::kRelayHeaderSize);
  // The same name every time, and it routes back through the relay to B.
  EXPECT_EQ(std::get<DeliverDatagram>(node.on_relayed(kEpRelay, d, {kEpRelay})).from, deliver->from);
  auto route = node.route(deliver->from);
  ASSERT_TRUE(route);
  EXPECT_EQ(route->relay, kEpRelay);
  EXPECT_EQ(route->header[0], std::uint8_t(wire::DatagramType::Relay));
  EXPECT_TRUE(std::equal(src->begin(), src->end(), route->header.begin() + 1));
  EXPECT_FALSE(node.route(UdpEndpoint{Ipv4Addr{0x00ffffff}, 1}));
}

TEST(RelayNames, OnlyOurRelaysAreHeardAndNothingClaimingToBeUs) {
  Relay node(kA);
  auto d = request(kA, 23);
  d[0] = std::uint8_t(wire::DatagramType::Relayed);
  EXPECT_EQ(std::get<Drop>(node.on_relayed(kEpRelay, d, {})).reason, "not_our_relay");
  EXPECT_EQ(std::get<Drop>(node.on_relayed(kEpB, d, {kEpRelay})).reason, "not_our_relay");
  EXPECT_EQ(std::get<Drop>(node.on_relayed(kEpRelay, d, {kEpRelay})).reason, "from_self");  // source ID is ours
  std::vector<std::uint8_t> shorty(wire::kRelayHeaderSize, 10);
  EXPECT_EQ(std::get<Drop>(node.on_relayed(kEpRelay, shorty, {kEpRelay})).reason, "short");
}

TEST(RelayNames, TheTableIsBounded) {
  Relay node(kA);
  RawNodeId id{};
  for (std::size_t i = 0; i < Relay::kMaxNames; ++i) {
    id[0] = std::uint8_t(i);
    id[1] = std::uint8_t(i >> 8);
    ASSERT_TRUE(node.name(kEpRelay, id)) << i;
  }
  id[2] = 1;
  EXPECT_FALSE(node.name(kEpRelay, id));
}

TEST(RelayNames, DeliveriesFromAnyOfOurRelaysAreHeardEachUnderItsOwnName) {
  // B may send through another relay than ours: we keep a session with it
  // too, and answer through the relay that brought the datagram.
  const UdpEndpoint ep_relay2{Ipv4Addr{0xc6336404}, 7700};
  Relay node(kA);
  auto d = request(kA, 23);
  d[0] = std::uint8_t(wire::DatagramType::Relayed);
  auto src = raw_node_id(kB);
  std::copy(src->begin(), src->end(), d.begin() + 1);
  const std::set<UdpEndpoint> relays{kEpRelay, ep_relay2};
  auto via1 = std::get<DeliverDatagram>(node.on_relayed(kEpRelay, d, relays)).from;
  auto via2 = std::get<DeliverDatagram>(node.on_relayed(ep_relay2, d, relays)).from;
  EXPECT_NE(via1, via2);
  EXPECT_EQ(node.route(via2)->relay, ep_relay2);
  EXPECT_EQ(std::get<Drop>(node.on_relayed(kEpB, d, relays)).reason, "not_our_relay");
  EXPECT_EQ(node.counters().not_our_relay, 1u);
  EXPECT_EQ(node.counters().drops, 1u);
}

TEST(RelayLimits, ASourceOverItsQuotaIsDroppedUntilTheNextInterval) {
  FakeDirectory dir;
  dir.at[kEpA] = kA;
  dir.at[kEpB] = kB;
  dir.of[kA] = kEpA;
  dir.of[kB] = kEpB;
  Relay::Limits limits{true, 0};
  limits.quota_bytes = 1000;  // 25 datagrams of 40 payload bytes
  limits.quota_interval_ms = 60'000;
  Relay relay(kRelay, limits);
  const auto burst = [&](std::int64_t now, const UdpEndpoint& from, const std::string& to, int n) {
    int sent = 0;
    for (int i = 0; i < n; ++i) {
      auto d = request(to, 4, 40);
      sent += std::holds_alternative<SendDatagram>(relay.on_request(now, from, d, dir));
    }
    return sent;
  };
  EXPECT_EQ(burst(1000, kEpA, kB, 30), 25);
  EXPECT_EQ(relay.counters().over_quota, 5u);
  EXPECT_EQ(relay.counters().rate_limited, 0u);
  EXPECT_EQ(relay.counters().drops, 5u);
  EXPECT_EQ(relay.counters().relayed_bytes, 1000u);
  EXPECT_EQ(burst(1000, kEpB, kA, 25), 25);    // B has a quota of its own
  EXPECT_EQ(burst(60'999, kEpA, kB, 1), 0);    // still the same interval
  EXPECT_EQ(burst(61'000, kEpA, kB, 30), 25);  // a new one
}

TEST(RelayLimits, EveryDropIsCountedUnderItsReason) {
  FakeDirectory dir;
  dir.at[kEpA] = kA;
  dir.of[kA] = kEpA;
  Relay relay(kRelay, Relay::Limits{true});
  auto to_offline = request(kB, 23);
  EXPECT_EQ(std::get<Drop>(relay.on_request(0, kEpA, to_offline, dir)).reason, "destination_offline");
  auto to_self = request(kRelay, 23);
  EXPECT_EQ(std::get<Drop>(relay.on_request(0, kEpA, to_self, dir)).reason, "bad_destination");
  auto from_stranger = request(kA, 23);
  EXPECT_EQ(std::get<Drop>(relay.on_request(0, kEpB, from_stranger, dir)).reason, "unknown_source");
  auto not_node = request(kB, 1);
  EXPECT_EQ(std::get<Drop>(relay.on_request(0, kEpA, not_node, dir)).reason, "not_node_protocol");
  const auto& c = relay.counters();
  EXPECT_EQ(c.destination_offline, 1u);
  EXPECT_EQ(c.bad_destination, 1u);
  EXPECT_EQ(c.unknown_source, 1u);
  EXPECT_EQ(c.malformed, 1u);
  EXPECT_EQ(c.drops, 4u);
  std::map<std::string, std::uint64_t> seen;
  c.visit([&](const char* name, std::uint64_t v) { seen[name] = v; });
  EXPECT_EQ(seen["relay_destination_offline"], 1u);
  EXPECT_EQ(seen["relay_drops"], 4u);
}

}  // namespace
}  // namespace wownet::overlay
