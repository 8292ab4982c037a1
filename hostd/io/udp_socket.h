// The overlay's UDP socket: the one place wownet calls sendmsg, sendmmsg and
// recvmmsg for overlay traffic. IPv4, non-blocking, a plain descriptor;
// Asio is used only to wait until it is readable.
//
// Send side: a "train" (equal-sized datagrams back to back in one buffer,
// the last may be shorter) leaves with one sendmsg carrying UDP_SEGMENT
// (UDP GSO, Linux >= 4.18), up to 64 datagrams and 65507 bytes per call.
// If the kernel refuses GSO (EIO: the route's device cannot checksum UDP;
// EINVAL on the very first GSO send) the socket stops using it, says why in
// gso_disabled_reason(), and sends trains with sendmmsg, one entry per
// datagram. A later EINVAL (a segment larger than that path takes) sends
// just that train without GSO.
//
// Receive side: recvmmsg into a UdpReceiveBatch allocated once. With UDP_GRO
// (Linux >= 5.0) the kernel may put several datagrams of one source in one
// buffer, all segment_size bytes but the last; ReceivedBuffer::datagram(i)
// takes them apart. Without UDP_GRO each buffer holds one datagram.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "core/packet.h"
#include "core/types.h"
#include "io/asio.h"

namespace wownet::io {

struct Ipv4SocketAddress {
  Ipv4Addr address;
  std::uint16_t port = 0;
  auto operator<=>(const Ipv4SocketAddress&) const = default;
};

// One receive buffer after UdpSocket::receive: one datagram, or with
// UDP_GRO several of the same source, each segment_size bytes but the last.
struct ReceivedBuffer {
  ByteSpan bytes;
  Ipv4SocketAddress from;
  std::size_t segment_size = 0;  // the UDP_GRO gso_size; bytes.size() if none
  bool truncated = false;        // did not fit the buffer (MSG_TRUNC): the tail is lost

  std::size_t datagram_count() const {
    if (bytes.empty() || segment_size == 0) return 1;  // an empty datagram is one too
    return (bytes.size() + segment_size - 1) / segment_size;
  }
  // The i-th datagram, i < datagram_count().
  ByteSpan datagram(std::size_t i) const {
    std::size_t at = i * segment_size;
    return bytes.subspan(at, std::min(segment_size, bytes.size() - at));
  }
};

// Buffers and message headers for one recvmmsg, allocated once. A buffer
// must hold 65535 bytes for UDP_GRO not to truncate (kGroBufferSize).
class UdpReceiveBatch {
 public:
  static constexpr std::size_t kGroBufferSize = 65535;
  explicit UdpReceiveBatch(std::size_t capacity, std::size_t buffer_size = kGroBufferSize);
  UdpReceiveBatch(const UdpReceiveBatch&) = delete;
  UdpReceiveBatch& operator=(const UdpReceiveBatch&) = delete;

  std::size_t capacity() const { return received_.size(); }
  std::size_t buffer_size() const { return buffer_size_; }
  // Buffers filled by the last receive.
  std::span<const ReceivedBuffer> buffers() const { return {received_.data(), count_}; }
  std::size_t size() const { return count_; }
  const ReceivedBuffer& operator[](std::size_t i) const { return received_[i]; }

 private:
  friend class UdpSocket;
  static constexpr std::size_t kControlSize = 64;
  std::size_t buffer_size_;
  std::size_t count_ = 0;
  std::vector<std::uint8_t> storage_;
  std::vector<mmsghdr> messages_;
  std::vector<iovec> iovecs_;
  std::vector<sockaddr_in> names_;
  std::vector<std::array<std::uint8_t, kControlSize>> controls_;
  std::vector<ReceivedBuffer> received_;
};

struct UdpSocketOptions {
  bool gso = true;               // send trains with UDP_SEGMENT when the kernel can
  bool gro = true;               // ask for UDP_GRO on receive
  int send_buffer_bytes = 0;     // SO_SNDBUF if non-zero
  int receive_buffer_bytes = 0;  // SO_RCVBUF if non-zero
};

struct UdpSendResult {
  std::size_t datagrams = 0;  // datagrams handed to the kernel
  std::error_code error;      // why the rest were not; would_block when the buffer is full
};

struct UdpSocketStats {
  std::uint64_t datagrams_sent = 0;
  std::uint64_t gso_sends = 0;         // sendmsg calls with UDP_SEGMENT
  std::uint64_t gso_fallbacks = 0;     // trains sent without GSO after a refusal
  std::uint64_t buffers_received = 0;  // receive buffers filled
  std::uint64_t datagrams_received = 0;
  std::uint64_t truncated = 0;  // buffers that did not fit
};

class UdpSocket {
 public:
  static constexpr std::size_t kMaxPayload = 65507;   // 65535 - IPv4 and UDP headers
  static constexpr std::size_t kMaxGsoSegments = 64;  // the kernel's UDP_MAX_SEGMENTS

