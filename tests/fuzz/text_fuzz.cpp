// The core's text parsers and name rules on arbitrary strings: MAC,
// address and prefix parsing (with round trips), host name sanitising,
// automatic names and DNS domain validation.
#include <string>
#include <string_view>

#include "core/dns.h"
#include "core/lease_table.h"
#include "core/types.h"
#include "fuzz_target.h"

using namespace wownet;

WOWNET_FUZZ_TARGET(text)(const std::uint8_t* data, std::size_t size) {
  const std::string_view s(reinterpret_cast<const char*>(data), size);
  if (const auto mac = MacAddr::parse(s)) WOWNET_FUZZ_CHECK(MacAddr::parse(mac->to_string()) == mac);
  if (const auto ip = Ipv4Addr::parse(s)) {
    // Leading zeros are accepted (as decimal): "10.010.0.1" is 10.10.0.1.
    WOWNET_FUZZ_CHECK(Ipv4Addr::parse(ip->to_string()) == ip);
    WOWNET_FUZZ_CHECK(s.size() >= 7 && s.find_first_not_of("0123456789.") == std::string_view::npos);
  }
  if (const auto prefix = Ipv4Prefix::parse(s)) {
    WOWNET_FUZZ_CHECK(prefix->length >= 0 && prefix->length <= 32);
    WOWNET_FUZZ_CHECK((prefix->network.value & ~prefix->mask()) == 0);
    WOWNET_FUZZ_CHECK(Ipv4Prefix::parse(prefix->to_string()) == prefix);
  }
  const std::string name = sanitize_host_name(s);
  WOWNET_FUZZ_CHECK(name.size() <= 63);
  for (char c : name) WOWNET_FUZZ_CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
  if (!name.empty()) WOWNET_FUZZ_CHECK(name.front() != '-' && name.back() != '-');
  WOWNET_FUZZ_CHECK(sanitize_host_name(name) == name);

  static const Ipv4Prefix kNetwork = *Ipv4Prefix::parse("10.128.0.0/9");
  if (const auto a = parse_auto_name(s, kNetwork)) {
    WOWNET_FUZZ_CHECK(kNetwork.contains(*a));
    WOWNET_FUZZ_CHECK(parse_auto_name(auto_name(*a), kNetwork) == a);
  }
  if (is_valid_dns_domain(s)) {
    WOWNET_FUZZ_CHECK(!s.empty() && s.size() <= 253 && s.back() != '.');
  }
  (void)lease_state_from_string(s);
  (void)lease_origin_from_string(s);
}
