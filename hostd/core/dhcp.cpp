#include "core/dhcp.h"

#include <algorithm>
#include <cstring>

#include "core/bytes.h"

namespace wownet {
namespace {

constexpr std::size_t kFixedSize = 236;
constexpr std::uint8_t kMagic[4] = {99, 130, 83, 99};
constexpr std::size_t kMinReplySize = 300;  // BOOTP minimum, RFC 1542 §2.1

enum Option : std::uint8_t {
  kPad = 0,
  kSubnetMask = 1,
  kRouter = 3,
  kDnsServer = 6,
  kHostName = 12,
  kDomainName = 15,
  kInterfaceMtu = 26,
  kBroadcastAddress = 28,
  kRequestedAddress = 50,
  kLeaseTime = 51,
  kMessageType = 53,
  kServerId = 54,
  kRenewalTime = 58,
  kRebindingTime = 59,
  kEnd = 255,
};

class OptionWriter {
 public:
  OptionWriter(std::uint8_t* p, std::size_t cap) : p_(p), cap_(cap) {}
  void put(std::uint8_t code, const void* data, std::size_t len) {
    if (len > 255 || n_ + 2 + len + 1 > cap_) {
      overflow_ = true;
      return;
    }
    p_[n_++] = code;
    p_[n_++] = std::uint8_t(len);
    std::memcpy(p_ + n_, data, len);
    n_ += len;
  }
  void put_u8(std::uint8_t code, std::uint8_t v) { put(code, &v, 1); }
  void put_u16(std::uint8_t code, std::uint16_t v) {
    std::uint8_t b[2];
    store16(b, v);
    put(code, b, 2);
  }
  void put_u32(std::uint8_t code, std::uint32_t v) {
    std::uint8_t b[4];
    store32(b, v);
    put(code, b, 4);
  }
  void put_addr(std::uint8_t code, Ipv4Addr a) { put_u32(code, a.value); }
  void put_str(std::uint8_t code, std::string_view s) { put(code, s.data(), std::min<std::size_t>(s.size(), 255)); }
  std::size_t finish() {
    if (n_ < cap_) p_[n_++] = kEnd;
    return n_;
  }
  bool overflow() const { return overflow_; }

