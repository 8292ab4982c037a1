#include "core/dns.h"

#include <algorithm>
#include <cstring>

#include "core/bytes.h"

namespace wownet {
namespace {

// RR types and classes (RFC 1035 §3.2.2, §3.2.3, §3.2.5; OPT: RFC 6891 §6.1.1).
constexpr std::uint16_t kTypeA = 1;
constexpr std::uint16_t kTypePtr = 12;
constexpr std::uint16_t kTypeOpt = 41;
constexpr std::uint16_t kTypeAny = 255;
constexpr std::uint16_t kClassIn = 1;

// Response codes (RFC 1035 §4.1.1); BADVERS is the 12-bit extended code of RFC 6891 §6.1.3.
constexpr unsigned kRcodeNoError = 0;
constexpr unsigned kRcodeFormErr = 1;
constexpr unsigned kRcodeServFail = 2;
constexpr unsigned kRcodeNxDomain = 3;
constexpr unsigned kRcodeNotImp = 4;
constexpr unsigned kRcodeRefused = 5;
constexpr unsigned kRcodeBadVers = 16;

constexpr std::size_t kMaxNameSize = 255;  // wire form, root label included (RFC 1035 §2.3.4)
constexpr std::size_t kMaxLabelSize = 63;  // RFC 1035 §2.3.4
constexpr std::size_t kMaxLabels = kMaxNameSize / 2;
constexpr int kMaxPointerHops = 64;  // belt and braces: pointers must already go strictly backwards
constexpr std::size_t kAutoNameSize = 10;
constexpr std::size_t kOptRecordSize = 11;
constexpr std::string_view kGatewayLabel = "gateway";
constexpr std::string_view kReverseSuffix = "in-addr.arpa";

char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; }

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}

// A domain name decoded from a message into uncompressed wire form, in the
// case it was sent in.
struct WireName {
  std::uint8_t wire[kMaxNameSize];
  std::size_t size = 0;  // bytes of `wire` in use, root label included
  std::uint8_t label_offset[kMaxLabels];
  std::size_t label_count = 0;

  std::string_view label(std::size_t i) const {
    const std::uint8_t* p = wire + label_offset[i];
    return {reinterpret_cast<const char*>(p + 1), p[0]};
  }
};

// Decodes the possibly compressed name at `pos` (RFC 1035 §3.1, §4.1.4) and
// sets `end` to the first byte after it in `msg`. False if a label runs past
// the message, uses a reserved label type, the name exceeds 255 bytes, or a
// pointer does not point strictly before the bytes read so far (which rules
// out loops).
bool read_name(ConstByteSpan msg, std::size_t pos, WireName& name, std::size_t& end) {
  name.size = 0;
  name.label_count = 0;
  std::size_t segment_start = pos;
  bool jumped = false;
  int hops = 0;
  for (;;) {
    if (pos >= msg.size()) return false;
    const std::uint8_t len = msg[pos];
    if ((len & 0xc0) == 0xc0) {
      if (pos + 1 >= msg.size()) return false;
      const std::size_t target = std::size_t(len & 0x3f) << 8 | msg[pos + 1];
      if (!jumped) end = pos + 2;
      if (target >= segment_start || ++hops > kMaxPointerHops) return false;
      jumped = true;
      pos = segment_start = target;
      continue;
    }
    if ((len & 0xc0) != 0) return false;  // 01 and 10 prefixes are reserved (§4.1.4)
    if (len == 0) {
      name.wire[name.size++] = 0;  // fits: every label below left room for it
      if (!jumped) end = pos + 1;
      return true;
    }
    if (len > msg.size() - pos - 1) return false;
    if (name.size + 1 + len + 1 > kMaxNameSize) return false;
    name.label_offset[name.label_count++] = std::uint8_t(name.size);
    name.wire[name.size++] = len;
    std::memcpy(name.wire + name.size, msg.data() + pos + 1, len);
    name.size += len;
    pos += 1 + std::size_t(len);
  }
}

// Advances `pos` past a name without following pointers. False if malformed.
bool skip_name(ConstByteSpan msg, std::size_t& pos) {
  std::size_t total = 0;
  for (;;) {
    if (pos >= msg.size()) return false;
    const std::uint8_t len = msg[pos];
    if ((len & 0xc0) == 0xc0) {
      if (pos + 1 >= msg.size()) return false;
      pos += 2;
      return true;
    }
    if ((len & 0xc0) != 0) return false;
    total += 1 + std::size_t(len);
    if (total > kMaxNameSize) return false;
    pos += 1 + std::size_t(len);
    if (len == 0) return true;
  }
}

