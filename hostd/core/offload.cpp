#include "core/offload.h"

#include <algorithm>
#include <cstring>

#include "core/bytes.h"

namespace wownet {

namespace {
std::uint16_t le16(const std::uint8_t* p) { return std::uint16_t(p[0] | (p[1] << 8)); }
}  // namespace

VnetHeader VnetHeader::parse(const std::uint8_t* p) {
  VnetHeader h;
  h.flags = p[0];
  h.gso_type = p[1];
  h.header_length = le16(p + 2);
  h.gso_size = le16(p + 4);
  h.checksum_start = le16(p + 6);
  h.checksum_offset = le16(p + 8);
  return h;
}

bool complete_checksum(ByteSpan data, std::size_t start, std::size_t offset) {
  if (start > data.size() || offset + 2 > data.size() - start) return false;
  // The field holds the folded pseudo-header sum; summing over it adds it in.
  std::uint16_t sum = checksum_finish(checksum_add(0, data.subspan(start)));
  store16(data.data() + start + offset, sum);
  return true;
}

std::size_t segment_tcp4(ConstByteSpan packet, std::uint16_t mss, ByteSpan scratch, SegmentSink& sink) {
  if (mss == 0) return 0;
  auto ip = parse_ipv4(packet);
  if (!ip || ip->protocol != kIpProtoTcp || ip->is_fragment) return 0;
  std::size_t ihl = ip->header_length;
  if (ip->payload.size() < 20) return 0;
  std::size_t thl = std::size_t(ip->payload[12] >> 4) * 4;
  if (thl < 20 || thl > ip->payload.size()) return 0;
  std::size_t headers = ihl + thl;
  std::size_t data_len = ip->packet.size() - headers;
  if (scratch.size() < headers + std::min<std::size_t>(mss, data_len)) return 0;
  const std::uint8_t* src = ip->packet.data();
  std::uint32_t seq = load32(src + ihl + 4);
  std::uint16_t id = load16(src + 4);
  std::uint8_t flags = src[ihl + 13];
  constexpr std::uint8_t kFin = 0x01, kPsh = 0x08, kCwr = 0x80;
  std::size_t count = 0;
  std::size_t off = 0;
  do {
    std::size_t chunk = std::min<std::size_t>(mss, data_len - off);
    bool last = off + chunk >= data_len;
    std::uint8_t* seg = scratch.data();
    std::memcpy(seg, src, headers);
    std::memcpy(seg + headers, src + headers + off, chunk);
    std::size_t total = headers + chunk;
    // IPv4: length, identification, checksum.
    store16(seg + 2, std::uint16_t(total));
    store16(seg + 4, std::uint16_t(id + count));
    store16(seg + 10, 0);
    store16(seg + 10, internet_checksum({seg, ihl}));
    // TCP: sequence number, flags, checksum over the pseudo-header and segment.
    std::uint8_t* tcp = seg + ihl;
    store32(tcp + 4, seq + std::uint32_t(off));
    std::uint8_t f = flags;
    if (!last) f &= std::uint8_t(~(kFin | kPsh));
    if (count > 0) f &= std::uint8_t(~kCwr);
    tcp[13] = f;
    store16(tcp + 16, 0);
    std::size_t tcp_len = total - ihl;
    std::uint32_t sum = (ip->src.value >> 16) + (ip->src.value & 0xffff) + (ip->dst.value >> 16) +
                        (ip->dst.value & 0xffff) + kIpProtoTcp + std::uint32_t(tcp_len);
    store16(tcp + 16, checksum_finish(checksum_add(sum, {tcp, tcp_len})));
    sink.segment(ConstByteSpan(seg, total));
    ++count;
    off += chunk;
  } while (off < data_len);
  return count;
}

}  // namespace wownet
