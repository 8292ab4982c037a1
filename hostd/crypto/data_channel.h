// AEAD data channel: seals and opens the tunnel's data packets with the
// per-direction keys exported from the DTLS 1.2 handshake. One OpenSSL
// EVP_CIPHER_CTX per direction, created once and re-keyed with only the IV
// per packet: no heap allocation and no exceptions per packet.
//
// Wire format (big-endian); the 16-byte header is the AEAD additional data:
//   0      type = 4 (data)
//   1..3   reserved, zero (receivers drop non-zero)
//   4..7   receiver index (chosen by the receiver at handshake)
//   8..15  counter
//   16..   ciphertext of the bare IPv4 packet, then the 16-byte tag
// Nonce (96 bits) = 4 zero bytes || counter (RFC 8439 §2.8 / NIST SP 800-38D
// deterministic construction: unique per key while counters never repeat).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "core/overlay_wire.h"
#include "core/packet.h"
#include "crypto/replay_window.h"

struct evp_cipher_ctx_st;

namespace wownet::crypto {

enum class Cipher : std::uint8_t { Aes256Gcm, ChaCha20Poly1305 };

// "aes-256-gcm" or "chacha20-poly1305".
std::string_view to_string(Cipher cipher);
// Inverse of to_string (case-insensitive); nullopt on anything else.
std::optional<Cipher> parse_cipher(std::string_view s);

inline constexpr std::uint8_t kDataPacketType = std::uint8_t(wire::DatagramType::Data);
inline constexpr std::size_t kDataHeaderSize = 16, kTagSize = 16, kDataOverhead = 32;
inline constexpr std::size_t kDataKeySize = 32;
// Largest plaintext seal()/open() handle (EVP lengths are int).
inline constexpr std::size_t kMaxDataPlaintext = (std::size_t{1} << 30);
// Suggested should_rekey() limit, as WireGuard's REKEY_AFTER_MESSAGES.
inline constexpr std::uint64_t kRekeyAfterMessages = std::uint64_t{1} << 60;
// A sealer never uses this counter value: reaching it means exhausted.
inline constexpr std::uint64_t kCounterExhausted = ~std::uint64_t{0};

namespace detail {
struct CipherCtxDeleter {
  void operator()(evp_cipher_ctx_st* ctx) const;
};
using CipherCtxPtr = std::unique_ptr<evp_cipher_ctx_st, CipherCtxDeleter>;
}  // namespace detail

// Sending half of a session. Non-copyable, movable (a moved-from sealer
// seals nothing).
class DataSealer {
 public:
  // Throws std::runtime_error if OpenSSL cannot set up the cipher (session
  // setup only, never per packet).
  DataSealer(Cipher cipher, std::span<const std::uint8_t, kDataKeySize> key, std::uint32_t peer_receiver_index);
  DataSealer(DataSealer&&) noexcept = default;
  DataSealer& operator=(DataSealer&&) noexcept = default;
  DataSealer(const DataSealer&) = delete;
  DataSealer& operator=(const DataSealer&) = delete;
  ~DataSealer() = default;

  // Writes header + ciphertext + tag of `plaintext` to `out` and returns
  // plaintext.size() + kDataOverhead; 0 (counter unchanged) if out is too
  // small, plaintext is over kMaxDataPlaintext or the counter is exhausted;
  // 0 with the counter spent if OpenSSL fails. In place is allowed:
  // plaintext.data() == out.data() + kDataHeaderSize; no other overlap.
  std::size_t seal(ConstByteSpan plaintext, ByteSpan out);

  // Counter the next sealed packet will carry (= packets sealed so far).
  std::uint64_t counter() const { return counter_; }
  // True once `limit` or more packets have been sealed with this key.
  bool should_rekey(std::uint64_t limit) const { return counter_ >= limit; }
  // Moves the counter forward to `next` (never back, so nonces never
  // repeat); for tests and for resuming above a known high-water mark.
  void advance_to(std::uint64_t next) {
    if (next > counter_) counter_ = next;
  }
  Cipher cipher() const { return cipher_; }
  std::uint32_t peer_receiver_index() const { return peer_index_; }

 private:
  detail::CipherCtxPtr ctx_;
  std::uint64_t counter_ = 0;
  std::uint32_t peer_index_;
  Cipher cipher_;
};

// Per-outcome packet counts of a DataOpener.
struct OpenCounters {
  std::uint64_t accepted = 0;
  std::uint64_t short_packet = 0;
  std::uint64_t bad_type = 0;
  std::uint64_t bad_reserved = 0;
  std::uint64_t wrong_receiver = 0;
  std::uint64_t out_too_small = 0;
  std::uint64_t replayed = 0;
  std::uint64_t bad_tag = 0;
};

// Receiving half of a session. Non-copyable, movable.
class DataOpener {
 public:
  struct OpenResult {
    // OutTooSmall is a caller error (out shorter than packet - overhead).
    enum class Error { None, Short, BadType, BadReserved, WrongReceiver, Replayed, BadTag, OutTooSmall };
    Error error;
    std::size_t size;  // plaintext bytes written to out; 0 on any error
  };

  // Throws std::runtime_error if OpenSSL cannot set up the cipher.
  DataOpener(Cipher cipher, std::span<const std::uint8_t, kDataKeySize> key, std::uint32_t my_receiver_index);
  DataOpener(DataOpener&&) noexcept = default;
  DataOpener& operator=(DataOpener&&) noexcept = default;
  DataOpener(const DataOpener&) = delete;
  DataOpener& operator=(const DataOpener&) = delete;
  ~DataOpener() = default;

  // Checks the header and the replay window, decrypts into `out` and verifies
  // the tag, then marks the counter seen. On BadTag the bytes written to out
  // are wiped. In place is allowed: out.data() == packet.data() +
  // kDataHeaderSize; any other overlap is not. Never throws.
  OpenResult open(ConstByteSpan packet, ByteSpan out);

  // Receiver index of a data packet (size, type and reserved bytes checked,
  // nothing authenticated), for the io layer to find the session.
  static std::optional<std::uint32_t> peek_receiver_index(ConstByteSpan packet);

  const OpenCounters& counters() const { return counters_; }
  const ReplayWindow& replay_window() const { return window_; }
  Cipher cipher() const { return cipher_; }
  std::uint32_t receiver_index() const { return my_index_; }

 private:
  OpenResult fail(OpenResult::Error error);

  detail::CipherCtxPtr ctx_;
  ReplayWindow window_;
  OpenCounters counters_;
  std::uint32_t my_index_;
  Cipher cipher_;
};

}  // namespace wownet::crypto