 private:
  std::uint8_t* p_;
  std::size_t cap_;
  std::size_t n_ = 0;
  bool overflow_ = false;
};

}  // namespace

std::optional<DhcpMessage> parse_dhcp(ConstByteSpan p) {
  if (p.size() < kFixedSize + 4) return std::nullopt;
  if (p[1] != 1 || p[2] != 6) return std::nullopt;  // Ethernet, 6-byte addresses
  if (std::memcmp(p.data() + kFixedSize, kMagic, 4) != 0) return std::nullopt;
  DhcpMessage m;
  m.op = p[0];
  m.xid = load32(p.data() + 4);
  m.flags = load16(p.data() + 10);
  m.ciaddr = Ipv4Addr::from(p.data() + 12);
  m.yiaddr = Ipv4Addr::from(p.data() + 16);
  m.giaddr = Ipv4Addr::from(p.data() + 24);
  m.chaddr = MacAddr::from(p.data() + 28);
  std::size_t i = kFixedSize + 4;
  bool ended = false;
  while (i < p.size()) {
    std::uint8_t code = p[i++];
    if (code == kPad) continue;
    if (code == kEnd) {
      ended = true;
      break;
    }
    if (i >= p.size()) return std::nullopt;
    std::size_t len = p[i++];
    if (i + len > p.size()) return std::nullopt;
    const std::uint8_t* v = p.data() + i;
    switch (code) {
      case kMessageType:
        if (len != 1 || v[0] < 1 || v[0] > 8) return std::nullopt;
        m.type = DhcpMessageType(v[0]);
        break;
      case kRequestedAddress:
        if (len != 4) return std::nullopt;
        m.requested_address = Ipv4Addr::from(v);
        break;
      case kServerId:
        if (len != 4) return std::nullopt;
        m.server_id = Ipv4Addr::from(v);
        break;
      case kHostName: m.host_name = std::string_view(reinterpret_cast<const char*>(v), len); break;
      default: break;
    }
    i += len;
  }
  if (!ended) return std::nullopt;
  return m;
}

std::size_t DhcpServer::build_reply(ByteSpan out, const DhcpMessage& req, DhcpMessageType type, Ipv4Addr yiaddr,
                                    const Lease* lease, bool inform, bool with_host_name) {
  if (out.size() < kUdpPayloadOffset + kMinReplySize) return 0;
  std::uint8_t* d = out.data() + kUdpPayloadOffset;
  std::size_t cap = std::min<std::size_t>(out.size() - kUdpPayloadOffset, 576 - 28);
  std::memset(d, 0, kFixedSize);
  d[0] = kBootReply;
  d[1] = 1;
  d[2] = 6;
  store32(d + 4, req.xid);
  store16(d + 10, req.flags);
  if (type != DhcpMessageType::Nak) req.ciaddr.write(d + 12);
  yiaddr.write(d + 16);
  std::memcpy(d + 28, req.chaddr.bytes.data(), 6);
  std::memcpy(d + kFixedSize, kMagic, 4);

  OptionWriter w(d + kFixedSize + 4, cap - kFixedSize - 4);
  w.put_u8(kMessageType, std::uint8_t(type));
  w.put_addr(kServerId, config_.gateway);
  if (type != DhcpMessageType::Nak) {
    if (!inform) {
      // RFC 2131 §4.3.5: no lease time in a reply to DHCPINFORM.
      w.put_u32(kLeaseTime, config_.lease_time);
      w.put_u32(kRenewalTime, config_.lease_time / 2);
      w.put_u32(kRebindingTime, std::uint32_t(std::uint64_t(config_.lease_time) * 7 / 8));
    }
    w.put_addr(kSubnetMask, config_.network.netmask());
    w.put_addr(kBroadcastAddress, config_.network.broadcast());
    w.put_addr(kRouter, config_.gateway);
    w.put_addr(kDnsServer, config_.gateway);
    w.put_str(kDomainName, config_.domain);
    w.put_u16(kInterfaceMtu, config_.mtu);
    if (lease && with_host_name) {
      std::string name = lease->host_name.empty() ? auto_name(lease->address) : lease->host_name;
      w.put_str(kHostName, name);
    }
  }
  std::size_t size = kFixedSize + 4 + w.finish();
  if (w.overflow()) {
    // A long domain and host name may not fit in 576 bytes: the host name
    // is the one option a client can do without.
    return with_host_name && lease ? build_reply(out, req, type, yiaddr, lease, inform, false) : 0;
  }
  if (size < kMinReplySize) {
    std::memset(d + size, 0, kMinReplySize - size);
    size = kMinReplySize;
  }

  // Where the reply goes: RFC 2131 §4.1 (there are no relays: giaddr is 0).
  Ipv4Addr dst_ip = Ipv4Addr{0xffffffff};
  MacAddr dst_mac = MacAddr::broadcast();
  if (type == DhcpMessageType::Nak) {
    // "the server broadcasts any DHCPNAK messages to 0xffffffff".
  } else if (!req.ciaddr.is_zero()) {
    dst_ip = req.ciaddr;
    dst_mac = req.chaddr;
  } else if (!req.broadcast()) {
    dst_ip = yiaddr;
    dst_mac = req.chaddr;
  }
  return finish_udp_frame(out, dst_mac, config_.gateway_mac, config_.gateway, dst_ip, kDhcpServerPort, kDhcpClientPort,
                          size);
}

DhcpOutcome DhcpServer::on_client_message(UnixTime now, const DhcpMessage& msg, MacAddr client_mac,
                                          const std::string& vm, ByteSpan out) {
  DhcpOutcome r;
  if (msg.op != kBootRequest || !msg.type || msg.chaddr != client_mac || !msg.giaddr.is_zero()) {
    ++counters_.ignored;
    return r;
  }
  if (leases_.reserved_for_other_vm(client_mac, vm, now)) {
    // Another VM's binding (address and host name) while its lease lasts:
    // not this VM's to take, renew, release or decline, in either mode.
    ++counters_.ignored;
    return r;
  }
  std::string host_name = sanitize_host_name(msg.host_name);
  if (registry_) return on_registry_message(now, msg, client_mac, vm, host_name, out);
  switch (*msg.type) {
    case DhcpMessageType::Discover: {
      ++counters_.discovers;
      auto addr = leases_.choose(client_mac, msg.requested_address, now, vm);
      if (!addr) {
        ++counters_.ignored;  // pool exhausted: stay silent (RFC 2131 §4.3.1)
        return r;
      }
      const Lease* cur = leases_.find(*addr);
      // Keep an active binding as it is; only reserve addresses not yet bound.
      if (!(cur && cur->mac == client_mac && cur->active(now))) {
        cur = &leases_.put(*addr, client_mac, vm, host_name, now + config_.offer_hold, LeaseState::Offered,
                           LeaseOrigin::Dhcp);
      }
      r.reply_size = build_reply(out, msg, DhcpMessageType::Offer, *addr, cur);
      if (r.reply_size) ++counters_.offers;
      return r;
    }
    case DhcpMessageType::Request: {
      const auto wanted = accept_request(now, msg, client_mac, vm, out, r);
      if (!wanted) return r;
      const Ipv4Addr want = *wanted;
      const Lease& l =
          leases_.put(want, client_mac, vm, host_name, now + config_.hold_time(), LeaseState::Bound, LeaseOrigin::Dhcp);
      r.reply_size = build_reply(out, msg, DhcpMessageType::Ack, want, &l);
      if (r.reply_size) {
        ++counters_.acks;
        r.bound = want;
      }
      return r;
    }
    case DhcpMessageType::Release:
      ++counters_.releases;
      r.released = leases_.release(msg.ciaddr, client_mac, now);
      return r;
    case DhcpMessageType::Decline: {
      ++counters_.declines;
      // RFC 2131 §4.3.3: only an address we offered or gave this client, and
      // at most one per client per hold period, so a VM cannot drain the pool.
      if (!msg.requested_address) return r;
      const Lease* l = leases_.find(*msg.requested_address);
      bool held = l && l->mac == client_mac && l->expiry > now &&
                  (l->state == LeaseState::Offered || l->state == LeaseState::Bound);
      if (!held || !take_decline(now, client_mac)) {
        ++counters_.ignored;
        return r;
      }
      leases_.decline(*msg.requested_address, now + config_.decline_hold);
      r.released = true;
      return r;
    }
    case DhcpMessageType::Inform: return inform(now, msg, client_mac, out);
    default: ++counters_.ignored; return r;
  }
}

std::optional<Ipv4Addr> DhcpServer::requested_address(const DhcpMessage& msg) const {
  // RFC 2131 §4.3.2: which client state the DHCPREQUEST comes from.
  if (msg.server_id) {
    // SELECTING: a reply to some server's OFFER; ours only.
    if (*msg.server_id != config_.gateway || !msg.requested_address) return std::nullopt;
    return msg.requested_address;
  }
  if (msg.requested_address) return msg.requested_address;  // INIT-REBOOT
  if (!msg.ciaddr.is_zero()) return msg.ciaddr;             // RENEWING or REBINDING
  return std::nullopt;
}

std::optional<Ipv4Addr> DhcpServer::accept_request(UnixTime now, const DhcpMessage& msg, MacAddr client_mac,
                                                   const std::string& vm, ByteSpan out, DhcpOutcome& r) {
  ++counters_.requests;
  const auto wanted = requested_address(msg);
  if (!wanted) {
    ++counters_.ignored;
    return std::nullopt;
  }
  if (!leases_.is_available(*wanted, client_mac, now, vm)) {
    r.reply_size = nak(now, msg, out);
    return std::nullopt;
  }
  return wanted;
}

bool DhcpServer::take_decline(UnixTime now, MacAddr mac) {
  auto last = last_decline_.find(mac);
  if (last != last_decline_.end() && now - last->second < UnixTime(config_.decline_hold)) return false;
  last_decline_[mac] = now;
  return true;
}

DhcpOutcome DhcpServer::inform(UnixTime now, const DhcpMessage& msg, MacAddr client_mac, ByteSpan out) {
  DhcpOutcome r;
  ++counters_.informs;
  if (msg.ciaddr.is_zero()) return r;
  const Lease* l = leases_.find_active(msg.ciaddr, now);
  r.reply_size = build_reply(out, msg, DhcpMessageType::Ack, Ipv4Addr{}, l && l->mac == client_mac ? l : nullptr, true);
  if (r.reply_size) ++counters_.acks;
  return r;
}

std::size_t DhcpServer::nak(UnixTime, const DhcpMessage& msg, ByteSpan out) {
  std::size_t n = build_reply(out, msg, DhcpMessageType::Nak, Ipv4Addr{}, nullptr);
  if (n) ++counters_.naks;
  return n;
}

DhcpOutcome DhcpServer::on_registry_message(UnixTime now, const DhcpMessage& msg, MacAddr client_mac,
                                            const std::string& vm, const std::string& host_name, ByteSpan out) {
  DhcpOutcome r;
  auto ask = [&](LeaseAsk::Kind kind, std::optional<Ipv4Addr> addr) {
    r.ask = LeaseAsk{kind, client_mac, vm, host_name, addr, false};
  };
  const Lease* mine = leases_.find_by_mac(client_mac);
  bool mine_here = mine && is_self(*mine) && mine->expiry > now &&
                   (mine->state == LeaseState::Offered || mine->state == LeaseState::Bound);
  switch (*msg.type) {
    case DhcpMessageType::Discover:
      ++counters_.discovers;
      if (mine_here) {
        r.reply_size = build_reply(out, msg, DhcpMessageType::Offer, mine->address, mine);
        if (r.reply_size) ++counters_.offers;
      } else {
        ask(LeaseAsk::Kind::Offer, msg.requested_address);
      }
      return r;
    case DhcpMessageType::Request: {
      const auto wanted = accept_request(now, msg, client_mac, vm, out, r);
      if (!wanted) return r;
      const Ipv4Addr want = *wanted;
      const Lease* l = leases_.find(want);
      if (l && l->mac == client_mac && is_self(*l) && l->active(now)) {
        // Judged by the registry's copy: the host's own moves with every
        // renewal it answers. Refreshed once past a quarter of the lease.
        const UnixTime lease_time = UnixTime(config_.lease_time);
        bool just_granted =
            l->registry_expiry >= now + UnixTime(config_.hold_time()) - std::max<UnixTime>(2, lease_time / 4);
        // A renewal of what the registry granted: answer now (so VMs keep
        // their addresses while the rendezvous is away) and refresh it there.
        const Lease& renewed = leases_.put(want, client_mac, vm, host_name.empty() ? l->host_name : host_name,
                                           now + config_.hold_time(), LeaseState::Bound, l->origin, l->node);
        r.reply_size = build_reply(out, msg, DhcpMessageType::Ack, want, &renewed);
        if (r.reply_size) {
          ++counters_.acks;
          r.bound = want;
        }
        // Just granted by the registry: nothing to refresh there.
        if (just_granted) return r;
      }
      ask(LeaseAsk::Kind::Bind, want);
      return r;
    }
    case DhcpMessageType::Release:
      ++counters_.releases;
      if (leases_.release(msg.ciaddr, client_mac, now)) {
        r.released = true;
        ask(LeaseAsk::Kind::Release, msg.ciaddr);
      }
      return r;
    case DhcpMessageType::Decline: {
      ++counters_.declines;
      if (!msg.requested_address || !mine_here || mine->address != *msg.requested_address) {
        ++counters_.ignored;
        return r;
      }
      if (!take_decline(now, client_mac)) {
        ++counters_.ignored;
        return r;
      }
      leases_.decline(*msg.requested_address, now + config_.decline_hold);
      r.released = true;
      ask(LeaseAsk::Kind::Decline, msg.requested_address);
      return r;
    }
    case DhcpMessageType::Inform: return inform(now, msg, client_mac, out);
    default: ++counters_.ignored; return r;
  }
}

}  // namespace wownet
