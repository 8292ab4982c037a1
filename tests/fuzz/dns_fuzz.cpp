// answer_dns_query on arbitrary queries against a zone with a few leases.
// Input: byte 0 picks the response buffer size, the rest is the query.
#include <algorithm>
#include <vector>

#include "core/dns.h"
#include "core/lease_table.h"
#include "fuzz_input.h"
#include "fuzz_target.h"

using namespace wownet;

namespace {

constexpr UnixTime kT0 = 1'700'000'000;

const LeaseTable& directory() {
  static const LeaseTable* table = [] {
    auto* t = new LeaseTable(*Ipv4Prefix::parse("10.128.0.0/9"), Ipv4Addr::from_octets(10, 128, 0, 1));
    t->put(Ipv4Addr::from_octets(10, 128, 0, 5), MacAddr{{0x52, 0x54, 0, 0, 0, 1}}, "web", "web", kT0 + 3600,
           LeaseState::Bound, LeaseOrigin::Dhcp);
    t->put(Ipv4Addr::from_octets(10, 128, 1, 7), MacAddr{{0x52, 0x54, 0, 0, 0, 2}}, "db", "db", kT0 + 3600,
           LeaseState::Bound, LeaseOrigin::Dhcp);
    t->put(Ipv4Addr::from_octets(10, 200, 0, 9), MacAddr{{0x52, 0x54, 0, 0, 0, 3}}, "x", "", kT0 + 3600,
           LeaseState::Bound, LeaseOrigin::Learned);
    t->put(Ipv4Addr::from_octets(10, 128, 0, 6), MacAddr{{0x52, 0x54, 0, 0, 0, 4}}, "old", "old", kT0 - 1,
           LeaseState::Bound, LeaseOrigin::Dhcp);
    t->set_now(kT0);
    return t;
  }();
  return *table;
}

}  // namespace

WOWNET_FUZZ_TARGET(dns)(const std::uint8_t* data, std::size_t size) {
  fuzz::FuzzReader in(data, size);
  const std::uint8_t pick = in.u8();
  const auto query = in.rest();
  static const DnsZone zone{"wow",
                            *Ipv4Prefix::parse("10.128.0.0/9"),
                            Ipv4Addr::from_octets(10, 128, 0, 1),
                            60,
                            {StaticName{"printer", Ipv4Addr::from_octets(10, 128, 0, 40)}}};
  // What the engine offers (its reply buffer less the headers), the classic
  // and EDNS limits, and odd small sizes.
  static constexpr std::size_t kSizes[] = {2048 - 42, kDnsMaxUdpSize, kDnsEdnsUdpSize, kDnsHeaderSize, 0, 17, 100, 300};
  const std::size_t out_size = (pick & 0x80) ? std::size_t(pick & 0x7f) * 4 : kSizes[pick % std::size(kSizes)];
  std::vector<std::uint8_t> out(out_size);
  DnsCounters counters;
  const std::size_t n = answer_dns_query(zone, directory(), query, out, counters);
  WOWNET_FUZZ_CHECK(n <= out.size());
  if (n == 0) return;
  WOWNET_FUZZ_CHECK(n >= kDnsHeaderSize && query.size() >= 2);
  WOWNET_FUZZ_CHECK(out[0] == query[0] && out[1] == query[1]);  // same ID
  WOWNET_FUZZ_CHECK(out[2] & 0x80);                             // QR: a response
}
