// The wire side of etcd's JSON gateway (etcd 3.4, /v3/...), without I/O:
// endpoint URLs, request bodies and the checks every answer goes through
// before EtcdClient hands it on. The gateway speaks the proto3 JSON mapping
// of etcd's messages (proto/etcd_rpc.proto): int64 as strings, bytes as
// base64, enums by name.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/message.h>

#include "proto/etcd_rpc.pb.h"

namespace wownet::io {

// What went wrong with one etcd call. A call either succeeds (kind None)
// or fails with exactly one of these.
enum class EtcdErrorKind : std::uint8_t {
  None,
  Timeout,         // no complete answer within the call's timeout
  Connect,         // no endpoint could be reached (resolve, connect or TLS handshake)
  ConnectionLost,  // the connection broke after the request was (maybe) sent
  Http,            // an HTTP status other than 200 without a gateway error body
  Gateway,         // etcd answered with an error ({"error": ..., "code": ...})
  Malformed,       // a 200 answer that is not the expected message
  Shutdown,        // the client was closed
};

struct EtcdError {
  EtcdErrorKind kind = EtcdErrorKind::None;
  std::string message;       // one line, for logs and status
  int grpc_code = 0;         // Gateway: etcd's gRPC status code
  unsigned http_status = 0;  // Http, Gateway: the HTTP status
  explicit operator bool() const { return kind != EtcdErrorKind::None; }
};

const char* to_string(EtcdErrorKind kind);

// One etcd client URL: http://HOST:PORT or https://HOST:PORT (HOST a name,
// an IPv4 address or a bracketed IPv6 address; no path).
struct EtcdEndpoint {
  bool tls = false;
  std::string host;
  std::uint16_t port = 0;
  std::string to_string() const;
};
// Parses `url`; nullopt with `error` saying what is wrong.
std::optional<EtcdEndpoint> parse_etcd_endpoint(std::string_view url, std::string& error);

// The JSON body for `request` (field names as in etcd's .proto files).
std::string etcd_encode(const google::protobuf::Message& request);

// Checks one unary answer and decodes it into `out`: status 200 and a JSON
// object of `out`'s type that carries a header (every etcd answer does);
// unknown fields are ignored. Otherwise an error saying what was wrong.
EtcdError etcd_decode_answer(unsigned http_status, std::string_view body, google::protobuf::Message& out);

// Decodes one line of a streaming answer ({"result": {...}} or
// {"error": {...}}) into `out` (a WatchStreamItem or KeepAliveStreamItem).
// A line with an error, or one that is not such an object, gives an error.
EtcdError etcd_decode_stream_line(std::string_view line, google::protobuf::Message& out);

// Splits `buffer` at newlines: complete lines (without the newline, empty
// ones skipped) are appended to `lines` and removed from `buffer`.
void etcd_take_lines(std::string& buffer, std::vector<std::string>& lines);

// The end of the range of every key that starts with `prefix` (etcd's
// convention: the prefix with its last byte incremented, "\0" for all).
std::string etcd_prefix_end(std::string_view prefix);

}  // namespace wownet::io
