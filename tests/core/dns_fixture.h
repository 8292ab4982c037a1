// The harness of the DNS responder tests: a FakeDirectory of leases and
// host names, query builders (names, EDNS OPT records), a response decoder
// and the DnsTest fixture. In a named namespace so that gtest sees one
// fixture in every dns_*_test.cpp.
#pragma once

#include "core/dns.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace wownet::dns_test {

using Bytes = std::vector<std::uint8_t>;

constexpr std::uint16_t kA = 1, kPtr = 12, kAaaa = 28, kTxt = 16, kAny = 255;

class FakeDirectory : public NameDirectory {
 public:
  std::optional<Ipv4Addr> find_host_name(std::string_view name) const override {
    looked_up.emplace_back(name);
    auto it = hosts.find(std::string(name));
    if (it == hosts.end()) return std::nullopt;
    return it->second;
  }
  bool is_leased(Ipv4Addr addr) const override { return leased.count(addr.value) != 0; }
  std::string host_name_of(Ipv4Addr addr) const override {
    for (const auto& [name, a] : hosts)
      if (a == addr) return name;
    return {};
  }

  std::map<std::string, Ipv4Addr> hosts;
  std::set<std::uint32_t> leased;
  mutable std::vector<std::string> looked_up;
};

inline Ipv4Addr ip(const char* s) { return *Ipv4Addr::parse(s); }

inline Bytes encode_name(std::string_view name) {
  Bytes out;
  while (!name.empty()) {
    auto dot = name.find('.');
    auto label = name.substr(0, dot);
    out.push_back(std::uint8_t(label.size()));
    out.insert(out.end(), label.begin(), label.end());
    name = dot == std::string_view::npos ? std::string_view{} : name.substr(dot + 1);
  }
  out.push_back(0);
  return out;
}

inline void append16(Bytes& b, std::uint16_t v) {
  b.push_back(std::uint8_t(v >> 8));
  b.push_back(std::uint8_t(v));
}

// An OPT record (RFC 6891) with UDP size 4096 and, optionally, a DNS cookie option as dig sends it.
inline Bytes opt_record(bool cookie, std::uint8_t version = 0, bool dnssec_ok = false) {
  Bytes b{0x00, 0x00, 0x29, 0x10, 0x00, 0x00, version, std::uint8_t(dnssec_ok ? 0x80 : 0), 0x00};
  if (cookie) {
    append16(b, 12);
    Bytes opt{0x00, 0x0a, 0x00, 0x08, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
    b.insert(b.end(), opt.begin(), opt.end());
  } else {
    append16(b, 0);
  }
  return b;
}

// A query with ID 0x1234, RD set, one question and optionally an OPT record.
inline Bytes make_query(std::string_view name, std::uint16_t qtype, bool edns = false, std::uint16_t qclass = 1) {
  Bytes q{0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, std::uint8_t(edns ? 1 : 0)};
  Bytes n = encode_name(name);
  q.insert(q.end(), n.begin(), n.end());
  append16(q, qtype);
  append16(q, qclass);
  if (edns) {
    Bytes o = opt_record(false);
    q.insert(q.end(), o.begin(), o.end());
  }
  return q;
}

// The fields of a response the tests look at.
struct Decoded {
  std::uint16_t id = 0;
  bool qr = false, aa = false, tc = false, rd = false, ra = false;
  unsigned opcode = 0, rcode = 0;
  std::uint16_t qdcount = 0, ancount = 0, nscount = 0, arcount = 0;
  Bytes question;  // raw question section (name + type + class), if qdcount == 1
  std::uint16_t answer_type = 0;
  std::uint32_t ttl = 0;
  Bytes rdata;
};

class DnsTest : public ::testing::Test {
 protected:
  DnsTest() {
    zone_.domain = "wow";
    zone_.network = *Ipv4Prefix::parse("10.128.0.0/9");
    zone_.gateway = ip("10.128.0.1");
    zone_.ttl = 60;
    dir_.leased = {ip("10.128.0.5").value, ip("10.128.0.7").value, ip("10.200.1.2").value};
    dir_.hosts = {{"web", ip("10.128.0.7")}};
  }

  Bytes answer(const Bytes& query, std::size_t out_size = 1500) {
    Bytes out(out_size + 16, 0xee);  // guard bytes after `out_size` must stay untouched
    std::size_t n = answer_dns_query(zone_, dir_, query, ByteSpan(out.data(), out_size), counters_, transport_);
    EXPECT_LE(n, out_size);
    for (std::size_t i = out_size; i < out.size(); ++i) EXPECT_EQ(out[i], 0xee);
    out.resize(n);
    return out;
  }

  // Decodes a response that this module produced: at most one question (uncompressed), at most one answer
  // whose owner is a pointer to the question.
  static Decoded decode(const Bytes& r) {
    Decoded d;
    EXPECT_GE(r.size(), 12u);
    if (r.size() < 12) return d;
    d.id = std::uint16_t(r[0] << 8 | r[1]);
    d.qr = r[2] & 0x80;
    d.opcode = (r[2] >> 3) & 0xf;
    d.aa = r[2] & 0x04;
    d.tc = r[2] & 0x02;
    d.rd = r[2] & 0x01;
    d.ra = r[3] & 0x80;
    d.rcode = r[3] & 0x0f;
    d.qdcount = std::uint16_t(r[4] << 8 | r[5]);
    d.ancount = std::uint16_t(r[6] << 8 | r[7]);
    d.nscount = std::uint16_t(r[8] << 8 | r[9]);
    d.arcount = std::uint16_t(r[10] << 8 | r[11]);
    std::size_t pos = 12;
    if (d.qdcount == 1) {
      while (pos < r.size() && r[pos] != 0) pos += 1 + r[pos];
      pos += 5;
      EXPECT_LE(pos, r.size());
      d.question.assign(r.begin() + 12, r.begin() + std::min(pos, r.size()));
    }
    if (d.ancount == 1) {
      EXPECT_EQ(r[pos], 0xc0);
      EXPECT_EQ(r[pos + 1], 0x0c);
      d.answer_type = std::uint16_t(r[pos + 2] << 8 | r[pos + 3]);
      EXPECT_EQ(r[pos + 4], 0);
      EXPECT_EQ(r[pos + 5], 1);  // class IN
      d.ttl = std::uint32_t(r[pos + 6]) << 24 | std::uint32_t(r[pos + 7]) << 16 | std::uint32_t(r[pos + 8]) << 8 |
              r[pos + 9];
      std::size_t len = std::size_t(r[pos + 10] << 8 | r[pos + 11]);
      pos += 12;
      EXPECT_LE(pos + len, r.size());
      d.rdata.assign(r.begin() + pos, r.begin() + pos + len);
      pos += len;
    }
    if (d.arcount == 1) {
      Bytes opt(r.begin() + std::ptrdiff_t(pos), r.end());
      EXPECT_EQ(opt.size(), 11u);
      pos = r.size();
    }
    EXPECT_EQ(pos, r.size());
    return d;
  }

  static Bytes question_of(const Bytes& query) {
    std::size_t pos = 12;
    while (query[pos] != 0) pos += 1 + query[pos];
    return Bytes(query.begin() + 12, query.begin() + std::ptrdiff_t(pos) + 5);
  }

  DnsZone zone_;
  FakeDirectory dir_;
  DnsCounters counters_;
  DnsTransport transport_ = DnsTransport::Udp;
};

}  // namespace wownet::dns_test
