#include "control_version.h"

namespace wownet {

void answer_version(control::Response& resp) { resp.mutable_version()->set_version(WOWNET_VERSION); }

}  // namespace wownet
