#include "io/agent_report.h"

#include <cstring>

namespace wownet::io {
namespace {
constexpr char kMagic[4] = {'W', 'N', 'A', '1'};
}  // namespace

const char* to_string(AgentReportError e) {
  switch (e) {
    case AgentReportError::None: return "none";
    case AgentReportError::Size: return "size";
    case AgentReportError::Magic: return "magic";
    case AgentReportError::Protobuf: return "protobuf";
    case AgentReportError::Utf8: return "utf8";
  }
  return "?";
}

bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const unsigned char* end = p + s.size();
  while (p < end) {
    unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    std::size_t n;
    std::uint32_t cp, min;
    if ((c & 0xe0) == 0xc0) {
      n = 1, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return false;  // a continuation byte first, or 0xf8..0xff
    }
    if (std::size_t(end - p) <= n) return false;
    for (std::size_t i = 1; i <= n; ++i) {
      if ((p[i] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    p += n + 1;
  }
  return true;
}

std::string_view truncate_utf8(std::string_view s, std::size_t max) {
  if (s.size() <= max) return s;
  std::size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xc0) == 0x80) --n;
  return s.substr(0, n);
}

AgentReportError decode_agent_report(const std::uint8_t* data, std::size_t size, wownet::agent::Report& out) {
  if (size < sizeof kMagic || size > kMaxAgentReport) return AgentReportError::Size;
  if (std::memcmp(data, kMagic, sizeof kMagic) != 0) return AgentReportError::Magic;
  if (!out.ParseFromArray(data + sizeof kMagic, int(size - sizeof kMagic))) return AgentReportError::Protobuf;
  for (const std::string* s :
       {&out.agent_version(), &out.host_name(), &out.nic(), &out.address(), &out.dhcp_client(), &out.mac()}) {
    if (!valid_utf8(*s)) return AgentReportError::Utf8;
  }
  return AgentReportError::None;
}

}  // namespace wownet::io
