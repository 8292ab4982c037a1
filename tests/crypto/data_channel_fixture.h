// The harness of the data channel tests: test keys and payloads, an
// independent one-shot AEAD (ref_seal) and the packets it expects.
#pragma once

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

namespace wownet::crypto::data_test {

using Bytes = std::vector<std::uint8_t>;
using Error = DataOpener::OpenResult::Error;
using Key = std::array<std::uint8_t, kDataKeySize>;

inline Bytes hex(std::string_view s) {
  Bytes out;
  auto nibble = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  for (std::size_t i = 0; i + 1 < s.size(); i += 2) out.push_back(std::uint8_t(nibble(s[i]) << 4 | nibble(s[i + 1])));
  return out;
}

inline Key test_key(std::uint8_t first) {
  Key k;
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = std::uint8_t(first + i);
  return k;
}

inline Bytes pattern(std::size_t n, std::uint32_t seed = 1) {
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
inline Bytes ref_seal(Cipher cipher, const Bytes& key, const Bytes& nonce, const Bytes& aad, const Bytes& pt) {
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
inline Bytes ref_packet(Cipher cipher, const Key& key, std::uint32_t index, std::uint64_t counter, const Bytes& pt) {
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

inline Bytes seal(DataSealer& s, const Bytes& pt) {
  Bytes out(pt.size() + kDataOverhead);
  std::size_t n = s.seal(pt, out);
  EXPECT_EQ(n, out.size());
  return out;
}

inline std::string cipher_name(const testing::TestParamInfo<Cipher>& info) {
  return info.param == Cipher::Aes256Gcm ? "Aes256Gcm" : "ChaCha20Poly1305";
}

}  // namespace wownet::crypto::data_test
