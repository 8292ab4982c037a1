// parse_arp on arbitrary bytes; what it accepts survives a round trip
// through build_arp_frame.
#include <array>

#include "core/packet.h"
#include "fuzz_target.h"

using namespace wownet;

WOWNET_FUZZ_TARGET(arp)(const std::uint8_t* data, std::size_t size) {
  const auto arp = parse_arp(ConstByteSpan(data, size));
  if (!arp) return;
  WOWNET_FUZZ_CHECK(size >= 28);
  std::array<std::uint8_t, 64> out{};
  const std::size_t n = build_arp_frame(out, MacAddr::broadcast(), arp->op, arp->sender_mac, arp->sender_ip,
                                        arp->target_mac, arp->target_ip);
  WOWNET_FUZZ_CHECK(n == 42);
  const auto eth = parse_ethernet(ConstByteSpan(out.data(), n));
  WOWNET_FUZZ_CHECK(eth && eth->ethertype == kEtherTypeArp);
  const auto again = parse_arp(eth->payload);
  WOWNET_FUZZ_CHECK(again);
  WOWNET_FUZZ_CHECK(again->op == arp->op && again->sender_mac == arp->sender_mac &&
                    again->sender_ip == arp->sender_ip && again->target_mac == arp->target_mac &&
                    again->target_ip == arp->target_ip);
  // A buffer one byte short is refused, not overrun.
  WOWNET_FUZZ_CHECK(build_arp_frame(std::span(out).first(41), MacAddr::broadcast(), arp->op, arp->sender_mac,
                                    arp->sender_ip, arp->target_mac, arp->target_ip) == 0);
}
