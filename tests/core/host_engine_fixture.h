// The harness of the HostEngine tests: addresses and MACs, DHCP reply
// parsing, and HostEngineTest (an engine with vm1 and vm2 attached, fed
// hand-built frames at literal times). In a named namespace so that gtest
// sees one fixture in every host_engine_*_test.cpp.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>

#include "core/host_engine.h"
#include "test_frames.h"

namespace wownet::engine_test {

using namespace wownet::test;

constexpr UnixTime T0 = 1'700'000'000;
const MacAddr kGwMac{{0x02, 0x77, 0x6e, 0x00, 0x00, 0x01}};
const MacAddr kMac1{{0x52, 0x54, 0x00, 0x00, 0x00, 0x01}};
const MacAddr kMac2{{0x52, 0x54, 0x00, 0x00, 0x00, 0x02}};
const MacAddr kBcast = MacAddr::broadcast();
const Ipv4Addr kGw = Ipv4Addr::from_octets(10, 128, 0, 1);
const Ipv4Addr kAny{0};
const Ipv4Addr kAll{0xffffffff};
inline Ipv4Addr ip(int a, int b, int c, int d) {
  return Ipv4Addr::from_octets(std::uint8_t(a), std::uint8_t(b), std::uint8_t(c), std::uint8_t(d));
}

// The options of a DHCP reply frame, by code.
inline std::map<int, Bytes> reply_options(const Bytes& f) {
  std::map<int, Bytes> out;
  std::size_t i = 42 + 240;
  while (i < f.size() && f[i] != 255) {
    if (f[i] == 0) {
      ++i;
      continue;
    }
    int code = f[i];
    std::size_t len = f[i + 1];
    out[code] = Bytes(f.begin() + long(i + 2), f.begin() + long(i + 2 + len));
    i += 2 + len;
  }
  return out;
}

inline Bytes addr_bytes(Ipv4Addr a) {
  Bytes b;
  put(b, a);
  return b;
}

class HostEngineTest : public ::testing::Test {
 protected:
  HostEngineTest() : engine_(make_config()) {
    engine_.add_attachment(1, "vm1", std::nullopt, T0);
    engine_.add_attachment(2, "vm2", std::nullopt, T0);
  }
  static NetworkConfig make_config() {
    NetworkConfig c;
    c.lease_time = 3600;
    return c;
  }

  FrameAction send(AttachmentId from, Bytes frame, UnixTime now = T0) {
    buffer_ = std::move(frame);
    return engine_.on_tap_frame(now, from, ByteSpan(buffer_.data(), buffer_.size()));
  }
  static Bytes out(const FrameAction& a) { return Bytes(a.frame.begin(), a.frame.end()); }

  Bytes dhcp_frame(MacAddr mac, std::uint8_t type, Ipv4Addr src, Ipv4Addr dst, Ipv4Addr ciaddr, bool bcast,
                   const Bytes& opts = {}) {
    return ethernet(dst == kAll ? kBcast : kGwMac, mac, 0x0800,
                    ipv4(src, dst, 17, udp(68, 67, dhcp(type, 0xabcd0001, mac, ciaddr, bcast, opts))));
  }

  // Runs DISCOVER/OFFER/REQUEST/ACK for `mac` on attachment `att`; returns the address.
  Ipv4Addr lease(AttachmentId att, MacAddr mac, UnixTime now = T0) {
    auto offer = send(att, dhcp_frame(mac, 1, kAny, kAll, kAny, true), now);
    EXPECT_EQ(offer.kind, FrameAction::Kind::WriteToTap);
    if (offer.kind != FrameAction::Kind::WriteToTap) return Ipv4Addr{};
    Ipv4Addr yi = Ipv4Addr::from(out(offer).data() + 42 + 16);
    auto ack = send(att, dhcp_frame(mac, 3, kAny, kAll, kAny, true, cat({opt_addr(50, yi), opt_addr(54, kGw)})), now);
    EXPECT_EQ(ack.kind, FrameAction::Kind::WriteToTap);
    EXPECT_EQ(reply_options(out(ack))[53], Bytes{5});
    return yi;
  }

  // A new engine with the lease table of `from` restored, as after a restart.
  static std::unique_ptr<HostEngine> restarted(const HostEngine& from) {
    auto fresh = std::make_unique<HostEngine>(make_config());
    fresh->leases().restore(from.leases().snapshot());
    return fresh;
  }

  HostEngine engine_;
  Bytes buffer_;
};

}  // namespace wownet::engine_test
