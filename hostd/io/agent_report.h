// Decoding of wownet-agent reports (proto/agent.proto): the 4 bytes "WNA1"
// and a serialized Report, at most 1200 bytes, every text field valid UTF-8.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "proto/agent.pb.h"

namespace wownet::io {

inline constexpr std::size_t kMaxAgentReport = 1200;

enum class AgentReportError : std::uint8_t {
  None,
  Size,      // shorter than the magic or longer than kMaxAgentReport
  Magic,     // does not start with "WNA1"
  Protobuf,  // not a Report
  Utf8,      // a text field is not valid UTF-8
};
const char* to_string(AgentReportError e);

// Decodes one datagram into `out`. Anything but None leaves `out`
// unspecified. Never logs.
[[nodiscard]] AgentReportError decode_agent_report(const std::uint8_t* data, std::size_t size,
                                                   wownet::agent::Report& out);

// True if `s` is well-formed UTF-8 (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF).
bool valid_utf8(std::string_view s);

// The longest prefix of valid UTF-8 `s` with at most `max` bytes that ends
// on a character boundary.
std::string_view truncate_utf8(std::string_view s, std::size_t max);

}  // namespace wownet::io
