#include "io/tap_device.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace wownet::io {

TapDevice::~TapDevice() { close(); }

TapDevice::TapDevice(TapDevice&& other) noexcept
    : fd_(other.fd_), offloads_(other.offloads_), name_(std::move(other.name_)) {
  other.fd_ = -1;
}

TapDevice& TapDevice::operator=(TapDevice&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = other.fd_;
    offloads_ = other.offloads_;
    name_ = std::move(other.name_);
    other.fd_ = -1;
  }
  return *this;
}

std::error_code TapDevice::open(const std::string& name, bool offloads) {
  close();
  if (name.empty() || name.size() >= IFNAMSIZ) return std::make_error_code(std::errc::invalid_argument);
  int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return {errno, std::system_category()};
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (offloads ? IFF_VNET_HDR : 0);
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  if (::ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    ::close(fd);
    return {e, std::system_category()};
  }
  if (offloads) {
    int hdr = int(kVnetHeaderSize);
    unsigned features = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
    if (::ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0 || ::ioctl(fd, TUNSETOFFLOAD, features) < 0) {
      int e = errno;
      ::close(fd);
      return {e, std::system_category()};
    }
  }
  fd_ = fd;
  offloads_ = offloads;
  name_ = ifr.ifr_name;
  return {};
}

void TapDevice::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

}  // namespace wownet::io
