// The AEAD data channel, over both ciphers: round trips against the
// reference, tampering, replay, buffers, counters and rekeying, allocation
// per packet, a mutation fuzz of open().
#include <openssl/crypto.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "data_channel_fixture.h"

// Allocation counters for the no-allocation-per-packet test. Replacing the
// global operator new affects the whole test binary; it only counts. The
// OpenSSL hooks only install if nothing was allocated through OpenSSL yet
// (static initialisation); otherwise that half of the test is skipped.
namespace {
std::atomic<std::size_t> g_cxx_allocs{0};
std::atomic<std::size_t> g_ossl_allocs{0};

void* counting_malloc(std::size_t n, const char*, int) {
  g_ossl_allocs.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n);
}
void* counting_realloc(void* p, std::size_t n, const char*, int) {
  g_ossl_allocs.fetch_add(1, std::memory_order_relaxed);
  return std::realloc(p, n);
}
void counting_free(void* p, const char*, int) { std::free(p); }

const bool g_ossl_hooked = CRYPTO_set_mem_functions(counting_malloc, counting_realloc, counting_free) == 1;
}  // namespace

// Every non-aligned form is replaced so that new/delete pairs stay matched
// (malloc/free) for the other tests in this binary, under ASan too; the
// aligned forms keep the runtime's own matched pair. noinline: free() inlined
// next to operator new trips GCC's -Wmismatched-new-delete.
namespace {
void* counted_malloc(std::size_t n) noexcept {
  g_cxx_allocs.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n == 0 ? 1 : n);
}
}  // namespace

