// The host's packet engine: everything hostd does with a frame a VM sent,
// as pure logic. The io layer reads frames from the TAPs, calls
// on_tap_frame() and carries out the returned action.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/dhcp.h"
#include "core/dns.h"
#include "core/dns_tcp.h"
#include "core/lease_table.h"
#include "core/network_config.h"
#include "core/packet.h"
#include "core/types.h"

namespace wownet {

using AttachmentId = std::uint32_t;

// Why a frame from a VM was not delivered. Every drop is counted under one.
enum class DropReason : std::uint8_t {
  Malformed,          // unparseable Ethernet/ARP/IPv4/UDP
  SpoofedMac,         // source MAC is not the VM's
  SpoofedIp,          // source IP is not the VM's binding (or is taken)
  Ethertype,          // neither IPv4 nor ARP (IPv6, VLAN tags, ...)
  OutsideOverlay,     // destination outside the overlay prefix, or not unicast
  DhcpServerMessage,  // DHCP ports (67, 68) used other than by a client talking to the gateway
  GatewayService,     // to the gateway, but not DHCP, DNS or ICMP echo
  NoRoute,            // overlay destination that no VM holds
  NotForGateway,      // unicast to a MAC other than the gateway's
  UnknownAttachment,  // frame for an attachment the engine does not know
  HostOriginated,     // sent by the host's own side of the attachment (bridge, VIF, TAP)
  RateLimited,        // more DHCP messages in a second than any client needs
  AwaitingRegistry,   // from an address the registry has not granted yet
  Fragment,           // a later fragment of a datagram whose first fragment was dropped
  Count
};
const char* to_string(DropReason r);

struct AttachmentCounters {
  std::uint64_t rx_frames = 0, rx_bytes = 0;  // frames from the VM
  std::uint64_t tx_frames = 0, tx_bytes = 0;  // frames to the VM
  std::array<std::uint64_t, std::size_t(DropReason::Count)> drops{};
  // Calls f(name, value) for every scalar counter (drops are by reason).
  template <typename F>
  void visit(F&& f) const {
    f("rx_frames", rx_frames), f("rx_bytes", rx_bytes), f("tx_frames", tx_frames), f("tx_bytes", tx_bytes);
  }
  std::uint64_t total_drops() const {
    std::uint64_t n = 0;
    for (auto d : drops) n += d;
    return n;
  }
};

// A datagram whose first fragment a VM sent was dropped: its later
// fragments, which carry no ports, are recognised by these fields
// (RFC 791: source, destination, protocol and identification).
struct DroppedDatagram {
  Ipv4Addr src, dst;
  std::uint16_t id = 0;
  std::uint8_t protocol = 0;
  UnixTime until = 0;  // remembered before this second
};
inline constexpr std::size_t kDroppedDatagramSlots = 8;
// Long enough for every fragment of one datagram, which a sender emits
// together; as long as Linux keeps fragments for reassembly (ipfrag_time).
inline constexpr UnixTime kDroppedDatagramMemory = 30;

struct AttachmentState {
  AttachmentId id = 0;
  std::string vm;
  std::optional<MacAddr> mac;      // learned from the first valid frame, then fixed
  std::optional<Ipv4Addr> ip;      // the VM's active binding
  std::vector<MacAddr> host_macs;  // the host-side devices' MACs: never the VM's
  UnixTime dhcp_window = 0;        // second of the current DHCP budget
  std::uint32_t dhcp_in_window = 0;
  std::vector<std::uint8_t> pending_dhcp;  // registry mode: the DHCP message awaiting the registry
  UnixTime learn_asked = 0;                // registry mode: when a learned address was last asked for
  std::array<DroppedDatagram, kDroppedDatagramSlots> dropped_datagrams{};  // most recent first fragments dropped
  std::size_t next_dropped_datagram = 0;                                   // slot the next one overwrites
  AttachmentCounters counters;
};

// The one thing to do with a frame. `frame` points either into the input
// buffer (forwarding, rewritten in place) or into the engine's reply buffer,
// valid until the next call.
struct FrameAction {
  enum class Kind : std::uint8_t { None, WriteToTap, SendToPeer, Drop };
  Kind kind = Kind::None;
  AttachmentId to = 0;  // WriteToTap: the destination attachment
  ConstByteSpan frame;  // WriteToTap: an Ethernet frame; SendToPeer: a bare IPv4 packet
  DropReason reason = DropReason::Malformed;
  std::string_view peer;  // SendToPeer: the node ID (valid until the next call)
  // WriteToTap: further frames for the same attachment, to be written after
  // `frame` and in this order (a TCP answer: data segments, FIN). Valid
  // until the next call.
  std::span<const ConstByteSpan> more;

