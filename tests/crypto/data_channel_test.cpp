#include "crypto/data_channel.h"

#include <gtest/gtest.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <random>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

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

namespace wownet::crypto {
namespace {

using Bytes = std::vector<std::uint8_t>;
using Error = DataOpener::OpenResult::Error;
using Key = std::array<std::uint8_t, kDataKeySize>;

Bytes hex(std::string_view s) {
  Bytes out;
  auto nibble = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  for (std::size_t i = 0; i + 1 < s.size(); i += 2) out.push_back(std::uint8_t(nibble(s[i]) << 4 | nibble(s[i + 1])));
  return out;
}

Key test_key(std::uint8_t first) {
  Key k;
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = std::uint8_t(first + i);
  return k;
}

Bytes pattern(std::size_t n, std::uint32_t seed = 1) {
  Bytes b(n);
  std::uint32_t x = seed;
  for (auto& v : b) {
    x = x * 1664525u + 1013904223u;
    v = std::uint8_t(x >> 24);
  }
  return b;
}

// Independent one-shot AEAD (fresh context, key and IV in one init call):
// returns ciphertext || tag. Checked against RFC/NIST vectors below.
Bytes ref_seal(Cipher cipher, const Bytes& key, const Bytes& nonce, const Bytes& aad, const Bytes& pt) {
  EVP_CIPHER* evp =
      EVP_CIPHER_fetch(nullptr, cipher == Cipher::Aes256Gcm ? "AES-256-GCM" : "ChaCha20-Poly1305", nullptr);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  std::size_t ivlen = nonce.size();
  OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t("ivlen", &ivlen), OSSL_PARAM_construct_end()};
  Bytes out(pt.size() + 16);
  int len = 0;
  bool ok = EVP_EncryptInit_ex2(ctx, evp, key.data(), nonce.data(), params) == 1 &&
            EVP_EncryptUpdate(ctx, nullptr, &len, aad.data(), int(aad.size())) == 1 &&
            EVP_EncryptUpdate(ctx, out.data(), &len, pt.data(), int(pt.size())) == 1 &&
            EVP_EncryptFinal_ex(ctx, out.data() + len, &len) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, out.data() + pt.size()) == 1;
  EVP_CIPHER_CTX_free(ctx);
  EVP_CIPHER_free(evp);
  EXPECT_TRUE(ok);
  return out;
}

// Expected data packet built with ref_seal: header || AEAD(header as AAD).
Bytes ref_packet(Cipher cipher, const Key& key, std::uint32_t index, std::uint64_t counter, const Bytes& pt) {
  Bytes header = {
      4, 0, 0, 0, std::uint8_t(index >> 24), std::uint8_t(index >> 16), std::uint8_t(index >> 8), std::uint8_t(index)};
  Bytes nonce(4, 0);
  for (int i = 7; i >= 0; --i) {
    header.push_back(std::uint8_t(counter >> (8 * i)));
    nonce.push_back(std::uint8_t(counter >> (8 * i)));
  }
  Bytes body = ref_seal(cipher, Bytes(key.begin(), key.end()), nonce, header, pt);
  header.insert(header.end(), body.begin(), body.end());
  return header;
}

Bytes seal(DataSealer& s, const Bytes& pt) {
  Bytes out(pt.size() + kDataOverhead);
  std::size_t n = s.seal(pt, out);
  EXPECT_EQ(n, out.size());
  return out;
}

std::string cipher_name(const testing::TestParamInfo<Cipher>& info) {
  return info.param == Cipher::Aes256Gcm ? "Aes256Gcm" : "ChaCha20Poly1305";
}

// --- names and constants ---------------------------------------------------

TEST(DataCipherNames, RoundTripAndRejects) {
  for (Cipher c : {Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305}) EXPECT_EQ(parse_cipher(to_string(c)), c);
  EXPECT_EQ(to_string(Cipher::Aes256Gcm), "aes-256-gcm");
  EXPECT_EQ(to_string(Cipher::ChaCha20Poly1305), "chacha20-poly1305");
  EXPECT_EQ(parse_cipher("AES-256-GCM"), Cipher::Aes256Gcm);
  EXPECT_EQ(parse_cipher("ChaCha20-Poly1305"), Cipher::ChaCha20Poly1305);
  for (std::string_view bad : {"", "aes", "aes-128-gcm", "aes-256-gcm ", "chacha20", "chacha20-poly1305x"})
    EXPECT_FALSE(parse_cipher(bad)) << bad;
  static_assert(kDataOverhead == kDataHeaderSize + kTagSize);
  static_assert(!std::is_copy_constructible_v<DataSealer> && !std::is_copy_assignable_v<DataSealer>);
  static_assert(!std::is_copy_constructible_v<DataOpener> && !std::is_copy_assignable_v<DataOpener>);
  static_assert(std::is_nothrow_move_constructible_v<DataSealer> && std::is_nothrow_move_assignable_v<DataSealer>);
  static_assert(std::is_nothrow_move_constructible_v<DataOpener> && std::is_nothrow_move_assignable_v<DataOpener>);
}

