// HostEngine::update_live_settings (a config reload): the DNS TTL, the
// lease time of the next DHCP reply and learn_static change in a running
// engine; the rest of the config does not.
#include "host_engine_fixture.h"

namespace wownet::engine_test {
namespace {

class EngineLiveSettingsTest : public ::testing::Test {
 protected:
  EngineLiveSettingsTest() : engine_(NetworkConfig{}) {
    engine_.add_attachment(1, "vm1", std::nullopt, T0);
    engine_.add_attachment(2, "vm2", std::nullopt, T0);
  }
  FrameAction send(AttachmentId from, Bytes frame) {
    buffer_ = std::move(frame);
    return engine_.on_tap_frame(T0, from, ByteSpan(buffer_.data(), buffer_.size()));
  }
  // The lease time (option 51) of the OFFER to a DISCOVER from `mac`.
  std::uint32_t offered_lease_time(AttachmentId att, MacAddr mac) {
    FrameAction a =
        send(att, ethernet(kBcast, mac, 0x0800, ipv4(kAny, kAll, 17, udp(68, 67, dhcp(1, 7, mac, kAny, true, {})))));
    if (a.kind != FrameAction::Kind::WriteToTap) return 0;
    const Bytes t = reply_options(Bytes(a.frame.begin(), a.frame.end()))[51];
    if (t.size() != 4) return 0;
    return (std::uint32_t(t[0]) << 24) | (t[1] << 16) | (t[2] << 8) | t[3];
  }
  // The TTL of the A answer for gateway.wow, asked from `src` on attachment 1.
  std::uint32_t gateway_ttl(Ipv4Addr src) {
    Bytes q = {0x12, 0x34, 0x01, 0x00, 0,   1, 0,   0,   0,   0, 0, 0, 7, 'g', 'a',
               't',  'e',  'w',  'a',  'y', 3, 'w', 'o', 'w', 0, 0, 1, 0, 1};
    FrameAction a = send(1, ethernet(kGwMac, kMac1, 0x0800, ipv4(src, kGw, 17, udp(40000, 53, q))));
    if (a.kind != FrameAction::Kind::WriteToTap) return ~0u;
    Bytes f(a.frame.begin(), a.frame.end());
    const std::size_t t = f.size() - 10;  // TTL, RDLENGTH, then the 4-byte address
    return (std::uint32_t(f[t]) << 24) | (f[t + 1] << 16) | (f[t + 2] << 8) | f[t + 3];
  }

  HostEngine engine_;
  Bytes buffer_;
};

TEST_F(EngineLiveSettingsTest, DnsTtlLeaseTimeAndLearnStaticChangeLive) {
  const Ipv4Addr vm1 = Ipv4Addr::from_octets(10, 128, 0, 50);
  // vm1 is learned from its traffic (learn_static is on by default).
  send(1, ethernet(kGwMac, kMac1, 0x0800, ipv4(vm1, kGw, 1, icmp_echo(1, 1, {}))));
  EXPECT_EQ(gateway_ttl(vm1), 60u);
  EXPECT_EQ(offered_lease_time(2, kMac2), 3600u);

  NetworkConfig changed;
  changed.dns_ttl = 5;
  changed.lease_time = 120;
  changed.learn_static = false;
  changed.domain = "other";  // not live: ignored
  changed.network = *Ipv4Prefix::parse("10.0.0.0/8");
  engine_.update_live_settings(changed);
  EXPECT_EQ(gateway_ttl(vm1), 5u);  // still answered under "wow"
  EXPECT_EQ(offered_lease_time(2, kMac2), 120u);
  EXPECT_EQ(engine_.config().domain, "wow");
  EXPECT_EQ(engine_.config().network.to_string(), "10.128.0.0/9");
  // learn_static off: a new static VM is no longer learned.
  engine_.remove_attachment(2);
  engine_.add_attachment(3, "vm3", std::nullopt, T0);
  const Ipv4Addr vm3 = Ipv4Addr::from_octets(10, 128, 0, 70);
  FrameAction a = send(3, ethernet(kGwMac, kMac2, 0x0800, ipv4(vm3, kGw, 1, icmp_echo(1, 1, {}))));
  EXPECT_NE(a.kind, FrameAction::Kind::WriteToTap);
  EXPECT_EQ(engine_.leases().find(vm3), nullptr);
}

TEST_F(EngineLiveSettingsTest, LearnStaticOffStopsExtendingLearnedBindings) {
  const Ipv4Addr vm1 = Ipv4Addr::from_octets(10, 128, 0, 50);
  const Bytes ping = ethernet(kGwMac, kMac1, 0x0800, ipv4(vm1, kGw, 1, icmp_echo(1, 1, {})));
  const auto ping_at = [&](UnixTime t) {
    buffer_ = ping;
    return engine_.on_tap_frame(t, 1, ByteSpan(buffer_.data(), buffer_.size()));
  };
  ping_at(T0);
  const Lease* l = engine_.leases().find(vm1);
  ASSERT_NE(l, nullptr);
  ASSERT_EQ(l->origin, LeaseOrigin::Learned);
  // Talking past half the lease extends it while learning is on...
  ping_at(T0 + 2000);
  EXPECT_EQ(engine_.leases().find(vm1)->expiry, T0 + 2000 + 3600);
  // ...and no longer once a reload turned learning off: the binding ends
  // at its expiry, as the admin asked.
  NetworkConfig off;
  off.learn_static = false;
  engine_.update_live_settings(off);
  ping_at(T0 + 4000);
  EXPECT_EQ(engine_.leases().find(vm1)->expiry, T0 + 2000 + 3600);
}

}  // namespace
}  // namespace wownet::engine_test
