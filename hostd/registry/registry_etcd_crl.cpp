// SharedRegistry and the CRL in etcd: every rendezvous follows the key
// "crl" and takes a CRL from it only once its check (the network's CA, a
// CRL number above the one in force) passes; one whose CRL is newer than
// etcd's, or finds garbage there, writes its own with a txn that compares
// the key's revision with the one it last saw.
#include <chrono>

#include "registry/registry_etcd.h"

namespace wownet::registry {

using etcdserverpb::Compare;

void SharedRegistry::take_crl(const std::string& pem, std::vector<Outgoing>& out) {
  if (pem == registry_.crl()) return;
  if (pem == refused_crl_) {
    // Refused (and counted) once already: only ours goes back over it.
    crl_dirty_ = true;
    return;
  }
  const CrlVerdict verdict = crl_check_ ? crl_check_(pem) : CrlVerdict::Refused;
  switch (verdict) {
    case CrlVerdict::Taken:
      ++counters_.crl_taken;
      refused_crl_.clear();
      registry_.apply_shared_crl(pem, out);
      break;
    case CrlVerdict::Same: break;
    case CrlVerdict::Older: crl_dirty_ = true; break;
    case CrlVerdict::Refused:
      ++counters_.crl_refused;
      refused_crl_ = pem;
      crl_dirty_ = true;
      break;
  }
}

void SharedRegistry::write_crl() {
  if (!crl_dirty_ || crl_writing_) return;
  if (registry_.crl().empty()) {
    crl_dirty_ = false;  // nothing to write
    return;
  }
  crl_dirty_ = false;
  crl_writing_ = true;
  const std::string pem = registry_.crl();
  const std::string key = crl_key();
  etcdserverpb::TxnRequest t;
  Compare* cmp = t.add_compare();
  cmp->set_key(key);
  cmp->set_target(Compare::MOD);
  cmp->set_result(Compare::EQUAL);
  auto it = known_.find(key);
  cmp->set_mod_revision(it == known_.end() ? 0 : it->second.mod);
  auto* put = t.add_success()->mutable_request_put();
  put->set_key(key);
  put->set_value(pem);
  t.add_failure()->mutable_request_range()->set_key(key);
  ++counters_.crl_writes;
  kv_.txn(t, [this, alive = alive_, pem, key](const std::string& error, etcdserverpb::TxnResponse&& answer) {
    if (!*alive) return;
    crl_writing_ = false;
    std::vector<Outgoing> out;
    if (!error.empty()) {
      ++counters_.failures;
      fail("writing the CRL to the registry: " + error);
      crl_dirty_ = true;
      kv_.after(std::chrono::seconds(1), [this, alive] {
        if (*alive) write_crl();
      });
      return;
    }
    reachable_ = true;
    const std::int64_t rev = answer.header().revision();
    if (answer.succeeded()) {
      observe(key, true, rev, pem, rev);
    } else {
      // Another writer was first: decide again on what etcd holds now.
      const etcdserverpb::RangeResponse none;
      const auto& range = answer.responses_size() > 0 ? answer.responses(0).response_range() : none;
      const bool present = range.kvs_size() > 0;
      const std::string value = present ? range.kvs(0).value() : std::string{};
      observe(key, present, present ? range.kvs(0).mod_revision() : 0, value, rev);
      if (present && !value.empty()) {
        take_crl(value, out);
      } else {
        crl_dirty_ = true;
      }
    }
    write_crl();
    if (!out.empty()) sink_(out);
  });
}

}  // namespace wownet::registry
