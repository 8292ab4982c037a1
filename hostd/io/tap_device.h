// A TAP device opened through /dev/net/tun: Ethernet frames in and out of
// the host kernel, no packet-info header.
#pragma once

#include <string>
#include <system_error>

namespace wownet::io {

class TapDevice {
 public:
  TapDevice() = default;
  ~TapDevice();
  TapDevice(TapDevice&& other) noexcept;
  TapDevice& operator=(TapDevice&& other) noexcept;
  TapDevice(const TapDevice&) = delete;
  TapDevice& operator=(const TapDevice&) = delete;

  // Creates (or attaches to) the TAP device `name`, non-blocking. The device
  // disappears when the last descriptor closes (it is not persistent).
  std::error_code open(const std::string& name);
  void close();
  int fd() const { return fd_; }
  // Releases ownership of the descriptor to the caller.
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  const std::string& name() const { return name_; }

 private:
  int fd_ = -1;
  std::string name_;
};

}  // namespace wownet::io
