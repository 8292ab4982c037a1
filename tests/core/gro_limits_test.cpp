// Receive-side TCP coalescing at its limits: frame sizes, header
// differences, checksums, capacity, many flows, random batches.
#include "gro_fixture.h"

namespace wownet::gro_test {
namespace {

// Three 1000-byte segments starting with `first` coalesce into one frame
// that expands back to exactly the segments.
void expect_three_segments_merge(const Seg& first) {
  Batch batch = Batch::of(stream(first, {1000, 1000, 1000}));
  TcpCoalescer gro;
  GroBatch r = gro.coalesce(batch.spans);
  EXPECT_EQ(segment_counts(r), (Counts{3}));
  EXPECT_EQ(expand_all(r), batch.originals);
}

TEST(GroTest, FramesStayWithinTheIpv4LengthLimit) {
  std::vector<std::size_t> sizes(50, 1400);  // 70000 bytes of data
  Batch batch = Batch::of(stream(Seg{}, sizes));
  TcpCoalescer gro;
  GroBatch r = gro.coalesce(batch.spans);
  // 40 + 46 * 1400 = 64440 fits; one more segment would make 65840.
  EXPECT_EQ(segment_counts(r), (Counts{46, 4}));
  for (const auto& f : r.frames) EXPECT_LE(f.size, 65535u);
  EXPECT_EQ(r.frames[0].size, 64440u);
  EXPECT_EQ(expand_all(r), batch.originals);
  // A smaller limit, e.g. a TAP that takes less.
  Batch again = Batch::of(stream(Seg{}, sizes));
  TcpCoalescer small(GroOptions{.max_packet_size = 16000});
  EXPECT_EQ(segment_counts(small.coalesce(again.spans)), (Counts{11, 11, 11, 11, 6}));
  // Exactly 65535 is allowed.
  std::vector<std::size_t> exact(45, 1455);  // 40 + 45 * 1455 = 65515
  exact.push_back(20);                       // 65535
  exact.push_back(1);
  Batch b3 = Batch::of(stream(Seg{}, exact));
  GroBatch r3 = gro.coalesce(b3.spans);
  EXPECT_EQ(segment_counts(r3), (Counts{46, 1}));
  EXPECT_EQ(r3.frames[0].size, 65535u);
}

TEST(GroTest, ShortSegmentEndsAFrameAndALargerOneDoesNotJoin) {
  Batch batch = Batch::of(stream(Seg{}, {1000, 600, 1000, 1000, 500, 1000}));
  TcpCoalescer gro;
  GroBatch r = gro.coalesce(batch.spans);
  // 1000+600 | 1000+1000+500 | 1000
  EXPECT_EQ(segment_counts(r), (Counts{2, 3, 1}));
  EXPECT_EQ(expand_all(r), batch.originals);
  Batch grows = Batch::of(stream(Seg{}, {500, 1000, 1000}));
  EXPECT_EQ(segment_counts(gro.coalesce(grows.spans)), (Counts{1, 2}));
}

TEST(GroTest, HeaderDifferencesPreventMerging) {
  struct Case {
    const char* what;
    void (*change)(Seg&);
  };
  const Case cases[] = {
      {"ack", [](Seg& s) { s.ack += 1; }},
      {"window", [](Seg& s) { s.window = 1000; }},
      {"ece", [](Seg& s) { s.flags |= kEce; }},
      {"tos", [](Seg& s) { s.tos = 0x03; }},
      {"ttl", [](Seg& s) { s.ttl = 63; }},
      {"df", [](Seg& s) { s.frag = 0; }},
      {"ip id", [](Seg& s) { s.ip_id = std::uint16_t(s.ip_id + 5); }},
      {"timestamp value", [](Seg& s) { s.tcp_options = {1, 1, 8, 10, 0, 0, 0, 2, 0, 0, 0, 2}; }},
      {"option length", [](Seg& s) { s.tcp_options = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}; }},
      {"dst port", [](Seg& s) { s.dport = 5202; }},
  };
  for (const auto& c : cases) {
    Seg first;
    first.tcp_options = {1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2};
    auto segs = stream(first, {1000, 1000, 1000});
    c.change(segs[1]);
    Batch batch = Batch::of(segs);
    TcpCoalescer gro;
    GroBatch r = gro.coalesce(batch.spans);
    EXPECT_EQ(r.frames.size(), 3u) << c.what;
    EXPECT_EQ(expand_all(r), batch.originals) << c.what;
  }
  // Identical options (timestamps included) merge.
  Seg first;
  first.tcp_options = {1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2};
  expect_three_segments_merge(first);
}

TEST(GroTest, IpIdentificationWrapsAndDfClearMerges) {
  Seg first;
  first.ip_id = 0xffff;
  first.frag = 0;
  expect_three_segments_merge(first);
}

TEST(GroTest, PureAcksAreNeverMerged) {
  auto segs = stream(Seg{}, {0, 0, 0});
  for (auto& s : segs) s.seq = 1000;
  Batch batch = Batch::of(segs);
  TcpCoalescer gro;
  EXPECT_EQ(segment_counts(gro.coalesce(batch.spans)), (Counts{1, 1, 1}));
  EXPECT_EQ(batch.packets, batch.originals);
}

TEST(GroTest, BadChecksumsAreNotMerged) {
  auto segs = stream(Seg{}, {1000, 1000, 1000, 1000});
  Batch batch = Batch::of(segs);
  batch.packets[1][500] ^= 0x01;  // a bit flipped in the data of segment 2
  batch.originals = batch.packets;
  TcpCoalescer gro;
  GroBatch r = gro.coalesce(batch.spans);
  EXPECT_EQ(segment_counts(r), (Counts{1, 1, 2}));
  EXPECT_EQ(bytes_of(r.frames[1]), batch.originals[1]);
  EXPECT_EQ(gro.stats().checksum_failures, 1u);
  // A bad IP header checksum: not even parsed as TCP.
  Batch b2 = Batch::of(stream(Seg{}, {1000, 1000}));
  b2.packets[0][8] = 1;  // TTL changed, checksum not
  b2.originals = b2.packets;
  GroBatch r2 = gro.coalesce(b2.spans);
  EXPECT_EQ(segment_counts(r2), (Counts{1, 1}));
  EXPECT_EQ(b2.packets, b2.originals);
  // Without verification the checksum is not looked at.
  Batch b3 = Batch::of(segs);
  b3.packets[1][500] ^= 0x01;
  TcpCoalescer trusting(GroOptions{.verify_checksums = false});
  EXPECT_EQ(segment_counts(trusting.coalesce(b3.spans)), (Counts{4}));
}

TEST(GroTest, BatchLongerThanCapacityIsTakenInParts) {
  Batch batch = Batch::of(stream(Seg{}, {1000, 1000, 1000, 1000, 1000}));
  TcpCoalescer gro(GroOptions{.max_batch = 3});
  GroBatch r = gro.coalesce(batch.spans);
  EXPECT_EQ(r.consumed, 3u);
  EXPECT_EQ(segment_counts(r), (Counts{3}));
  GroBatch rest = gro.coalesce(std::span<const ByteSpan>(batch.spans).subspan(r.consumed));
  EXPECT_EQ(rest.consumed, 2u);
  EXPECT_EQ(segment_counts(rest), (Counts{2}));
}

TEST(GroTest, MoreFlowsThanOpenSlotsStillKeepOrder) {
  TcpCoalescer gro(GroOptions{.max_open_flows = 2});
  std::vector<std::vector<Seg>> flows;
  for (std::uint16_t k = 0; k < 3; ++k) {
    Seg s;
    s.sport = std::uint16_t(41000 + k);
    flows.push_back(stream(s, {1000, 1000, 1000}));
  }
  std::vector<Bytes> in;
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t k = 0; k < 3; ++k) in.push_back(flows[k][i].build());
  Batch batch(in);
  GroBatch r = gro.coalesce(batch.spans);
  // Round robin over three flows with two slots: each new flow evicts the
  // oldest open one, so nothing merges, and order is kept.
  EXPECT_EQ(r.frames.size(), 9u);
  EXPECT_EQ(expand_all(r), batch.originals);
}

