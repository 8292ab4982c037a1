#include "io/report_sender.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace wownet::agent {
namespace {

std::error_code last_error() { return {errno, std::system_category()}; }

}  // namespace

std::optional<ReportSender> ReportSender::open(const std::string& channel, std::uint16_t port, std::error_code& ec) {
  ec.clear();
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    ec = last_error();
    return std::nullopt;
  }
  ReportSender sender(fd, port);
  const int one = 1;
  if (::setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, channel.c_str(), socklen_t(channel.size() + 1)) != 0 ||
      ::setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) != 0) {
    ec = last_error();
    return std::nullopt;
  }
  return sender;
}

ReportSender::ReportSender(ReportSender&& other) noexcept : fd_(std::exchange(other.fd_, -1)), port_(other.port_) {}

ReportSender& ReportSender::operator=(ReportSender&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    port_ = other.port_;
  }
  return *this;
}

ReportSender::~ReportSender() {
  if (fd_ >= 0) ::close(fd_);
}

std::error_code ReportSender::send(std::string_view datagram) {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port_);
  to.sin_addr.s_addr = htonl(INADDR_BROADCAST);
  const ssize_t n =
      ::sendto(fd_, datagram.data(), datagram.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
  if (n < 0) return last_error();
  if (static_cast<std::size_t>(n) != datagram.size()) return std::make_error_code(std::errc::message_size);
  return {};
}

}  // namespace wownet::agent