[[gnu::noinline]] void* operator new(std::size_t n) {
  if (void* p = counted_malloc(n)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void* operator new[](std::size_t n) {
  if (void* p = counted_malloc(n)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted_malloc(n); }
[[gnu::noinline]] void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted_malloc(n); }
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace wownet::crypto::data_test {
namespace {

// --- parameterised over both ciphers -----------------------------------------

class DataChannelTest : public testing::TestWithParam<Cipher> {
 protected:
  static constexpr std::uint32_t kIndex = 0xa1b2c3d4;
  Key key_ = test_key(0x40);
  DataSealer sealer_{GetParam(), key_, kIndex};
  DataOpener opener_{GetParam(), key_, kIndex};
};

TEST_P(DataChannelTest, RoundTripSizes) {
  std::uint64_t n = 0;
  for (std::size_t size : {0u, 1u, 20u, 1400u, 65535u}) {
    SCOPED_TRACE(size);
    const Bytes pt = pattern(size, std::uint32_t(size));
    const Bytes packet = seal(sealer_, pt);
    ASSERT_EQ(packet.size(), size + kDataOverhead);
    EXPECT_EQ(packet[0], 4);
    EXPECT_EQ(packet[1] | packet[2] | packet[3], 0);
    EXPECT_EQ(DataOpener::peek_receiver_index(packet), kIndex);
    EXPECT_EQ(sealer_.counter(), ++n);
    EXPECT_EQ(packet, ref_packet(GetParam(), key_, kIndex, n - 1, pt));
    Bytes out(size);
    auto r = opener_.open(packet, out);
    ASSERT_EQ(r.error, Error::None);
    EXPECT_EQ(r.size, size);
    EXPECT_EQ(out, pt);
  }
  EXPECT_EQ(opener_.counters().accepted, n);
}

TEST_P(DataChannelTest, MatchesReferenceAcrossSizesAndCounters) {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 200; ++i) {
    const std::uint64_t counter = sealer_.counter() + (rng() % 1000);
    sealer_.advance_to(counter);
    const Bytes pt = pattern(rng() % 300, std::uint32_t(i));
    EXPECT_EQ(seal(sealer_, pt), ref_packet(GetParam(), key_, kIndex, counter, pt)) << i;
  }
}

TEST_P(DataChannelTest, InPlaceSealAndOpen) {
  const Bytes pt = pattern(1400);
  Bytes buf(kDataHeaderSize + pt.size() + kTagSize);
  std::copy(pt.begin(), pt.end(), buf.begin() + kDataHeaderSize);
  const ByteSpan body(buf.data() + kDataHeaderSize, pt.size());
  ASSERT_EQ(sealer_.seal(body, buf), buf.size());
  EXPECT_EQ(buf, ref_packet(GetParam(), key_, kIndex, 0, pt));
  auto r = opener_.open(buf, body);
  ASSERT_EQ(r.error, Error::None);
  EXPECT_EQ(Bytes(body.begin(), body.end()), pt);
}

TEST_P(DataChannelTest, EveryTamperedByteIsRejected) {
  const Bytes pt = pattern(20);
  const Bytes packet = seal(sealer_, pt);
  for (std::size_t i = 0; i < packet.size(); ++i) {
    for (std::uint8_t flip : {0x01, 0x80, 0xff}) {
      Bytes bad = packet;
      bad[i] ^= flip;
      Bytes out(pt.size(), 0xaa);
      auto r = opener_.open(bad, out);
      Error expected = i == 0  ? Error::BadType
                       : i < 4 ? Error::BadReserved
                       : i < 8 ? Error::WrongReceiver
                               : Error::BadTag;
      EXPECT_EQ(r.error, expected) << "byte " << i << " flip " << int(flip);
      EXPECT_EQ(r.size, 0u);
      if (expected == Error::BadTag) {
        EXPECT_EQ(out, Bytes(pt.size(), 0)) << "unauthenticated plaintext left in out";
      }
    }
  }
  EXPECT_EQ(ERR_peek_error(), 0u) << "failed opens left errors in the OpenSSL queue";
  const OpenCounters& c = opener_.counters();
  EXPECT_EQ(c.bad_type, 3u);
  EXPECT_EQ(c.bad_reserved, 9u);
  EXPECT_EQ(c.wrong_receiver, 12u);
  EXPECT_EQ(c.bad_tag, 3 * (packet.size() - 8));
  EXPECT_EQ(c.accepted, 0u);
  // Failures did not mark the counter: the genuine packet still opens.
  Bytes out(pt.size());
  EXPECT_EQ(opener_.open(packet, out).error, Error::None);
  EXPECT_EQ(out, pt);
}

TEST_P(DataChannelTest, WrongKeyOrCipherIsBadTag) {
  const Bytes packet = seal(sealer_, pattern(100));
  Bytes out(100);
  DataOpener other_key(GetParam(), test_key(0x41), kIndex);
  EXPECT_EQ(other_key.open(packet, out).error, Error::BadTag);
  const Cipher other = GetParam() == Cipher::Aes256Gcm ? Cipher::ChaCha20Poly1305 : Cipher::Aes256Gcm;
  DataOpener other_cipher(other, key_, kIndex);
  EXPECT_EQ(other_cipher.open(packet, out).error, Error::BadTag);
}

TEST_P(DataChannelTest, ReplayedPacketIsRejected) {
  const Bytes packet = seal(sealer_, pattern(64));
  Bytes out(64);
  EXPECT_EQ(opener_.open(packet, out).error, Error::None);
  auto r = opener_.open(packet, out);
  EXPECT_EQ(r.error, Error::Replayed);
  EXPECT_EQ(r.size, 0u);
  EXPECT_EQ(opener_.counters().replayed, 1u);
  EXPECT_EQ(opener_.counters().accepted, 1u);
}

TEST_P(DataChannelTest, OutOfOrderWithinWindowAcceptedOnce) {
  std::vector<Bytes> packets;
  for (int i = 0; i < 300; ++i) packets.push_back(seal(sealer_, pattern(10, std::uint32_t(i))));
  std::vector<std::size_t> order(packets.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937(7));
  Bytes out(10);
  for (std::size_t i : order) {
    ASSERT_EQ(opener_.open(packets[i], out).error, Error::None) << i;
    EXPECT_EQ(out, pattern(10, std::uint32_t(i)));
  }
  for (std::size_t i : order) EXPECT_EQ(opener_.open(packets[i], out).error, Error::Replayed) << i;
}

TEST_P(DataChannelTest, FarOldCounterRejected) {
  const Bytes old0 = seal(sealer_, pattern(8));
  const std::uint64_t top = 10000;
  sealer_.advance_to(top - ReplayWindow::kWindowSize);
  const Bytes at_edge = seal(sealer_, pattern(8));    // top - W: one too old
  const Bytes in_window = seal(sealer_, pattern(8));  // top - W + 1
  sealer_.advance_to(top);
  Bytes out(8);
  EXPECT_EQ(opener_.open(seal(sealer_, pattern(8)), out).error, Error::None);
  EXPECT_EQ(opener_.open(old0, out).error, Error::Replayed);
  EXPECT_EQ(opener_.open(at_edge, out).error, Error::Replayed);
  EXPECT_EQ(opener_.open(in_window, out).error, Error::None);
}

TEST_P(DataChannelTest, WrongReceiverIndex) {
  DataSealer to_other(GetParam(), key_, kIndex + 1);
  const Bytes packet = seal(to_other, pattern(30));
  Bytes out(30);
  EXPECT_EQ(opener_.open(packet, out).error, Error::WrongReceiver);
  EXPECT_EQ(opener_.counters().wrong_receiver, 1u);
  EXPECT_EQ(DataOpener::peek_receiver_index(packet), kIndex + 1);
}

TEST_P(DataChannelTest, TruncatedPacketsAreShort) {
  const Bytes packet = seal(sealer_, pattern(40));
  Bytes out(100);
  for (std::size_t len = 0; len < kDataOverhead; ++len) {
    // Exact-size heap copies so ASan catches any read past the end.
    const Bytes cut(packet.begin(), packet.begin() + long(len));
    auto r = opener_.open(cut, out);
    EXPECT_EQ(r.error, Error::Short) << len;
    EXPECT_EQ(r.size, 0u);
    EXPECT_FALSE(DataOpener::peek_receiver_index(cut)) << len;
  }
  EXPECT_EQ(opener_.open(ConstByteSpan{}, out).error, Error::Short);
  EXPECT_EQ(opener_.counters().short_packet, kDataOverhead + 1);
  // Longer truncations keep a valid header but break the tag.
  for (std::size_t len = kDataOverhead; len < packet.size(); ++len)
    EXPECT_EQ(opener_.open(Bytes(packet.begin(), packet.begin() + long(len)), out).error, Error::BadTag) << len;
  EXPECT_EQ(opener_.open(packet, out).error, Error::None);
}

TEST_P(DataChannelTest, PeekReceiverIndex) {
  Bytes packet = seal(sealer_, {});
  EXPECT_EQ(DataOpener::peek_receiver_index(packet), kIndex);
  packet[0] = 5;
  EXPECT_FALSE(DataOpener::peek_receiver_index(packet));
  packet[0] = 4;
  packet[3] = 1;
  EXPECT_FALSE(DataOpener::peek_receiver_index(packet));
}

TEST_P(DataChannelTest, SealIntoTooSmallBuffer) {
  const Bytes pt = pattern(100);
  Bytes out(pt.size() + kDataOverhead - 1);
  EXPECT_EQ(sealer_.seal(pt, out), 0u);
  EXPECT_EQ(sealer_.seal(pt, ByteSpan{}), 0u);
  EXPECT_EQ(sealer_.seal({}, ByteSpan(out.data(), kDataOverhead - 1)), 0u);
  EXPECT_EQ(sealer_.counter(), 0u);
  out.resize(pt.size() + kDataOverhead + 10);
  EXPECT_EQ(sealer_.seal(pt, out), pt.size() + kDataOverhead);
  EXPECT_EQ(sealer_.counter(), 1u);
}

TEST_P(DataChannelTest, OpenIntoTooSmallBuffer) {
  const Bytes packet = seal(sealer_, pattern(100));
  Bytes out(99);
  auto r = opener_.open(packet, out);
  EXPECT_EQ(r.error, Error::OutTooSmall);
  EXPECT_EQ(r.size, 0u);
  EXPECT_EQ(opener_.counters().out_too_small, 1u);
  out.resize(100);
  EXPECT_EQ(opener_.open(packet, out).error, Error::None);  // window untouched by the failure
}

TEST_P(DataChannelTest, CounterLimitAndRekey) {
  EXPECT_FALSE(sealer_.should_rekey(1));
  EXPECT_TRUE(sealer_.should_rekey(0));
  seal(sealer_, {});
  EXPECT_TRUE(sealer_.should_rekey(1));
  EXPECT_FALSE(sealer_.should_rekey(kRekeyAfterMessages));
  sealer_.advance_to(5);
  sealer_.advance_to(3);  // never backwards
  EXPECT_EQ(sealer_.counter(), 5u);

  sealer_.advance_to(kCounterExhausted - 1);
  const Bytes last = seal(sealer_, pattern(10));
  EXPECT_EQ(sealer_.counter(), kCounterExhausted);
  Bytes out(100);
  EXPECT_EQ(sealer_.seal(pattern(10), out), 0u);
  EXPECT_EQ(sealer_.seal({}, out), 0u);
  EXPECT_EQ(sealer_.counter(), kCounterExhausted);
  EXPECT_TRUE(sealer_.should_rekey(kRekeyAfterMessages));
  auto r = opener_.open(last, out);
  EXPECT_EQ(r.error, Error::None);
  EXPECT_EQ(opener_.open(last, out).error, Error::Replayed);
}

TEST_P(DataChannelTest, MoveKeepsStateAndEmptiesSource) {
  seal(sealer_, {});
  DataSealer moved = std::move(sealer_);
  EXPECT_EQ(moved.counter(), 1u);
  const Bytes packet = seal(moved, pattern(5));
  Bytes out(100);
  EXPECT_EQ(sealer_.seal(pattern(5), out), 0u);  // NOLINT(bugprone-use-after-move): defined, seals nothing
  DataOpener opener = std::move(opener_);
  EXPECT_EQ(opener.open(packet, out).error, Error::None);
  EXPECT_EQ(opener.open(packet, out).error, Error::Replayed);
  DataOpener assigned(GetParam(), test_key(1), 1);
  assigned = std::move(opener);
  EXPECT_EQ(assigned.open(packet, out).error, Error::Replayed);
  EXPECT_EQ(assigned.counters().accepted, 1u);
}

TEST_P(DataChannelTest, NoAllocationPerPacket) {
  const Bytes small = pattern(1400);
  const Bytes big = pattern(65535);
  Bytes packet(big.size() + kDataOverhead);
  Bytes out(big.size());
  const std::size_t cxx_before = g_cxx_allocs.load();
  const std::size_t ossl_before = g_ossl_allocs.load();
  bool all_ok = true;
  for (int i = 0; i < 2000; ++i) {
    const Bytes& pt = (i % 10 == 0) ? big : small;
    std::size_t n = sealer_.seal(pt, packet);
    packet[n - 1] ^= 1;
    all_ok = all_ok && opener_.open(ConstByteSpan(packet.data(), n), out).error == Error::BadTag;
    packet[n - 1] ^= 1;
    auto r = opener_.open(ConstByteSpan(packet.data(), n), out);
    all_ok = all_ok && n == pt.size() + kDataOverhead && r.error == Error::None && r.size == pt.size();
    all_ok = all_ok && opener_.open(ConstByteSpan(packet.data(), n), out).error == Error::Replayed;
  }
  const std::size_t cxx_allocs = g_cxx_allocs.load() - cxx_before;
  const std::size_t ossl_allocs = g_ossl_allocs.load() - ossl_before;
  EXPECT_TRUE(all_ok);
  EXPECT_EQ(cxx_allocs, 0u) << "operator new called during seal/open";
  const Bytes probe(all_ok ? 10 : 11);  // the counter does see C++ allocations
  EXPECT_GT(g_cxx_allocs.load() - cxx_before, cxx_allocs);
  EXPECT_EQ(probe.size(), 10u);
  if (!g_ossl_hooked) GTEST_SKIP() << "OpenSSL allocated before the hooks could be installed";
  EXPECT_EQ(ossl_allocs, 0u) << "OpenSSL allocated during seal/open";
  // The hooks do see OpenSSL's allocations (session setup allocates).
  DataSealer another(GetParam(), key_, 1);
  EXPECT_GT(g_ossl_allocs.load(), ossl_before);
}

// Deterministic mutation fuzz of open(): random, mutated and header-valid
// packets with random output sizes. No crash (ASan/UBSan), size never beyond
// out, size 0 on every error, and every call counted exactly once.
TEST_P(DataChannelTest, FuzzOpen) {
  std::mt19937_64 rng(0x5eedf00d);
  std::vector<Bytes> genuine;
  for (int i = 0; i < 64; ++i) genuine.push_back(seal(sealer_, pattern(rng() % 200, std::uint32_t(i))));
  std::uint64_t accepted = 0;
  const int kIterations = 30000;
  for (int it = 0; it < kIterations; ++it) {
    Bytes p;
    switch (rng() % 4) {
      case 0: {  // pure noise
        p.resize(rng() % 120);
        for (auto& b : p) b = std::uint8_t(rng());
        break;
      }
      case 1: {  // noise behind a valid header
        p.resize(kDataOverhead + rng() % 200);
        for (auto& b : p) b = std::uint8_t(rng());
        p[0] = 4;
        p[1] = p[2] = p[3] = 0;
        p[4] = 0xa1, p[5] = 0xb2, p[6] = 0xc3, p[7] = 0xd4;
        if (rng() % 2) std::fill(p.begin() + 8, p.begin() + 15, 0);  // counter near the window
        break;
      }
      default: {  // genuine packet, maybe mutated
        p = genuine[rng() % genuine.size()];
        const int edits = int(rng() % 4);
        for (int e = 0; e < edits; ++e) {
          switch (rng() % 4) {
            case 0:
              if (!p.empty()) p[rng() % p.size()] ^= std::uint8_t(1 + rng() % 255);
              break;
            case 1: p.resize(rng() % (p.size() + 1)); break;
            case 2: p.push_back(std::uint8_t(rng())); break;
            default:
              if (p.size() > 8) p[8 + rng() % std::min<std::size_t>(8, p.size() - 8)] = std::uint8_t(rng());
          }
        }
      }
    }
    const std::size_t need = p.size() >= kDataOverhead ? p.size() - kDataOverhead : 0;
    Bytes out(rng() % 3 == 0 ? rng() % (need + 1) : need + rng() % 8);
    auto r = opener_.open(p, out);
    ASSERT_LE(r.size, out.size());
    if (r.error == Error::None) {
      ++accepted;
      ASSERT_EQ(r.size, need);
    } else {
      ASSERT_EQ(r.size, 0u);
    }
  }
  const OpenCounters& c = opener_.counters();
  EXPECT_EQ(c.accepted, accepted);
  EXPECT_EQ(c.accepted + c.short_packet + c.bad_type + c.bad_reserved + c.wrong_receiver + c.out_too_small +
                c.replayed + c.bad_tag,
            std::uint64_t(kIterations));
  EXPECT_LE(accepted, genuine.size());  // each genuine counter at most once
  EXPECT_GT(c.bad_tag, 0u);
  EXPECT_GT(c.replayed, 0u);
}

INSTANTIATE_TEST_SUITE_P(Ciphers, DataChannelTest, testing::Values(Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305),
                         cipher_name);

}  // namespace
}  // namespace wownet::crypto::data_test
