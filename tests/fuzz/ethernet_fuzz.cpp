// parse_ethernet on arbitrary bytes, and the ARP/IPv4/UDP parsers behind it
// as the engine chains them.
#include <algorithm>
#include <array>

#include "core/packet.h"
#include "fuzz_target.h"

using namespace wownet;

WOWNET_FUZZ_TARGET(ethernet)(const std::uint8_t* data, std::size_t size) {
  const ConstByteSpan frame(data, size);
  const auto eth = parse_ethernet(frame);
  if (!eth) {
    WOWNET_FUZZ_CHECK(size < kEthernetHeaderSize);
    return;
  }
  WOWNET_FUZZ_CHECK(eth->payload.data() == data + kEthernetHeaderSize);
  WOWNET_FUZZ_CHECK(eth->payload.size() == size - kEthernetHeaderSize);
  std::array<std::uint8_t, kEthernetHeaderSize> header{};
  write_ethernet_header(header, eth->dst, eth->src, eth->ethertype);
  WOWNET_FUZZ_CHECK(std::equal(header.begin(), header.end(), data));
  if (eth->ethertype == kEtherTypeArp) {
    (void)parse_arp(eth->payload);
  } else if (eth->ethertype == kEtherTypeIpv4) {
    const auto ip = parse_ipv4(eth->payload);
    if (ip && ip->protocol == kIpProtoUdp && !ip->is_fragment) (void)parse_udp(*ip);
  }
}
