// HostEngine's entry points in any order: frames from the VMs
// (on_tap_frame), packets from other nodes (on_peer_packet), registry
// grants and refusals, host names from agents, timers, attachments coming
// and going. Input: a mode byte (bit 0: registry mode), then steps of
// [op, arguments...]; see the switch below.
#include <string>
#include <vector>

#include "engine_setup.h"
#include "fuzz_input.h"

using namespace wownet;
using namespace wownet::fuzz;

WOWNET_FUZZ_TARGET(host_engine)(const std::uint8_t* data, std::size_t size) {
  FuzzReader in(data, size);
  const bool registry = in.u8() & 1;
  auto engine = make_engine(registry);
  UnixTime now = kEngineT0;
  static const char* const kPeers[] = {"n1", "n2", "self", ""};
  static const MacAddr kMacs[] = {kVm1Mac, kVm2Mac, kVm3Mac, kRemoteMac};
  for (int steps = 0; !in.empty() && steps < 64; ++steps) {
    const std::uint8_t op = in.u8();
    const std::uint8_t arg = in.u8();
    FrameAction action;
    std::vector<std::uint8_t> frame, buffer;  // outlive `action`, which may point into them
    switch (op % 8) {
      case 0:
      case 1:
      case 2: {  // a frame from attachment 0..3 (0: unknown)
        frame = in.chunk_copy();
        if (arg & 1) fix_frame_checksums(frame, true);
        action = engine->on_tap_frame(now, AttachmentId((arg >> 1) & 3), frame, (arg & 8) != 0);
        break;
      }
      case 3: {  // a packet from another node
        std::vector<std::uint8_t> packet = in.chunk_copy();
        if (arg & 1) fix_ipv4_checksums(packet, true);
        const std::size_t offset = (arg & 0x10) ? (arg >> 5) : kEthernetHeaderSize;
        buffer.assign(offset + packet.size(), 0);
        std::copy(packet.begin(), packet.end(), buffer.begin() + long(offset));
        action = engine->on_peer_packet(now, kPeers[(arg >> 1) & 3], buffer, offset, packet.size());
        break;
      }
      case 4: {  // a lease the registry granted or reported
        Lease l;
        l.address = (arg & 1) ? Ipv4Addr{in.u32()} : Ipv4Addr::from_octets(10, 128, 0, in.u8() & 63);
        l.mac = kMacs[(arg >> 1) & 3];
        l.vm = "vm" + std::to_string(arg >> 6);
        l.host_name = in.chunk_string();
        l.node = kPeers[(arg >> 3) & 3];
        l.expiry = now + UnixTime(in.u16()) - 100;
        l.state = LeaseState(in.u8() % 3);
        l.origin = (arg & 0x20) ? LeaseOrigin::Learned : LeaseOrigin::Dhcp;
        action = engine->on_registry_lease(now, l);
        break;
      }
      case 5: action = engine->on_registry_refusal(now, kMacs[arg & 3]); break;
      case 6:  // time passes
        now += (arg & 0x80) ? UnixTime(arg & 0x7f) * 60 : UnixTime(arg);
        if (engine->next_deadline() <= now) engine->on_timer(now);
        break;
      case 7:
        switch (arg % 5) {
          case 0: engine->on_agent_host_name(now, AttachmentId((arg >> 3) & 3), in.chunk_string()); break;
          case 1: (void)engine->take_lease_asks(); break;
          case 2: engine->remove_attachment(AttachmentId((arg >> 3) & 3)); break;
          case 3:
            engine->add_attachment(AttachmentId((arg >> 3) & 3), "vm" + std::to_string(arg >> 5),
                                   (arg & 0x80) ? std::optional<MacAddr>(kMacs[(arg >> 3) & 3]) : std::nullopt, now);
            break;
          case 4: engine->on_timer(now); break;
        }
        break;
    }
    check_action(*engine, action);
    if (action.kind == FrameAction::Kind::WriteToTap) engine->on_frame_sent(action.to, action.frame.size());
  }
  for (const LeaseAsk& ask : engine->take_lease_asks()) WOWNET_FUZZ_CHECK(!ask.mac.is_zero() || registry);
}
