// Internals shared by the files of the DTLS driver (see dtls.h): OpenSSL
// handles, the datagram-queue BIO (dtls_datagram.cpp), DTLS record framing,
// and the state behind DtlsContext (dtls_context.cpp) that sessions
// (dtls.cpp) share. Not for use outside hostd/crypto.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/bytes.h"
#include "crypto/dtls.h"
#include "crypto/ossl.h"

namespace wownet::crypto::detail {

// Owning wrappers (ossl.h's deleter). In `detail` because the session and
// context cores (declared in dtls.h) hold them.
template <auto Free>
using DtlsFree = ossl::Deleter<Free>;
using DtlsSslCtxHandle = std::unique_ptr<SSL_CTX, DtlsFree<SSL_CTX_free>>;
using DtlsSslHandle = std::unique_ptr<SSL, DtlsFree<SSL_free>>;
using DtlsBioAddrHandle = std::unique_ptr<BIO_ADDR, DtlsFree<BIO_ADDR_free>>;
using DtlsMacHandle = std::unique_ptr<EVP_MAC, DtlsFree<EVP_MAC_free>>;

// State shared by a context and the sessions created from it.
struct DtlsContextShared {
  DtlsSslCtxHandle ctx;
  DtlsMacHandle hmac;
  // Cookies are checked against the current secret and the previous one.
  std::array<std::uint8_t, 32> cookie_secret{};
  std::array<std::uint8_t, 32> previous_cookie_secret{};
  bool has_previous_secret = false;
  DtlsTimers timers;

  ~DtlsContextShared() {
    OPENSSL_cleanse(cookie_secret.data(), cookie_secret.size());
    OPENSSL_cleanse(previous_cookie_secret.data(), previous_cookie_secret.size());
  }
};

using Datagram = std::vector<std::uint8_t>;

constexpr std::size_t kRecordHeaderSize = 13;
constexpr std::size_t kHandshakeHeaderSize = 12;
constexpr std::uint8_t kContentHandshake = 22;
constexpr std::uint8_t kHandshakeClientHello = 1;
constexpr std::size_t kMaxQueuedDatagrams = 512;

// ---------------------------------------------------------------------------
// A BIO that is a FIFO of whole datagrams: each BIO_write is one datagram,
// each BIO_read returns one datagram (truncated to the buffer, like recv).

using DatagramQueue = std::deque<Datagram>;

inline DatagramQueue& queue_of(BIO* bio) { return *static_cast<DatagramQueue*>(BIO_get_data(bio)); }

// The queue BIO's method (created once); null if OpenSSL cannot allocate it.
BIO_METHOD* queue_bio_method();

// ---------------------------------------------------------------------------
// DTLS record framing (RFC 6347 §4.1), just enough to sanity-check datagrams.

struct RecordView {
  std::uint8_t type = 0;
  std::uint16_t epoch = 0;
  ConstByteSpan body;
};

// Calls f(record) for each record; false unless `data` is a non-empty run of
// well-framed DTLS records (content type 20..23, version 0xFE.., lengths fit).
template <class F>
bool for_each_record(ConstByteSpan data, F&& f) {
  if (data.empty()) return false;
  std::size_t off = 0;
  while (off < data.size()) {
    if (data.size() - off < kRecordHeaderSize) return false;
    const std::uint8_t* h = data.data() + off;
    if (h[0] < 20 || h[0] > 23 || h[1] != 0xfe) return false;
    const std::size_t length = load16(h + 11);
    if (length > data.size() - off - kRecordHeaderSize) return false;
    f(RecordView{h[0], load16(h + 3), data.subspan(off + kRecordHeaderSize, length)});
    off += kRecordHeaderSize + length;
  }
  return true;
}

// True if the datagram's first record is an epoch-0 handshake record that
// starts a ClientHello.
bool looks_like_client_hello(ConstByteSpan data);

// The 32-byte random of a ClientHello whose first fragment is in the
// datagram's first record; nullopt if there is none.
std::optional<std::array<std::uint8_t, 32>> client_hello_random(ConstByteSpan data);

// First OpenSSL error on this thread's queue as text ("" if none).
std::string openssl_error_text();

// What an SSL's app data points to: the cookie callbacks need the secret and
// the peer address; the verify and info callbacks need the session.
struct DtlsSslOwner {
  std::shared_ptr<const DtlsContextShared> shared;
  std::string peer_address;
  DtlsSessionCore* session = nullptr;  // null for the listener
};

struct DtlsContextCore {
  std::shared_ptr<DtlsContextShared> shared;
  DtlsSslOwner listener_owner;
  DtlsSslHandle listener;  // after listener_owner: freed first
  DtlsBioAddrHandle listen_addr;
  DtlsContext::Stats stats;
};

inline DtlsSslOwner* owner_of(const SSL* ssl) { return static_cast<DtlsSslOwner*>(SSL_get_app_data(ssl)); }

// The context's certificate verify callback: hands the peer's certificate to
// the session's Verifier (defined with the session, in dtls.cpp).
int cert_verify_cb(X509_STORE_CTX* store_ctx, void*);

}  // namespace wownet::crypto::detail
