#include <gtest/gtest.h>

#include <string>

#include "core/datagram.h"

namespace wownet::agent {
namespace {

TEST(Datagram, PrefixesTheMagic) {
  const auto d =
      encode_datagram(std::string("\x0a\x03"
                                  "abc",
                                  5));
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, std::string("WNA1\x0a\x03"
                            "abc",
                            9));
}

TEST(Datagram, EmptyReportIsJustTheMagic) { EXPECT_EQ(encode_datagram(""), "WNA1"); }

TEST(Datagram, SizeLimitIs1200BytesIncludingTheMagic) {
  const auto largest = encode_datagram(std::string(1196, 'x'));
  ASSERT_TRUE(largest);
  EXPECT_EQ(largest->size(), 1200u);
  EXPECT_EQ(encode_datagram(std::string(1197, 'x')), std::nullopt);
  EXPECT_EQ(encode_datagram(std::string(5000, 'x')), std::nullopt);
}

TEST(Datagram, DecodeStripsTheMagic) {
  const auto p = decode_datagram("WNA1payload");
  ASSERT_TRUE(p);
  EXPECT_EQ(*p, "payload");
  EXPECT_EQ(decode_datagram("WNA1"), std::string_view());
}

TEST(Datagram, DecodeRejectsBadFraming) {
  EXPECT_EQ(decode_datagram(""), std::nullopt);
  EXPECT_EQ(decode_datagram("WNA"), std::nullopt);
  EXPECT_EQ(decode_datagram("WNA2abc"), std::nullopt);
  EXPECT_EQ(decode_datagram("wna1abc"), std::nullopt);
  EXPECT_EQ(decode_datagram("WNA1" + std::string(1197, 'x')), std::nullopt);
}

}  // namespace
}  // namespace wownet::agent
