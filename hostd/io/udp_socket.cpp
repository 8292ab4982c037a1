#include "io/udp_socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/udp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace wownet::io {

namespace {

std::error_code last_error() { return {errno, std::system_category()}; }

sockaddr_in to_sockaddr(Ipv4SocketAddress a) {
  sockaddr_in s{};
  s.sin_family = AF_INET;
  s.sin_addr.s_addr = htonl(a.address.value);
  s.sin_port = htons(a.port);
  return s;
}

bool would_block(int e) { return e == EAGAIN || e == EWOULDBLOCK; }

}  // namespace

UdpReceiveBatch::UdpReceiveBatch(std::size_t capacity, std::size_t buffer_size)
    : buffer_size_(buffer_size),
      storage_(capacity * buffer_size),
      messages_(capacity),
      iovecs_(capacity),
      names_(capacity),
      controls_(capacity),
      received_(capacity) {
  for (std::size_t i = 0; i < capacity; ++i) {
    iovecs_[i].iov_base = storage_.data() + i * buffer_size;
    iovecs_[i].iov_len = buffer_size;
    msghdr& h = messages_[i].msg_hdr;
    h.msg_name = &names_[i];
    h.msg_iov = &iovecs_[i];
    h.msg_iovlen = 1;
    h.msg_control = controls_[i].data();
  }
}

UdpSocket::UdpSocket() : send_messages_(kMaxGsoSegments), send_iovecs_(kMaxGsoSegments) {}

UdpSocket::~UdpSocket() { close(); }

void UdpSocket::close() {
  if (watcher_) {
    boost::system::error_code ignored;
    watcher_->cancel(ignored);
    (void)watcher_->release();  // the descriptor is ours to close
    watcher_.reset();
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  gso_enabled_ = gro_enabled_ = gso_worked_ = false;
  gso_reason_ = gro_reason_ = "not open";
  gso_error_ = gro_error_ = {};
}

std::error_code UdpSocket::open(Ipv4SocketAddress local, UdpSocketOptions options) {
  close();
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return last_error();
  auto fail = [&] {
    std::error_code ec = last_error();
    ::close(fd);
    return ec;
  };
  if (options.send_buffer_bytes > 0 &&
      ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &options.send_buffer_bytes, sizeof(int)) < 0)
    return fail();
  if (options.receive_buffer_bytes > 0 &&
      ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &options.receive_buffer_bytes, sizeof(int)) < 0)
    return fail();
  sockaddr_in addr = to_sockaddr(local);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) return fail();
  socklen_t len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) < 0) return fail();
  fd_ = fd;
  local_ = {Ipv4Addr{ntohl(addr.sin_addr.s_addr)}, ntohs(addr.sin_port)};
  socklen_t ttl_len = sizeof default_ttl_;
  if (::getsockopt(fd, IPPROTO_IP, IP_TTL, &default_ttl_, &ttl_len) < 0) default_ttl_ = 64;

  // UDP_SEGMENT is only known to kernels that honour it; an older kernel
  // would ignore the control message and send one oversized datagram.
  int value = 0;
  len = sizeof value;
  if (!options.gso) {
    gso_reason_ = "turned off by configuration";
  } else if (::getsockopt(fd, SOL_UDP, UDP_SEGMENT, &value, &len) < 0) {
    gso_error_ = last_error();
    gso_reason_ = "the kernel does not know UDP_SEGMENT";
  } else {
    gso_enabled_ = true;
    gso_reason_ = "";
  }
  value = 1;
  if (!options.gro) {
    gro_reason_ = "turned off by configuration";
  } else if (::setsockopt(fd, SOL_UDP, UDP_GRO, &value, sizeof value) < 0) {
    gro_error_ = last_error();
    gro_reason_ = "the kernel refused UDP_GRO";
  } else {
    gro_enabled_ = true;
    gro_reason_ = "";
  }
  return {};
}

void UdpSocket::disable_gso(std::string_view reason, std::error_code error) {
  gso_enabled_ = false;
  gso_reason_ = reason;
  gso_error_ = error;
}