  static FrameAction none() { return {}; }
  static FrameAction drop(DropReason r) { return FrameAction{Kind::Drop, 0, {}, r, {}, {}}; }
  static FrameAction write(AttachmentId to, ConstByteSpan f) {
    return FrameAction{Kind::WriteToTap, to, f, DropReason::Malformed, {}, {}};
  }
  static FrameAction send(std::string_view peer, ConstByteSpan packet) {
    return FrameAction{Kind::SendToPeer, 0, packet, DropReason::Malformed, peer, {}};
  }
  // Writes `frames` (none: nothing to do) to attachment `to`.
  static FrameAction write_all(AttachmentId to, std::span<const ConstByteSpan> frames) {
    if (frames.empty()) return none();
    FrameAction a = write(to, frames.front());
    a.more = frames.subspan(1);
    return a;
  }
};

inline constexpr std::uint32_t kDhcpMessagesPerSecond = 20;

struct EngineCounters {
  std::uint64_t arp_replies = 0, arp_unanswered = 0, icmp_echo_replies = 0, forwarded = 0, learned = 0;
  std::uint64_t to_peers = 0, from_peers = 0, registry_waits = 0;
  std::array<std::uint64_t, std::size_t(DropReason::Count)> drops{};       // from VMs
  std::array<std::uint64_t, std::size_t(DropReason::Count)> peer_drops{};  // from other nodes
  // Calls f(name, value) for every scalar counter (drops are by reason).
  template <typename F>
  void visit(F&& f) const {
    f("arp_replies", arp_replies), f("arp_unanswered", arp_unanswered), f("icmp_echo_replies", icmp_echo_replies);
    f("forwarded", forwarded), f("learned", learned), f("to_peers", to_peers), f("from_peers", from_peers);
    f("registry_waits", registry_waits);
  }
};

class HostEngine {
 public:
  explicit HostEngine(NetworkConfig config);

  // Registers an attachment; `mac` is known when restored from state, and
  // is ignored if another VM holds it now (see mac_available).
  void add_attachment(AttachmentId id, const std::string& vm, std::optional<MacAddr> mac, UnixTime now);
  // Forgets an attachment. Its lease stays (the VM may be attached again).
  void remove_attachment(AttachmentId id);
  // Switches to registry mode: addresses come from the registry (rendezvous
  // nodes) for this node `self`. DHCP and learning then queue LeaseAsks
  // (take_lease_asks) and answer once on_registry_lease brings the grant.
  void use_registry(const std::string& self);
  bool registry_mode() const { return !self_node_.empty(); }
  const std::string& self_node() const { return self_node_; }
  // The registry requests queued since the last call.
  std::vector<LeaseAsk> take_lease_asks() { return std::exchange(asks_, {}); }
  // Applies a lease the registry granted or reported. If a VM here was
  // waiting for it, returns the DHCP reply to send it.
  FrameAction on_registry_lease(UnixTime now, const Lease& lease);
  // The registry refused a request for `mac`: a waiting DHCPREQUEST gets a NAK.
  FrameAction on_registry_refusal(UnixTime now, MacAddr mac);
  // Declares the MACs of the host's own devices on this attachment (VIF,
  // bridge, TAP). Frames from them are dropped and never fix the VM's MAC.
  void set_host_macs(AttachmentId id, std::vector<MacAddr> macs);
  const AttachmentState* attachment(AttachmentId id) const;
  const std::unordered_map<AttachmentId, AttachmentState>& attachments() const { return attachments_; }

  // Handles one frame a VM sent on attachment `from`. May rewrite `frame`.
  // `checksum_partial`: the frame's L4 checksum was left to offload and is
  // not yet valid, so it must not be verified.
  FrameAction on_tap_frame(UnixTime now, AttachmentId from, ByteSpan frame, bool checksum_partial = false);
  // Handles an IPv4 packet that node `peer` sent through an authenticated
  // session. The packet is at buffer[offset, offset + length) and the 14
  // bytes before it are free for the Ethernet header. It is delivered only
  // if its source is leased to `peer` and its destination to a VM here.
  FrameAction on_peer_packet(UnixTime now, std::string_view peer, ByteSpan buffer, std::size_t offset,
                             std::size_t length);
  // Counts a frame that the io layer delivered to attachment `to`.
  void on_frame_sent(AttachmentId to, std::size_t bytes);
  // Applies a host name the VM's agent reported.
  void on_agent_host_name(UnixTime now, AttachmentId from, const std::string& host_name);
  // Expires leases and bindings, retransmits DNS-over-TCP answers and
  // closes idle DNS connections; call at next_deadline() or sooner. Frames
  // for VMs go to `out` (without one they are lost, and the connections
  // they belong to time out).
  void on_timer(UnixTime now, TapFrameSink* out = nullptr);
  // When on_timer() next has work to do.
  UnixTime next_deadline() const { return std::min(next_deadline_, dns_tcp_.next_deadline()); }

