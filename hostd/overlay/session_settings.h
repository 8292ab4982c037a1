// What every session of one PeerManager shares: our DTLS identity, the
// certificate policy, our name and the timers. Kept apart from session.h so
// that peer_manager.h can name it without OpenSSL's types.
#pragma once

#include <functional>
#include <string>

#include "crypto/dtls.h"
#include "overlay/peer_config.h"

namespace wownet::overlay {

// Must outlive the sessions made with it.
struct SessionSettings {
  crypto::DtlsContext* context = nullptr;     // our identity; must outlive the sessions
  crypto::Verifier verify;                    // null: every certificate is rejected
  std::function<std::string(X509*)> name_of;  // a peer's name from its certificate, if given
  std::string self_name;                      // goes into our Hello
  PeerConfig config;
};

}  // namespace wownet::overlay
