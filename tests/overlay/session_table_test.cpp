// SessionTable: the endpoint and receiver index lookups, kill and sweep, and
// Peer's path choice over the sessions in a table. Client sessions from a
// context without a certificate stay in the DTLS handshake, which is all
// these tests need (no peer answers them).
#include "overlay/session_table.h"

#include <gtest/gtest.h>

#include <iterator>
#include <memory>
#include <ranges>
#include <string>
#include <vector>

#include "overlay/peer.h"
#include "overlay/session_settings.h"

namespace wownet::overlay {
namespace {

constexpr std::int64_t kT0 = 1'700'000'000'000;

UdpEndpoint ep(std::uint8_t last, std::uint16_t port = 4000) {
  return UdpEndpoint{Ipv4Addr::from_octets(192, 0, 2, last), port};
}
const UdpEndpoint kRelayed{Ipv4Addr::from_octets(0, 0, 0, 7), 1};

class SessionTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    context_ = crypto::DtlsContext::create({}, error);
    ASSERT_TRUE(context_) << error;
    settings_.context = context_.get();
    settings_.self_name = "self";
  }

  // A client session to `to` for node `target`, in the handshake, added to the table.
  PeerSession& client(const UdpEndpoint& to, const std::string& target = "n") {
    auto s = PeerSession::client(settings_, to, target, false, kT0);
    EXPECT_TRUE(s);
    return table_.add(std::move(s));
  }

  std::unique_ptr<crypto::DtlsContext> context_;
  SessionSettings settings_;
  SessionTable table_{[] { return 77u; }};
};

TEST_F(SessionTableTest, FindsSessionsByEndpoint) {
  PeerSession& a = client(ep(1));
  PeerSession& b = client(ep(2));
  EXPECT_TRUE(a.handshaking());
  EXPECT_EQ(table_.handshaking_at(ep(1)), &a);
  EXPECT_EQ(table_.handshaking_at(ep(2)), &b);
  EXPECT_EQ(table_.handshaking_at(ep(3)), nullptr);
  EXPECT_TRUE(table_.live_at(ep(1)));
  EXPECT_FALSE(table_.live_at(ep(3)));
  EXPECT_EQ(std::ranges::distance(table_.at(ep(1))), 1);
  EXPECT_EQ(table_.handshaking_count(), 2u);
  EXPECT_EQ(table_.keyed_node_at(ep(1)), "");  // not keyed
  ASSERT_EQ(table_.all().size(), 2u);
  EXPECT_EQ(table_.all()[0].get(), &a);  // creation order
}

TEST_F(SessionTableTest, ReceiverIndexFindsItsSession) {
  PeerSession& a = client(ep(1));
  const std::uint32_t index = table_.bind_index(a);
  EXPECT_EQ(index, 77u);
  EXPECT_EQ(table_.find_index(index), &a);
  EXPECT_EQ(table_.find_index(index + 1), nullptr);
  EXPECT_NE(table_.bind_index(client(ep(2))), index);  // taken: another one
}

TEST_F(SessionTableTest, KilledSessionLeavesTheIndexesAtOnceAndTheTableAtSweep) {
  Peer peer("n");
  PeerSession& a = client(ep(1));
  PeerSession& b = client(ep(1), "m");
  a.peer = &peer;
  peer.sessions = 1;
  EXPECT_FALSE(table_.sweep());  // nothing dead yet
  table_.kill(a);
  EXPECT_TRUE(a.dead());
  EXPECT_FALSE(a.handshaking());
  EXPECT_EQ(table_.handshaking_at(ep(1)), &b);
  EXPECT_EQ(std::ranges::distance(table_.at(ep(1))), 1);
  EXPECT_EQ(table_.all().size(), 2u);  // still there for callers up the stack
  EXPECT_EQ(peer.sessions, 1u);
  table_.kill(a);  // twice is harmless
  EXPECT_TRUE(table_.sweep());
  EXPECT_EQ(peer.sessions, 0u);
  ASSERT_EQ(table_.all().size(), 1u);
  EXPECT_EQ(table_.all()[0].get(), &b);
  EXPECT_FALSE(table_.sweep());
}

TEST_F(SessionTableTest, MoveReindexesTheEndpoint) {
  PeerSession& a = client(ep(1));
  table_.move(a, ep(9));
  EXPECT_EQ(a.endpoint(), ep(9));
  EXPECT_FALSE(table_.live_at(ep(1)));
  EXPECT_EQ(table_.handshaking_at(ep(9)), &a);
}

// Peer's path choice, over a table.

TEST_F(SessionTableTest, DirectHandshakeWaitsForOneInProgress) {
  Peer p("n");
  p.endpoints = {ep(1), ep(2)};
  EXPECT_FALSE(p.in_progress(table_));
  EXPECT_EQ(p.direct_due(table_), kLongAgo);
  client(ep(1));  // ours to "n", not keyed
  EXPECT_TRUE(p.in_progress(table_, false));
  EXPECT_FALSE(p.in_progress(table_, true));
  EXPECT_TRUE(p.in_progress(table_));
  EXPECT_EQ(p.direct_due(table_), kNever);
}

TEST_F(SessionTableTest, DirectHandshakeWaitsForTheEndpointToBeFree) {
  Peer p("n");
  p.endpoints = {ep(1)};
  client(ep(1), "other");  // someone else's handshake at the same endpoint
  EXPECT_FALSE(p.in_progress(table_));
  EXPECT_EQ(p.direct_due(table_), kNever);
  p.endpoints = {ep(2)};
  p.note_failed_path(ep(5), "timeout", 1000, 2000);
  EXPECT_EQ(p.direct_due(table_), 3000);
}

TEST_F(SessionTableTest, RelayWaitsForTheDirectPathUnlessThereIsNone) {
  Peer p("n");
  EXPECT_EQ(p.relay_due(table_, 3000), kNever);  // no relay
  p.relay = kRelayed;
  EXPECT_EQ(p.relay_due(table_, 3000), kLongAgo);  // no direct endpoint: at once
  p.endpoints = {ep(1)};
  EXPECT_EQ(p.relay_due(table_, 3000), kNever);  // nothing waiting
  p.waiting_since_ms = 1000;
  EXPECT_EQ(p.relay_due(table_, 3000), 4000);
  EXPECT_EQ(p.handshake_due(table_, 3000), kLongAgo);  // the direct one is due first
  p.relay_retry_at_ms = 9000;
  EXPECT_EQ(p.relay_due(table_, 3000), 9000);
  client(kRelayed);
  EXPECT_TRUE(p.in_progress(table_, true));
  EXPECT_EQ(p.relay_due(table_, 3000), kNever);
}

TEST_F(SessionTableTest, NoRekeyWithoutASendingSession) {
  Peer p("n");
  p.endpoints = {ep(1)};
  EXPECT_FALSE(p.can_rekey(table_));
  EXPECT_EQ(p.rekey_due(table_, 60'000), kNever);
  p.choose_current(table_);  // no keyed session: none
  EXPECT_EQ(p.current, nullptr);
}

}  // namespace
}  // namespace wownet::overlay
