// HostEngine: traffic to and from VMs on other nodes.
#include "host_engine_fixture.h"

namespace wownet::engine_test {
namespace {

const MacAddr kRemoteMac{{0x52, 0x54, 0x00, 0x00, 0x01, 0x01}};

Lease remote_lease(Ipv4Addr a, const std::string& node, const std::string& host_name = "") {
  Lease l;
  l.address = a;
  l.mac = kRemoteMac;
  l.vm = "far";
  l.host_name = host_name;
  l.node = node;
  l.expiry = T0 + 3600;
  return l;
}

TEST_F(HostEngineTest, TrafficToARemoteVmBecomesABareIpv4PacketForItsNode) {
  Ipv4Addr a1 = lease(1, kMac1);
  Ipv4Addr far = ip(10, 128, 7, 7);
  engine_.leases().apply(remote_lease(far, "node-b", "faraway"));
  Bytes packet = ipv4(a1, far, 1, icmp_echo(9, 9, Bytes(16, 1)));
  auto a = send(1, ethernet(kGwMac, kMac1, 0x0800, packet));
  ASSERT_EQ(a.kind, FrameAction::Kind::SendToPeer);
  EXPECT_EQ(a.peer, "node-b");
  EXPECT_EQ(Bytes(a.frame.begin(), a.frame.end()), packet);
  // ARP and DNS know the remote VM too.
  Bytes f = out(send(1, ethernet(kBcast, kMac1, 0x0806, arp(1, kMac1, a1, MacAddr{}, far))));
  EXPECT_EQ(f.size(), 42u);
  engine_.leases().set_now(T0);
  EXPECT_EQ(engine_.leases().find_host_name("faraway"), far);
  // Local DHCP will not hand out the remote VM's address.
  EXPECT_FALSE(engine_.leases().is_available(far, kMac2, T0));
}

// Another node may not play DHCP server for the VMs here either: a host
// whose own engine was bypassed (a compromised host) is held to the same
// rule as a VM, whole datagrams and first fragments alike.
TEST_F(HostEngineTest, DhcpFromAnotherNodeNeverReachesAVm) {
  Ipv4Addr a1 = lease(1, kMac1);
  Ipv4Addr far = ip(10, 128, 7, 7);
  engine_.leases().apply(remote_lease(far, "node-b"));
  auto from_peer = [&](const Bytes& packet) {
    Bytes buf(14, 0);
    buf.insert(buf.end(), packet.begin(), packet.end());
    return engine_.on_peer_packet(T0, "node-b", ByteSpan(buf.data(), buf.size()), 14, packet.size());
  };
  const Bytes reply = udp(67, 68, Bytes(240, 0));
  EXPECT_EQ(from_peer(ipv4(far, a1, 17, reply)).reason, DropReason::DhcpServerMessage);
  EXPECT_EQ(from_peer(ipv4(far, a1, 17, udp(5000, 68, Bytes(20, 1)))).reason, DropReason::DhcpServerMessage);
  EXPECT_EQ(from_peer(ipv4(far, a1, 17, udp(67, 5000, Bytes(20, 1)))).reason, DropReason::DhcpServerMessage);
  const Bytes first(reply.begin(), reply.begin() + 64);
  EXPECT_EQ(from_peer(ipv4_fragment(far, a1, 17, 77, 0x2000, first)).reason, DropReason::DhcpServerMessage);
  EXPECT_EQ(from_peer(ipv4_fragment(far, a1, 17, 78, 0x2000, Bytes(reply.begin(), reply.begin() + 4))).reason,
            DropReason::Malformed);  // too short to show its ports (RFC 1858 §3.1)
  // Other UDP, whole or fragmented, is delivered.
  EXPECT_EQ(from_peer(ipv4(far, a1, 17, udp(5000, 5001, Bytes(20, 1)))).kind, FrameAction::Kind::WriteToTap);
  const Bytes big = udp(5000, 5001, Bytes(100, 1));
  EXPECT_EQ(from_peer(ipv4_fragment(far, a1, 17, 79, 0x2000, Bytes(big.begin(), big.begin() + 64))).kind,
            FrameAction::Kind::WriteToTap);
  EXPECT_EQ(engine_.counters().peer_drops[std::size_t(DropReason::DhcpServerMessage)], 4u);
}

TEST_F(HostEngineTest, PacketsFromPeersAreDeliveredOnlyFromTheirOwnVms) {
  Ipv4Addr a1 = lease(1, kMac1);
  Ipv4Addr far = ip(10, 128, 7, 7);
  Ipv4Addr other = ip(10, 128, 8, 8);
  engine_.leases().apply(remote_lease(far, "node-b"));
  Lease l = remote_lease(other, "node-c");
  l.mac = MacAddr{{0x52, 0x54, 0, 0, 2, 2}};
  engine_.leases().apply(l);
  Bytes packet = ipv4(far, a1, 1, icmp_echo(3, 4, Bytes(8, 2)));
  Bytes buf(14, 0);
  buf.insert(buf.end(), packet.begin(), packet.end());
  auto a = engine_.on_peer_packet(T0, "node-b", ByteSpan(buf.data(), buf.size()), 14, packet.size());
  ASSERT_EQ(a.kind, FrameAction::Kind::WriteToTap);
  EXPECT_EQ(a.to, 1u);
  EXPECT_EQ(Bytes(a.frame.begin(), a.frame.end()), ethernet(kMac1, kGwMac, 0x0800, packet));
  // node-c may not speak for node-b's VM.
  Bytes buf2(14, 0);
  buf2.insert(buf2.end(), packet.begin(), packet.end());
  EXPECT_EQ(engine_.on_peer_packet(T0, "node-c", ByteSpan(buf2.data(), buf2.size()), 14, packet.size()).reason,
            DropReason::SpoofedIp);
  // Nor for a local VM, nor for an unleased address.
  Bytes spoof = ipv4(ip(10, 128, 0, 3), a1, 1, icmp_echo(3, 4, {}));
  Bytes buf3(14, 0);
  buf3.insert(buf3.end(), spoof.begin(), spoof.end());
  EXPECT_EQ(engine_.on_peer_packet(T0, "node-b", ByteSpan(buf3.data(), buf3.size()), 14, spoof.size()).reason,
            DropReason::SpoofedIp);
  // Garbage and bad offsets are counted, never trusted.
  Bytes junk(40, 0xee);
  EXPECT_EQ(engine_.on_peer_packet(T0, "node-b", ByteSpan(junk.data(), junk.size()), 14, 26).reason,
            DropReason::Malformed);
  EXPECT_EQ(engine_.on_peer_packet(T0, "node-b", ByteSpan(junk.data(), junk.size()), 4, 20).reason,
            DropReason::Malformed);
  EXPECT_EQ(engine_.on_peer_packet(T0, "node-b", ByteSpan(junk.data(), junk.size()), 14, 400).reason,
            DropReason::Malformed);
  EXPECT_EQ(engine_.counters().peer_drops[std::size_t(DropReason::SpoofedIp)], 2u);
  EXPECT_EQ(engine_.counters().from_peers, 1u);
}

}  // namespace
}  // namespace wownet::engine_test
