// parse_ipv4 and parse_udp on arbitrary packets (byte 0: flags; bit 0 fixes
// the checksums first so that mutations get past them, bit 1 skips the UDP
// checksum as for offloaded frames), the UDP frame builder's round trip and
// the ICMP echo reply builder.
#include <vector>

#include "core/bytes.h"
#include "core/packet.h"
#include "fuzz_input.h"
#include "fuzz_target.h"

using namespace wownet;

namespace {

const MacAddr kVmMac{{0x52, 0x54, 0x00, 0x00, 0x00, 0x01}};
const MacAddr kGwMac{{0x02, 0x77, 0x6e, 0x00, 0x00, 0x01}};

bool within(ConstByteSpan inner, ConstByteSpan outer) {
  return inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + outer.size();
}

}  // namespace

WOWNET_FUZZ_TARGET(ipv4_udp)(const std::uint8_t* data, std::size_t size) {
  fuzz::FuzzReader in(data, size);
  const std::uint8_t flags = in.u8();
  const auto rest = in.rest();
  std::vector<std::uint8_t> packet(rest.begin(), rest.end());
  if (flags & 1) fuzz::fix_ipv4_checksums(packet, true);
  const ConstByteSpan all(packet.data(), packet.size());
  const auto ip = parse_ipv4(all);
  if (!ip) return;
  WOWNET_FUZZ_CHECK(ip->header_length >= kIpv4HeaderSize);
  WOWNET_FUZZ_CHECK(ip->packet.data() == packet.data() && ip->packet.size() == ip->total_length);
  WOWNET_FUZZ_CHECK(within(ip->packet, all) && within(ip->payload, ip->packet));
  WOWNET_FUZZ_CHECK(ip->payload.size() == ip->packet.size() - ip->header_length);

  if (ip->protocol == kIpProtoUdp && !ip->is_fragment) {
    const auto udp = parse_udp(*ip, (flags & 2) == 0);
    if (udp) {
      WOWNET_FUZZ_CHECK(within(udp->payload, ip->payload));
      WOWNET_FUZZ_CHECK(udp->payload.data() == ip->payload.data() + kUdpHeaderSize);
      // Rebuilt around the same payload, the frame parses back to it.
      std::vector<std::uint8_t> frame(kUdpPayloadOffset + udp->payload.size());
      std::copy(udp->payload.begin(), udp->payload.end(), frame.begin() + kUdpPayloadOffset);
      const std::size_t n =
          finish_udp_frame(frame, kVmMac, kGwMac, ip->src, ip->dst, udp->src_port, udp->dst_port, udp->payload.size());
      WOWNET_FUZZ_CHECK(n == frame.size());
      const auto eth = parse_ethernet(frame);
      WOWNET_FUZZ_CHECK(eth);
      const auto ip2 = parse_ipv4(eth->payload);
      WOWNET_FUZZ_CHECK(ip2 && ip2->src == ip->src && ip2->dst == ip->dst);
      const auto udp2 = parse_udp(*ip2, true);
      WOWNET_FUZZ_CHECK(udp2 && udp2->src_port == udp->src_port && udp2->dst_port == udp->dst_port);
      WOWNET_FUZZ_CHECK(
          std::equal(udp2->payload.begin(), udp2->payload.end(), udp->payload.begin(), udp->payload.end()));
      // Too small a buffer is refused.
      WOWNET_FUZZ_CHECK(finish_udp_frame(std::span(frame).first(kUdpPayloadOffset - 1), kVmMac, kGwMac, ip->src,
                                         ip->dst, 1, 2, 0) == 0);
    }
  }
  if (ip->protocol == kIpProtoIcmp) {
    std::vector<std::uint8_t> out(2048);
    const std::size_t n = build_icmp_echo_reply(out, kVmMac, kGwMac, *ip);
    WOWNET_FUZZ_CHECK(n <= out.size());
    if (n > 0) {
      const auto eth = parse_ethernet(ConstByteSpan(out.data(), n));
      WOWNET_FUZZ_CHECK(eth && eth->ethertype == kEtherTypeIpv4);
      const auto reply = parse_ipv4(eth->payload);
      WOWNET_FUZZ_CHECK(reply && reply->protocol == kIpProtoIcmp && reply->dst == ip->src);
      WOWNET_FUZZ_CHECK(!reply->payload.empty() && reply->payload[0] == 0);  // echo reply
      WOWNET_FUZZ_CHECK(internet_checksum(reply->payload) == 0);
    }
    // A reply that does not fit is refused.
    std::vector<std::uint8_t> small(kEthernetHeaderSize + ip->packet.size() / 2);
    const std::size_t m = build_icmp_echo_reply(small, kVmMac, kGwMac, *ip);
    WOWNET_FUZZ_CHECK(m <= small.size());
  }
}
