// JSON for wownetctl's --json output, printed from any protobuf message by
// reflection. Unlike protobuf's own JSON mapping it prints 64-bit integers
// as JSON numbers (not strings), every field (empty repeated fields as [],
// empty maps as {}), unset message fields and values marked "unknown" by a
// (wownet.json.null_if...) option as null, and enums by name. The output is
// always valid JSON, whatever bytes the strings hold.
#pragma once

#include <google/protobuf/message.h>

#include <string>
#include <string_view>

namespace wownet::json {

// `message` as one JSON object, indented by two spaces, field names as in
// the .proto file, fields in declaration order, map entries sorted by key.
// No trailing newline.
std::string print(const google::protobuf::Message& message);

// `s` as a JSON string literal in quotes: '"', '\' and control characters
// escaped (DEL too), valid UTF-8 copied, each byte of invalid UTF-8
// replaced by \ufffd.
std::string quote(std::string_view s);

}  // namespace wownet::json