  UdpSocket();
  ~UdpSocket();
  UdpSocket(const UdpSocket&) = delete;
  UdpSocket& operator=(const UdpSocket&) = delete;

  // Opens a non-blocking socket bound to `local` (port 0: any free one).
  std::error_code open(Ipv4SocketAddress local, UdpSocketOptions options = {});
  // Closes the descriptor; a pending wait_readable ends with operation_aborted.
  void close();
  bool is_open() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  // The bound address, with the port the kernel chose.
  Ipv4SocketAddress local_address() const { return local_; }

  // Sends one datagram.
  std::error_code send(Ipv4SocketAddress to, ConstByteSpan datagram);
  // Sends one datagram made of `prefix` then `datagram` (a relay header
  // before a node's datagram), without copying them together.
  std::error_code send(Ipv4SocketAddress to, ConstByteSpan prefix, ConstByteSpan datagram);
  // Sets the IP TTL of what is sent from now on; 0 restores the default.
  std::error_code set_ttl(int ttl);
  // Sends `train` as datagrams of `segment_size` bytes (the last may be
  // shorter) to `to`, in order; see the top of this file. Stops at the
  // first error, reporting how many datagrams went.
  [[nodiscard]] UdpSendResult send_train(Ipv4SocketAddress to, ConstByteSpan train, std::size_t segment_size);
  // Receives with one recvmmsg into `batch` (batch.size() buffers). Nothing
  // to read is no error: an empty batch.
  std::error_code receive(UdpReceiveBatch& batch);

  bool gso_enabled() const { return gso_enabled_; }
  // Why trains go without UDP_SEGMENT, and the kernel's error if it said so.
  std::string_view gso_disabled_reason() const { return gso_reason_; }
  std::error_code gso_error() const { return gso_error_; }
  bool gro_enabled() const { return gro_enabled_; }
  std::string_view gro_disabled_reason() const { return gro_reason_; }
  std::error_code gro_error() const { return gro_error_; }
  const UdpSocketStats& stats() const { return stats_; }

  // Calls `handler(const boost::system::error_code&)` once the socket is
  // readable, on `executor`. Only waits: reading is receive()'s job.
  template <typename Handler>
  void wait_readable(const boost::asio::any_io_executor& executor, Handler&& handler) {
    if (!watcher_) watcher_.emplace(executor, fd_);
    watcher_->async_wait(boost::asio::posix::stream_descriptor::wait_read, std::forward<Handler>(handler));
  }

 private:
  void disable_gso(std::string_view reason, std::error_code error);
  UdpSendResult send_separately(const sockaddr_in& to, ConstByteSpan chunk, std::size_t segment_size);

  int fd_ = -1;
  int default_ttl_ = 64;
  Ipv4SocketAddress local_;
  bool gso_enabled_ = false;
  bool gso_worked_ = false;  // a GSO send has succeeded on this socket
  std::string_view gso_reason_ = "not open";
  std::error_code gso_error_;
  bool gro_enabled_ = false;
  std::string_view gro_reason_ = "not open";
  std::error_code gro_error_;
  UdpSocketStats stats_;
  std::vector<mmsghdr> send_messages_;  // kMaxGsoSegments each, allocated once
  std::vector<iovec> send_iovecs_;
  std::optional<boost::asio::posix::stream_descriptor> watcher_;
};

}  // namespace wownet::io
