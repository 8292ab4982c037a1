// Which relays a rendezvous hands out: RelayChoice alone, then through
// Register and Registered.
#include "registry/relay_choice.h"

#include "registry_fixture.h"

namespace wownet::registry::test {
namespace {

std::vector<std::string> ids(const std::vector<RelayCandidate>& v) {
  std::vector<std::string> out;
  for (const auto& c : v) out.push_back(c.id);
  return out;
}

TEST(RelayChoiceTest, LeastLoadedFirstTiesByIdNeverTheNodeItself) {
  RelayChoice rc;
  EXPECT_TRUE(rc.add({"r1", "relay-1", {"198.51.100.7", 7700}}));
  EXPECT_FALSE(rc.add({"r1", "relay-1", {"198.51.100.7", 7700}}));  // nothing changed
  EXPECT_TRUE(rc.add({"r2", "relay-2", {"198.51.100.8", 7700}}));
  EXPECT_EQ(ids(rc.choose("h1")), (std::vector<std::string>{"r1", "r2"}));
  EXPECT_EQ(rc.load("r1"), 1u);
  EXPECT_EQ(ids(rc.choose("h2")), (std::vector<std::string>{"r2", "r1"}));  // r1 has h1
  EXPECT_EQ(ids(rc.choose("h3")), (std::vector<std::string>{"r1", "r2"}));
  // Asking again does not count the asker twice.
  EXPECT_EQ(ids(rc.choose("h3")), (std::vector<std::string>{"r1", "r2"}));
  EXPECT_EQ(rc.load("r1"), 2u);
  // A relay gets the others, not itself.
  EXPECT_EQ(ids(rc.choose("r1")), (std::vector<std::string>{"r2"}));
  // A gone host no longer weighs; a gone relay takes its hosts' share along.
  rc.forget("h1");
  rc.forget("h3");
  EXPECT_EQ(rc.load("r1"), 0u);
  EXPECT_TRUE(rc.remove("r2"));
  EXPECT_FALSE(rc.remove("r2"));
  EXPECT_EQ(rc.load("r2"), 0u);
  EXPECT_EQ(ids(rc.choose("h2")), (std::vector<std::string>{"r1"}));
}

TEST(RelayChoiceTest, AtMostKMaxRelays) {
  RelayChoice rc;
  for (int i = 0; i < 12; ++i) rc.add({"r" + std::to_string(10 + i), "", {"198.51.100.9", std::uint16_t(7000 + i)}});
  EXPECT_EQ(rc.choose("h").size(), kMaxRelays);
}

ov::NodeMessage relay_register(std::uint64_t id, bool relay) {
  ov::NodeMessage m = register_msg(id, {{"198.51.100.7", 7700}});
  m.mutable_register_()->set_relay(relay);
  return m;
}

TEST_F(RegistryTest, AHostThatRelaysIsHandedOutAndTheOthersAreTold) {
  // No relay yet: this rendezvous does not relay (set_relay not called).
  auto out = send("node-a", register_msg(1, {}));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(out[0].message.registered().relay());
  EXPECT_EQ(out[0].message.registered().relays_size(), 0);

  // node-b relays: its own reply lists no relay (not itself), and node-a,
  // online, is told to keep a session with it at its reflexive endpoint.
  out = send("node-b", relay_register(2, true));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].node_id, "node-b");
  EXPECT_EQ(out[0].message.registered().relays_size(), 0);
  EXPECT_EQ(out[1].node_id, "node-a");
  const ov::Registered& told = out[1].message.registered();
  ASSERT_EQ(told.relays_size(), 1);
  EXPECT_EQ(told.relays(0).node_id(), "node-b");
  EXPECT_EQ(told.relays(0).node_name(), "host-b");
  EXPECT_EQ(told.relays(0).endpoint().address(), "198.51.100.2");
  EXPECT_EQ(told.relays(0).endpoint().port(), 5000u);
  EXPECT_EQ(told.reflexive().address(), "198.51.100.1");

  // Registering again unchanged tells nobody else.
  EXPECT_EQ(send("node-b", relay_register(3, true)).size(), 1u);

  // A rendezvous that relays is listed too, reached where the host reaches
  // it (no endpoint); the least loaded relay first.
  reg_.set_relay(true);
  up("node-c", "host-c", "198.51.100.3", 5000);
  out = send("node-c", register_msg(4, {}));
  ASSERT_EQ(out.size(), 1u);
  const ov::Registered& r = out[0].message.registered();
  EXPECT_TRUE(r.relay());
  ASSERT_EQ(r.relays_size(), 2);
  EXPECT_EQ(r.relays(0).node_id(), "self-id");  // node-b carries node-a already
  EXPECT_FALSE(r.relays(0).has_endpoint());
  EXPECT_EQ(r.relays(1).node_id(), "node-b");

  // The relay gone: no longer handed out.
  reg_.on_node_down(now_, "node-b");
  out = up("node-d", "host-d", "198.51.100.4", 5000);
  ASSERT_TRUE(out[0].message.has_registered());
  ASSERT_EQ(out[0].message.registered().relays_size(), 1);
  EXPECT_EQ(out[0].message.registered().relays(0).node_id(), "self-id");

  // A host that stops relaying is withdrawn (and the others told).
  up("node-b", "host-b", "198.51.100.2", 5000);
  send("node-b", relay_register(5, true));
  EXPECT_GT(send("node-b", relay_register(6, false)).size(), 1u);
  EXPECT_EQ(reg_.relays().load("node-b"), 0u);
  out = send("node-a", register_msg(7, {}));
  ASSERT_EQ(out[0].message.registered().relays_size(), 1);
}

}  // namespace
}  // namespace wownet::registry::test
