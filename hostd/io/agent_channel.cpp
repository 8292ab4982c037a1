#include "io/agent_channel.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstring>

namespace wownet::io {

AgentChannel::AgentChannel(boost::asio::io_context& io, Gate gate, Handler handler)
    : socket_(io), gate_(std::move(gate)), handler_(std::move(handler)) {}

std::uint64_t AgentChannel::malformed() const {
  std::uint64_t n = 0;
  for (auto m : malformed_) n += m;
  return n;
}

std::error_code AgentChannel::open(std::uint16_t port) {
  boost::system::error_code ec;
  socket_.open(boost::asio::ip::udp::v4(), ec);
  if (ec) return ec;
  socket_.set_option(boost::asio::socket_base::reuse_address(true), ec);
  int one = 1;
  if (::setsockopt(socket_.native_handle(), IPPROTO_IP, IP_PKTINFO, &one, sizeof one) < 0)
    return {errno, std::system_category()};
  socket_.bind({boost::asio::ip::address_v4::any(), port}, ec);
  if (ec) return ec;
  socket_.non_blocking(true, ec);
  if (ec) return ec;
  wait();
  return {};
}

void AgentChannel::close() {
  boost::system::error_code ec;
  socket_.close(ec);
}

void AgentChannel::wait() {
  socket_.async_wait(boost::asio::ip::udp::socket::wait_read, [this](const boost::system::error_code& ec) {
    if (ec) return;  // operation_aborted: shutting down
    drain();
    wait();
  });
}

void AgentChannel::drain() {
  std::array<std::uint8_t, kMaxAgentReport + 1> buf;
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(in_pktinfo))> control;
  for (int i = 0; i < 64; ++i) {
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    ssize_t n = ::recvmsg(socket_.native_handle(), &msg, 0);
    if (n < 0) return;
    int ifindex = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
        in_pktinfo info;
        std::memcpy(&info, CMSG_DATA(c), sizeof info);
        ifindex = info.ipi_ifindex;
      }
    }
    if (!gate_(ifindex)) continue;
    wownet::agent::Report report;
    AgentReportError e = decode_agent_report(buf.data(), std::size_t(n), report);
    if (e != AgentReportError::None) {
      ++malformed_[std::size_t(e)];
      continue;
    }
    handler_(ifindex, report);
  }
}

}  // namespace wownet::io
