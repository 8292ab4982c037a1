// The DTLS driver's datagram plumbing: the BIO that queues whole datagrams
// between OpenSSL and the session, and the record framing checks (see
// dtls_internal.h).
#include <openssl/err.h>

#include <algorithm>
#include <cstring>

#include "crypto/dtls_internal.h"

namespace wownet::crypto {
namespace detail {
namespace {

int queue_bio_write(BIO* bio, const char* data, int len) {
  BIO_clear_retry_flags(bio);
  if (len < 0 || (len > 0 && data == nullptr)) return -1;
  auto& queue = queue_of(bio);
  if (queue.size() >= kMaxQueuedDatagrams) return len;  // full: dropped, as a congested link would
  try {
    const auto* p = reinterpret_cast<const std::uint8_t*>(data);
    queue.emplace_back(p, p + len);
  } catch (...) {
    return -1;
  }
  return len;
}

int queue_bio_read(BIO* bio, char* out, int len) {
  BIO_clear_retry_flags(bio);
  auto& queue = queue_of(bio);
  if (queue.empty()) {
    BIO_set_retry_read(bio);
    return -1;
  }
  if (len <= 0 || out == nullptr) return 0;
  const auto n = std::min(queue.front().size(), static_cast<std::size_t>(len));
  std::memcpy(out, queue.front().data(), n);
  queue.pop_front();
  return static_cast<int>(n);
}

long queue_bio_ctrl(BIO* bio, int cmd, long, void*) {
  switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_PENDING: return queue_of(bio).empty() ? 0 : static_cast<long>(queue_of(bio).front().size());
    case BIO_CTRL_WPENDING: return 0;  // every write is already a whole datagram
    case BIO_CTRL_DGRAM_QUERY_MTU:
    case BIO_CTRL_DGRAM_GET_FALLBACK_MTU: return static_cast<long>(kDtlsMtu);
    default: return 0;  // no peer address, no MTU overhead, no socket timeouts
  }
}

int queue_bio_create(BIO* bio) {
  try {
    BIO_set_data(bio, new DatagramQueue);
  } catch (...) {
    return 0;
  }
  BIO_set_init(bio, 1);
  return 1;
}

int queue_bio_destroy(BIO* bio) {
  if (bio == nullptr) return 0;
  delete static_cast<DatagramQueue*>(BIO_get_data(bio));
  BIO_set_data(bio, nullptr);
  BIO_set_init(bio, 0);
  return 1;
}

}  // namespace

BIO_METHOD* queue_bio_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "wownet datagram queue");
    if (m == nullptr) return m;
    BIO_meth_set_write(m, queue_bio_write);
    BIO_meth_set_read(m, queue_bio_read);
    BIO_meth_set_ctrl(m, queue_bio_ctrl);
    BIO_meth_set_create(m, queue_bio_create);
    BIO_meth_set_destroy(m, queue_bio_destroy);
    return m;
  }();
  return method;
}

bool looks_like_client_hello(ConstByteSpan data) {
  bool first = true, hello = false;
  const bool framed = for_each_record(data, [&](const RecordView& r) {
    if (first)
      hello = r.type == kContentHandshake && r.epoch == 0 && r.body.size() >= kHandshakeHeaderSize &&
              r.body[0] == kHandshakeClientHello;
    first = false;
  });
  return framed && hello;
}

std::optional<std::array<std::uint8_t, 32>> client_hello_random(ConstByteSpan data) {
  std::optional<std::array<std::uint8_t, 32>> random;
  bool first = true;
  const bool framed = for_each_record(data, [&](const RecordView& r) {
    constexpr std::size_t kRandomOffset = kHandshakeHeaderSize + 2;  // after client_version
    if (first && r.type == kContentHandshake && r.epoch == 0 && r.body.size() >= kRandomOffset + 32 &&
        r.body[0] == kHandshakeClientHello && r.body[6] == 0 && r.body[7] == 0 && r.body[8] == 0) {
      random.emplace();
      std::copy_n(r.body.begin() + kRandomOffset, 32, random->begin());
    }
    first = false;
  });
  return framed ? random : std::nullopt;
}

std::string openssl_error_text() {
  const unsigned long e = ERR_peek_error();
  if (e == 0) return {};
  const char* reason = ERR_reason_error_string(e);
  if (reason != nullptr) return reason;
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

}  // namespace detail

bool is_dtls_client_hello(ConstByteSpan datagram) { return detail::looks_like_client_hello(datagram); }

}  // namespace wownet::crypto
