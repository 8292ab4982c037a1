#include "util/prom_text.h"

#include <charconv>
#include <cmath>

namespace wownet::util {
namespace {

// Length of the valid UTF-8 sequence at s[i] (RFC 3629 §4), 0 if invalid.
std::size_t utf8_length(std::string_view s, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  if (c < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xbf;  // range of the second byte
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0) lo = 0xa0;  // no overlong forms
    if (c == 0xed) hi = 0x9f;  // no surrogates
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;  // at most U+10FFFF
  } else {
    return 0;
  }
  if (s.size() - i < n) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k)
    if (byte(i + k) < 0x80 || byte(i + k) > 0xbf) return 0;
  return n;
}

std::string escape(std::string_view s, bool quotes) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_length(s, i);
    if (n == 0) {
      out += "\xef\xbf\xbd";  // U+FFFD
      ++i;
      continue;
    }
    const char c = s[i];
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else {
      out.append(s.substr(i, n));
    }
    i += n;
  }
  return out;
}

const char* type_name(PromType t) {
  switch (t) {
    case PromType::Counter: return "counter";
    case PromType::Histogram: return "histogram";
    case PromType::Gauge: break;
  }
  return "gauge";
}

}  // namespace

std::string prom_escape_label_value(std::string_view value) { return escape(value, true); }

std::string prom_escape_help(std::string_view help) { return escape(help, false); }

std::string prom_metric_name(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 1);
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) out += '_';
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == ':';
    out += ok ? c : '_';
  }
  return out;
}

std::string prom_format_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::trunc(value) && std::fabs(value) <= 9007199254740992.0)
    return std::to_string(static_cast<long long>(value));
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, value);
  return std::string(buf, r.ptr);
}

PromText::Family& PromText::family(std::string_view name) {
  const std::string valid = prom_metric_name(name);
  if (auto it = index_.find(valid); it != index_.end()) return families_[it->second];
  index_.emplace(valid, families_.size());
  families_.push_back(Family{valid, {}, PromType::Gauge, {}});
  return families_.back();
}

void PromText::declare(std::string_view name, PromType type, std::string_view help) {
  if (declared(name)) return;
  Family& f = family(name);
  f.type = type;
  f.help = prom_escape_help(help);
}

bool PromText::declared(std::string_view name) const { return index_.count(prom_metric_name(name)) != 0; }

void PromText::line(Family& f, std::string_view suffix, std::span<const PromLabel> labels, const PromLabel* extra,
                    std::string_view value) {
  std::string& out = f.samples;
  out += f.name;
  out += suffix;
  if (labels.size() != 0 || extra != nullptr) {
    out += '{';
    bool first = true;
    const auto put = [&](const PromLabel& l) {
      if (!first) out += ',';
      first = false;
      out += l.name;
      out += "=\"";
      out += prom_escape_label_value(l.value);
      out += '"';
    };
    for (const PromLabel& l : labels) put(l);
    if (extra != nullptr) put(*extra);
    out += '}';
  }
  out += ' ';
  out += value;
  out += '\n';
}

void PromText::sample(std::string_view name, PromLabels labels, std::uint64_t value) {
  sample(name, std::span<const PromLabel>(labels.begin(), labels.size()), value);
}

void PromText::sample(std::string_view name, PromLabels labels, double value) {
  sample(name, std::span<const PromLabel>(labels.begin(), labels.size()), value);
}

void PromText::sample(std::string_view name, std::span<const PromLabel> labels, std::uint64_t value) {
  line(family(name), {}, labels, nullptr, std::to_string(value));
}

void PromText::sample(std::string_view name, std::span<const PromLabel> labels, double value) {
  line(family(name), {}, labels, nullptr, prom_format_value(value));
}

void PromText::histogram(std::string_view name, std::span<const PromLabel> labels, std::span<const double> upper_bounds,
                         std::span<const std::uint64_t> bucket_counts, double sum) {
  if (bucket_counts.size() != upper_bounds.size() + 1) return;
  Family& f = family(name);
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < upper_bounds.size(); ++i) {
    cumulative += bucket_counts[i];
    const std::string le = prom_format_value(upper_bounds[i]);
    const PromLabel extra{"le", le};
    line(f, "_bucket", labels, &extra, std::to_string(cumulative));
  }
  cumulative += bucket_counts.back();
  const PromLabel inf{"le", "+Inf"};
  line(f, "_bucket", labels, &inf, std::to_string(cumulative));
  line(f, "_sum", labels, nullptr, prom_format_value(sum));
  line(f, "_count", labels, nullptr, std::to_string(cumulative));
}

std::string PromText::text() const {
  std::string out;
  for (const Family& f : families_) {
    if (f.samples.empty()) continue;
    out += "# HELP " + f.name + (f.help.empty() ? "" : " ") + f.help + '\n';
    out += "# TYPE " + f.name + ' ' + type_name(f.type) + '\n';
    out += f.samples;
  }
  return out;
}

}  // namespace wownet::util
