// The Daemon and a config reload: SIGHUP, systemctl reload (ExecReload) and
// wownetctl reload. config_reload.cpp decides what may change; this file
// carries it out.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "config_reload.h"
#include "daemon.h"
#include "daemon_internal.h"

namespace wownet {

using daemon_internal::set_error;

bool Daemon::move_metrics(const MetricsConfig& next, std::string& error) {
  if (!next.enabled) {
    metrics_.reset();
    return true;
  }
  auto fresh = std::make_unique<io::MetricsServer>(io_, [this] { return metrics_text(); });
  std::error_code ec = fresh->open(next.listen.address, next.listen.port);
  if (ec && metrics_ && config_.metrics.listen.port == next.listen.port) {
    // The same port on another address: the old listener must go first.
    metrics_->close();
    ec = fresh->open(next.listen.address, next.listen.port);
    if (ec && metrics_->open(config_.metrics.listen.address, config_.metrics.listen.port))
      spdlog::error("metrics: cannot listen on {}:{} again", config_.metrics.listen.address.to_string(),
                    config_.metrics.listen.port);
  }
  if (ec) {
    error = "cannot listen on " + next.listen.address.to_string() + ":" + std::to_string(next.listen.port) + ": " +
            ec.message();
    return false;
  }
  metrics_ = std::move(fresh);
  return true;
}

Daemon::ReloadResult Daemon::reload(const std::string& trigger) {
  ReloadResult result;
  if (!config_loader_) {
    result.error = "hostd was started without --config: there is no config file to re-read";
    spdlog::warn("reload ({}): {}", trigger, result.error);
    return result;
  }
  std::string error;
  std::optional<HostdConfig> fresh = config_loader_(error);
  if (!fresh) {
    result.error = error;
    spdlog::error("reload ({}): {}; running on with the previous configuration", trigger, error);
    return result;
  }
  ReloadPlan plan = plan_reload(config_, std::move(*fresh));
  if (plan.metrics && !move_metrics(plan.next.metrics, error)) {
    const std::string prefix = "metrics.listen ";
    auto it = std::find_if(plan.applied.begin(), plan.applied.end(),
                           [&](const std::string& s) { return s.rfind(prefix, 0) == 0; });
    if (it != plan.applied.end()) {
      plan.refused.push_back(*it + " (" + error + ")");
      plan.applied.erase(it);
    }
    plan.next.metrics = config_.metrics;
  }
  // A level set with wownetctl log-level stays unless the file's own changed.
  if (plan.log_level) spdlog::set_level(spdlog::level::from_str(plan.next.log_level));
  if (plan.engine) engine_.update_live_settings(plan.next.network);
  const HostdConfig old = config_;
  config_ = plan.next;  // the overlay reads config_
  if (plan.reservations) {
    // Leases the new reservations forbid end now (stored like any change).
    engine_.apply_reservations(daemon_internal::wall_now());
    if (overlay_) overlay_->apply_reservations();
  }
  if (overlay_) overlay_->apply_reload(old, plan.applied, plan.refused);
  for (const std::string& r : plan.refused)
    spdlog::warn("reload ({}): {} refused; running on with the old value", trigger, r);
  spdlog::info("reload ({}) of {}: applied {}; refused {}", trigger, config_file_, join_changes(plan.applied),
               join_changes(plan.refused));
  result.applied = std::move(plan.applied);
  result.refused = std::move(plan.refused);
  return result;
}

void Daemon::answer_reload(control::Response& resp) {
  ReloadResult r = reload("wownetctl reload");
  if (!r.error.empty()) {
    set_error(resp, config_loader_ ? control::INVALID_ARGUMENT : control::FAILED_PRECONDITION,
              r.error + "; hostd runs on with its previous configuration");
    return;
  }
  auto* out = resp.mutable_reload();
  out->set_config(config_file_);
  for (const auto& a : r.applied) out->add_applied(a);
  for (const auto& x : r.refused) out->add_refused(x);
  resp.set_message("applied " + join_changes(r.applied) + "; refused " + join_changes(r.refused));
}

}  // namespace wownet
