#include "core/host_engine.h"

#include <cstring>
#include <limits>
#include <vector>

#include "core/bytes.h"

namespace wownet {

const char* to_string(DropReason r) {
  switch (r) {
    case DropReason::Malformed: return "malformed";
    case DropReason::SpoofedMac: return "spoofed_mac";
    case DropReason::SpoofedIp: return "spoofed_ip";
    case DropReason::Ethertype: return "ethertype";
    case DropReason::OutsideOverlay: return "outside_overlay";
    case DropReason::DhcpServerMessage: return "dhcp_server_message";
    case DropReason::GatewayService: return "gateway_service";
    case DropReason::NoRoute: return "no_route";
    case DropReason::NotForGateway: return "not_for_gateway";
    case DropReason::UnknownAttachment: return "unknown_attachment";
    case DropReason::HostOriginated: return "host_originated";
    case DropReason::RateLimited: return "rate_limited";
    case DropReason::AwaitingRegistry: return "awaiting_registry";
    case DropReason::Fragment: return "fragment";
    case DropReason::Count: break;
  }
  return "?";
}

namespace {
constexpr UnixTime kHousekeepingInterval = 30;

bool is_dhcp_port(std::uint16_t port) { return port == kDhcpServerPort || port == kDhcpClientPort; }

DnsTcpLimits dns_tcp_limits(const NetworkConfig& config) {
  DnsTcpLimits l;
  // What fits the VM's MTU after the IPv4 and TCP headers (RFC 9293 §3.7.1).
  l.mss = std::uint16_t(std::clamp<int>(int(config.mtu) - 40, DnsTcpResponder::kMinMss, DnsTcpResponder::kMaxMss));
  return l;
}
}  // namespace

HostEngine::HostEngine(NetworkConfig config)
    : config_(std::move(config)),
      zone_{config_.domain, config_.network, config_.gateway, config_.dns_ttl, config_.static_names},
      leases_(config_.network, config_.gateway),
      dhcp_(config_, leases_),
      dns_tcp_(dns_tcp_limits(config_)) {
  set_names_and_reservations();
}

void HostEngine::update_live_settings(const NetworkConfig& c) {
  config_.lease_time = c.lease_time;
  config_.learn_static = c.learn_static;
  config_.dns_ttl = c.dns_ttl;
  zone_.ttl = c.dns_ttl;
  config_.static_names = c.static_names;
  config_.reservations = c.reservations;
  zone_.static_names = c.static_names;
  set_names_and_reservations();
}

void HostEngine::add_attachment(AttachmentId id, const std::string& vm, std::optional<MacAddr> mac, UnixTime now) {
  AttachmentState& att = attachments_[id];
  att.id = id;
  att.vm = vm;
  att.mac.reset();
  ++bindings_version_;
  // A restored MAC is the VM's again unless another VM holds it meanwhile;
  // then the first frame decides, as for a new attachment.
  if (mac && mac_available(att, *mac, now)) {
    att.mac = mac;
    if (const Lease* l = leases_.find_by_mac(*mac); l && l->active(now) && l->vm == vm) take_lease(att, *l);
    return;
  }
  // A VM that migrated here from another node: its lease names it, so its
  // MAC is known before it sends anything and the lease is moved here at
  // once, and traffic for a silent VM finds it.
  if (!registry_mode()) return;
  const Lease* l = leases_.find_active_by_vm(vm, now);
  if (!l || l->node == self_node_ || !mac_available(att, l->mac, now)) return;
  att.mac = l->mac;
  take_lease(att, *l);
}

void HostEngine::take_lease(AttachmentState& att, const Lease& l) {
  if (!registry_mode() || l.node == self_node_) {
    bind(att, l.address);
    return;
  }
  // Held by another node: the VM migrated. The registry moves the lease
  // here (the same VM name may take its lease along) and tells every node;
  // its grant binds the attachment (on_registry_lease).
  asks_.push_back(
      LeaseAsk{LeaseAsk::Kind::Bind, l.mac, att.vm, l.host_name, l.address, l.origin == LeaseOrigin::Learned});
}

void HostEngine::remove_attachment(AttachmentId id) {
  auto it = attachments_.find(id);
  if (it == attachments_.end()) return;
  // Its offers and binds not sent yet go with it: the VM is not here (a
  // move asked for at attach time would take its lease from where it is).
  // A release or decline it sent still goes out.
  const AttachmentState& att = it->second;
  std::erase_if(asks_, [&att](const LeaseAsk& a) {
    return (a.kind == LeaseAsk::Kind::Offer || a.kind == LeaseAsk::Kind::Bind) && a.vm == att.vm && a.mac == att.mac;
  });
  unbind(it->second);
  dns_tcp_.forget(id);
  attachments_.erase(it);
  ++bindings_version_;
}

void HostEngine::set_host_macs(AttachmentId id, std::vector<MacAddr> macs) {
  auto it = attachments_.find(id);
  if (it == attachments_.end()) return;
  it->second.host_macs = std::move(macs);
  if (it->second.mac) {
    for (const MacAddr& m : it->second.host_macs) {
      if (m == *it->second.mac) {
        unbind(it->second);
        it->second.mac.reset();  // learned from a host device by mistake
        ++bindings_version_;
        break;
      }
    }
  }
}

const AttachmentState* HostEngine::attachment(AttachmentId id) const {
  auto it = attachments_.find(id);
  return it == attachments_.end() ? nullptr : &it->second;
}

bool HostEngine::bind(AttachmentState& att, Ipv4Addr addr) {
  auto route = route_.find(addr.value);
  if (route != route_.end() && route->second != att.id) {
    auto other = attachments_.find(route->second);
    if (other != attachments_.end() && other->second.ip == addr) return false;
  }
  if (att.ip != addr) {
    unbind(att);
    att.ip = addr;
    ++bindings_version_;
  }
  route_[addr.value] = att.id;
  if (const Lease* l = leases_.find(addr)) note_deadline(l->expiry);
  return true;
}

bool HostEngine::mac_available(const AttachmentState& att, MacAddr mac, UnixTime now) const {
  for (const auto& [id, other] : attachments_) {
    if (id != att.id && other.mac == mac) return false;
  }
  // An active lease keeps its MAC for its VM, attached here or not (a
  // detached VM may be attached again, a VM elsewhere may migrate here):
  // only that VM name may present it until the lease expires.
  return !leases_.reserved_for_other_vm(mac, att.vm, now);
}

bool HostEngine::holds_lease_elsewhere(const AttachmentState& att, Ipv4Addr addr, UnixTime now) const {
  if (!registry_mode() || att.ip || !att.mac) return false;
  const Lease* l = leases_.find_active(addr, now);
  return l && l->mac == *att.mac && l->vm == att.vm && l->node != self_node_;
}

bool HostEngine::may_claim(const AttachmentState& att, Ipv4Addr addr, UnixTime now) const {
  return leases_.is_available(addr, *att.mac, now) && !leases_.reserved_for_other_vm(*att.mac, att.vm, now);
}

void HostEngine::unbind(AttachmentState& att) {
  if (!att.ip) return;
  auto it = route_.find(att.ip->value);
  if (it != route_.end() && it->second == att.id) route_.erase(it);
  att.ip.reset();
  ++bindings_version_;
}

FrameAction HostEngine::drop(AttachmentState* att, DropReason r) {
  ++counters_.drops[std::size_t(r)];
  if (att) ++att->counters.drops[std::size_t(r)];
  return FrameAction::drop(r);
}

void HostEngine::on_frame_sent(AttachmentId to, std::size_t bytes) {
  auto it = attachments_.find(to);
  if (it == attachments_.end()) return;
  ++it->second.counters.tx_frames;
  it->second.counters.tx_bytes += bytes;
}

FrameAction HostEngine::on_tap_frame(UnixTime now, AttachmentId from, ByteSpan frame, bool checksum_partial) {
  auto it = attachments_.find(from);
  if (it == attachments_.end()) return drop(nullptr, DropReason::UnknownAttachment);
  AttachmentState& att = it->second;
  leases_.set_now(now);
  ++att.counters.rx_frames;
  att.counters.rx_bytes += frame.size();

  auto eth = parse_ethernet(frame);
  if (!eth) return drop(&att, DropReason::Malformed);
  if (eth->src.is_multicast() || eth->src.is_zero()) return drop(&att, DropReason::SpoofedMac);
  if (!att.mac || *att.mac != eth->src) {
    for (const MacAddr& m : att.host_macs) {
      if (m == eth->src) return drop(&att, DropReason::HostOriginated);
    }
  }
  if (eth->ethertype != kEtherTypeIpv4 && eth->ethertype != kEtherTypeArp) return drop(&att, DropReason::Ethertype);
  if (!att.mac) {
    // The VM's first frame fixes its MAC, unless another VM owns that MAC.
    if (!mac_available(att, eth->src, now)) return drop(&att, DropReason::SpoofedMac);
    att.mac = eth->src;
    ++bindings_version_;
    if (const Lease* l = leases_.find_by_mac(eth->src); l && l->active(now) && l->vm == att.vm) take_lease(att, *l);
  } else if (*att.mac != eth->src) {
    return drop(&att, DropReason::SpoofedMac);
  }
  if (eth->dst != config_.gateway_mac && !eth->dst.is_broadcast()) {
    // Only ARP and IPv4 multicast may use group addresses; other unicast
    // MACs do not exist on this link.
    if (!eth->dst.is_multicast()) return drop(&att, DropReason::NotForGateway);
    if (eth->ethertype == kEtherTypeIpv4) return drop(&att, DropReason::OutsideOverlay);
  }
  if (eth->ethertype == kEtherTypeArp) return handle_arp(now, att, *eth);
  return handle_ipv4(now, att, *eth, frame, checksum_partial);
}

bool HostEngine::accept_source_ip(UnixTime now, AttachmentState& att, Ipv4Addr src) {
  if (att.ip) {
    if (*att.ip != src) return false;
    // A learned binding lives as long as the VM keeps talking (and learning
    // stays on: turned off by a reload, it ends at its expiry).
    const Lease* l = leases_.find(src);
    if (config_.learn_static && l && l->origin == LeaseOrigin::Learned &&
        l->expiry - now < UnixTime(config_.lease_time / 2)) {
      leases_.extend(src, *att.mac, now + config_.lease_time);
      note_deadline(now + config_.lease_time);
    }
    return true;
  }
  // No binding yet: a statically configured VM (RFC 2131 does not apply).
  if (registry_mode()) {
    // The registry decides; once it granted the address, it is the VM's.
    const Lease* l = leases_.find(src);
    if (l && l->mac == *att.mac && l->vm == att.vm && l->node == self_node_ && l->active(now)) return bind(att, src);
    if (config_.learn_static && may_claim(att, src, now) && now - att.learn_asked >= 2) {
      att.learn_asked = now;
      asks_.push_back(LeaseAsk{LeaseAsk::Kind::Bind, *att.mac, att.vm, std::string{}, src, true});
    }
    return false;
  }
  if (!config_.learn_static || !may_claim(att, src, now)) return false;
  leases_.put(src, *att.mac, att.vm, std::string{}, now + config_.lease_time, LeaseState::Bound, LeaseOrigin::Learned);
  ++counters_.learned;
  bind(att, src);
  return true;
}

FrameAction HostEngine::handle_arp(UnixTime now, AttachmentState& att, const EthernetView& eth) {
  auto arp = parse_arp(eth.payload);
  if (!arp) return drop(&att, DropReason::Malformed);
  if (arp->sender_mac != eth.src) return drop(&att, DropReason::SpoofedMac);
  // A probe (RFC 5227 §2.1.1) has sender address 0: nothing to learn or police.
  if (!arp->sender_ip.is_zero() && !accept_source_ip(now, att, arp->sender_ip) &&
      !holds_lease_elsewhere(att, arp->sender_ip, now))
    return drop(&att, DropReason::SpoofedIp);
  if (arp->op != kArpRequest) return FrameAction::none();
  // Probes and announcements (sender == target) get no answer, so a VM
  // checking its own address never sees a conflict from us.
  bool probe = arp->sender_ip.is_zero() || arp->sender_ip == arp->target_ip;
  leases_.set_now(now);
  bool known = arp->target_ip == config_.gateway ||
               (config_.network.is_host(arp->target_ip) && leases_.is_leased(arp->target_ip));
  if (probe || !known) {
    ++counters_.arp_unanswered;
    return FrameAction::none();
  }
  std::size_t n =
      build_arp_frame(reply_, eth.src, kArpReply, config_.gateway_mac, arp->target_ip, arp->sender_mac, arp->sender_ip);
  ++counters_.arp_replies;
  return FrameAction::write(att.id, ConstByteSpan(reply_.data(), n));
}

FrameAction HostEngine::handle_dhcp(UnixTime now, AttachmentState& att, const DhcpMessage& msg) {
  DhcpOutcome out = dhcp_.on_client_message(now, msg, *att.mac, att.vm, reply_);
  if (out.ask) {
    asks_.push_back(*out.ask);
    if (out.reply_size == 0 && (out.ask->kind == LeaseAsk::Kind::Offer || out.ask->kind == LeaseAsk::Kind::Bind))
      ++counters_.registry_waits;
  }
  if (out.bound) {
    bind(att, *out.bound);
    note_deadline(now + config_.hold_time());
  }
  if (out.released) unbind(att);
  if (out.reply_size == 0) return FrameAction::none();
  return FrameAction::write(att.id, ConstByteSpan(reply_.data(), out.reply_size));
}

FrameAction HostEngine::handle_ipv4(UnixTime now, AttachmentState& att, const EthernetView& eth, ByteSpan frame,
                                    bool checksum_partial) {
  auto ip = parse_ipv4(eth.payload);
  if (!ip) return drop(&att, DropReason::Malformed);

  if (ip->protocol == kIpProtoUdp && ip->is_fragment) {
    if (auto reason = check_udp_fragment(now, att, *ip)) return drop(&att, *reason);
  } else if (ip->protocol == kIpProtoUdp) {
    auto udp = parse_udp(*ip, !checksum_partial);
    if (!udp) return drop(&att, DropReason::Malformed);
    if (udp->src_port == kDhcpServerPort) return drop(&att, DropReason::DhcpServerMessage);
    if (udp->dst_port == kDhcpServerPort && (ip->dst == config_.gateway || ip->dst == Ipv4Addr{0xffffffff})) {
      // DHCP clients speak before they have an address (source 0.0.0.0) and
      // while they change it; the binding follows the server's answer.
      if (!ip->src.is_zero() && !(att.ip && *att.ip == ip->src) && !may_claim(att, ip->src, now))
        return drop(&att, DropReason::SpoofedIp);
      if (now != att.dhcp_window) {
        att.dhcp_window = now;
        att.dhcp_in_window = 0;
      }
      if (++att.dhcp_in_window > kDhcpMessagesPerSecond) return drop(&att, DropReason::RateLimited);
      auto msg = parse_dhcp(udp->payload);
      if (!msg) return drop(&att, DropReason::Malformed);
      if (msg->op != kBootRequest) return drop(&att, DropReason::DhcpServerMessage);
      FrameAction result = handle_dhcp(now, att, *msg);
      if (registry_mode() && result.kind == FrameAction::Kind::None && msg->type &&
          (*msg->type == DhcpMessageType::Discover || *msg->type == DhcpMessageType::Request))
        att.pending_dhcp.assign(udp->payload.begin(), udp->payload.end());
      return result;
    }
    // hostd is the only DHCP server and there are no relays (giaddr is 0),
    // so DHCP has no business between VMs. A client takes a reply by its
    // destination port alone, whatever the source port.
    if (is_dhcp_port(udp->src_port) || is_dhcp_port(udp->dst_port)) return drop(&att, DropReason::DhcpServerMessage);
  }

  if (!accept_source_ip(now, att, ip->src))
    return drop(&att, registry_mode() && !att.ip && may_claim(att, ip->src, now) ? DropReason::AwaitingRegistry
                                                                                 : DropReason::SpoofedIp);

  if (ip->dst == config_.gateway) {
    if (ip->protocol == kIpProtoIcmp) {
      std::size_t n = build_icmp_echo_reply(reply_, eth.src, config_.gateway_mac, *ip);
      if (n == 0) return drop(&att, DropReason::GatewayService);
      ++counters_.icmp_echo_replies;
      return FrameAction::write(att.id, ConstByteSpan(reply_.data(), n));
    }
    if (ip->protocol == kIpProtoUdp && !ip->is_fragment) {
      auto udp = parse_udp(*ip, !checksum_partial);
      if (udp && udp->dst_port == kDnsPort) {
        leases_.set_now(now);
        ByteSpan out(reply_.data() + kUdpPayloadOffset, reply_.size() - kUdpPayloadOffset);
        std::size_t n = answer_dns_query(zone_, leases_, udp->payload, out, dns_counters_);
        if (n == 0) return FrameAction::none();
        std::size_t size = finish_udp_frame(reply_, eth.src, config_.gateway_mac, config_.gateway, ip->src, kDnsPort,
                                            udp->src_port, n);
        return FrameAction::write(att.id, ConstByteSpan(reply_.data(), size));
      }
    }
    if (ip->protocol == kIpProtoTcp && !ip->is_fragment) {
      // DNS over TCP (RFC 7766) on port 53; any other port is closed: RST.
      auto tcp = parse_tcp(*ip, !checksum_partial);
      if (!tcp) return drop(&att, DropReason::Malformed);
      const DnsTcpEndpoints ends{att.id, eth.src, ip->src, config_.gateway_mac, config_.gateway};
      if (tcp->dst_port != kDnsPort) return FrameAction::write_all(att.id, dns_tcp_.reset(ends, *tcp));
      leases_.set_now(now);
      return FrameAction::write_all(att.id, dns_tcp_.on_segment(now, ends, *tcp, zone_, leases_, dns_counters_));
    }
    return drop(&att, DropReason::GatewayService);
  }

  if (!config_.network.is_host(ip->dst)) return drop(&att, DropReason::OutsideOverlay);
  if (eth.dst != config_.gateway_mac) return drop(&att, DropReason::NotForGateway);
  auto route = route_.find(ip->dst.value);
  if (route == route_.end()) {
    // A VM on another node: the bare IPv4 packet goes to that node.
    const Lease* l = leases_.find_active(ip->dst, now);
    if (!l || l->node.empty()) return drop(&att, DropReason::NoRoute);
    ++counters_.to_peers;
    return FrameAction::send(l->node, ip->packet);
  }
  auto dst = attachments_.find(route->second);
  if (dst == attachments_.end() || !dst->second.mac) return drop(&att, DropReason::NoRoute);
  // Switch it: to the destination VM, from the gateway.
  std::memcpy(frame.data(), dst->second.mac->bytes.data(), 6);
  std::memcpy(frame.data() + 6, config_.gateway_mac.bytes.data(), 6);
  ++counters_.forwarded;
  return FrameAction::write(dst->second.id, frame);
}

std::optional<DropReason> HostEngine::check_udp_fragment(UnixTime now, AttachmentState& att, const Ipv4View& ip) {
  const std::uint16_t id = load16(ip.packet.data() + 4);
  auto same_datagram = [&](const DroppedDatagram& d) {
    return d.until > now && d.id == id && d.protocol == ip.protocol && d.src == ip.src && d.dst == ip.dst;
  };
  if (!ip.is_first_fragment) {
    // Offset >= 1 means byte 8 or later of the UDP datagram: past the ports,
    // so a later fragment can neither show nor overwrite them. Only its
    // datagram's first fragment can say whether it may pass.
    for (const DroppedDatagram& d : att.dropped_datagrams) {
      if (same_datagram(d)) return DropReason::Fragment;
    }
    return std::nullopt;
  }
  std::optional<DropReason> reason;
  if (ip.payload.size() < kUdpHeaderSize) {
    // RFC 1858 §3.1: a first fragment too small to hold the ports.
    reason = DropReason::Malformed;
  } else if (is_dhcp_port(load16(ip.payload.data())) || is_dhcp_port(load16(ip.payload.data() + 2))) {
    reason = DropReason::DhcpServerMessage;
  }
  DroppedDatagram* slot = nullptr;
  for (DroppedDatagram& d : att.dropped_datagrams) {
    if (same_datagram(d)) slot = &d;
  }
  if (!reason) {
    if (slot) slot->until = 0;  // a new datagram reuses the ID: its fragments are its own
    return std::nullopt;
  }
  if (!slot) {
    slot = &att.dropped_datagrams[att.next_dropped_datagram];
    att.next_dropped_datagram = (att.next_dropped_datagram + 1) % att.dropped_datagrams.size();
  }
  *slot = DroppedDatagram{ip.src, ip.dst, id, ip.protocol, now + kDroppedDatagramMemory};
  return reason;
}

FrameAction HostEngine::on_peer_packet(UnixTime now, std::string_view peer, ByteSpan buffer, std::size_t offset,
                                       std::size_t length) {
  auto peer_drop = [this](DropReason r) {
    ++counters_.peer_drops[std::size_t(r)];
    return FrameAction::drop(r);
  };
  if (offset < kEthernetHeaderSize || offset > buffer.size() || length > buffer.size() - offset)
    return peer_drop(DropReason::Malformed);
  auto ip = parse_ipv4(ConstByteSpan(buffer.data() + offset, length));
  if (!ip) return peer_drop(DropReason::Malformed);
  // The sender may only speak for the VMs it holds leases for.
  const Lease* src = leases_.find_active(ip->src, now);
  if (!src || src->node != peer || peer.empty()) return peer_drop(DropReason::SpoofedIp);
  // No node plays DHCP server for the VMs here, whatever its own engine
  // let through: the ports are in the datagram's first fragment (RFC 1858
  // §3.1: one too short to hold them is malformed).
  if (ip->protocol == kIpProtoUdp && (!ip->is_fragment || ip->is_first_fragment)) {
    if (ip->payload.size() < kUdpHeaderSize) return peer_drop(DropReason::Malformed);
    if (is_dhcp_port(load16(ip->payload.data())) || is_dhcp_port(load16(ip->payload.data() + 2)))
      return peer_drop(DropReason::DhcpServerMessage);
  }
  auto route = route_.find(ip->dst.value);
  if (route == route_.end()) return peer_drop(DropReason::NoRoute);
  auto dst = attachments_.find(route->second);
  if (dst == attachments_.end() || !dst->second.mac) return peer_drop(DropReason::NoRoute);
  ByteSpan frame(buffer.data() + offset - kEthernetHeaderSize, ip->total_length + kEthernetHeaderSize);
  write_ethernet_header(frame, *dst->second.mac, config_.gateway_mac, kEtherTypeIpv4);
  ++counters_.from_peers;
  return FrameAction::write(dst->second.id, frame);
}

void HostEngine::use_registry(const std::string& self) {
  self_node_ = self;
  leases_.set_own_node(self);
  dhcp_.use_registry(self);
  leases_.set_reservations({});  // the registry's to keep
}

FrameAction HostEngine::on_registry_lease(UnixTime now, const Lease& lease) {
  leases_.set_now(now);
  if (lease.node == self_node_ && !self_node_.empty() && !lease.active(now)) {
    // The registry's copy of a lease held here lapsed (its refreshes were
    // cut off: a NAT flush, a rendezvous restart). The VM still holds it
    // and renews it here: keep it and assert it again.
    const Lease* mine = leases_.find(lease.address);
    if (mine && mine->mac == lease.mac && mine->node == self_node_ && mine->active(now) &&
        mine->state == LeaseState::Bound && lease.state == LeaseState::Bound) {
      asks_.push_back(LeaseAsk{LeaseAsk::Kind::Bind, mine->mac, mine->vm, mine->host_name, mine->address,
                               mine->origin == LeaseOrigin::Learned});
      return FrameAction::none();
    }
  }
  leases_.apply(lease);
  for (auto& [id, att] : attachments_) {
    const bool ours = lease.mac == att.mac && lease.vm == att.vm;
    if (att.ip == lease.address && (!ours || lease.node != self_node_ || !lease.active(now)))
      unbind(att);  // moved to another VM or node, or ended
    if (att.mac != lease.mac) continue;
    if (ours && lease.node == self_node_ && lease.active(now)) bind(att, lease.address);
    if (att.pending_dhcp.empty()) continue;
    // Answer the DHCP message that waited for this grant.
    std::vector<std::uint8_t> pending = std::move(att.pending_dhcp);
    att.pending_dhcp.clear();
    auto msg = parse_dhcp(pending);
    if (!msg || lease.node != self_node_) return FrameAction::none();
    DhcpOutcome out = dhcp_.on_client_message(now, *msg, *att.mac, att.vm, reply_);
    if (out.bound) bind(att, *out.bound);
    if (out.reply_size == 0) {
      if (out.ask) att.pending_dhcp = std::move(pending);  // still not enough: keep waiting
      return FrameAction::none();
    }
    return FrameAction::write(att.id, ConstByteSpan(reply_.data(), out.reply_size));
  }
  return FrameAction::none();
}

FrameAction HostEngine::on_registry_refusal(UnixTime now, MacAddr mac) {
  for (auto& [id, att] : attachments_) {
    if (att.mac != mac || att.pending_dhcp.empty()) continue;
    std::vector<std::uint8_t> pending = std::move(att.pending_dhcp);
    att.pending_dhcp.clear();
    auto msg = parse_dhcp(pending);
    if (!msg || msg->type != DhcpMessageType::Request) return FrameAction::none();
    std::size_t n = dhcp_.nak(now, *msg, reply_);
    if (n == 0) return FrameAction::none();
    return FrameAction::write(att.id, ConstByteSpan(reply_.data(), n));
  }
  return FrameAction::none();
}

void HostEngine::on_agent_host_name(UnixTime now, AttachmentId from, const std::string& host_name) {
  auto it = attachments_.find(from);
  if (it == attachments_.end() || !it->second.ip) return;
  std::string name = sanitize_host_name(host_name);
  if (name.empty()) return;
  if (const Lease* l = leases_.find_active(*it->second.ip, now);
      l && l->mac == it->second.mac && l->vm == it->second.vm)
    leases_.set_host_name(*it->second.ip, name);
}

void HostEngine::on_timer(UnixTime now, TapFrameSink* out) {
  if (dns_tcp_.next_deadline() <= now) {
    struct Discard : TapFrameSink {
      void frame(std::uint32_t, ConstByteSpan) override {}
    } discard;
    dns_tcp_.on_timer(now, out ? *out : discard);
  }
  leases_.set_now(now);
  leases_.expire(now);
  UnixTime next = now + kHousekeepingInterval;
  for (auto& [id, att] : attachments_) {
    if (!att.ip) continue;
    const Lease* l = leases_.find(*att.ip);
    if (!l || !att.mac || l->mac != *att.mac || l->vm != att.vm || !l->active(now)) {
      unbind(att);
    } else if (l->expiry < next) {
      next = l->expiry;
    }
  }
  next_deadline_ = next;
}

}  // namespace wownet
