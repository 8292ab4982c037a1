// A TAP device opened through /dev/net/tun: Ethernet frames in and out of
// the host kernel, no packet-info header.
#pragma once

#include <cstddef>
#include <cstdint>
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

  // Size of the virtio-net header that precedes every frame when the device
  // was opened with offloads.
  static constexpr std::size_t kVnetHeaderSize = 10;
  // virtio-net header fields (virtio spec §5.1.6; linux/virtio_net.h is not
  // valid C++): byte 0 flags, byte 1 GSO type.
  static constexpr std::uint8_t kVnetNeedsChecksum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
  static constexpr std::uint8_t kVnetGsoNone = 0;        // VIRTIO_NET_HDR_GSO_NONE

  // Creates (or attaches to) the TAP device `name`, non-blocking. The device
  // disappears when the last descriptor closes (it is not persistent). With
  // `offloads`, every frame read or written carries a virtio-net header and
  // the kernel may pass checksum-offloaded and TSO frames of up to 64 KiB.
  std::error_code open(const std::string& name, bool offloads);
  bool offloads() const { return offloads_; }
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
  bool offloads_ = false;
  std::string name_;
};

}  // namespace wownet::io
