// OverlayService and the CRL: a rendezvous reads the CA's CRL file (at
// once when it changes on disk, and every crl_refresh), takes it only if it
// is signed by the CA and newer than the CRL in force, stores it in the
// registry (and so in etcd for the other rendezvous) and pushes it to its
// hosts; a CRL another rendezvous wrote to etcd is verified alike before it
// is taken. Every session whose peer it revokes is closed at once.
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include "overlay_service.h"
#include "registry/registry.h"
#include "registry/registry_etcd.h"
#include "util/file_io.h"

namespace wownet {

std::string OverlayService::crl_file() const {
  const OverlayConfig& o = config_.overlay;
  if (!o.crl.empty()) return o.crl;
  // wownetctl ca revoke --dir CA_DIR re-issues CA_DIR/crl.pem.
  if (o.rendezvous && !o.ca_dir.empty()) return o.ca_dir + "/crl.pem";
  return {};
}

void OverlayService::refresh_crl() {
  // A rendezvous reads the CA's CRL file and hands it to every host.
  const std::string path = crl_file();
  if (registry_ && !path.empty()) {
    std::string pem, error;
    if (util::read_file(path, pem, error) && pem != crl_file_pem_) {
      crl_file_pem_ = pem;
      take_crl_file(pem, path);
    }
  }
  // Certificates expire too.
  with_peers([&](overlay::PeerManager& pm, overlay::Outbox& box) { return pm.recheck(now_ms(), box); });
}

void OverlayService::watch_crl_file() {
  if (!registry_ || !trust_) return;
  const std::string path = crl_file();
  struct stat st {};
  if (path.empty() || ::stat(path.c_str(), &st) != 0) return;
  // A new file (rename) or a rewrite in place.
  const std::string now = std::to_string(st.st_ino) + ':' + std::to_string(st.st_size) + ':' +
                          std::to_string(st.st_mtim.tv_sec) + '.' + std::to_string(st.st_mtim.tv_nsec);
  if (now == crl_file_stat_) return;
  crl_file_stat_ = now;
  std::string pem, error;
  if (!util::read_file(path, pem, error) || pem == crl_file_pem_) return;
  crl_file_pem_ = pem;
  take_crl_file(pem, path);
}

void OverlayService::take_crl_file(const std::string& pem, const std::string& path) {
  using V = crypto::TrustStore::CrlExamination::Verdict;
  const auto e = trust_->examine_crl(pem);
  switch (e.verdict) {
    case V::Invalid: spdlog::warn("{}: {}; keeping CRL {}", path, e.error, trust_->crl_number()); return;
    case V::Older:
      // Another rendezvous' revocation reached us first (through etcd).
      spdlog::info("{} holds CRL {}, older than CRL {} in force; keeping it", path, e.number, trust_->crl_number());
      return;
    case V::Same: return;
    case V::Newer: break;
  }
  std::string error;
  if (!trust_->update_crl(pem, error)) {
    spdlog::warn("{}: {}", path, error);
    return;
  }
  crl_pem_ = pem;
  spdlog::info("CRL {} loaded from {}", trust_->crl_number(), path);
  std::vector<registry::Outgoing> out;
  if (!registry_->set_crl(pem, out, error)) spdlog::warn("cannot store the CRL: {}", error);
  send_outgoing(out);
  with_peers([&](overlay::PeerManager& pm, overlay::Outbox& box) { return pm.recheck(now_ms(), box); });
}

registry::CrlVerdict OverlayService::take_shared_crl(const std::string& pem) {
  using V = crypto::TrustStore::CrlExamination::Verdict;
  if (!trust_) return registry::CrlVerdict::Refused;
  const auto e = trust_->examine_crl(pem);
  switch (e.verdict) {
    case V::Invalid:
      // Once per value: the shared registry does not ask again about it.
      spdlog::warn("CRL in the shared registry refused: {}; keeping CRL {}", e.error, trust_->crl_number());
      return registry::CrlVerdict::Refused;
    case V::Older:
      spdlog::info("the shared registry holds CRL {}, older than CRL {} in force here; writing ours back", e.number,
                   trust_->crl_number());
      return registry::CrlVerdict::Older;
    case V::Same: return registry::CrlVerdict::Same;
    case V::Newer: break;
  }
  std::string error;
  if (!trust_->update_crl(pem, error)) {
    spdlog::warn("CRL in the shared registry refused: {}", error);
    return registry::CrlVerdict::Refused;
  }
  crl_pem_ = pem;
  spdlog::info("CRL {} from the shared registry", trust_->crl_number());
  // Sessions with the nodes it revokes end now; the registry pushes it to
  // the hosts once this returns.
  if (peers_) with_peers([&](overlay::PeerManager& pm, overlay::Outbox& box) { return pm.recheck(now_ms(), box); });
  return registry::CrlVerdict::Taken;
}

}  // namespace wownet
