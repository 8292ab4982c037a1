// The Prometheus text exposition format, version 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/): a pure
// writer, no I/O. Samples may be added in any order; each metric family
// comes out once, with its HELP and TYPE lines and all of its samples
// together, in the order the families were first declared.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace wownet::util {

// One label of a sample: name="value". The value may be any bytes (it is
// escaped); the name must be a valid label name (code chooses it).
struct PromLabel {
  std::string_view name;
  std::string_view value;
};
using PromLabels = std::initializer_list<PromLabel>;

enum class PromType : std::uint8_t { Counter, Gauge, Histogram };

class PromText {
 public:
  // Declares the family `name` (HELP `help`, TYPE `type`). Declaring it
  // again keeps the first declaration. An invalid name is made valid
  // (prom_metric_name); sample() and histogram() do the same with theirs.
  void declare(std::string_view name, PromType type, std::string_view help);
  // Adds a sample of the counter or gauge family `name` (declared before,
  // else it is declared as an untyped-looking gauge with an empty help).
  void sample(std::string_view name, PromLabels labels, std::uint64_t value);
  void sample(std::string_view name, PromLabels labels, double value);
  void sample(std::string_view name, std::span<const PromLabel> labels, std::uint64_t value);
  void sample(std::string_view name, std::span<const PromLabel> labels, double value);
  // Adds one histogram of the family `name`: `upper_bounds` ascending,
  // `bucket_counts` one more entry than bounds (observations in
  // (bound[i-1], bound[i]], the last above the highest bound), `sum` of
  // every observation. Writes cumulative name_bucket{le=...} lines ending
  // with le="+Inf", name_sum and name_count. Mismatched sizes write nothing.
  void histogram(std::string_view name, PromLabels labels, std::span<const double> upper_bounds,
                 std::span<const std::uint64_t> bucket_counts, double sum) {
    histogram(name, std::span<const PromLabel>(labels.begin(), labels.size()), upper_bounds, bucket_counts, sum);
  }
  void histogram(std::string_view name, std::span<const PromLabel> labels, std::span<const double> upper_bounds,
                 std::span<const std::uint64_t> bucket_counts, double sum);
  // The exposition: every family that has samples, in declaration order.
  std::string text() const;
  // Whether the family `name` has been declared.
  bool declared(std::string_view name) const;

 private:
  struct Family {
    std::string name, help;
    PromType type = PromType::Gauge;
    std::string samples;  // complete sample lines
  };
  Family& family(std::string_view name);
  void line(Family& f, std::string_view suffix, std::span<const PromLabel> labels, const PromLabel* extra,
            std::string_view value);

  std::vector<Family> families_;
  std::map<std::string, std::size_t, std::less<>> index_;
};

// A label value as it goes between the quotes: \ " and newline escaped,
// invalid UTF-8 replaced by U+FFFD (Prometheus rejects it).
std::string prom_escape_label_value(std::string_view value);
// HELP text: \ and newline escaped, invalid UTF-8 replaced by U+FFFD.
std::string prom_escape_help(std::string_view help);
// `name` as a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*): every other
// character becomes '_', and a leading digit gets a '_' before it.
std::string prom_metric_name(std::string_view name);
// A sample value: integers up to 2^53 without a fraction, others in the
// shortest form that reads back the same, NaN, +Inf and -Inf by name.
std::string prom_format_value(double value);

}  // namespace wownet::util
