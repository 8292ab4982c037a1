// The data channel's names and known answers: the reference AEAD against
// published vectors, literal packets computed independently.
#include "data_channel_fixture.h"

namespace wownet::crypto::data_test {
namespace {

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

}  // namespace
}  // namespace wownet::crypto::data_test