// Random batches of several flows with random losses, duplicates, flag
// changes and corrupted bytes: whatever comes out, expanded as the kernel
// would, is each input packet once, each flow in its input order.
TEST(GroTest, RandomBatchesPreserveEveryPacketAndPerFlowOrder) {
  std::mt19937 rng(4242);
  TcpCoalescer gro(GroOptions{.max_batch = 64, .max_open_flows = 4});
  for (int round = 0; round < 300; ++round) {
    std::vector<std::vector<Seg>> flows;
    for (std::uint16_t k = 0; k < 5; ++k) {
      Seg s;
      s.sport = std::uint16_t(42000 + k);
      s.seq = rng();
      s.ip_id = std::uint16_t(rng());
      std::vector<std::size_t> sizes;
      std::size_t mss = 200 + rng() % 1200;
      for (int i = 0; i < 12; ++i) sizes.push_back(rng() % 8 == 0 ? rng() % (mss + 1) : mss);
      auto f = stream(s, sizes);
      for (auto& seg : f) {
        if (rng() % 20 == 0) seg.flags |= std::uint8_t(1u << (rng() % 8));
        if (rng() % 30 == 0) seg.ttl = 1;
      }
      flows.push_back(f);
    }
    std::vector<std::size_t> pos(flows.size(), 0);
    std::vector<Bytes> in;
    std::vector<int> flow_of;
    while (in.size() < 64) {
      std::size_t k = rng() % flows.size();
      if (pos[k] >= flows[k].size()) {
        in.push_back(ipv4(kA, kB, 17, udp(1, 2, pattern(rng() % 300, 1))));
        flow_of.push_back(-1);
        continue;
      }
      if (pos[k] > 0 && rng() % 15 == 0) {
        in.push_back(flows[k][pos[k] - 1].build());  // a duplicate
      } else {
        in.push_back(flows[k][pos[k]].build());
        pos[k] += rng() % 10 == 0 ? 2 : 1;  // sometimes the next one is lost
      }
      flow_of.push_back(int(k));
      if (rng() % 25 == 0) {
        std::size_t at = rng() % in.back().size();
        in.back()[at] ^= std::uint8_t(1 + rng() % 255);
        // A damaged header may no longer name its flow (or parse): such a
        // packet is only required to come out, not to keep its place.
        if (at < 40) flow_of.back() = -2;
      }
    }
    Batch batch(in);
    GroBatch r = gro.coalesce(batch.spans);
    ASSERT_EQ(r.consumed, in.size());
    std::vector<Bytes> out = expand_all(r);
    ASSERT_EQ(out.size(), in.size()) << round;
    // Per flow, the expanded packets appear in input order.
    for (int k = -1; k < int(flows.size()); ++k) {  // -1: the UDP datagrams
      std::vector<Bytes> want;
      for (std::size_t i = 0; i < in.size(); ++i)
        if (flow_of[i] == k) want.push_back(in[i]);
      std::vector<Bytes> got;
      for (const auto& p : out) {
        auto it = std::find(want.begin(), want.end(), p);
        if (it != want.end()) got.push_back(p);
      }
      EXPECT_EQ(got, want) << "round " << round << " flow " << k;
    }
    std::vector<Bytes> a = in, b = out;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    EXPECT_EQ(a, b) << round;
  }
  EXPECT_GT(gro.stats().segments_merged, 1000u);
}

}  // namespace
}  // namespace wownet::gro_test
