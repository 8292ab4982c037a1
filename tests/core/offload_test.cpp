// Checksum completion and TCP segmentation for frames from offloading TAPs.
#include "core/offload.h"

#include <gtest/gtest.h>

#include <vector>

#include "core/bytes.h"
#include "test_frames.h"

namespace wownet {
namespace {

using namespace wownet::test;

const Ipv4Addr kA = Ipv4Addr::from_octets(10, 128, 0, 2);
const Ipv4Addr kB = Ipv4Addr::from_octets(10, 128, 0, 9);

// A TCP segment with a complete checksum, built independently of offload.cpp.
Bytes tcp_packet(std::uint32_t seq, std::uint8_t flags, const Bytes& data, std::uint16_t ip_id = 0x1234) {
  Bytes tcp;
  put16(tcp, 40000);
  put16(tcp, 5201);
  put32(tcp, seq);
  put32(tcp, 77);
  tcp.push_back(5 << 4);
  tcp.push_back(flags);
  put16(tcp, 65535);
  put16(tcp, 0);
  put16(tcp, 0);
  tcp.insert(tcp.end(), data.begin(), data.end());
  fill_tcp_checksum(kA, kB, tcp);
  Bytes p = ipv4(kA, kB, 6, tcp);
  p[4] = std::uint8_t(ip_id >> 8);
  p[5] = std::uint8_t(ip_id);
  p[10] = p[11] = 0;
  std::uint16_t ic = sum16(p.data(), 20);
  p[10] = std::uint8_t(ic >> 8);
  p[11] = std::uint8_t(ic);
  return p;
}

struct Collect : SegmentSink {
  std::vector<Bytes> out;
  void segment(ConstByteSpan p) override { out.emplace_back(p.begin(), p.end()); }
};

TEST(OffloadTest, PartialChecksumIsCompletedLikeANicWould) {
  Bytes data(100);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = std::uint8_t(i * 7);
  Bytes good = tcp_packet(1000, 0x18, data);
  // What the sender's stack leaves: the pseudo-header sum in the field.
  Bytes partial = good;
  std::uint32_t pseudo = (kA.value >> 16) + (kA.value & 0xffff) + (kB.value >> 16) + (kB.value & 0xffff) + 6 +
                         std::uint32_t(good.size() - 20);
  while (pseudo >> 16) pseudo = (pseudo & 0xffff) + (pseudo >> 16);
  partial[20 + 16] = std::uint8_t(pseudo >> 8);
  partial[20 + 17] = std::uint8_t(pseudo);
  ASSERT_TRUE(complete_checksum(ByteSpan(partial.data(), partial.size()), 20, 16));
  EXPECT_EQ(partial, good);
  EXPECT_FALSE(complete_checksum(ByteSpan(partial.data(), partial.size()), 20, 200));
  EXPECT_FALSE(complete_checksum(ByteSpan(partial.data(), partial.size()), 500, 0));
}

TEST(OffloadTest, SuperFrameIsCutIntoSegmentsEqualToWhatAStackWouldSend) {
  Bytes data(3000);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = std::uint8_t(i * 13 + 1);
  Bytes big = tcp_packet(5000, 0x18 | 0x80 | 0x01, data);  // PSH, CWR, FIN
  std::vector<std::uint8_t> scratch(2048);
  Collect c;
  ASSERT_EQ(segment_tcp4(big, 1400, ByteSpan(scratch.data(), scratch.size()), c), 3u);
  ASSERT_EQ(c.out.size(), 3u);
  EXPECT_EQ(c.out[0], tcp_packet(5000, 0x10 | 0x80, Bytes(data.begin(), data.begin() + 1400), 0x1234));
  EXPECT_EQ(c.out[1], tcp_packet(6400, 0x10, Bytes(data.begin() + 1400, data.begin() + 2800), 0x1235));
  EXPECT_EQ(c.out[2], tcp_packet(7800, 0x18 | 0x01, Bytes(data.begin() + 2800, data.end()), 0x1236));
}

TEST(OffloadTest, SegmentationRefusesWhatItCannotCut) {
  std::vector<std::uint8_t> scratch(2048);
  Collect c;
  Bytes udp_packet = ipv4(kA, kB, 17, udp(1, 2, Bytes(3000, 0)));
  EXPECT_EQ(segment_tcp4(udp_packet, 1400, ByteSpan(scratch.data(), scratch.size()), c), 0u);
  Bytes small = tcp_packet(1, 0x10, Bytes(10, 1));
  EXPECT_EQ(segment_tcp4(small, 0, ByteSpan(scratch.data(), scratch.size()), c), 0u);
  std::vector<std::uint8_t> tiny(30);
  EXPECT_EQ(segment_tcp4(tcp_packet(1, 0x10, Bytes(1000, 1)), 1400, ByteSpan(tiny.data(), tiny.size()), c), 0u);
  EXPECT_TRUE(c.out.empty());
  // A packet that already fits is passed through as one segment.
  EXPECT_EQ(segment_tcp4(small, 1400, ByteSpan(scratch.data(), scratch.size()), c), 1u);
  EXPECT_EQ(c.out[0], small);
}

TEST(OffloadTest, VnetHeaderFieldsAreLittleEndian) {
  std::uint8_t raw[10] = {1, 1, 54, 0, 0x78, 0x05, 34, 0, 16, 0};
  VnetHeader h = VnetHeader::parse(raw);
  EXPECT_TRUE(h.needs_checksum());
  EXPECT_EQ(h.gso(), VnetHeader::kGsoTcpV4);
  EXPECT_EQ(h.header_length, 54);
  EXPECT_EQ(h.gso_size, 1400);
  EXPECT_EQ(h.checksum_start, 34);
  EXPECT_EQ(h.checksum_offset, 16);
}

}  // namespace
}  // namespace wownet
