// The harness of the receive-side TCP coalescing tests: Seg (one TCP/IPv4
// segment, every field spelled out, with its own checksum code), streams
// and batches of them, and what the kernel makes of a super-frame.
#pragma once

#include "core/gro.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "core/bytes.h"
#include "core/offload.h"
#include "test_frames.h"

namespace wownet::gro_test {

using namespace wownet::test;

const Ipv4Addr kA = Ipv4Addr::from_octets(10, 128, 0, 2);
const Ipv4Addr kB = Ipv4Addr::from_octets(10, 128, 0, 9);
const Ipv4Addr kC = Ipv4Addr::from_octets(10, 128, 0, 17);

constexpr std::uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10, kUrg = 0x20, kEce = 0x40,
                       kCwr = 0x80;

// One TCP/IPv4 segment, every field spelled out; built here with its own
// checksum code, independent of core/.
struct Seg {
  Ipv4Addr src = kA;
  Ipv4Addr dst = kB;
  std::uint16_t sport = 40000;
  std::uint16_t dport = 5201;
  std::uint32_t seq = 1000;
  std::uint32_t ack = 77;
  std::uint8_t flags = kAck;
  std::uint16_t window = 502;
  std::uint8_t tos = 0;
  std::uint8_t ttl = 64;
  std::uint16_t ip_id = 0x1234;
  std::uint16_t frag = 0x4000;  // DF
  Bytes tcp_options;            // a multiple of 4
  Bytes ip_options;             // a multiple of 4
  Bytes data;

  Bytes build() const {
    Bytes tcp;
    put16(tcp, sport);
    put16(tcp, dport);
    put32(tcp, seq);
    put32(tcp, ack);
    tcp.push_back(std::uint8_t((5 + tcp_options.size() / 4) << 4));
    tcp.push_back(flags);
    put16(tcp, window);
    put16(tcp, 0);
    put16(tcp, 0);
    tcp.insert(tcp.end(), tcp_options.begin(), tcp_options.end());
    tcp.insert(tcp.end(), data.begin(), data.end());
    fill_tcp_checksum(src, dst, tcp);
    std::size_t ihl = 20 + ip_options.size();
    Bytes p = {std::uint8_t(0x40 | (ihl / 4)), tos};
    put16(p, std::uint16_t(ihl + tcp.size()));
    put16(p, ip_id);
    put16(p, frag);
    p.push_back(ttl);
    p.push_back(6);
    put16(p, 0);
    put(p, src);
    put(p, dst);
    p.insert(p.end(), ip_options.begin(), ip_options.end());
    std::uint16_t ic = sum16(p.data(), ihl);
    p[10] = std::uint8_t(ic >> 8);
    p[11] = std::uint8_t(ic);
    p.insert(p.end(), tcp.begin(), tcp.end());
    return p;
  }
};

inline Bytes pattern(std::size_t n, std::uint8_t salt) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = std::uint8_t(i * 31 + salt + (i >> 8));
  return b;
}

// A stream of `sizes.size()` segments of one flow: sequence numbers and IP
// identifications follow on, the data is a pattern; `last_flags` on the last.
inline std::vector<Seg> stream(const Seg& first, const std::vector<std::size_t>& sizes,
                               std::uint8_t last_flags = kAck) {
  std::vector<Seg> out;
  Seg s = first;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    s.data = pattern(sizes[i], std::uint8_t(i));
    if (i + 1 == sizes.size()) s.flags = last_flags;
    out.push_back(s);
    s.seq += std::uint32_t(sizes[i]);
    s.ip_id = std::uint16_t(s.ip_id + 1);
    s.flags &= std::uint8_t(~kCwr);
  }
  return out;
}

// Packets in their own buffers, as the overlay hands them over.
struct Batch {
  std::vector<Bytes> packets;
  std::vector<Bytes> originals;
  std::vector<ByteSpan> spans;

  explicit Batch(const std::vector<Bytes>& in) : packets(in), originals(in) {
    for (auto& p : packets) spans.emplace_back(p.data(), p.size());
  }
  static Batch of(const std::vector<Seg>& segs) {
    std::vector<Bytes> in;
    for (const auto& s : segs) in.push_back(s.build());
    return Batch(in);
  }
};

inline Bytes bytes_of(const GroFrame& f) {
  Bytes b(f.size);
  EXPECT_EQ(f.copy_to(ByteSpan(b.data(), b.size())), f.size);
  return b;
}

struct Collect : SegmentSink {
  std::vector<Bytes> out;
  void segment(ConstByteSpan p) override { out.emplace_back(p.begin(), p.end()); }
};

// What the kernel makes of a frame written to a TAP: a super-frame is cut
// into its segments, anything else is one packet.
inline std::vector<Bytes> expand(const GroFrame& f) {
  Bytes b = bytes_of(f);
  if (!f.is_super_frame()) return {b};
  Collect c;
  std::vector<std::uint8_t> scratch(2048 + 60);
  EXPECT_EQ(segment_tcp4(b, f.gso_size, ByteSpan(scratch.data(), scratch.size()), c), f.segments);
  return c.out;
}

// All frames expanded, in order.
inline std::vector<Bytes> expand_all(const GroBatch& r) {
  std::vector<Bytes> out;
  for (const auto& f : r.frames) {
    auto e = expand(f);
    out.insert(out.end(), e.begin(), e.end());
  }
  return out;
}

inline std::vector<std::uint16_t> segment_counts(const GroBatch& r) {
  std::vector<std::uint16_t> n;
  for (const auto& f : r.frames) n.push_back(f.segments);
  return n;
}

using Counts = std::vector<std::uint16_t>;

}  // namespace wownet::gro_test
