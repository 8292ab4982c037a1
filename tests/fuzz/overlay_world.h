// Two node identities from one CA, made once per process in a temporary
// directory (removed again), and a RecordingOutput that records what a
// PeerManager's actions ask for. For the overlay fuzz target and its seed writer.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include "crypto/dtls.h"
#include "crypto/pki.h"
#include "fuzz_target.h"
#include "overlay/peer_manager.h"
#include "overlay/session_settings.h"
#include "proto/overlay.pb.h"

namespace wownet::fuzz {

inline constexpr UnixTime kOverlayT0s = 1'700'000'000;
inline constexpr std::int64_t kOverlayT0 = kOverlayT0s * 1000;

struct OverlayIdentity {
  std::string id;
  std::unique_ptr<crypto::DtlsContext> ctx;
};

struct OverlayWorld {
  std::shared_ptr<crypto::TrustStore> trust;
  OverlayIdentity a, b;

  crypto::Verifier verifier() const {
    auto t = trust;
    return [t](X509* peer, STACK_OF(X509) * chain, std::int64_t now_ms) {
      const crypto::PeerCheck check = t->check(peer, chain, now_ms / 1000);
      crypto::VerifyOutcome out;
      out.ok = check.ok();
      if (out.ok) out.peer_id = check.node_id;
      return out;
    };
  }
};

[[noreturn]] inline void overlay_setup_failed(const std::string& what) {
  std::fprintf(stderr, "overlay fuzz setup: %s\n", what.c_str());
  std::abort();
}

inline std::string slurp_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The process-wide world: a CA and identities "node-a" and "node-b".
inline const OverlayWorld& overlay_world() {
  static const OverlayWorld* world = [] {
    char tmpl[] = "/tmp/wownet_fuzz_overlay.XXXXXX";
    if (!::mkdtemp(tmpl)) overlay_setup_failed("mkdtemp");
    const std::string root = tmpl;
    const std::string ca = root + "/ca";
    crypto::Status s = crypto::ca_init(ca, "fuzz CA", 3650, kOverlayT0s - 86400);
    if (!s.ok) overlay_setup_failed(s.error);
    auto* w = new OverlayWorld;
    auto make = [&](const std::string& name, OverlayIdentity& out) {
      const std::string dir = root + "/" + name;
      crypto::Status st = crypto::cert_request(dir, name);
      if (!st.ok) overlay_setup_failed(st.error);
      st = crypto::ca_sign(ca, dir + "/node.csr", dir + "/node.crt", 365, kOverlayT0s - 86400);
      if (!st.ok) overlay_setup_failed(st.error);
      crypto::DtlsIdentity ident{slurp_file(dir + "/node.crt"), slurp_file(dir + "/node.key"),
                                 slurp_file(ca + "/ca.crt")};
      std::string error;
      out.id = crypto::node_id_from_pem(ident.cert_pem, error);
      out.ctx = crypto::DtlsContext::create(ident, error);
      if (!out.ctx) overlay_setup_failed(error);
    };
    make("node-a", w->a);
    make("node-b", w->b);
    std::string error;
    auto ts = crypto::TrustStore::load(ca + "/ca.crt", ca + "/crl.pem", error);
    if (!ts) overlay_setup_failed(error);
    w->trust = std::make_shared<crypto::TrustStore>(std::move(*ts));
    std::error_code ec;
    std::filesystem::remove_all(root, ec);
    return w;
  }();
  return *world;
}

// Records datagrams to send; checks what is delivered. box() lends an
// Outbox for one PeerManager call; its actions are recorded at the end of
// the full expression.
class RecordingOutput final {
 public:
  struct Sent {
    overlay::UdpEndpoint to;
    std::vector<std::uint8_t> bytes;
  };
  class Lent {
   public:
    explicit Lent(RecordingOutput& r) : r_(r) { r_.box_.clear(); }
    ~Lent() { r_.record(); }
    Lent(const Lent&) = delete;
    Lent& operator=(const Lent&) = delete;
    operator overlay::Outbox&() { return r_.box_; }  // NOLINT(google-explicit-constructor)

   private:
    RecordingOutput& r_;
  };
  Lent box() { return Lent(*this); }

  std::vector<Sent> sent;
  std::size_t packets = 0, controls = 0, ups = 0, downs = 0;

 private:
  void record() {
    for (const overlay::Action& a : box_.actions) {
      if (const auto* s = std::get_if<overlay::SendDatagram>(&a)) {
        WOWNET_FUZZ_CHECK(!s->bytes.empty());
        sent.push_back(Sent{s->to, {s->bytes.begin(), s->bytes.end()}});
      } else if (const auto* d = std::get_if<overlay::DeliverPacket>(&a)) {
        WOWNET_FUZZ_CHECK(!d->node_id.empty());
        WOWNET_FUZZ_CHECK(d->offset >= 14 && d->offset <= d->buffer.size() &&
                          d->length <= d->buffer.size() - d->offset);
        for (std::size_t i = d->offset - 14; i < d->offset + d->length; ++i) d->buffer[i] ^= 0;  // every byte ours
        ++packets;
      } else if (const auto* c = std::get_if<overlay::DeliverControl>(&a)) {
        WOWNET_FUZZ_CHECK(!c->node_id.empty() && c->message != nullptr);
        ++controls;
      } else if (const auto* u = std::get_if<overlay::PeerUp>(&a)) {
        WOWNET_FUZZ_CHECK(!u->node_id.empty());
        ++ups;
      } else if (std::holds_alternative<overlay::PeerDown>(a)) {
        ++downs;
      } else {
        WOWNET_FUZZ_CHECK(false);  // PeerManager returns no other action
      }
    }
    box_.clear();
  }
  overlay::Outbox box_;
};

// A PeerManager with identity `who` and a deterministic index generator.
inline std::unique_ptr<overlay::PeerManager> make_peer_manager(const OverlayIdentity& who, const std::string& name,
                                                               std::uint32_t seed) {
  return std::make_unique<overlay::PeerManager>(
      overlay::SessionSettings{&*who.ctx, overlay_world().verifier(), nullptr, name, overlay::PeerConfig{}},
      [state = seed]() mutable {
        state = state * 1664525u + 1013904223u;
        return state;
      });
}

}  // namespace wownet::fuzz
