// hostd's control requests about its own log: the log-level request
// (wownetctl log-level) and the debug line that records each request.
#pragma once

#include "proto/control.pb.h"

namespace wownet {

// Sets the default logger's level to req.level (trace, debug, info, warn,
// error, critical or off) and fills `resp` with the level before and after;
// an empty level only reports it. INVALID_ARGUMENT for any other name.
void answer_log_level(const control::LogLevelRequest& req, control::Response& resp);

// Logs, at debug level, which request arrived on the control socket.
void log_control_request(const control::Request& req);

}  // namespace wownet