// Number of leading labels of `name` before the dotted suffix `domain`, or
// nullopt if `name` is neither `domain` nor below it. An empty domain (or one
// with an empty label) matches nothing.
std::optional<std::size_t> labels_below(const WireName& name, std::string_view domain) {
  if (domain.empty()) return std::nullopt;
  std::size_t i = name.label_count;
  for (;;) {
    const std::size_t dot = domain.rfind('.');
    const std::string_view last = dot == std::string_view::npos ? domain : domain.substr(dot + 1);
    if (last.empty() || i == 0 || !iequal(name.label(i - 1), last)) return std::nullopt;
    --i;
    if (dot == std::string_view::npos) return i;
    domain = domain.substr(0, dot);
  }
}

// Parses a decimal octet as written in in-addr.arpa names (RFC 1035 §3.5):
// 1-3 digits, no leading zero, at most 255.
std::optional<std::uint8_t> parse_reverse_octet(std::string_view s) {
  if (s.empty() || s.size() > 3 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  unsigned v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + unsigned(c - '0');
  }
  if (v > 255) return std::nullopt;
  return std::uint8_t(v);
}

// The address of a 4-label "d.c.b.a.in-addr.arpa" name (RFC 1035 §3.5), if it is one.
std::optional<Ipv4Addr> parse_reverse_name(const WireName& name) {
  if (labels_below(name, kReverseSuffix) != std::size_t{4}) return std::nullopt;
  std::uint8_t o[4];
  for (std::size_t i = 0; i < 4; ++i) {
    auto v = parse_reverse_octet(name.label(i));
    if (!v) return std::nullopt;
    o[3 - i] = *v;
  }
  return Ipv4Addr::from_octets(o[0], o[1], o[2], o[3]);
}

void write_auto_name(Ipv4Addr addr, char* out) {
  out[0] = 'C';
  for (int i = 1; i < 4; ++i) {
    const unsigned v = addr.octet(i);
    out[3 * i - 2] = char('0' + v / 100);
    out[3 * i - 1] = char('0' + v / 10 % 10);
    out[3 * i] = char('0' + v % 10);
  }
}

// Encodes `first` followed by the labels of `domain` as an uncompressed name
// into `out` (kMaxNameSize bytes). Returns its size, or 0 if a label is empty
// or too long or the name exceeds 255 bytes (RFC 1035 §2.3.4).
std::size_t encode_name(std::string_view first, std::string_view domain, std::uint8_t* out) {
  std::size_t size = 0;
  auto put_label = [&](std::string_view label) {
    if (label.empty() || label.size() > kMaxLabelSize || size + 1 + label.size() + 1 > kMaxNameSize) return false;
    out[size++] = std::uint8_t(label.size());
    std::memcpy(out + size, label.data(), label.size());
    size += label.size();
    return true;
  };
  if (!put_label(first)) return 0;
  while (!domain.empty()) {
    const std::size_t dot = domain.find('.');
    if (!put_label(domain.substr(0, dot))) return 0;
    if (dot == std::string_view::npos) break;
    domain = domain.substr(dot + 1);
    if (domain.empty()) return 0;  // trailing dot
  }
  out[size++] = 0;
  return size;
}

struct Edns {
  bool present = false;
  std::uint16_t udp_size = 0;
  std::uint8_t version = 0;
  bool dnssec_ok = false;
};

