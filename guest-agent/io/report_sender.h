// Sends report datagrams to 255.255.255.255:port on the host-only channel NIC.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace wownet::agent {

class ReportSender {
 public:
  // Opens a UDP socket bound to `channel` (SO_BINDTODEVICE) with
  // SO_BROADCAST; nullopt with `ec` set on failure (e.g. ENODEV).
  static std::optional<ReportSender> open(const std::string& channel, std::uint16_t port, std::error_code& ec);

  // Movable, not copyable; the destructor closes the socket.
  ReportSender(ReportSender&& other) noexcept;
  ReportSender& operator=(ReportSender&& other) noexcept;
  ReportSender(const ReportSender&) = delete;
  ReportSender& operator=(const ReportSender&) = delete;
  ~ReportSender();

  // Sends `datagram` as one UDP datagram to the limited broadcast address.
  std::error_code send(std::string_view datagram);

 private:
  ReportSender(int fd, std::uint16_t port) : fd_(fd), port_(port) {}

  int fd_ = -1;
  std::uint16_t port_ = 0;
};

}  // namespace wownet::agent
