// Views over wire packets (Ethernet, ARP, IPv4, UDP, ICMP) and builders for
// the frames hostd sends to its VMs. Parsers never read past the span they
// are given and return nullopt on anything malformed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "core/types.h"

namespace wownet {

using ByteSpan = std::span<std::uint8_t>;
using ConstByteSpan = std::span<const std::uint8_t>;

inline constexpr std::uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr std::uint16_t kEtherTypeArp = 0x0806;
inline constexpr std::size_t kEthernetHeaderSize = 14;
inline constexpr std::size_t kIpv4HeaderSize = 20;  // without options
inline constexpr std::size_t kUdpHeaderSize = 8;
inline constexpr std::size_t kUdpPayloadOffset = kEthernetHeaderSize + kIpv4HeaderSize + kUdpHeaderSize;
inline constexpr std::uint8_t kIpProtoIcmp = 1;
inline constexpr std::uint8_t kIpProtoTcp = 6;
inline constexpr std::uint8_t kIpProtoUdp = 17;

struct EthernetView {
  MacAddr dst;
  MacAddr src;
  std::uint16_t ethertype = 0;  // the outer one: an 802.1Q tag shows as 0x8100
  ConstByteSpan payload;
};
// Parses an Ethernet II header; nullopt if the frame is shorter than 14 bytes.
std::optional<EthernetView> parse_ethernet(ConstByteSpan frame);

inline constexpr std::uint16_t kArpRequest = 1;
inline constexpr std::uint16_t kArpReply = 2;
struct ArpView {
  std::uint16_t op = 0;
  MacAddr sender_mac;
  Ipv4Addr sender_ip;
  MacAddr target_mac;
  Ipv4Addr target_ip;
};
// Parses an ARP packet for Ethernet/IPv4 (RFC 826); nullopt for any other
// hardware or protocol type, or a short packet.
std::optional<ArpView> parse_arp(ConstByteSpan payload);

struct Ipv4View {
  std::uint8_t header_length = 0;  // bytes
  std::uint8_t protocol = 0;
  std::uint8_t ttl = 0;
  std::uint16_t total_length = 0;
  bool is_fragment = false;  // MF set or non-zero offset
  bool is_first_fragment = true;
  Ipv4Addr src;
  Ipv4Addr dst;
  ConstByteSpan packet;   // header and payload, trimmed to total_length
  ConstByteSpan payload;  // after the header
};
// Parses an IPv4 header: version 4, IHL >= 5, total length within the span,
// valid header checksum. Trailing Ethernet padding is trimmed.
std::optional<Ipv4View> parse_ipv4(ConstByteSpan packet);

struct UdpView {
  std::uint16_t src_port = 0;
  std::uint16_t dst_port = 0;
  ConstByteSpan payload;
};
// Parses a UDP header; nullopt if the length field disagrees with the span.
// The checksum is verified when non-zero, unless `verify_checksum` is false
// (the sender's NIC offload left it partial: virtio-net NEEDS_CSUM).
std::optional<UdpView> parse_udp(const Ipv4View& ip, bool verify_checksum = true);

inline constexpr std::size_t kTcpHeaderSize = 20;  // without options
inline constexpr std::size_t kTcpOffset = kEthernetHeaderSize + kIpv4HeaderSize;
inline constexpr std::uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04, kTcpPsh = 0x08, kTcpAck = 0x10;

struct TcpView {
  std::uint16_t src_port = 0;
  std::uint16_t dst_port = 0;
  std::uint32_t seq = 0;
  std::uint32_t ack = 0;
  std::uint8_t flags = 0;  // the low six bits: URG ACK PSH RST SYN FIN
  std::uint16_t window = 0;
  ConstByteSpan options;
  ConstByteSpan payload;
};
// Parses a TCP header (RFC 793 §3.1) of an unfragmented IPv4 packet; nullopt
// if the data offset is below 5 or past the segment, or the checksum is
// wrong (unless `verify_checksum` is false: offload left it partial).
std::optional<TcpView> parse_tcp(const Ipv4View& ip, bool verify_checksum = true);

// Writes an Ethernet header at out[0..14).
void write_ethernet_header(ByteSpan out, MacAddr dst, MacAddr src, std::uint16_t ethertype);

// Builds a complete Ethernet/IPv4/UDP frame in `out` around a payload that
// the caller has already written at out[kUdpPayloadOffset..+payload_size).
// Fills in lengths and both checksums. Returns the frame size, or 0 if `out`
// is too small.
std::size_t finish_udp_frame(ByteSpan out, MacAddr dst_mac, MacAddr src_mac, Ipv4Addr src_ip, Ipv4Addr dst_ip,
                             std::uint16_t src_port, std::uint16_t dst_port, std::size_t payload_size);

// Builds a complete Ethernet/IPv4/TCP frame in `out` around a TCP header
// and data that the caller has already written at
// out[kTcpOffset..+segment_size), checksum field included (its value is
// ignored). Fills in the IPv4 header and the TCP checksum. Returns the frame
// size, or 0 if `out` is too small.
std::size_t finish_tcp_frame(ByteSpan out, MacAddr dst_mac, MacAddr src_mac, Ipv4Addr src_ip, Ipv4Addr dst_ip,
                             std::size_t segment_size);

// Builds an Ethernet/ARP frame. Returns its size (42), or 0 if `out` is too small.
std::size_t build_arp_frame(ByteSpan out, MacAddr eth_dst, std::uint16_t op, MacAddr sender_mac, Ipv4Addr sender_ip,
                            MacAddr target_mac, Ipv4Addr target_ip);

// Builds the echo reply for an ICMP echo request `request` (RFC 792),
// addressed back to its sender. Returns the frame size or 0 if the request
// is not an echo request or does not fit.
std::size_t build_icmp_echo_reply(ByteSpan out, MacAddr dst_mac, MacAddr src_mac, const Ipv4View& request);

}  // namespace wownet
