// The DNS responder hostd runs for its VMs: authoritative for the overlay
// domain (forward names) and for the reverse names of the overlay network,
// REFUSED for everything else (it is not a recursive resolver). Pure: it
// turns one query message into one response message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <vector>

#include "core/network_config.h"
#include "core/packet.h"
#include "core/types.h"

namespace wownet {

inline constexpr std::uint16_t kDnsPort = 53;
inline constexpr std::size_t kDnsHeaderSize = 12;
inline constexpr std::size_t kDnsMaxUdpSize = 512;      // without EDNS (RFC 1035 §4.2.1)
inline constexpr std::uint16_t kDnsEdnsUdpSize = 1232;  // what we advertise in OPT (RFC 6891)
inline constexpr std::size_t kDnsMaxTcpSize = 65535;    // the 2-byte length prefix (RFC 1035 §4.2.2)

// How the query came: over UDP the response is cut to 512 bytes, or to the
// query's EDNS UDP size (RFC 1035 §4.2.1, RFC 6891 §6.2.5); over TCP only
// the 65535-byte message limit applies (RFC 7766 §8).
enum class DnsTransport : std::uint8_t { Udp, Tcp };

struct DnsZone {
  std::string domain;  // lowercase, no trailing dot, e.g. "wow"
  Ipv4Prefix network;  // e.g. 10.128.0.0/9
  Ipv4Addr gateway;    // e.g. 10.128.0.1; "gateway.<domain>" resolves to it
  std::uint32_t ttl = 60;
  // Fixed names (A, and PTR for addresses inside `network`), answered
  // before any lease's. An address with several gets the first as its PTR.
  std::vector<StaticName> static_names;

  // The address of static name `label` (lowercase), if it is one.
  std::optional<Ipv4Addr> static_address(std::string_view label) const;
  // The first static name of `addr`, or nullptr.
  const std::string* static_name_of(Ipv4Addr addr) const;
};

// Looks up names and leases; implemented by the lease table.
class NameDirectory {
 public:
  virtual ~NameDirectory() = default;
  // Address currently leased under this host name (given lowercase, one label), if any.
  virtual std::optional<Ipv4Addr> find_host_name(std::string_view name) const = 0;
  // True if `addr` is currently leased to some VM.
  virtual bool is_leased(Ipv4Addr addr) const = 0;
  // Host name (one label) of the lease of `addr`; empty if none is known.
  virtual std::string host_name_of(Ipv4Addr addr) const = 0;
};

struct DnsCounters {
  std::uint64_t queries = 0, answered = 0, nxdomain = 0, refused = 0, formerr = 0, notimp = 0, dropped = 0;
  std::uint64_t servfail = 0;   // a PTR target could not be encoded (invalid zone domain)
  std::uint64_t badvers = 0;    // EDNS version other than 0 (RFC 6891 §6.1.3)
  std::uint64_t truncated = 0;  // answered with TC set: the full response did not fit
  // Calls f(name, value) for every counter.
  template <typename F>
  void visit(F&& f) const {
    f("queries", queries), f("answered", answered), f("nxdomain", nxdomain), f("refused", refused);
    f("formerr", formerr), f("notimp", notimp), f("dropped", dropped), f("servfail", servfail), f("badvers", badvers);
    f("truncated", truncated);
  }
};

// IPOP-style automatic name: "C" + octets 2..4 as three 3-digit decimals: 10.128.0.5 -> "C128000005".
std::string auto_name(Ipv4Addr addr);

// Inverse of auto_name, case-insensitive; the first octet comes from `network`; nullopt unless the label has
// exactly that form and the result is inside `network`.
std::optional<Ipv4Addr> parse_auto_name(std::string_view label, const Ipv4Prefix& network);

// True if `domain` is usable as DnsZone::domain: lowercase [a-z0-9-] labels of 1..63 characters separated by
// single dots, no trailing dot, at most 253 characters (RFC 1035 §2.3.1, §2.3.4).
bool is_valid_dns_domain(std::string_view domain);

// Answers one DNS query message (a UDP payload, or a TCP message without its
// length prefix). Writes the response into `out` and returns its size; 0
// means send nothing. A response larger than the transport's limit or
// `out` loses whole sections from the end and has TC set (RFC 1035 §4.2.1,
// RFC 2181 §9): header, question and OPT stay as long as they fit.
std::size_t answer_dns_query(const DnsZone& zone, const NameDirectory& names, ConstByteSpan query, ByteSpan out,
                             DnsCounters& counters, DnsTransport transport = DnsTransport::Udp);

}  // namespace wownet
