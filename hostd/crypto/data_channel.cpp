#include "crypto/data_channel.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include <array>
#include <cstring>
#include <stdexcept>
#include <string>

#include "core/bytes.h"

namespace wownet::crypto {
namespace {

using Nonce = std::array<std::uint8_t, 12>;

const char* openssl_name(Cipher cipher) {
  switch (cipher) {
    case Cipher::Aes256Gcm: return "AES-256-GCM";
    case Cipher::ChaCha20Poly1305: return "ChaCha20-Poly1305";
  }
  return "";
}

void store64(std::uint8_t* p, std::uint64_t v) {
  store32(p, std::uint32_t(v >> 32));
  store32(p + 4, std::uint32_t(v));
}

std::uint64_t load64(const std::uint8_t* p) { return (std::uint64_t{load32(p)} << 32) | load32(p + 4); }

// Nonce = 4 zero bytes || counter (big-endian).
Nonce make_nonce(std::uint64_t counter) {
  Nonce nonce{};
  store64(nonce.data() + 4, counter);
  return nonce;
}

// Creates a context keyed for `cipher` in the given direction; throws on
// OpenSSL failure (setup only).
detail::CipherCtxPtr make_ctx(Cipher cipher, std::span<const std::uint8_t, kDataKeySize> key, bool encrypt) {
  EVP_CIPHER* evp = EVP_CIPHER_fetch(nullptr, openssl_name(cipher), nullptr);
  if (evp == nullptr) throw std::runtime_error(std::string("wownet: cipher unavailable: ") + openssl_name(cipher));
  detail::CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  bool ok = ctx != nullptr && EVP_CIPHER_get_key_length(evp) == int(kDataKeySize) &&
            EVP_CipherInit_ex(ctx.get(), evp, nullptr, nullptr, nullptr, encrypt ? 1 : 0) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_SET_IVLEN, int(Nonce{}.size()), nullptr) == 1 &&
            EVP_CipherInit_ex(ctx.get(), nullptr, nullptr, key.data(), nullptr, encrypt ? 1 : 0) == 1;
  EVP_CIPHER_free(evp);  // the context holds its own reference
  if (!ok) throw std::runtime_error(std::string("wownet: cannot set up ") + openssl_name(cipher));
  return ctx;
}

// Tag get/set through OSSL_PARAMs directly: cheaper per packet than
// EVP_CIPHER_CTX_ctrl, which builds the same parameters.
bool get_tag(EVP_CIPHER_CTX* ctx, std::uint8_t* tag) {
  OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, kTagSize),
                         OSSL_PARAM_construct_end()};
  return EVP_CIPHER_CTX_get_params(ctx, params) == 1;
}

bool set_tag(EVP_CIPHER_CTX* ctx, std::uint8_t* tag) {
  OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, kTagSize),
                         OSSL_PARAM_construct_end()};
  return EVP_CIPHER_CTX_set_params(ctx, params) == 1;
}

void write_header(std::uint8_t* p, std::uint32_t receiver_index, std::uint64_t counter) {
  p[0] = kDataPacketType;
  p[1] = p[2] = p[3] = 0;
  store32(p + 4, receiver_index);
  store64(p + 8, counter);
}

}  // namespace

void detail::CipherCtxDeleter::operator()(evp_cipher_ctx_st* ctx) const { EVP_CIPHER_CTX_free(ctx); }

std::string_view to_string(Cipher cipher) {
  switch (cipher) {
    case Cipher::Aes256Gcm: return "aes-256-gcm";
    case Cipher::ChaCha20Poly1305: return "chacha20-poly1305";
  }
  return "unknown";
}

std::optional<Cipher> parse_cipher(std::string_view s) {
  auto iequals = [](std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
      char c = a[i];
      if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
      if (c != b[i]) return false;
    }
    return true;
  };
  for (Cipher c : {Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305})
    if (iequals(s, to_string(c))) return c;
  return std::nullopt;
}

DataSealer::DataSealer(Cipher cipher, std::span<const std::uint8_t, kDataKeySize> key,
                       std::uint32_t peer_receiver_index)
    : ctx_(make_ctx(cipher, key, true)), peer_index_(peer_receiver_index), cipher_(cipher) {}

