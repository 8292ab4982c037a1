// Log lines name peers "name (short id…)".
#include "overlay/peer_label.h"

#include <gtest/gtest.h>

namespace wownet::overlay {
namespace {

TEST(PeerLabel, NameAndShortId) {
  EXPECT_EQ(peer_label("hb", "51f4a3c2d9e8f7a6b5c4d3e2f1a0b9c8"), "hb (51f4a3c2\u2026)");
}

TEST(PeerLabel, ShortIdAloneWithoutName) {
  EXPECT_EQ(peer_label("", "51f4a3c2d9e8f7a6b5c4d3e2f1a0b9c8"), "51f4a3c2\u2026");
}

TEST(PeerLabel, ShortIdsAreNotCut) {
  EXPECT_EQ(short_node_id("51f4a3c2"), "51f4a3c2");
  EXPECT_EQ(short_node_id("51f4"), "51f4");
  EXPECT_EQ(short_node_id(""), "?");
  EXPECT_EQ(peer_label("rv", ""), "rv (?)");
}

TEST(PeerLabel, NamesStayOnOneBoundedLine) {
  EXPECT_EQ(peer_label("evil\nFAKE\x1b[0m\x7f", "51f4"), "evil?FAKE?[0m? (51f4)");
  EXPECT_EQ(peer_label(std::string(200, 'a'), "51f4"), std::string(kMaxNameLength, 'a') + " (51f4)");
}

}  // namespace
}  // namespace wownet::overlay
