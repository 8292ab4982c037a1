#include "json_print.h"

#include <google/protobuf/descriptor.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <tuple>
#include <type_traits>
#include <vector>

#include "proto/json_options.pb.h"

namespace wownet::json {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Length of the valid UTF-8 sequence at s[i] (RFC 3629 §4), 0 if invalid.
std::size_t utf8_length(std::string_view s, std::size_t i) {
  auto at = [&](std::size_t k) { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0u; };
  auto cont = [&](std::size_t k, unsigned lo = 0x80, unsigned hi = 0xbf) { return at(k) >= lo && at(k) <= hi; };
  unsigned c = at(0);
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c == 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if (c == 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;  // no UTF-16 surrogates
  if (c >= 0xe1 && c <= 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c == 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c == 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;  // up to U+10FFFF
  return 0;
}

std::string base64(std::string_view s) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (std::size_t i = 0; i < s.size(); i += 3) {
    std::uint32_t n = std::uint32_t(static_cast<unsigned char>(s[i])) << 16;
    if (i + 1 < s.size()) n |= std::uint32_t(static_cast<unsigned char>(s[i + 1])) << 8;
    if (i + 2 < s.size()) n |= static_cast<unsigned char>(s[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < s.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += i + 2 < s.size() ? kAlphabet[n & 63] : '=';
  }
  return out;
}

template <typename T>
std::string number(T v) {
  if constexpr (std::is_floating_point_v<T>) {
    if (!std::isfinite(v)) return "null";  // JSON has no NaN or infinity
  }
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : "null";
}

class Printer {
 public:
  std::string take() { return std::move(out_); }

  void message(const Message& m, int depth) {
    const auto* d = m.GetDescriptor();
    if (d->field_count() == 0) {
      out_ += "{}";
      return;
    }
    out_ += "{\n";
    for (int i = 0; i < d->field_count(); ++i) {
      const FieldDescriptor* f = d->field(i);
      indent(depth + 1);
      out_ += quote(f->name());
      out_ += ": ";
      field(m, f, depth + 1);
      out_ += i + 1 < d->field_count() ? ",\n" : "\n";
    }
    indent(depth);
    out_ += '}';
  }

 private:
  void indent(int depth) { out_.append(std::size_t(depth) * 2, ' '); }

  void field(const Message& m, const FieldDescriptor* f, int depth) {
    const Reflection* r = m.GetReflection();
    if (f->is_map()) return map(m, f, depth);
    if (f->is_repeated()) {
      int n = r->FieldSize(m, f);
      if (n == 0) {
        out_ += "[]";
        return;
      }
      out_ += "[\n";
      for (int i = 0; i < n; ++i) {
        indent(depth + 1);
        value(m, f, i, depth + 1);
        out_ += i + 1 < n ? ",\n" : "\n";
      }
      indent(depth);
      out_ += ']';
      return;
    }
    if ((f->has_presence() && !r->HasField(m, f)) || means_unknown(m, f)) {
      out_ += "null";
      return;
    }
    value(m, f, -1, depth);
  }

  // True if a singular field holds the value its options call unknown.
  static bool means_unknown(const Message& m, const FieldDescriptor* f) {
    const auto& opt = f->options();
    const Reflection* r = m.GetReflection();
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_STRING)
      return opt.GetExtension(wownet::json::null_if_empty) && r->GetString(m, f).empty();
    if (!opt.HasExtension(wownet::json::null_if)) return false;
    std::int64_t unknown = opt.GetExtension(wownet::json::null_if);
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32: return r->GetInt32(m, f) == unknown;
      case FieldDescriptor::CPPTYPE_INT64: return r->GetInt64(m, f) == unknown;
      case FieldDescriptor::CPPTYPE_UINT32: return unknown >= 0 && r->GetUInt32(m, f) == std::uint64_t(unknown);
      case FieldDescriptor::CPPTYPE_UINT64: return unknown >= 0 && r->GetUInt64(m, f) == std::uint64_t(unknown);
      default: return false;
    }
  }

  // One value of field f: element i of a repeated field, or the field if i < 0.
  void value(const Message& m, const FieldDescriptor* f, int i, int depth) {
    const Reflection* r = m.GetReflection();
    bool rep = i >= 0;
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        out_ += number(rep ? r->GetRepeatedInt32(m, f, i) : r->GetInt32(m, f));
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        out_ += number(rep ? r->GetRepeatedInt64(m, f, i) : r->GetInt64(m, f));
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        out_ += number(rep ? r->GetRepeatedUInt32(m, f, i) : r->GetUInt32(m, f));
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        out_ += number(rep ? r->GetRepeatedUInt64(m, f, i) : r->GetUInt64(m, f));
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        out_ += number(rep ? r->GetRepeatedDouble(m, f, i) : r->GetDouble(m, f));
        break;
      case FieldDescriptor::CPPTYPE_FLOAT:
        out_ += number(rep ? r->GetRepeatedFloat(m, f, i) : r->GetFloat(m, f));
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        out_ += (rep ? r->GetRepeatedBool(m, f, i) : r->GetBool(m, f)) ? "true" : "false";
        break;
      case FieldDescriptor::CPPTYPE_ENUM: {
        int v = rep ? r->GetRepeatedEnumValue(m, f, i) : r->GetEnumValue(m, f);
        const auto* ev = f->enum_type()->FindValueByNumber(v);
        out_ += ev ? quote(ev->name()) : number(v);  // a value this build does not know: its number
        break;
      }
      case FieldDescriptor::CPPTYPE_STRING: {
        std::string scratch;
        const std::string& s =
            rep ? r->GetRepeatedStringReference(m, f, i, &scratch) : r->GetStringReference(m, f, &scratch);
        out_ += f->type() == FieldDescriptor::TYPE_BYTES ? '"' + base64(s) + '"' : quote(s);
        break;
      }
      case FieldDescriptor::CPPTYPE_MESSAGE:
        message(rep ? r->GetRepeatedMessage(m, f, i) : r->GetMessage(m, f), depth);
        break;
    }
  }

  // A map field as a JSON object; keys are strings (RFC 8259 §4), sorted:
  // numerically for integer keys, bytewise for string keys.
  void map(const Message& m, const FieldDescriptor* f, int depth) {
    const Reflection* r = m.GetReflection();
    const FieldDescriptor* key = f->message_type()->map_key();
    struct Entry {
      std::string text;
      std::int64_t signed_key = 0;
      std::uint64_t unsigned_key = 0;
      const Message* entry;
    };
    std::vector<Entry> entries;
    for (int i = 0, n = r->FieldSize(m, f); i < n; ++i) {
      const Message& e = r->GetRepeatedMessage(m, f, i);
      const Reflection* er = e.GetReflection();
      Entry x{{}, 0, 0, &e};
      switch (key->cpp_type()) {
        case FieldDescriptor::CPPTYPE_INT32: x.signed_key = er->GetInt32(e, key); break;
        case FieldDescriptor::CPPTYPE_INT64: x.signed_key = er->GetInt64(e, key); break;
        case FieldDescriptor::CPPTYPE_UINT32: x.unsigned_key = er->GetUInt32(e, key); break;
        case FieldDescriptor::CPPTYPE_UINT64: x.unsigned_key = er->GetUInt64(e, key); break;
        case FieldDescriptor::CPPTYPE_BOOL: x.unsigned_key = er->GetBool(e, key); break;
        default: x.text = er->GetString(e, key); break;
      }
      if (key->cpp_type() == FieldDescriptor::CPPTYPE_BOOL)
        x.text = x.unsigned_key ? "true" : "false";
      else if (key->cpp_type() == FieldDescriptor::CPPTYPE_INT32 || key->cpp_type() == FieldDescriptor::CPPTYPE_INT64)
        x.text = number(x.signed_key);
      else if (key->cpp_type() != FieldDescriptor::CPPTYPE_STRING)
        x.text = number(x.unsigned_key);
      entries.push_back(std::move(x));
    }
    if (entries.empty()) {
      out_ += "{}";
      return;
    }
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
      return std::tie(a.signed_key, a.unsigned_key, a.text) < std::tie(b.signed_key, b.unsigned_key, b.text);
    });
    const FieldDescriptor* val = f->message_type()->map_value();
    out_ += "{\n";
    for (std::size_t i = 0; i < entries.size(); ++i) {
      indent(depth + 1);
      out_ += quote(entries[i].text);
      out_ += ": ";
      value(*entries[i].entry, val, -1, depth + 1);
      out_ += i + 1 < entries.size() ? ",\n" : "\n";
    }
    indent(depth);
    out_ += '}';
  }

  std::string out_;
};

}  // namespace

std::string print(const google::protobuf::Message& message) {
  Printer p;
  p.message(message, 0);
  return p.take();
}

std::string quote(std::string_view s) {
  std::string out = "\"";
  out.reserve(s.size() + 2);
  for (std::size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    std::size_t len = utf8_length(s, i);
    if (len == 0) {
      out += "\\ufffd";
      ++i;
      continue;
    }
    if (len > 1) {
      out.append(s, i, len);
      i += len;
      continue;
    }
    ++i;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          static constexpr char kHex[] = "0123456789abcdef";
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += char(c);
        }
    }
  }
  return out + '"';
}

}  // namespace wownet::json
