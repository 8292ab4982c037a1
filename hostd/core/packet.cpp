#include "core/packet.h"

#include <cstring>

#include "core/bytes.h"

namespace wownet {

std::optional<EthernetView> parse_ethernet(ConstByteSpan frame) {
  if (frame.size() < kEthernetHeaderSize) return std::nullopt;
  EthernetView v;
  v.dst = MacAddr::from(frame.data());
  v.src = MacAddr::from(frame.data() + 6);
  v.ethertype = load16(frame.data() + 12);
  v.payload = frame.subspan(kEthernetHeaderSize);
  return v;
}

std::optional<ArpView> parse_arp(ConstByteSpan p) {
  if (p.size() < 28) return std::nullopt;
  if (load16(p.data()) != 1 || load16(p.data() + 2) != kEtherTypeIpv4 || p[4] != 6 || p[5] != 4) return std::nullopt;
  ArpView v;
  v.op = load16(p.data() + 6);
  v.sender_mac = MacAddr::from(p.data() + 8);
  v.sender_ip = Ipv4Addr::from(p.data() + 14);
  v.target_mac = MacAddr::from(p.data() + 18);
  v.target_ip = Ipv4Addr::from(p.data() + 24);
  return v;
}

std::optional<Ipv4View> parse_ipv4(ConstByteSpan p) {
  if (p.size() < kIpv4HeaderSize) return std::nullopt;
  if ((p[0] >> 4) != 4) return std::nullopt;
  std::size_t ihl = std::size_t(p[0] & 0x0f) * 4;
  std::uint16_t total = load16(p.data() + 2);
  if (ihl < kIpv4HeaderSize || total < ihl || total > p.size()) return std::nullopt;
  if (internet_checksum(p.first(ihl)) != 0) return std::nullopt;
  Ipv4View v;
  v.header_length = std::uint8_t(ihl);
  v.total_length = total;
  std::uint16_t frag = load16(p.data() + 6);
  v.is_fragment = (frag & 0x3fff) != 0;
  v.is_first_fragment = (frag & 0x1fff) == 0;
  v.ttl = p[8];
  v.protocol = p[9];
  v.src = Ipv4Addr::from(p.data() + 12);
  v.dst = Ipv4Addr::from(p.data() + 16);
  v.packet = p.first(total);
  v.payload = v.packet.subspan(ihl);
  return v;
}

namespace {
std::uint32_t pseudo_header_sum(Ipv4Addr src, Ipv4Addr dst, std::uint8_t proto, std::size_t len) {
  return (src.value >> 16) + (src.value & 0xffff) + (dst.value >> 16) + (dst.value & 0xffff) + proto +
         std::uint32_t(len);
}
}  // namespace

std::optional<UdpView> parse_udp(const Ipv4View& ip, bool verify_checksum) {
  if (ip.protocol != kIpProtoUdp || ip.is_fragment) return std::nullopt;
  auto p = ip.payload;
  if (p.size() < kUdpHeaderSize) return std::nullopt;
  std::uint16_t len = load16(p.data() + 4);
  if (len < kUdpHeaderSize || len > p.size()) return std::nullopt;
  p = p.first(len);
  if (verify_checksum && load16(p.data() + 6) != 0) {
    std::uint32_t sum = pseudo_header_sum(ip.src, ip.dst, kIpProtoUdp, len);
    if (checksum_finish(checksum_add(sum, p)) != 0) return std::nullopt;
  }
  UdpView v;
  v.src_port = load16(p.data());
  v.dst_port = load16(p.data() + 2);
  v.payload = p.subspan(kUdpHeaderSize);
  return v;
}

std::optional<TcpView> parse_tcp(const Ipv4View& ip, bool verify_checksum) {
  if (ip.protocol != kIpProtoTcp || ip.is_fragment) return std::nullopt;
  auto p = ip.payload;
  if (p.size() < kTcpHeaderSize) return std::nullopt;
  const std::size_t header = std::size_t(p[12] >> 4) * 4;
  if (header < kTcpHeaderSize || header > p.size()) return std::nullopt;
  if (verify_checksum) {
    std::uint32_t sum = pseudo_header_sum(ip.src, ip.dst, kIpProtoTcp, p.size());
    if (checksum_finish(checksum_add(sum, p)) != 0) return std::nullopt;
  }
  TcpView v;
  v.src_port = load16(p.data());
  v.dst_port = load16(p.data() + 2);
  v.seq = load32(p.data() + 4);
  v.ack = load32(p.data() + 8);
  v.flags = p[13] & 0x3f;
  v.window = load16(p.data() + 14);
  v.options = p.subspan(kTcpHeaderSize, header - kTcpHeaderSize);
  v.payload = p.subspan(header);
  return v;
}

void write_ethernet_header(ByteSpan out, MacAddr dst, MacAddr src, std::uint16_t ethertype) {
  std::memcpy(out.data(), dst.bytes.data(), 6);
  std::memcpy(out.data() + 6, src.bytes.data(), 6);
  store16(out.data() + 12, ethertype);
}

namespace {
void write_ipv4_header(std::uint8_t* h, Ipv4Addr src, Ipv4Addr dst, std::uint8_t proto, std::size_t total) {
  h[0] = 0x45;
  h[1] = 0;
  store16(h + 2, std::uint16_t(total));
  store16(h + 4, 0);       // identification
  store16(h + 6, 0x4000);  // DF
  h[8] = 64;
  h[9] = proto;
  store16(h + 10, 0);
  src.write(h + 12);
  dst.write(h + 16);
  store16(h + 10, internet_checksum({h, kIpv4HeaderSize}));
}
}  // namespace

std::size_t finish_udp_frame(ByteSpan out, MacAddr dst_mac, MacAddr src_mac, Ipv4Addr src_ip, Ipv4Addr dst_ip,
                             std::uint16_t src_port, std::uint16_t dst_port, std::size_t payload_size) {
  std::size_t udp_len = kUdpHeaderSize + payload_size;
  std::size_t total = kIpv4HeaderSize + udp_len;
  if (out.size() < kEthernetHeaderSize + total || total > 0xffff) return 0;
  write_ethernet_header(out, dst_mac, src_mac, kEtherTypeIpv4);
  std::uint8_t* ip = out.data() + kEthernetHeaderSize;
  write_ipv4_header(ip, src_ip, dst_ip, kIpProtoUdp, total);
  std::uint8_t* udp = ip + kIpv4HeaderSize;
  store16(udp, src_port);
  store16(udp + 2, dst_port);
  store16(udp + 4, std::uint16_t(udp_len));
  store16(udp + 6, 0);
  std::uint16_t sum =
      checksum_finish(checksum_add(pseudo_header_sum(src_ip, dst_ip, kIpProtoUdp, udp_len), {udp, udp_len}));
  store16(udp + 6, sum == 0 ? 0xffff : sum);
  return kEthernetHeaderSize + total;
}

std::size_t finish_tcp_frame(ByteSpan out, MacAddr dst_mac, MacAddr src_mac, Ipv4Addr src_ip, Ipv4Addr dst_ip,
                             std::size_t segment_size) {
  const std::size_t total = kIpv4HeaderSize + segment_size;
  if (out.size() < kEthernetHeaderSize + total || total > 0xffff || segment_size < kTcpHeaderSize) return 0;
  write_ethernet_header(out, dst_mac, src_mac, kEtherTypeIpv4);
  std::uint8_t* ip = out.data() + kEthernetHeaderSize;
  write_ipv4_header(ip, src_ip, dst_ip, kIpProtoTcp, total);
  std::uint8_t* tcp = ip + kIpv4HeaderSize;
  store16(tcp + 16, 0);
  store16(tcp + 16, checksum_finish(checksum_add(pseudo_header_sum(src_ip, dst_ip, kIpProtoTcp, segment_size),
                                                 {tcp, segment_size})));
  return kEthernetHeaderSize + total;
}

std::size_t build_arp_frame(ByteSpan out, MacAddr eth_dst, std::uint16_t op, MacAddr sender_mac, Ipv4Addr sender_ip,
                            MacAddr target_mac, Ipv4Addr target_ip) {
  if (out.size() < kEthernetHeaderSize + 28) return 0;
  write_ethernet_header(out, eth_dst, sender_mac, kEtherTypeArp);
  std::uint8_t* a = out.data() + kEthernetHeaderSize;
  store16(a, 1);
  store16(a + 2, kEtherTypeIpv4);
  a[4] = 6;
  a[5] = 4;
  store16(a + 6, op);
  std::memcpy(a + 8, sender_mac.bytes.data(), 6);
  sender_ip.write(a + 14);
  std::memcpy(a + 18, target_mac.bytes.data(), 6);
  target_ip.write(a + 24);
  return kEthernetHeaderSize + 28;
}

std::size_t build_icmp_echo_reply(ByteSpan out, MacAddr dst_mac, MacAddr src_mac, const Ipv4View& req) {
  if (req.protocol != kIpProtoIcmp || req.is_fragment) return 0;
  auto icmp = req.payload;
  if (icmp.size() < 8 || icmp[0] != 8 || icmp[1] != 0) return 0;
  if (internet_checksum(icmp) != 0) return 0;
  std::size_t total = kIpv4HeaderSize + icmp.size();
  if (out.size() < kEthernetHeaderSize + total) return 0;
  write_ethernet_header(out, dst_mac, src_mac, kEtherTypeIpv4);
  std::uint8_t* ip = out.data() + kEthernetHeaderSize;
  write_ipv4_header(ip, req.dst, req.src, kIpProtoIcmp, total);
  std::uint8_t* reply = ip + kIpv4HeaderSize;
  std::memcpy(reply, icmp.data(), icmp.size());
  reply[0] = 0;  // echo reply
  store16(reply + 2, 0);
  store16(reply + 2, internet_checksum({reply, icmp.size()}));
  return kEthernetHeaderSize + total;
}

}  // namespace wownet