std::error_code UdpSocket::send(Ipv4SocketAddress to, ConstByteSpan datagram) {
  sockaddr_in addr = to_sockaddr(to);
  if (::sendto(fd_, datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0)
    return last_error();
  ++stats_.datagrams_sent;
  return {};
}

std::error_code UdpSocket::send(Ipv4SocketAddress to, ConstByteSpan prefix, ConstByteSpan datagram) {
  sockaddr_in addr = to_sockaddr(to);
  iovec iov[2] = {{const_cast<std::uint8_t*>(prefix.data()), prefix.size()},
                  {const_cast<std::uint8_t*>(datagram.data()), datagram.size()}};
  msghdr msg{};
  msg.msg_name = &addr;
  msg.msg_namelen = sizeof addr;
  msg.msg_iov = iov;
  msg.msg_iovlen = 2;
  if (::sendmsg(fd_, &msg, 0) < 0) return last_error();
  ++stats_.datagrams_sent;
  return {};
}

std::error_code UdpSocket::set_ttl(int ttl) {
  const int value = ttl == 0 ? default_ttl_ : ttl;
  if (::setsockopt(fd_, IPPROTO_IP, IP_TTL, &value, sizeof value) < 0) return last_error();
  return {};
}

UdpSendResult UdpSocket::send_separately(const sockaddr_in& to, ConstByteSpan chunk, std::size_t segment_size) {
  UdpSendResult result;
  std::size_t count = (chunk.size() + segment_size - 1) / segment_size;
  std::size_t done = 0;
  while (done < count) {
    std::size_t n = std::min(count - done, send_messages_.size());
    for (std::size_t i = 0; i < n; ++i) {
      std::size_t at = (done + i) * segment_size;
      send_iovecs_[i].iov_base = const_cast<std::uint8_t*>(chunk.data() + at);
      send_iovecs_[i].iov_len = std::min(segment_size, chunk.size() - at);
      msghdr& h = send_messages_[i].msg_hdr;
      h = msghdr{};
      h.msg_name = const_cast<sockaddr_in*>(&to);
      h.msg_namelen = sizeof to;
      h.msg_iov = &send_iovecs_[i];
      h.msg_iovlen = 1;
    }
    int sent = ::sendmmsg(fd_, send_messages_.data(), unsigned(n), 0);
    if (sent < 0) {
      result.error = last_error();
      break;
    }
    done += std::size_t(sent);
    stats_.datagrams_sent += std::size_t(sent);
  }
  result.datagrams = done;
  return result;
}

UdpSendResult UdpSocket::send_train(Ipv4SocketAddress to, ConstByteSpan train, std::size_t segment_size) {
  UdpSendResult result;
  if (segment_size == 0 || train.empty()) {
    result.error = std::make_error_code(std::errc::invalid_argument);
    return result;
  }
  if (segment_size > kMaxPayload) {
    result.error = std::make_error_code(std::errc::message_size);
    return result;
  }
  const sockaddr_in addr = to_sockaddr(to);
  const std::size_t per_call = std::min(kMaxGsoSegments, kMaxPayload / segment_size);
  std::size_t offset = 0;
  while (offset < train.size()) {
    ConstByteSpan chunk = train.subspan(offset, std::min(train.size() - offset, per_call * segment_size));
    std::size_t count = (chunk.size() + segment_size - 1) / segment_size;
    if (gso_enabled_ && count > 1) {
      iovec iov{const_cast<std::uint8_t*>(chunk.data()), chunk.size()};
      alignas(cmsghdr) std::uint8_t control[CMSG_SPACE(sizeof(std::uint16_t))] = {};
      msghdr h{};
      h.msg_name = const_cast<sockaddr_in*>(&addr);
      h.msg_namelen = sizeof addr;
      h.msg_iov = &iov;
      h.msg_iovlen = 1;
      h.msg_control = control;
      h.msg_controllen = sizeof control;
      cmsghdr* c = CMSG_FIRSTHDR(&h);
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
      const std::uint16_t gso_size = std::uint16_t(segment_size);
      std::memcpy(CMSG_DATA(c), &gso_size, sizeof gso_size);
      if (::sendmsg(fd_, &h, 0) >= 0) {
        gso_worked_ = true;
        ++stats_.gso_sends;
        stats_.datagrams_sent += count;
        result.datagrams += count;
        offset += chunk.size();
        continue;
      }
      int e = errno;
      if (would_block(e) || (e != EIO && e != EINVAL)) {
        result.error = {e, std::system_category()};
        return result;
      }
      // EIO: the route's device cannot checksum UDP for us, for good. EINVAL
      // on the first try: this kernel or socket will not do GSO; later, only
      // this train's segments are too large for the path.
      if (e == EIO)
        disable_gso("the kernel refused UDP GSO (EIO: no checksum offload on the route's device)",
                    {e, std::system_category()});
      if (e == EINVAL && !gso_worked_)
        disable_gso("the kernel refused UDP GSO on the first send (EINVAL)", {e, std::system_category()});
      ++stats_.gso_fallbacks;
    }
    UdpSendResult part = send_separately(addr, chunk, segment_size);
    result.datagrams += part.datagrams;
    if (part.error) {
      result.error = part.error;
      return result;
    }
    offset += chunk.size();
  }
  return result;
}

std::error_code UdpSocket::receive(UdpReceiveBatch& batch) {
  batch.count_ = 0;
  const std::size_t n = batch.capacity();
  for (std::size_t i = 0; i < n; ++i) {
    msghdr& h = batch.messages_[i].msg_hdr;
    h.msg_namelen = sizeof(sockaddr_in);
    h.msg_controllen = UdpReceiveBatch::kControlSize;
    h.msg_flags = 0;
    batch.messages_[i].msg_len = 0;
  }
  int got = ::recvmmsg(fd_, batch.messages_.data(), unsigned(n), 0, nullptr);
  if (got < 0) {
    if (would_block(errno)) return {};
    return last_error();
  }
  for (std::size_t i = 0; i < std::size_t(got); ++i) {
    msghdr& h = batch.messages_[i].msg_hdr;
    ReceivedBuffer& r = batch.received_[i];
    std::size_t size = batch.messages_[i].msg_len;
    r.bytes = ByteSpan(static_cast<std::uint8_t*>(batch.iovecs_[i].iov_base), std::min(size, batch.buffer_size_));
    const sockaddr_in& from = batch.names_[i];
    r.from = {Ipv4Addr{ntohl(from.sin_addr.s_addr)}, ntohs(from.sin_port)};
    r.segment_size = r.bytes.size();
    r.truncated = (h.msg_flags & MSG_TRUNC) != 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
      if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
        int gso_size = 0;
        std::memcpy(&gso_size, CMSG_DATA(c), sizeof gso_size);
        if (gso_size > 0) r.segment_size = std::size_t(gso_size);
      }
    }
    if (r.truncated) ++stats_.truncated;
    ++stats_.buffers_received;
    stats_.datagrams_received += r.datagram_count();
  }
  batch.count_ = std::size_t(got);
  return {};
}

}  // namespace wownet::io