// --- the reference AEAD against published vectors --------------------------

TEST(DataAeadReference, Rfc8439Section282ChaCha20Poly1305) {
  const Bytes key = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
  const Bytes nonce = hex("070000004041424344454647");
  const Bytes aad = hex("50515253c0c1c2c3c4c5c6c7");
  const std::string text =
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would "
      "be it.";
  const Bytes expected = hex(
      "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b29"
      "05d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b"
      "6116"
      "1ae10b594f09e26a7e902ecbd0600691");  // tag
  EXPECT_EQ(ref_seal(Cipher::ChaCha20Poly1305, key, nonce, aad, Bytes(text.begin(), text.end())), expected);
}

TEST(DataAeadReference, GcmSpecTestCase16Aes256) {
  // McGrew & Viega, "The Galois/Counter Mode of Operation", test case 16.
  const Bytes key = hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
  const Bytes iv = hex("cafebabefacedbaddecaf888");
  const Bytes pt =
      hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0d"
          "e657ba"
          "637b39");
  const Bytes aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
  const Bytes expected = hex(
      "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0a"
      "bcc9f662"
      "76fc6ece0f4e1768cddf8853bb2d551b");  // tag
  EXPECT_EQ(ref_seal(Cipher::Aes256Gcm, key, iv, aad, pt), expected);
}

// --- framing: known answers --------------------------------------------------

