#include "io/etcd_codec.h"

#include <google/protobuf/util/json_util.h>

#include <charconv>

namespace wownet::io {

namespace pb = google::protobuf;

namespace {

EtcdError make_error(EtcdErrorKind kind, std::string message, unsigned status = 0, int code = 0) {
  EtcdError e;
  e.kind = kind;
  e.message = std::move(message);
  e.http_status = status;
  e.grpc_code = code;
  return e;
}

// At most `n` bytes of `s` for a message, control characters replaced.
std::string excerpt(std::string_view s, std::size_t n = 120) {
  std::string out;
  for (char c : s.substr(0, n)) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  if (s.size() > n) out += "...";
  return out;
}

bool parse_json(std::string_view text, pb::Message& out, std::string& error) {
  pb::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  out.Clear();
  auto status = pb::util::JsonStringToMessage(pb::StringPiece(text.data(), text.size()), &out, options);
  if (status.ok()) return true;
  error = std::string(status.message());
  return false;
}

// True if `m` has its "header" message field set (every etcd answer does).
bool has_header(const pb::Message& m) {
  const pb::FieldDescriptor* f = m.GetDescriptor()->FindFieldByName("header");
  return f && m.GetReflection()->HasField(m, f);
}

}  // namespace

const char* to_string(EtcdErrorKind kind) {
  switch (kind) {
    case EtcdErrorKind::None: return "ok";
    case EtcdErrorKind::Timeout: return "timeout";
    case EtcdErrorKind::Connect: return "cannot connect";
    case EtcdErrorKind::ConnectionLost: return "connection lost";
    case EtcdErrorKind::Http: return "HTTP error";
    case EtcdErrorKind::Gateway: return "etcd error";
    case EtcdErrorKind::Malformed: return "malformed answer";
    case EtcdErrorKind::Shutdown: return "shut down";
  }
  return "unknown";
}

std::string EtcdEndpoint::to_string() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return std::string(tls ? "https://" : "http://") + h + ":" + std::to_string(port);
}

std::optional<EtcdEndpoint> parse_etcd_endpoint(std::string_view url, std::string& error) {
  EtcdEndpoint e;
  std::string_view rest;
  if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else if (url.rfind("https://", 0) == 0) {
    e.tls = true;
    rest = url.substr(8);
  } else {
    error = "\"" + excerpt(url) + "\": expected http://HOST:PORT or https://HOST:PORT";
    return std::nullopt;
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
      error = "\"" + excerpt(url) + "\": expected [IPV6]:PORT";
      return std::nullopt;
    }
    e.host = std::string(rest.substr(1, close - 1));
    port = rest.substr(close + 2);
  } else {
    auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) {
      error = "\"" + excerpt(url) + "\": no port";
      return std::nullopt;
    }
    e.host = std::string(rest.substr(0, colon));
    port = rest.substr(colon + 1);
  }
  bool host_ok = !e.host.empty();
  for (char c : e.host) {
    host_ok &= (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
               c == ':' || c == '_';
  }
  if (!host_ok) {
    error = "\"" + excerpt(url) + "\": bad host name (a path is not allowed)";
    return std::nullopt;
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || value == 0 || value > 65535) {
    error = "\"" + excerpt(url) + "\": bad port";
    return std::nullopt;
  }
  e.port = std::uint16_t(value);
  return e;
}

std::string etcd_encode(const pb::Message& request) {
  pb::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string out;
  // Cannot fail for a valid message of a generated type.
  (void)pb::util::MessageToJsonString(request, &out, options);
  return out;
}

EtcdError etcd_decode_answer(unsigned http_status, std::string_view body, pb::Message& out) {
  std::string detail;
  if (http_status != 200) {
    etcdserverpb::GatewayError ge;
    if (parse_json(body, ge, detail) && (ge.code() != 0 || !ge.message().empty() || !ge.error().empty())) {
      const std::string& text = ge.message().empty() ? ge.error() : ge.message();
      return make_error(EtcdErrorKind::Gateway,
                        "etcd: " + excerpt(text, 200) + " (code " + std::to_string(ge.code()) + ")", http_status,
                        ge.code());
    }
    return make_error(EtcdErrorKind::Http, "HTTP " + std::to_string(http_status) + ": " + excerpt(body), http_status);
  }
  if (!parse_json(body, out, detail))
    return make_error(EtcdErrorKind::Malformed,
                      "not a " + out.GetDescriptor()->name() + " (" + excerpt(detail) + "): " + excerpt(body));
  if (!has_header(out))
    return make_error(EtcdErrorKind::Malformed, out.GetDescriptor()->name() + " without a header: " + excerpt(body));
  return {};
}

EtcdError etcd_decode_stream_line(std::string_view line, pb::Message& out) {
  std::string detail;
  if (!parse_json(line, out, detail))
    return make_error(EtcdErrorKind::Malformed, "bad stream message (" + excerpt(detail) + "): " + excerpt(line));
  const pb::Descriptor* d = out.GetDescriptor();
  const pb::Reflection* r = out.GetReflection();
  const pb::FieldDescriptor* result = d->FindFieldByName("result");
  const pb::FieldDescriptor* error = d->FindFieldByName("error");
  if (error && r->HasField(out, error)) {
    const auto& e = static_cast<const etcdserverpb::GatewayStreamError&>(r->GetMessage(out, error));
    return make_error(EtcdErrorKind::Gateway,
                      "etcd: " + excerpt(e.message(), 200) + " (code " + std::to_string(e.grpc_code()) + ")",
                      unsigned(e.http_code()), e.grpc_code());
  }
  if (!result || !r->HasField(out, result) || !has_header(r->GetMessage(out, result)))
    return make_error(EtcdErrorKind::Malformed, "stream message without a result: " + excerpt(line));
  return {};
}

void etcd_take_lines(std::string& buffer, std::vector<std::string>& lines) {
  std::size_t start = 0;
  for (std::size_t nl; (nl = buffer.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::string_view line(buffer.data() + start, nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty()) lines.emplace_back(line);
  }
  buffer.erase(0, start);
}

std::string etcd_prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto& c = reinterpret_cast<unsigned char&>(end.back());
    if (c < 0xff) {
      ++c;
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

}  // namespace wownet::io
