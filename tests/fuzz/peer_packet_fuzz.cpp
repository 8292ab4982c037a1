// HostEngine::on_peer_packet on arbitrary packets from other nodes, with
// local VMs bound and remote VMs leased to nodes n1 and n2. Input: flags
// (bit 0 fixes the checksums, bits 1-2 pick the sending node, bit 3 local
// or registry mode), then the IPv4 packet.
#include <vector>

#include "engine_setup.h"
#include "fuzz_input.h"

using namespace wownet;
using namespace wownet::fuzz;

WOWNET_FUZZ_TARGET(peer_packet)(const std::uint8_t* data, std::size_t size) {
  FuzzReader in(data, size);
  const std::uint8_t flags = in.u8();
  auto engine = make_engine((flags & 8) != 0);
  static const char* const kPeers[] = {"n1", "n2", "self", "stranger"};
  const auto packet = in.rest();
  std::vector<std::uint8_t> buffer(kEthernetHeaderSize + packet.size());
  std::copy(packet.begin(), packet.end(), buffer.begin() + kEthernetHeaderSize);
  if (flags & 1) fix_ipv4_checksums(std::span(buffer).subspan(kEthernetHeaderSize), true);
  const FrameAction a =
      engine->on_peer_packet(kEngineT0 + 1, kPeers[(flags >> 1) & 3], buffer, kEthernetHeaderSize, packet.size());
  check_action(*engine, a);
  if (a.kind == FrameAction::Kind::WriteToTap) {
    WOWNET_FUZZ_CHECK(a.frame.data() == buffer.data());
    WOWNET_FUZZ_CHECK(a.frame.size() <= buffer.size());
  }
}
