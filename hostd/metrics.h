// hostd's Prometheus metrics: the names, help texts and labels under which
// the counters that status shows are exported. Counters arrive through
// their `visit(f)` functions (the one list of each struct's counters), so
// a counter added there is exported without a change here; this file only
// names and describes them.
//
// Naming: every family starts with wownet_; a counter that a visit
// function calls NAME in group GROUP is wownet_GROUP_NAME_total. Units are
// seconds and bytes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/host_engine.h"
#include "overlay/latency_histogram.h"
#include "util/prom_text.h"

namespace wownet::metrics {

// Marks help texts that nobody wrote yet (tests look for it).
inline constexpr std::string_view kUndocumented = "undocumented wownet counter";

// The help text of family `name`; empty if the catalogue has none.
std::string_view help_of(std::string_view name);

// A visit() callback: f(name, value) adds the sample `value` with `labels`
// to the counter family wownet_<group>_<name>_total (or, for gauges, the
// gauge wownet_<group>_<name>). The labels' values must outlive the sink.
class Sink {
 public:
  Sink(util::PromText& out, std::string_view group, std::vector<util::PromLabel> labels, util::PromType type);
  void operator()(std::string_view name, std::uint64_t value) const;

 private:
  util::PromText& out_;
  std::string prefix_;
  std::vector<util::PromLabel> labels_;
  util::PromType type_;
};
inline Sink counters(util::PromText& out, std::string_view group, std::vector<util::PromLabel> labels = {}) {
  return Sink(out, group, std::move(labels), util::PromType::Counter);
}
inline Sink gauges(util::PromText& out, std::string_view group, std::vector<util::PromLabel> labels = {}) {
  return Sink(out, group, std::move(labels), util::PromType::Gauge);
}

// Declares family `name` with its catalogue help text (kUndocumented if
// there is none) and adds one sample.
void gauge(util::PromText& out, std::string_view name, util::PromLabels labels, double value);
void counter(util::PromText& out, std::string_view name, util::PromLabels labels, std::uint64_t value);

// Drops by DropReason as the counter `name` with a `reason` label (every
// reason, zeros included), after `labels`.
void drops(util::PromText& out, std::string_view name, std::vector<util::PromLabel> labels,
           const std::array<std::uint64_t, std::size_t(DropReason::Count)>& by_reason);

// A millisecond histogram as the histogram family `name`, in seconds.
void histogram(util::PromText& out, std::string_view name, const overlay::LatencyHistogram& h);

// The engine's metrics: its counters and drops by reason (from VMs and
// from other nodes), DHCP, DNS, active leases, and per attachment (label
// vm) its traffic and drops.
void write_engine(util::PromText& out, const HostEngine& engine, UnixTime now);

}  // namespace wownet::metrics