// Walks the answer, authority and additional sections that follow the
// question at `pos` (RFC 1035 §4.1.3) and picks out the OPT record (RFC 6891
// §6.1). Its options (cookies and the like) are ignored. False if a record is
// truncated, or an OPT record is outside the additional section, repeated, or
// not owned by the root (RFC 6891 §6.1.1).
bool read_edns(ConstByteSpan msg, std::size_t pos, Edns& edns) {
  const std::uint32_t before_additional = std::uint32_t{load16(msg.data() + 6)} + load16(msg.data() + 8);
  const std::uint32_t total = before_additional + load16(msg.data() + 10);
  for (std::uint32_t k = 0; k < total; ++k) {
    const bool root_owner = pos < msg.size() && msg[pos] == 0;
    if (!skip_name(msg, pos)) return false;
    if (msg.size() - pos < 10) return false;
    const std::uint16_t type = load16(msg.data() + pos);
    const std::uint16_t rclass = load16(msg.data() + pos + 2);
    const std::uint32_t ttl = load32(msg.data() + pos + 4);
    const std::uint16_t rdlength = load16(msg.data() + pos + 8);
    pos += 10;
    if (rdlength > msg.size() - pos) return false;
    pos += rdlength;
    if (type != kTypeOpt) continue;
    if (k < before_additional || edns.present || !root_owner) return false;
    edns.present = true;
    edns.udp_size = rclass;
    edns.version = std::uint8_t(ttl >> 16);
    edns.dnssec_ok = (ttl & 0x8000) != 0;
  }
  return true;
}

// What to answer, before it is laid out.
struct Reply {
  unsigned rcode = kRcodeNoError;  // extended (12-bit) code
  bool authoritative = false;
  bool has_question = false;
  std::uint16_t answer_type = 0;  // kTypeA, kTypePtr, or 0 for no answer
  Ipv4Addr address;
  std::uint8_t ptr_name[kMaxNameSize];
  std::size_t ptr_name_size = 0;
};

// The address a single label names inside the zone, if any: the gateway,
// an auto name of a leased address, or a leased host name.
std::optional<Ipv4Addr> find_forward(const DnsZone& zone, const NameDirectory& names, std::string_view label) {
  char lower[kMaxLabelSize];
  for (std::size_t i = 0; i < label.size(); ++i) lower[i] = ascii_lower(label[i]);
  const std::string_view name(lower, label.size());
  // The gateway comes first so that no lease can take over its name.
  if (name == kGatewayLabel) return zone.gateway;
  // A static name next: the admin's, and no lease may take it either.
  if (auto addr = zone.static_address(name)) return addr;
  if (auto addr = parse_auto_name(name, zone.network)) {
    if (names.is_leased(*addr)) return addr;
    return std::nullopt;
  }
  return names.find_host_name(name);
}

// Fills `r` for an IN-class question.
void resolve(const DnsZone& zone, const NameDirectory& names, const WireName& qname, std::uint16_t qtype, Reply& r) {
  if (auto below = labels_below(qname, zone.domain)) {
    r.authoritative = true;
    if (*below == 0) return;  // the apex: it exists but holds no records we serve (NODATA)
    std::optional<Ipv4Addr> addr;
    if (*below == 1) addr = find_forward(zone, names, qname.label(0));
    if (!addr) {
      r.rcode = kRcodeNxDomain;
      return;
    }
    if (qtype == kTypeA || qtype == kTypeAny) {
      r.answer_type = kTypeA;
      r.address = *addr;
    }
    return;
  }
  if (auto addr = parse_reverse_name(qname); addr && zone.network.contains(*addr)) {
    r.authoritative = true;
    const bool is_gateway = *addr == zone.gateway;
    const std::string* fixed = is_gateway ? nullptr : zone.static_name_of(*addr);
    if (!is_gateway && !fixed && !names.is_leased(*addr)) {
      r.rcode = kRcodeNxDomain;
      return;
    }
    if (qtype != kTypePtr && qtype != kTypeAny) return;  // NODATA
    std::size_t size = 0;
    if (is_gateway) {
      size = encode_name(kGatewayLabel, zone.domain, r.ptr_name);
    } else if (fixed) {
      size = encode_name(*fixed, zone.domain, r.ptr_name);
    } else {
      const std::string host = names.host_name_of(*addr);
      if (!host.empty() && host.size() <= kMaxLabelSize && host.find('.') == std::string::npos)
        size = encode_name(host, zone.domain, r.ptr_name);
      if (size == 0) {
        char auto_label[kAutoNameSize];
        write_auto_name(*addr, auto_label);
        size = encode_name(std::string_view(auto_label, kAutoNameSize), zone.domain, r.ptr_name);
      }
    }
    if (size == 0) {
      r.rcode = kRcodeServFail;
      return;
    }
    r.answer_type = kTypePtr;
    r.ptr_name_size = size;
    return;
  }
  r.rcode = kRcodeRefused;  // not ours, and we do not recurse
}

