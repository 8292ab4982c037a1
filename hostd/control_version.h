// hostd's answer to a control VersionRequest (wownetctl version).
#pragma once

#include "proto/control.pb.h"

namespace wownet {

// Fills `resp` with hostd's version, the CMake project version it was built as.
void answer_version(control::Response& resp);

}  // namespace wownet
