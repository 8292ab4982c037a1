// DHCP (RFC 2131, options RFC 2132): message parsing and the per-host
// server that answers VMs from the lease table.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "core/lease_table.h"
#include "core/network_config.h"
#include "core/packet.h"
#include "core/types.h"

namespace wownet {

inline constexpr std::uint16_t kDhcpServerPort = 67;
inline constexpr std::uint16_t kDhcpClientPort = 68;
inline constexpr std::uint8_t kBootRequest = 1;
inline constexpr std::uint8_t kBootReply = 2;

enum class DhcpMessageType : std::uint8_t {
  Discover = 1,
  Offer = 2,
  Request = 3,
  Decline = 4,
  Ack = 5,
  Nak = 6,
  Release = 7,
  Inform = 8,
};

// A parsed DHCP message. string_views point into the parsed buffer.
struct DhcpMessage {
  std::uint8_t op = 0;
  std::uint32_t xid = 0;
  std::uint16_t flags = 0;
  Ipv4Addr ciaddr;
  Ipv4Addr yiaddr;
  Ipv4Addr giaddr;
  MacAddr chaddr;
  std::optional<DhcpMessageType> type;
  std::optional<Ipv4Addr> requested_address;  // option 50
  std::optional<Ipv4Addr> server_id;          // option 54
  std::string_view host_name;                 // option 12
  bool broadcast() const { return (flags & 0x8000) != 0; }
};

// Parses a BOOTP/DHCP message (the UDP payload): fixed header with Ethernet
// hardware type, the magic cookie, and well-formed options (RFC 2132 §2).
std::optional<DhcpMessage> parse_dhcp(ConstByteSpan payload);

struct DhcpCounters {
  std::uint64_t discovers = 0, offers = 0, requests = 0, acks = 0, naks = 0, releases = 0, declines = 0, informs = 0,
                ignored = 0;
  // Calls f(name, value) for every counter: the one list that status,
  // JSON and metrics read.
  template <typename F>
  void visit(F&& f) const {
    f("discovers", discovers), f("offers", offers), f("requests", requests), f("acks", acks), f("naks", naks);
    f("releases", releases), f("declines", declines), f("informs", informs), f("ignored", ignored);
  }
};

// What a handled client message changed, for the caller to act on.
// A request for the registry, which allocates addresses when this host has
// rendezvous nodes (overlay.proto LeaseRequest / LeaseRelease).
struct LeaseAsk {
  enum class Kind : std::uint8_t { Offer, Bind, Release, Decline };
  Kind kind = Kind::Offer;
  MacAddr mac;
  std::string vm;
  std::string host_name;
  std::optional<Ipv4Addr> address;  // requested / bound / released
  bool learned = false;
};

struct DhcpOutcome {
  std::size_t reply_size = 0;     // bytes of the reply frame written to `out`; 0: send nothing
  std::optional<Ipv4Addr> bound;  // the client now holds this address (ACK)
  bool released = false;          // the client gave its address up
  std::optional<LeaseAsk> ask;    // registry mode: ask the registry, answer when it replies
};

// Answers the DHCP clients of the VMs on this host.
class DhcpServer {
 public:
  DhcpServer(const NetworkConfig& config, LeaseTable& leases) : config_(config), leases_(leases) {}

  // Switches to registry mode: addresses are allocated by the registry for
  // node `self`; this server only answers from what the registry granted.
  void use_registry(const std::string& self) {
    registry_ = true;
    self_ = self;
  }

  // Handles one client message from VM `vm` whose source MAC is `client_mac`
  // and writes the complete Ethernet reply frame to `out`. Messages whose
  // chaddr differs from `client_mac`, or whose MAC another VM's active lease
  // holds (LeaseTable::reserved_for_other_vm), are ignored.
  DhcpOutcome on_client_message(UnixTime now, const DhcpMessage& msg, MacAddr client_mac, const std::string& vm,
                                ByteSpan out);

  // Writes a DHCPNAK for `msg` (the registry refused what it asked for).
  std::size_t nak(UnixTime now, const DhcpMessage& msg, ByteSpan out);

  const DhcpCounters& counters() const { return counters_; }

 private:
  DhcpOutcome on_registry_message(UnixTime now, const DhcpMessage& msg, MacAddr client_mac, const std::string& vm,
                                  const std::string& host_name, ByteSpan out);
  // The address a DHCPREQUEST asks for, by client state; nullopt if it is
  // not for this server or asks for nothing.
  std::optional<Ipv4Addr> requested_address(const DhcpMessage& msg) const;
  // A DHCPREQUEST (either path), counted: the address it asks for if the
  // client may have it; otherwise nullopt, with the request ignored or
  // NAKed (r.reply_size).
  std::optional<Ipv4Addr> accept_request(UnixTime now, const DhcpMessage& msg, MacAddr client_mac,
                                         const std::string& vm, ByteSpan out, DhcpOutcome& r);
  // Allows one DHCPDECLINE per client per decline_hold, recording it.
  bool take_decline(UnixTime now, MacAddr mac);
  DhcpOutcome inform(UnixTime now, const DhcpMessage& msg, MacAddr client_mac, ByteSpan out);
  bool is_self(const Lease& l) const { return l.node.empty() || l.node == self_; }
  std::size_t build_reply(ByteSpan out, const DhcpMessage& req, DhcpMessageType type, Ipv4Addr yiaddr,
                          const Lease* lease, bool inform = false, bool with_host_name = true);

  const NetworkConfig& config_;
  LeaseTable& leases_;
  DhcpCounters counters_;
  std::map<MacAddr, UnixTime> last_decline_;  // one decline per MAC per decline_hold
  bool registry_ = false;
  std::string self_;
};

}  // namespace wownet
