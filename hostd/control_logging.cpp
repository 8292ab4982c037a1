#include "control_logging.h"

#include <spdlog/spdlog.h>

#include "config.h"

namespace wownet {
namespace {

// The level's name as hostd.toml and --log-level spell it (spdlog's own
// name for warn is "warning").
const char* level_name(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace: return "trace";
    case spdlog::level::debug: return "debug";
    case spdlog::level::info: return "info";
    case spdlog::level::warn: return "warn";
    case spdlog::level::err: return "error";
    case spdlog::level::critical: return "critical";
    default: return "off";
  }
}

}  // namespace

void answer_log_level(const control::LogLevelRequest& req, control::Response& resp) {
  const spdlog::level::level_enum old = spdlog::get_level();
  if (!req.level().empty()) {
    if (!is_valid_log_level(req.level())) {
      resp.set_code(control::INVALID_ARGUMENT);
      resp.set_message("unknown log level '" + req.level() +
                       "': expected trace, debug, info, warn, error, critical or off");
      return;
    }
    spdlog::set_level(spdlog::level::from_str(req.level()));
  }
  const spdlog::level::level_enum now = spdlog::get_level();
  resp.mutable_log_level()->set_old_level(level_name(old));
  resp.mutable_log_level()->set_level(level_name(now));
  resp.set_message(std::string("log level ") + level_name(old) + " -> " + level_name(now));
  // At warn, so that the change shows at any level up to warn.
  if (now != old) spdlog::warn("control: log level {} -> {}", level_name(old), level_name(now));
}

void log_control_request(const control::Request& req) {
  if (!spdlog::should_log(spdlog::level::debug)) return;
  const auto* field = control::Request::descriptor()->FindFieldByNumber(int(req.body_case()));
  spdlog::debug("control: {} request", field ? field->name() : "empty");
}

}  // namespace wownet