// Expected packets computed independently with Python `cryptography`
// (AESGCM / ChaCha20Poly1305): key 20..3f, receiver index 0x11223344,
// counter 0x0102030405060708, plaintext 00..2a (43 bytes).
TEST(DataChannelKat, LiteralPackets) {
  const Key key = test_key(0x20);
  const std::uint32_t index = 0x11223344;
  const std::uint64_t counter = 0x0102030405060708;
  Bytes pt(43);
  for (std::size_t i = 0; i < pt.size(); ++i) pt[i] = std::uint8_t(i);
  struct Case {
    Cipher cipher;
    const char* at_counter;
    const char* empty_at_zero;
  };
  const Case cases[] = {
      {Cipher::Aes256Gcm,
       "040000001122334401020304050607081fb32f1d6925ab8d1e89c2c16d33ce9aaf38a44a42ae40228f7ee2ebdf1aebfbb5d15bfa64c4ec1"
       "3"
       "b0789171d040a5b295abc0a47bbde65070d663",
       "040000001122334400000000000000007a6829dee88c71bb86ab7dbe401bddcd"},
      {Cipher::ChaCha20Poly1305,
       "04000000112233440102030405060708db8366f88eb0ec8919f81e6cb4c319b1fc407d85229990a020562cbb35edf5e707a9ba28e404c96"
       "a"
       "2491cad8a683ed65cd22152377ad1498e62235",
       "0400000011223344000000000000000072c7199ba8d2522b2398f6fc348062aa"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(to_string(c.cipher));
    DataSealer sealer(c.cipher, key, index);
    const Bytes first = seal(sealer, {});
    EXPECT_EQ(first, hex(c.empty_at_zero));
    sealer.advance_to(counter);
    const Bytes second = seal(sealer, pt);
    EXPECT_EQ(second, hex(c.at_counter));
    EXPECT_EQ(second, ref_packet(c.cipher, key, index, counter, pt));

    DataOpener opener(c.cipher, key, index);
    Bytes out(64, 0xee);
    EXPECT_EQ(opener.open(hex(c.empty_at_zero), out).error, Error::None);
    auto r = opener.open(hex(c.at_counter), out);
    ASSERT_EQ(r.error, Error::None);
    EXPECT_EQ(Bytes(out.begin(), out.begin() + long(r.size)), pt);
  }
}

// With an all-zero key and counter 0 the nonce is all zero, so the ciphertext
// of zero bytes is the published keystream: GCM spec test case 14 and
// RFC 8439 appendix A.1 test vector #2 (block counter 1).
TEST(DataChannelKat, ZeroKeyKeystreamMatchesPublishedVectors) {
  const Key zero{};
  {
    DataSealer sealer(Cipher::Aes256Gcm, zero, 7);
    Bytes p = seal(sealer, Bytes(16, 0));
    EXPECT_EQ(Bytes(p.begin() + 16, p.end() - 16), hex("cea7403d4d606b6e074ec5d3baf39d18"));
  }
  {
    DataSealer sealer(Cipher::ChaCha20Poly1305, zero, 7);
    Bytes p = seal(sealer, Bytes(64, 0));
    EXPECT_EQ(Bytes(p.begin() + 16, p.end() - 16),
              hex("9f07e7be5551387a98ba977c732d080dcb0f29a048e3656912c6533e32ee7aed29b721769ce64e43d57133b074d839d531e"
                  "d1f28510afb45ace10a1f4b794d6f"));
  }
}

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

// --- ReplayWindow --------------------------------------------------------------

constexpr std::uint64_t kW = ReplayWindow::kWindowSize;
constexpr std::uint64_t kMax = ~std::uint64_t{0};

TEST(ReplayWindowTest, SizeIsAtLeast2048) { static_assert(kW >= 2048); }

TEST(ReplayWindowTest, FreshWindowAcceptsZeroAndAnything) {
  ReplayWindow w;
  EXPECT_TRUE(w.check(0));
  EXPECT_TRUE(w.check(1));
  EXPECT_TRUE(w.check(kMax));
  w.update(0);
  EXPECT_FALSE(w.check(0));
  EXPECT_TRUE(w.check(1));
  w.update(1);
  EXPECT_FALSE(w.check(1));
}

TEST(ReplayWindowTest, StartingAboveZeroKeepsZeroAvailableInsideWindow) {
  ReplayWindow w;
  w.update(5);
  for (std::uint64_t c = 0; c < 5; ++c) EXPECT_TRUE(w.check(c)) << c;
  w.update(0);
  EXPECT_FALSE(w.check(0));
  EXPECT_TRUE(w.check(4));
}

TEST(ReplayWindowTest, WindowEdge) {
  ReplayWindow w;
  w.update(kW);
  EXPECT_FALSE(w.check(0));  // kW behind the highest: outside
  EXPECT_TRUE(w.check(1));   // kW - 1 behind: inside, unseen
  w.update(1);
  EXPECT_FALSE(w.check(1));
  w.update(0);  // too old: ignored, no effect
  EXPECT_FALSE(w.check(0));
  w.update(kW + 1);
  EXPECT_FALSE(w.check(1));  // slid out
  EXPECT_TRUE(w.check(2));
  EXPECT_FALSE(w.check(kW));
  EXPECT_TRUE(w.check(kW + 2));
}

TEST(ReplayWindowTest, JumpBeyondWindowClearsEverything) {
  ReplayWindow w;
  for (std::uint64_t c = 0; c < 200; ++c) w.update(c);
  const std::uint64_t far = 199 + 3 * kW + 17;
  w.update(far);
  EXPECT_FALSE(w.check(far));
  EXPECT_FALSE(w.check(199));
  EXPECT_FALSE(w.check(far - kW));
  for (std::uint64_t c = far - kW + 1; c < far; ++c) ASSERT_TRUE(w.check(c)) << c;
  // A jump of exactly one ring's worth of words must not leave stale bits.
  ReplayWindow v;
  v.update(64);
  v.update(64 + ReplayWindow::kBitsTotal);
  EXPECT_TRUE(v.check(64 + ReplayWindow::kBitsTotal - 64));
  EXPECT_TRUE(v.check(64 + ReplayWindow::kBitsTotal - 1));
}

TEST(ReplayWindowTest, TopOfCounterSpace) {
  ReplayWindow w;
  w.update(kMax - 1);
  EXPECT_TRUE(w.check(kMax));
  w.update(kMax);
  EXPECT_FALSE(w.check(kMax));
  EXPECT_FALSE(w.check(kMax - 1));
  EXPECT_TRUE(w.check(kMax - 2));
  EXPECT_TRUE(w.check(kMax - kW + 1));
  EXPECT_FALSE(w.check(kMax - kW));
  EXPECT_FALSE(w.check(0));
  w.update(kMax - kW + 1);
  EXPECT_FALSE(w.check(kMax - kW + 1));
  EXPECT_EQ(w.highest(), kMax);
}

// Against a set-based model: random walks with small steps, reordering within
// and beyond the window, and big jumps.
TEST(ReplayWindowTest, MatchesModel) {
  std::mt19937_64 rng(1234);
  for (int round = 0; round < 20; ++round) {
    ReplayWindow w;
    std::set<std::uint64_t> seen;
    std::uint64_t highest = round % 2 ? kMax - 3 * kW : 0;
    bool any = false;
    auto model_check = [&](std::uint64_t c) {
      if (!any || c > highest) return true;
      if (highest - c >= kW) return false;
      return seen.count(c) == 0;
    };
    for (int i = 0; i < 5000; ++i) {
      std::uint64_t c = highest;
      switch (rng() % 6) {
        case 0: c = highest + rng() % 3; break;
        case 1: c = highest + rng() % 200; break;
        case 2: c = highest - std::min<std::uint64_t>(highest, rng() % (kW + 100)); break;
        case 3: c = highest - std::min<std::uint64_t>(highest, rng() % 70); break;
        case 4: c = highest + kW - 64 + rng() % 200; break;
        default: c = rng() % 100 == 0 ? highest + (rng() % (10 * kW)) : highest + 1;
      }
      ASSERT_EQ(w.check(c), model_check(c)) << "round " << round << " i " << i << " c " << c;
      if (model_check(c) || rng() % 4 == 0) {  // occasionally update without a passing check
        w.update(c);
        if (!any || c > highest) highest = c;
        any = true;
        seen.insert(c);
      }
    }
  }
}

}  // namespace
}  // namespace wownet::crypto
