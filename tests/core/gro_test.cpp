// Receive-side TCP coalescing: byte-exact segments in, super-frames out, and
// the kernel's (here: segment_tcp4's) segmentation of each super-frame must
// give back exactly the segments that went in. Here: what is merged into one
// super-frame and what ends a frame.
#include "gro_fixture.h"

namespace wownet::gro_test {
namespace {

TEST(GroTest, InOrderSegmentsBecomeOneSuperFrameThatSegmentsBackExactly) {
  Seg first;
  first.seq = 0xfffff000;  // the sequence space wraps inside the frame
  auto segs = stream(first, {1448, 1448, 1448, 700}, kAck | kPsh);
  Batch batch = Batch::of(segs);
  TcpCoalescer gro;
  GroBatch r = gro.coalesce(batch.spans);
  ASSERT_EQ(r.consumed, 4u);
  ASSERT_EQ(r.frames.size(), 1u);
  const GroFrame& f = r.frames[0];
  EXPECT_TRUE(f.is_super_frame());
  EXPECT_EQ(f.segments, 4);
  EXPECT_EQ(f.gso_size, 1448);
  EXPECT_EQ(f.header_size, 40);
  EXPECT_EQ(f.ip_header_size, 20);
  EXPECT_FALSE(f.ecn);
  ASSERT_EQ(f.parts.size(), 4u);
  // No copy: the head is the first packet's buffer, the rest point at payloads.
  EXPECT_EQ(f.parts[0].data(), batch.packets[0].data());
  EXPECT_EQ(f.parts[1].data(), batch.packets[1].data() + 40);

  Bytes out = bytes_of(f);
  std::size_t total = 40 + 1448 * 3 + 700;
  ASSERT_EQ(out.size(), total);
  EXPECT_EQ(load16(&out[2]), total);         // IP total length
  EXPECT_EQ(load16(&out[4]), 0x1234);        // the head's identification
  EXPECT_EQ(sum16(out.data(), 20), 0);       // IP header checksum
  EXPECT_EQ(load32(&out[24]), 0xfffff000u);  // the head's sequence number
  EXPECT_EQ(out[33], kAck | kPsh);           // PSH from the last segment
  Bytes data;
  for (const auto& s : segs) data.insert(data.end(), s.data.begin(), s.data.end());
  EXPECT_TRUE(std::equal(data.begin(), data.end(), out.begin() + 40));
  // The checksum field holds the folded pseudo-header sum over the frame's
  // TCP length, as the kernel expects with NEEDS_CSUM.
  std::uint32_t pseudo =
      (kA.value >> 16) + (kA.value & 0xffff) + (kB.value >> 16) + (kB.value & 0xffff) + 6 + std::uint32_t(total - 20);
  while (pseudo >> 16) pseudo = (pseudo & 0xffff) + (pseudo >> 16);
  EXPECT_EQ(load16(&out[36]), pseudo);
  // Completing it gives the packet a stack would have built in one piece.
  ASSERT_TRUE(complete_checksum(ByteSpan(out.data(), out.size()), 20, 16));
  Seg whole = first;
  whole.flags = kAck | kPsh;
  whole.data = data;
  EXPECT_EQ(out, whole.build());

  EXPECT_EQ(expand_all(r), batch.originals);
  EXPECT_EQ(gro.stats().super_frames, 1u);
  EXPECT_EQ(gro.stats().segments_merged, 3u);
  EXPECT_EQ(gro.stats().frames_out, 1u);
}

TEST(GroTest, VnetHeaderOfASuperFrame) {
  Seg first;
  first.flags = kAck | kCwr;                                  // CWR on the head: the frame is marked ECN
  first.tcp_options = {1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2};  // NOP NOP timestamps
  Batch batch = Batch::of(stream(first, {1388, 1388, 1000}));
  TcpCoalescer gro;
  GroBatch r = gro.coalesce(batch.spans);
  ASSERT_EQ(r.frames.size(), 1u);
  EXPECT_TRUE(r.frames[0].ecn);
  VnetHeader h = vnet_header_for(r.frames[0]);
  std::uint8_t raw[10];
  write_vnet_header(h, raw);
  // NEEDS_CSUM, TCPV4|ECN, hdr_len 14+20+32=66, gso_size 1388 (0x056c),
  // csum_start 34, csum_offset 16.
  const std::uint8_t want[10] = {1, 0x81, 66, 0, 0x6c, 0x05, 34, 0, 16, 0};
  EXPECT_EQ(0, std::memcmp(raw, want, 10));
  VnetHeader back = VnetHeader::parse(raw);
  EXPECT_EQ(back.gso(), VnetHeader::kGsoTcpV4);
  EXPECT_EQ(back.gso_size, 1388);
  // With no link header (a TUN): offsets from the IP header.
  write_vnet_header(vnet_header_for(r.frames[0], 0), raw);
  const std::uint8_t want_tun[10] = {1, 0x81, 52, 0, 0x6c, 0x05, 20, 0, 16, 0};
  EXPECT_EQ(0, std::memcmp(raw, want_tun, 10));
  // CWR stays on the first segment only when the frame is cut.
  EXPECT_EQ(expand_all(r), batch.originals);
}

TEST(GroTest, SingleSegmentPassesUnchangedWithAZeroVnetHeader) {
  Batch batch = Batch::of(stream(Seg{}, {1448}));
  TcpCoalescer gro;
  GroBatch r = gro.coalesce(batch.spans);
  ASSERT_EQ(r.frames.size(), 1u);
  const GroFrame& f = r.frames[0];
  EXPECT_FALSE(f.is_super_frame());
  EXPECT_EQ(f.segments, 1);
  ASSERT_EQ(f.parts.size(), 1u);
  EXPECT_EQ(f.parts[0].data(), batch.packets[0].data());
  EXPECT_EQ(bytes_of(f), batch.originals[0]);
  EXPECT_EQ(batch.packets[0], batch.originals[0]);
  std::uint8_t raw[10];
  std::memset(raw, 0xee, sizeof raw);
  write_vnet_header(vnet_header_for(f), raw);
  const std::uint8_t zero[10] = {};
  EXPECT_EQ(0, std::memcmp(raw, zero, 10));
}

TEST(GroTest, NonTcpAndGarbagePassUnchangedInOrder) {
  std::vector<Bytes> in = {
      ipv4(kA, kB, 17, udp(1000, 2000, pattern(1400, 1))),
      ipv4(kA, kB, 17, udp(1000, 2000, pattern(1400, 2))),
      ipv4(kA, kB, 1, icmp_echo(1, 1, pattern(56, 3))),
      Bytes{0x45, 0x00},                // truncated
      Bytes{},                          // empty
      Bytes(60, 0x60),                  // IPv6 version nibble
      ipv4(kA, kB, 6, pattern(10, 4)),  // TCP header cut short
  };
  Batch batch(in);
  TcpCoalescer gro;
  GroBatch r = gro.coalesce(batch.spans);
  ASSERT_EQ(r.frames.size(), in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    EXPECT_FALSE(r.frames[i].is_super_frame());
    EXPECT_EQ(bytes_of(r.frames[i]), in[i]) << i;
  }
  EXPECT_EQ(batch.packets, batch.originals);
}

TEST(GroTest, PshAndFinEndAFrame) {
  auto segs = stream(Seg{}, {1000, 1000, 1000, 1000, 1000, 1000}, kAck | kFin);
  segs[1].flags = kAck | kPsh;
  Batch batch = Batch::of(segs);
  TcpCoalescer gro;
  GroBatch r = gro.coalesce(batch.spans);
  EXPECT_EQ(segment_counts(r), (Counts{2, 4}));
  EXPECT_EQ(bytes_of(r.frames[0])[33], kAck | kPsh);
  EXPECT_EQ(bytes_of(r.frames[1])[33], kAck | kFin);
  EXPECT_EQ(expand_all(r), batch.originals);
}

TEST(GroTest, SynRstUrgAndPushedHeadsAreNeverMerged) {
  for (std::uint8_t flag : {kSyn, kRst, kUrg, kPsh, kFin}) {
    auto segs = stream(Seg{}, {1000, 1000, 1000, 1000, 1000});
    segs[2].flags = kAck | flag;
    Batch batch = Batch::of(segs);
    TcpCoalescer gro;
    GroBatch r = gro.coalesce(batch.spans);
    // SYN, RST and URG stand alone; PSH and FIN end the frame they join.
    Counts want = (flag == kPsh || flag == kFin) ? Counts{3, 2} : Counts{2, 1, 2};
    EXPECT_EQ(segment_counts(r), want) << int(flag);
    EXPECT_EQ(expand_all(r), batch.originals) << int(flag);
  }
  // A head that already ends (PSH) takes no followers.
  auto segs = stream(Seg{}, {1000, 1000, 1000});
  segs[0].flags = kAck | kPsh;
  Batch batch = Batch::of(segs);
  TcpCoalescer gro;
  EXPECT_EQ(segment_counts(gro.coalesce(batch.spans)), (Counts{1, 2}));
}

TEST(GroTest, CwrAfterTheHeadIsNotMerged) {
  auto segs = stream(Seg{}, {1000, 1000, 1000});
  segs[1].flags = kAck | kCwr;
  Batch batch = Batch::of(segs);
  TcpCoalescer gro;
  GroBatch r = gro.coalesce(batch.spans);
  EXPECT_EQ(segment_counts(r), (Counts{1, 2}));
  EXPECT_TRUE(r.frames[1].ecn);
  EXPECT_EQ(expand_all(r), batch.originals);
}

TEST(GroTest, IpOptionsAndFragmentsAreLeftAlone) {
  auto segs = stream(Seg{}, {1000, 1000, 1000, 1000});
  segs[1].ip_options = {1, 1, 1, 0};  // NOP NOP NOP EOL
  std::vector<Bytes> in;
  for (const auto& s : segs) in.push_back(s.build());
  // A TCP first fragment and a later fragment of the same flow.
  Seg frag = segs[3];
  frag.frag = 0x2000;  // MF
  in.push_back(frag.build());
  frag.frag = 0x0010;
  in.push_back(frag.build());
  Batch batch(in);
  TcpCoalescer gro;
  GroBatch r = gro.coalesce(batch.spans);
  // The options packet ends the first frame, the next two merge again.
  EXPECT_EQ(segment_counts(r), (Counts{1, 1, 2, 1, 1}));
  for (std::size_t k : {0u, 1u, 3u, 4u}) EXPECT_FALSE(r.frames[k].is_super_frame());
  EXPECT_EQ(bytes_of(r.frames[1]), in[1]);
  EXPECT_EQ(bytes_of(r.frames[3]), in[4]);
  EXPECT_EQ(bytes_of(r.frames[4]), in[5]);
  EXPECT_EQ(expand_all(r), batch.originals);
}

TEST(GroTest, MixedFlowsInOneBatchKeepEachFlowInOrder) {
  Seg a;
  Seg b;
  b.sport = 40001;  // another connection between the same hosts
  Seg c;
  c.src = kC;
  c.seq = 9;
  auto fa = stream(a, {1448, 1448, 1448, 100});
  auto fb = stream(b, {1200, 1200, 1200});
  auto fc = stream(c, {500, 500});
  std::vector<Bytes> in = {fa[0].build(), fb[0].build(), fa[1].build(), ipv4(kA, kB, 17, udp(1, 2, pattern(99, 9))),
                           fb[1].build(), fc[0].build(), fa[2].build(), fc[1].build(),
                           fb[2].build(), fa[3].build()};
  Batch batch(in);
  TcpCoalescer gro;
  GroBatch r = gro.coalesce(batch.spans);
  ASSERT_EQ(r.frames.size(), 4u);
  // In the order of each frame's first packet: A, B, the UDP datagram, C.
  EXPECT_EQ(segment_counts(r), (Counts{4, 3, 1, 2}));
  EXPECT_EQ(r.frames[0].gso_size, 1448);
  EXPECT_EQ(r.frames[1].gso_size, 1200);
  EXPECT_EQ(r.frames[3].gso_size, 500);
  auto ea = expand(r.frames[0]);
  auto eb = expand(r.frames[1]);
  auto ec = expand(r.frames[3]);
  EXPECT_EQ(ea, (std::vector<Bytes>{in[0], in[2], in[6], in[9]}));
  EXPECT_EQ(eb, (std::vector<Bytes>{in[1], in[4], in[8]}));
  EXPECT_EQ(bytes_of(r.frames[2]), in[3]);
  EXPECT_EQ(ec, (std::vector<Bytes>{in[5], in[7]}));
}

TEST(GroTest, ALostSegmentSplitsTheFrame) {
  auto segs = stream(Seg{}, {1000, 1000, 1000, 1000, 1000});
  segs.erase(segs.begin() + 2);
  Batch batch = Batch::of(segs);
  TcpCoalescer gro;
  GroBatch r = gro.coalesce(batch.spans);
  // The IP identification skips too, but the sequence gap alone suffices.
  EXPECT_EQ(segment_counts(r), (Counts{2, 2}));
  EXPECT_EQ(expand_all(r), batch.originals);
}

TEST(GroTest, ADuplicateStartsANewFrame) {
  auto segs = stream(Seg{}, {1000, 1000, 1000});
  Seg again = segs[1];  // retransmitted: same sequence number, next IP identification
  again.ip_id = std::uint16_t(segs[2].ip_id);
  segs[2].ip_id = std::uint16_t(again.ip_id + 1);
  segs.insert(segs.begin() + 2, again);
  Batch batch = Batch::of(segs);
  TcpCoalescer gro;
  GroBatch r = gro.coalesce(batch.spans);
  EXPECT_EQ(segment_counts(r), (Counts{2, 2}));
  EXPECT_EQ(expand_all(r), batch.originals);
  // Out of order: the later segment first.
  auto ooo = stream(Seg{}, {1000, 1000, 1000});
  std::swap(ooo[1], ooo[2]);
  Batch b2 = Batch::of(ooo);
  EXPECT_EQ(segment_counts(gro.coalesce(b2.spans)), (Counts{1, 1, 1}));
}

}  // namespace
}  // namespace wownet::gro_test