// Lays out the response (RFC 1035 §4.1). Sections that do not fit the
// transport's limit or `out` are dropped from the end and TC is set
// (§4.2.1); the OPT record goes last, after the question (RFC 6891 §7).
// Returns 0 if not even the header fits.
std::size_t write_reply(ConstByteSpan query, const WireName& qname, std::uint16_t qtype, std::uint16_t qclass,
                        const Reply& r, const Edns& edns, std::uint32_t ttl, DnsTransport transport, ByteSpan out,
                        bool& truncated) {
  std::size_t limit = kDnsMaxTcpSize;
  if (transport == DnsTransport::Udp) {
    limit = kDnsMaxUdpSize;
    if (edns.present) limit = std::max<std::size_t>(limit, edns.udp_size);  // RFC 6891 §6.2.5: < 512 means 512
  }
  limit = std::min(limit, out.size());

  std::size_t question_size = r.has_question ? qname.size + 4 : 0;
  std::size_t answer_size = r.answer_type == kTypeA ? 12 + 4 : r.answer_type == kTypePtr ? 12 + r.ptr_name_size : 0;
  std::size_t opt_size = edns.present ? kOptRecordSize : 0;
  truncated = false;
  if (kDnsHeaderSize + question_size + answer_size + opt_size > limit) {
    truncated = true;
    answer_size = 0;
    if (kDnsHeaderSize + question_size + opt_size > limit) opt_size = 0;
    if (kDnsHeaderSize + question_size > limit) question_size = 0;
    if (kDnsHeaderSize > limit) return 0;
  }

  std::uint8_t* p = out.data();
  p[0] = query[0];  // ID
  p[1] = query[1];
  p[2] = std::uint8_t(0x80 | (query[2] & 0x78) | (r.authoritative ? 0x04 : 0) | (truncated ? 0x02 : 0) |
                      (query[2] & 0x01));                     // QR, OPCODE copied, AA, TC, RD copied
  p[3] = std::uint8_t((query[3] & 0x10) | (r.rcode & 0x0f));  // RA=0, Z=0, AD=0, CD copied (RFC 4035 §3.2.2)
  store16(p + 4, question_size != 0 ? 1 : 0);
  store16(p + 6, answer_size != 0 ? 1 : 0);
  store16(p + 8, 0);
  store16(p + 10, opt_size != 0 ? 1 : 0);
  std::size_t pos = kDnsHeaderSize;

  if (question_size != 0) {
    std::memcpy(p + pos, qname.wire, qname.size);
    pos += qname.size;
    store16(p + pos, qtype);
    store16(p + pos + 2, qclass);
    pos += 4;
  }
  if (answer_size != 0) {
    store16(p + pos, 0xc000 | kDnsHeaderSize);  // owner: pointer to the question name (§4.1.4)
    store16(p + pos + 2, r.answer_type);
    store16(p + pos + 4, kClassIn);
    store32(p + pos + 6, ttl);
    pos += 10;
    if (r.answer_type == kTypeA) {
      store16(p + pos, 4);
      r.address.write(p + pos + 2);
      pos += 6;
    } else {
      store16(p + pos, std::uint16_t(r.ptr_name_size));
      std::memcpy(p + pos + 2, r.ptr_name, r.ptr_name_size);
      pos += 2 + r.ptr_name_size;
    }
  }
  if (opt_size != 0) {  // RFC 6891 §6.1.2, §6.1.3
    p[pos] = 0;         // owner: root
    store16(p + pos + 1, kTypeOpt);
    store16(p + pos + 3, kDnsEdnsUdpSize);
    p[pos + 5] = std::uint8_t(r.rcode >> 4);            // extended RCODE
    p[pos + 6] = 0;                                     // version
    store16(p + pos + 7, edns.dnssec_ok ? 0x8000 : 0);  // DO is copied (RFC 3225 §3)
    store16(p + pos + 9, 0);                            // no options
    pos += kOptRecordSize;
  }
  return pos;
}

