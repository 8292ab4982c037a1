// decode_agent_report on any datagram, and its UTF-8 rules checked
// against an independent decoder (RFC 3629 §4's byte-sequence table):
// valid_utf8 and truncate_utf8 on the raw bytes and on every field.
#include <string>
#include <string_view>

#include "fuzz_target.h"
#include "io/agent_report.h"

using namespace wownet;
using namespace wownet::io;

namespace {

// RFC 3629 §4: UTF8-1..UTF8-4, straight from the ABNF.
bool reference_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  auto tail = [&](std::size_t i) { return i < n && p[i] >= 0x80 && p[i] <= 0xbf; };
  auto in = [&](std::size_t i, unsigned lo, unsigned hi) { return i < n && p[i] >= lo && p[i] <= hi; };
  std::size_t i = 0;
  while (i < n) {
    const unsigned c = p[i];
    if (c <= 0x7f) {
      i += 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
      if (!tail(i + 1)) return false;
      i += 2;
    } else if (c == 0xe0) {
      if (!in(i + 1, 0xa0, 0xbf) || !tail(i + 2)) return false;
      i += 3;
    } else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) {
      if (!tail(i + 1) || !tail(i + 2)) return false;
      i += 3;
    } else if (c == 0xed) {
      if (!in(i + 1, 0x80, 0x9f) || !tail(i + 2)) return false;
      i += 3;
    } else if (c == 0xf0) {
      if (!in(i + 1, 0x90, 0xbf) || !tail(i + 2) || !tail(i + 3)) return false;
      i += 4;
    } else if (c >= 0xf1 && c <= 0xf3) {
      if (!tail(i + 1) || !tail(i + 2) || !tail(i + 3)) return false;
      i += 4;
    } else if (c == 0xf4) {
      if (!in(i + 1, 0x80, 0x8f) || !tail(i + 2) || !tail(i + 3)) return false;
      i += 4;
    } else {
      return false;
    }
  }
  return true;
}

void check_text(std::string_view s, std::size_t max) {
  const bool valid = valid_utf8(s);
  WOWNET_FUZZ_CHECK(valid == reference_utf8(s));
  if (!valid) return;
  const std::string_view t = truncate_utf8(s, max);
  WOWNET_FUZZ_CHECK(t.size() <= max || t.size() == s.size());
  WOWNET_FUZZ_CHECK(t.size() <= s.size() && t.data() == s.data());
  WOWNET_FUZZ_CHECK(valid_utf8(t));
  if (s.size() <= max) WOWNET_FUZZ_CHECK(t.size() == s.size());
  // Nothing is cut that would have fitted: at most 3 bytes short of max.
  else
    WOWNET_FUZZ_CHECK(t.size() + 3 >= max);
}

}  // namespace

WOWNET_FUZZ_TARGET(agent_report)(const std::uint8_t* data, std::size_t size) {
  const std::string_view raw(reinterpret_cast<const char*>(data), size);
  check_text(raw, size > 0 ? data[0] % 64 : 0);
  wownet::agent::Report report;
  const AgentReportError e = decode_agent_report(data, size, report);
  WOWNET_FUZZ_CHECK(std::string_view(to_string(e)) != "?");
  if (e == AgentReportError::Size) WOWNET_FUZZ_CHECK(size < 4 || size > kMaxAgentReport);
  if (e != AgentReportError::None) return;
  WOWNET_FUZZ_CHECK(size >= 4 && size <= kMaxAgentReport);
  for (const std::string* s : {&report.agent_version(), &report.host_name(), &report.nic(), &report.address(),
                               &report.dhcp_client(), &report.mac()}) {
    WOWNET_FUZZ_CHECK(reference_utf8(*s));
    check_text(*s, 63);
  }
}
