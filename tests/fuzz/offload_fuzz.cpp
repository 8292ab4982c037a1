// The virtio-net offload code on what a TAP could hand over: a 10-byte
// vnet header, then a frame. Input: flags, 16-bit MSS, the header, the
// frame. complete_checksum is run where the header says; segment_tcp4 cuts
// the frame's IPv4 packet, and every segment must be a valid TCP/IPv4
// packet no larger than the MSS allows, the segments together carrying
// exactly the original payload.
#include <algorithm>
#include <vector>

#include "core/bytes.h"
#include "core/offload.h"
#include "fuzz_input.h"
#include "fuzz_target.h"

using namespace wownet;

namespace {

class CheckingSink final : public SegmentSink {
 public:
  CheckingSink(std::size_t headers, std::uint16_t mss, std::size_t scratch)
      : headers_(headers), mss_(mss), scratch_(scratch) {}
  void segment(ConstByteSpan packet) override {
    ++count_;
    WOWNET_FUZZ_CHECK(packet.size() <= scratch_);
    const auto ip = parse_ipv4(packet);
    WOWNET_FUZZ_CHECK(ip && ip->protocol == kIpProtoTcp && !ip->is_fragment);
    WOWNET_FUZZ_CHECK(ip->packet.size() == packet.size());
    WOWNET_FUZZ_CHECK(packet.size() >= headers_ && packet.size() - headers_ <= mss_);
    payload_ += packet.size() - headers_;
    std::uint32_t sum = checksum_add(0, packet.subspan(12, 8));
    sum += kIpProtoTcp;
    sum += std::uint32_t(ip->payload.size());
    WOWNET_FUZZ_CHECK(checksum_finish(checksum_add(sum, ip->payload)) == 0);
  }
  std::size_t count_ = 0;
  std::size_t payload_ = 0;

 private:
  std::size_t headers_;
  std::uint16_t mss_;
  std::size_t scratch_;
};

}  // namespace

WOWNET_FUZZ_TARGET(offload)(const std::uint8_t* data, std::size_t size) {
  fuzz::FuzzReader in(data, size);
  const std::uint8_t flags = in.u8();
  std::uint16_t mss = in.u16();
  std::uint8_t raw_header[VnetHeader::kSize] = {};
  const auto h_bytes = in.bytes(VnetHeader::kSize);
  std::copy(h_bytes.begin(), h_bytes.end(), raw_header);
  const VnetHeader h = VnetHeader::parse(raw_header);
  const auto rest = in.rest();
  std::vector<std::uint8_t> frame(rest.begin(), rest.end());

  if (h.needs_checksum() || (flags & 1)) {
    const bool ok = complete_checksum(frame, h.checksum_start, h.checksum_offset);
    if (ok) WOWNET_FUZZ_CHECK(std::size_t(h.checksum_start) + h.checksum_offset + 2 <= frame.size());
  }

  // The IPv4 packet: after the Ethernet header, or the whole input.
  std::span<std::uint8_t> packet(frame);
  if (!(flags & 2))
    packet = packet.size() >= kEthernetHeaderSize ? packet.subspan(kEthernetHeaderSize) : packet.first(0);
  if (flags & 4) fuzz::fix_ipv4_checksums(packet, false);
  if (flags & 8) mss = h.gso_size;
  // What the daemon uses (64 KiB and a bit), or something small.
  const std::size_t scratch_size = (flags & 0x10) ? std::size_t(mss) + (flags >> 5) * 16 : 65536 + 256;
  std::vector<std::uint8_t> scratch(scratch_size);

  const auto ip = parse_ipv4(packet);
  std::size_t headers = 0, data_len = 0;
  if (ip && ip->protocol == kIpProtoTcp && ip->payload.size() >= 20) {
    headers = ip->header_length + std::size_t(ip->payload[12] >> 4) * 4;
    data_len = ip->packet.size() >= headers ? ip->packet.size() - headers : 0;
  }
  CheckingSink sink(headers, mss, scratch_size);
  const std::size_t n = segment_tcp4(packet, mss, scratch, sink);
  WOWNET_FUZZ_CHECK(n == sink.count_);
  if (n > 0) {
    WOWNET_FUZZ_CHECK(ip && headers > 0);
    WOWNET_FUZZ_CHECK(sink.payload_ == data_len);
  }
}
