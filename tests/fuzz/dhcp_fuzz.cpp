// parse_dhcp and DhcpServer over a sequence of client messages. Input: a
// mode byte (bit 0 registry mode, bit 1 a 14-address pool that runs out),
// then steps of [op, 16-bit length, DHCP message]. Every reply the server
// writes must parse back as a DHCP reply.
#include <array>
#include <string>

#include "core/dhcp.h"
#include "core/lease_table.h"
#include "fuzz_input.h"
#include "fuzz_target.h"

using namespace wownet;

namespace {

constexpr UnixTime kT0 = 1'700'000'000;
const MacAddr kOtherMac{{0x52, 0x54, 0x00, 0x00, 0x00, 0x99}};

void check_reply(ConstByteSpan out, std::size_t n) {
  WOWNET_FUZZ_CHECK(n <= out.size());
  if (n == 0) return;
  const auto eth = parse_ethernet(out.first(n));
  WOWNET_FUZZ_CHECK(eth && eth->ethertype == kEtherTypeIpv4);
  const auto ip = parse_ipv4(eth->payload);
  WOWNET_FUZZ_CHECK(ip && ip->protocol == kIpProtoUdp);
  const auto udp = parse_udp(*ip, true);
  WOWNET_FUZZ_CHECK(udp && udp->src_port == kDhcpServerPort && udp->dst_port == kDhcpClientPort);
  const auto reply = parse_dhcp(udp->payload);
  WOWNET_FUZZ_CHECK(reply && reply->op == kBootReply && reply->type);
}

}  // namespace

WOWNET_FUZZ_TARGET(dhcp)(const std::uint8_t* data, std::size_t size) {
  fuzz::FuzzReader in(data, size);
  const std::uint8_t mode = in.u8();
  NetworkConfig cfg;
  if (mode & 2) cfg.network = *Ipv4Prefix::parse("10.128.0.0/28");
  LeaseTable leases(cfg.network, cfg.gateway);
  DhcpServer server(cfg, leases);
  if (mode & 1) server.use_registry("self");
  UnixTime now = kT0;
  std::array<std::uint8_t, 2048> out{};
  while (!in.empty()) {
    const std::uint8_t op = in.u8();
    now += op >> 5;
    if (op & 0x10) now += cfg.lease_time;
    const auto bytes = in.chunk();
    const auto msg = parse_dhcp(bytes);
    if (!msg) continue;
    if (!msg->host_name.empty()) {
      WOWNET_FUZZ_CHECK(msg->host_name.data() >= reinterpret_cast<const char*>(bytes.data()) &&
                        msg->host_name.data() + msg->host_name.size() <=
                            reinterpret_cast<const char*>(bytes.data() + bytes.size()));
    }
    const MacAddr client = (op & 1) ? kOtherMac : msg->chaddr;
    const std::string vm = "vm" + std::to_string((op >> 1) & 3);
    out.fill(0);
    if (op & 8) {
      check_reply(out, server.nak(now, *msg, out));
    } else {
      const DhcpOutcome r = server.on_client_message(now, *msg, client, vm, out);
      check_reply(out, r.reply_size);
      if (r.bound) WOWNET_FUZZ_CHECK(cfg.network.is_host(*r.bound) && *r.bound != cfg.gateway);
    }
    if (op & 0x80) leases.expire(now);
  }
}