  LeaseTable& leases() { return leases_; }
  const LeaseTable& leases() const { return leases_; }
  const NetworkConfig& config() const { return config_; }
  // Takes the settings that may change while hostd runs (a config reload)
  // from `c`: lease_time (for leases granted or renewed from now on),
  // learn_static, dns_ttl, static_names and (without a registry)
  // reservations; call apply_reservations() next. The rest of `c` is ignored.
  void update_live_settings(const NetworkConfig& c);
  // Without a registry: applies the reservations to the leases granted
  // before them (LeaseTable::revoke_reservation_conflicts without ending
  // leases: those the reservations forbid get a NAK at their next
  // renewal). Returns the addresses whose records changed.
  std::vector<Ipv4Addr> apply_reservations(UnixTime now);
  // Without a registry: ends the lease of `addr` now (an admin's release,
  // LeaseTable::revoke), drops its record and unbinds the VM that held it;
  // its next DHCPREQUEST for it is answered anew. False if no bound or
  // offered record has that address.
  bool revoke_lease(UnixTime now, Ipv4Addr addr);
  const DnsZone& zone() const { return zone_; }
  const EngineCounters& counters() const { return counters_; }
  const DhcpCounters& dhcp_counters() const { return dhcp_.counters(); }
  const DnsCounters& dns_counters() const { return dns_counters_; }
  const DnsTcpCounters& dns_tcp_counters() const { return dns_tcp_.counters(); }
  std::size_t dns_tcp_connections() const { return dns_tcp_.open_connections(); }
  // Increments whenever attachments' MACs or the lease table change.
  std::uint64_t state_version() const { return leases_.version() + bindings_version_; }
  // Increments when only lease expiries moved (renewals): worth saving soon,
  // not before the reply.
  std::uint64_t expiry_version() const { return leases_.expiry_version(); }
  // The same for what this host keeps on its own disk: the attachments'
  // MACs and its own leases (LeaseTable::set_own_node; in registry mode the
  // rest of the table comes back from the registry).
  std::uint64_t own_state_version() const { return leases_.own_version() + bindings_version_; }
  std::uint64_t own_expiry_version() const { return leases_.own_expiry_version(); }

 private:
  FrameAction handle_arp(UnixTime now, AttachmentState& att, const EthernetView& eth);
  FrameAction handle_ipv4(UnixTime now, AttachmentState& att, const EthernetView& eth, ByteSpan frame,
                          bool checksum_partial);
  FrameAction handle_dhcp(UnixTime now, AttachmentState& att, const DhcpMessage& msg);
  // Decides a UDP fragment from `att` (RFC 1858 §3, RFC 3128): a first
  // fragment too short for the UDP header, or with a DHCP port, is dropped
  // and remembered; a later fragment of a remembered datagram is dropped.
  // nullopt: nothing against it here.
  std::optional<DropReason> check_udp_fragment(UnixTime now, AttachmentState& att, const Ipv4View& ip);
  // Checks (and, where allowed, learns) `src` as the VM's address.
  bool accept_source_ip(UnixTime now, AttachmentState& att, Ipv4Addr src);
  // Points `addr` at `att`. False (and nothing changes) if another
  // attachment holds it.
  bool bind(AttachmentState& att, Ipv4Addr addr);
  // True if `mac` may become `att`'s MAC: no other attachment has it and no
  // active lease binds it to another VM name (attached here or not).
  bool mac_available(const AttachmentState& att, MacAddr mac, UnixTime now) const;
  // Binds the VM's lease, or asks the registry to move it here.
  void take_lease(AttachmentState& att, const Lease& l);
  // True if `addr` is `att`'s VM's lease (same MAC and name) held by
  // another node: a VM that migrated here, its lease not moved yet. Its ARP
  // is answered meanwhile (its IP packets wait for the move).
  bool holds_lease_elsewhere(const AttachmentState& att, Ipv4Addr addr, UnixTime now) const;
  // True if `att` (whose MAC is fixed) may take `addr`: the address is free
  // for its MAC and the MAC is not another VM's while that VM's lease lasts.
  bool may_claim(const AttachmentState& att, Ipv4Addr addr, UnixTime now) const;
  void unbind(AttachmentState& att);
  // Unbinds every attachment whose lease is no longer its VM's and active.
  void unbind_ended(UnixTime now);
  // Gives the lease table the static names and (without a registry) the
  // reservations of config_.
  void set_names_and_reservations();
  FrameAction drop(AttachmentState* att, DropReason r);
  void note_deadline(UnixTime t) {
    if (t < next_deadline_) next_deadline_ = t;
  }

  NetworkConfig config_;
  DnsZone zone_;
  LeaseTable leases_;
  DhcpServer dhcp_;
  DnsCounters dns_counters_;
  DnsTcpResponder dns_tcp_;
  EngineCounters counters_;
  std::unordered_map<AttachmentId, AttachmentState> attachments_;
  std::unordered_map<std::uint32_t, AttachmentId> route_;  // bound address -> attachment
  std::uint64_t bindings_version_ = 0;
  std::string self_node_;
  std::vector<LeaseAsk> asks_;
  UnixTime next_deadline_ = 0;
  alignas(8) std::array<std::uint8_t, 2048> reply_{};
};

}  // namespace wownet