void count(unsigned rcode, DnsCounters& c) {
  switch (rcode) {
    case kRcodeNoError: ++c.answered; break;
    case kRcodeFormErr: ++c.formerr; break;
    case kRcodeServFail: ++c.servfail; break;
    case kRcodeNxDomain: ++c.nxdomain; break;
    case kRcodeNotImp: ++c.notimp; break;
    case kRcodeRefused: ++c.refused; break;
    case kRcodeBadVers: ++c.badvers; break;
    default: break;
  }
}

}  // namespace

std::optional<Ipv4Addr> DnsZone::static_address(std::string_view label) const {
  for (const StaticName& s : static_names) {
    if (s.name == label) return s.address;
  }
  return std::nullopt;
}

const std::string* DnsZone::static_name_of(Ipv4Addr addr) const {
  for (const StaticName& s : static_names) {
    if (s.address == addr) return &s.name;
  }
  return nullptr;
}

std::string auto_name(Ipv4Addr addr) {
  char buf[kAutoNameSize];
  write_auto_name(addr, buf);
  return std::string(buf, kAutoNameSize);
}

std::optional<Ipv4Addr> parse_auto_name(std::string_view label, const Ipv4Prefix& network) {
  if (label.size() != kAutoNameSize || (label[0] != 'C' && label[0] != 'c')) return std::nullopt;
  unsigned octets[3] = {0, 0, 0};
  for (std::size_t i = 1; i < kAutoNameSize; ++i) {
    const char c = label[i];
    if (c < '0' || c > '9') return std::nullopt;
    unsigned& o = octets[(i - 1) / 3];
    o = o * 10 + unsigned(c - '0');
  }
  for (unsigned o : octets)
    if (o > 255) return std::nullopt;
  const Ipv4Addr addr = Ipv4Addr::from_octets(network.network.octet(0), std::uint8_t(octets[0]),
                                              std::uint8_t(octets[1]), std::uint8_t(octets[2]));
  if (!network.contains(addr)) return std::nullopt;
  return addr;
}

bool is_valid_dns_domain(std::string_view domain) {
  if (domain.empty() || domain.size() > 253) return false;
  for (;;) {
    const std::size_t dot = domain.find('.');
    const std::string_view label = domain.substr(0, dot);
    if (label.empty() || label.size() > kMaxLabelSize || label.front() == '-' || label.back() == '-') return false;
    for (char c : label)
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    if (dot == std::string_view::npos) return true;
    domain = domain.substr(dot + 1);
  }
}

std::size_t answer_dns_query(const DnsZone& zone, const NameDirectory& names, ConstByteSpan query, ByteSpan out,
                             DnsCounters& counters, DnsTransport transport) {
  // RFC 1035 §4.1.1: a 12-byte header; QR=1 marks a response, which we never answer.
  if (query.size() < kDnsHeaderSize || (query[2] & 0x80) != 0) {
    ++counters.dropped;
    return 0;
  }
  ++counters.queries;

  Reply r;
  Edns edns;
  WireName qname;
  std::uint16_t qtype = 0;
  std::uint16_t qclass = 0;
  const unsigned opcode = (query[2] >> 3) & 0x0f;
  std::size_t pos = 0;
  bool well_formed = false;
  if (load16(query.data() + 4) == 1 && read_name(query, kDnsHeaderSize, qname, pos) && query.size() - pos >= 4) {
    qtype = load16(query.data() + pos);
    qclass = load16(query.data() + pos + 2);
    r.has_question = true;
    well_formed = read_edns(query, pos + 4, edns);
    if (!well_formed) edns = Edns{};
  }
  // The question and OPT record are echoed even with NOTIMP when they parse (RFC 6891 §7: OPT in, OPT out).
  if (opcode != 0) {  // only standard QUERY is implemented
    r.rcode = kRcodeNotImp;
  } else if (!well_formed) {  // QDCOUNT != 1 or a malformed message
    r.rcode = kRcodeFormErr;
  } else if (edns.present && edns.version != 0) {
    r.rcode = kRcodeBadVers;
  } else if (qclass != kClassIn) {
    r.rcode = kRcodeRefused;
  } else {
    resolve(zone, names, qname, qtype, r);
  }
  count(r.rcode, counters);

  bool truncated = false;
  const std::size_t size = write_reply(query, qname, qtype, qclass, r, edns, zone.ttl, transport, out, truncated);
  if (size == 0) {
    ++counters.dropped;
  } else if (truncated) {
    ++counters.truncated;
  }
  return size;
}

}  // namespace wownet