std::size_t DataSealer::seal(ConstByteSpan plaintext, ByteSpan out) {
  if (!ctx_ || counter_ == kCounterExhausted || plaintext.size() > kMaxDataPlaintext ||
      out.size() < plaintext.size() + kDataOverhead)
    return 0;
  const std::uint64_t counter = counter_;
  std::uint8_t* header = out.data();
  std::uint8_t* body = header + kDataHeaderSize;
  std::uint8_t* tag = body + plaintext.size();
  const Nonce nonce = make_nonce(counter);
  // Header first: with in-place sealing the plaintext starts right after it.
  write_header(header, peer_index_, counter);
  EVP_CIPHER_CTX* ctx = ctx_.get();
  int len = 0;
  bool ok = EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce.data()) == 1 &&
            EVP_EncryptUpdate(ctx, nullptr, &len, header, int(kDataHeaderSize)) == 1;
  if (ok && !plaintext.empty()) {
    ok = EVP_EncryptUpdate(ctx, body, &len, plaintext.data(), int(plaintext.size())) == 1 &&
         std::size_t(len) == plaintext.size();
  }
  ok = ok && EVP_EncryptFinal_ex(ctx, tag, &len) == 1 && len == 0 && get_tag(ctx, tag);
  // The nonce is spent even on failure: a counter is never used twice.
  ++counter_;
  if (!ok) {
    OPENSSL_cleanse(out.data(), plaintext.size() + kDataOverhead);
    ERR_clear_error();  // keep this thread's queue clean for the DTLS code
    return 0;
  }
  return plaintext.size() + kDataOverhead;
}

DataOpener::DataOpener(Cipher cipher, std::span<const std::uint8_t, kDataKeySize> key, std::uint32_t my_receiver_index)
    : ctx_(make_ctx(cipher, key, false)), my_index_(my_receiver_index), cipher_(cipher) {}

DataOpener::OpenResult DataOpener::fail(OpenResult::Error error) {
  using E = OpenResult::Error;
  switch (error) {
    case E::None: break;
    case E::Short: ++counters_.short_packet; break;
    case E::BadType: ++counters_.bad_type; break;
    case E::BadReserved: ++counters_.bad_reserved; break;
    case E::WrongReceiver: ++counters_.wrong_receiver; break;
    case E::Replayed: ++counters_.replayed; break;
    case E::BadTag: ++counters_.bad_tag; break;
    case E::OutTooSmall: ++counters_.out_too_small; break;
  }
  return OpenResult{error, 0};
}

std::optional<std::uint32_t> DataOpener::peek_receiver_index(ConstByteSpan packet) {
  if (packet.size() < kDataOverhead || packet[0] != kDataPacketType) return std::nullopt;
  if ((packet[1] | packet[2] | packet[3]) != 0) return std::nullopt;
  return load32(packet.data() + 4);
}

DataOpener::OpenResult DataOpener::open(ConstByteSpan packet, ByteSpan out) {
  using E = OpenResult::Error;
  if (packet.size() < kDataOverhead) return fail(E::Short);
  const std::uint8_t* header = packet.data();
  if (header[0] != kDataPacketType) return fail(E::BadType);
  if ((header[1] | header[2] | header[3]) != 0) return fail(E::BadReserved);
  if (load32(header + 4) != my_index_) return fail(E::WrongReceiver);
  const std::size_t size = packet.size() - kDataOverhead;
  if (size > kMaxDataPlaintext || out.size() < size || !ctx_) return fail(E::OutTooSmall);
  const std::uint64_t counter = load64(header + 8);
  if (!window_.check(counter)) return fail(E::Replayed);

  // The tag is copied out first: with in-place opening nothing overwrites it,
  // but OSSL_PARAM takes a non-const pointer.
  std::array<std::uint8_t, kTagSize> tag;
  std::memcpy(tag.data(), header + kDataHeaderSize + size, kTagSize);
  const Nonce nonce = make_nonce(counter);
  EVP_CIPHER_CTX* ctx = ctx_.get();
  int len = 0;
  bool ok = EVP_DecryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce.data()) == 1 &&
            EVP_DecryptUpdate(ctx, nullptr, &len, header, int(kDataHeaderSize)) == 1;
  if (ok && size != 0) {
    ok = EVP_DecryptUpdate(ctx, out.data(), &len, header + kDataHeaderSize, int(size)) == 1 && std::size_t(len) == size;
  }
  ok = ok && set_tag(ctx, tag.data());
  std::uint8_t final_block[16];  // stream modes write nothing here
  ok = ok && EVP_DecryptFinal_ex(ctx, final_block, &len) == 1 && len == 0;
  if (!ok) {
    OPENSSL_cleanse(out.data(), size);
    ERR_clear_error();  // keep this thread's queue clean for the DTLS code
    return fail(E::BadTag);
  }
  window_.update(counter);
  ++counters_.accepted;
  return OpenResult{E::None, size};
}

}  // namespace wownet::crypto
