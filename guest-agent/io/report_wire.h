// The edge between the plain report and its protobuf wire form.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/report.h"

namespace wownet::agent {

// Serializes `fields` as a wownet.agent.Report and frames it as a channel
// datagram ("WNA1" + bytes); nullopt if it would exceed kMaxDatagramSize.
std::optional<std::string> encode_report(const ReportFields& fields);

// Parses a channel datagram back into fields; nullopt if the framing or the
// protobuf is malformed.
std::optional<ReportFields> decode_report(std::string_view datagram);

}  // namespace wownet::agent
