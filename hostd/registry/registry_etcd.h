// The registry's etcd backend: keeps one Registry in step with the
// registry every rendezvous shares in etcd. No I/O of its own: it drives
// a KvStore (io::EtcdClient in the daemon, a fake in tests).
//
// Keys under `prefix` (default "/wownet/"): lease/ADDRESS (the lease as
// JSON, wownet.overlay.Lease), mac/MAC and name/NAME (a copy of the lease
// holding them, rewritten with it), node/ID (wownet.state.NodeRecord as JSON), crl (PEM).
//
// - start() loads everything under the prefix, then follows every change
//   through a watch from the loaded revision (re-loading after an error).
// - flush() writes what the Registry queued. A lease change is one txn
//   that compares the mod_revision of every key it writes with the revision last seen here (0 = absent) and
//   puts the lease with its MAC and name index together; a lost compare
//   reads those keys back in the same txn (its failure branch; an index
//   key brings the lease that holds it), so the
//   Registry undoes its change, takes the fresh records and handles the
//   request again. Two rendezvous can never hand out one address, MAC
//   binding or name twice.
// - Replies wait for their txn; nothing else waits for etcd.
// - The commits queued since the last flush() share txns (as many as fit
//   etcd's limit of kMaxTxnOps operations, none writing a key another one
//   writes): one round trip and one fsync of etcd for a turn's requests.
//   If the shared txn loses a compare, the commits whose keys did not
//   change are sent again alone, the others handled as lost compares.
// - The CRL (registry_etcd_crl.cpp): a CRL found in etcd (loaded or
//   watched) is never taken unchecked: set_crl_check()'s check verifies it
//   against the network's CA and the CRL in force. A newer one becomes the
//   Registry's and is pushed to its nodes; an older or broken one is
//   replaced by ours (a txn comparing the key's revision, so that of two
//   writers at once the second reads the first's CRL back and decides
//   again). A broken value is counted once, not retried.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "registry/kv_store.h"
#include "registry/presence.h"
#include "registry/registry.h"

namespace wownet::registry {

struct SharedRegistryCounters {
  std::uint64_t txns = 0, conflicts = 0, failures = 0, loads = 0, watch_events = 0, watch_errors = 0;
  // CRLs from etcd taken (verified, newer) and refused (not a CRL of the
  // network's CA); CRLs this rendezvous wrote to etcd.
  std::uint64_t crl_taken = 0, crl_refused = 0, crl_writes = 0;
  template <typename F>
  void visit(F&& f) const {
    f("etcd_txns", txns), f("etcd_conflicts", conflicts), f("etcd_failures", failures), f("etcd_loads", loads);
    f("etcd_watch_events", watch_events), f("etcd_watch_errors", watch_errors);
    f("etcd_crl_taken", crl_taken), f("etcd_crl_refused", crl_refused), f("etcd_crl_writes", crl_writes);
  }
};

// What the rendezvous made of a CRL found in etcd (see set_crl_check()).
enum class CrlVerdict : std::uint8_t {
  Taken,    // signed by the network's CA and newer than the CRL in force: now in force
  Same,     // signed by the CA, the CRL number in force: nothing to do
  Older,    // signed by the CA, older than the CRL in force: not taken
  Refused,  // not a CRL of the network's CA (garbage, another CA, no CRL number)
};

class SharedRegistry {
 public:
  using Clock = std::function<UnixTime()>;
  // Takes messages produced when an answer from etcd comes in.
  using Sink = std::function<void(std::vector<Outgoing>&)>;

  // `registry` must be in shared mode (share_commits()) and, like `kv`,
  // outlive this object.
  SharedRegistry(Registry& registry, KvStore& kv, std::string prefix, Clock clock, Sink sink);
  ~SharedRegistry();
  SharedRegistry(const SharedRegistry&) = delete;
  SharedRegistry& operator=(const SharedRegistry&) = delete;

  // Loads the shared registry and starts following it; retries every
  // second until etcd answers.
  void start();
  // True once the first load is in the Registry.
  bool loaded() const { return loaded_; }
  // True if the last call to etcd succeeded.
  bool reachable() const { return reachable_; }
  const std::string& last_error() const { return last_error_; }
  // The etcd revision the registry is known to be current at.
  std::int64_t revision() const { return revision_; }
  const SharedRegistryCounters& counters() const { return counters_; }

  // Writes what the Registry queued: commits (batched), node records, the CRL.
  void flush();
  // Operations etcd takes in one txn (its --max-txn-ops default).
  static constexpr std::size_t kMaxTxnOps = 128;

  // Hands the keys of rendezvous and node presence to `presence` (see
  // presence.h), which must outlive this object, and starts it; a stalled
  // watch it finds is replaced (load and watch anew).
  void attach_presence(Presence& presence);
  // Verifies a CRL found in etcd and, if the verdict is Taken, puts it in
  // force (trust store, sessions); the Registry then holds and pushes it.
  // Called once per distinct value. Without a check every CRL from etcd
  // is refused.
  using CrlCheck = std::function<CrlVerdict(const std::string& pem)>;
  void set_crl_check(CrlCheck check) { crl_check_ = std::move(check); }

  // Key names.
  std::string lease_key(Ipv4Addr a) const { return prefix_ + "lease/" + a.to_string(); }
  std::string mac_key(MacAddr m) const { return prefix_ + "mac/" + m.to_string(); }
  std::string name_key(const std::string& n) const { return prefix_ + "name/" + n; }
  std::string node_key(const std::string& id) const { return prefix_ + "node/" + id; }
  std::string crl_key() const { return prefix_ + "crl"; }

 private:
  // What this rendezvous last saw of a key.
  struct Known {
    std::int64_t mod = 0;   // mod_revision; 0 = absent
    std::int64_t seen = 0;  // the revision it was seen at
    std::string value;
  };
  // Records `key` as seen at revision `seen`; false (nothing changed) if
  // something newer is known already.
  bool observe(const std::string& key, bool present, std::int64_t mod, const std::string& value, std::int64_t seen);
  void load();
  void follow();
  // One commit's part of a txn: the keys it writes (nullopt: deleted) and
  // the mod_revision each must still have (0: absent).
  struct Prepared {
    CommitRequest commit;
    std::map<std::string, std::optional<std::string>> ops;
    std::vector<std::pair<std::string, std::int64_t>> compares;
  };
  Prepared prepare(const CommitRequest& c) const;
  void send_txn(std::vector<Prepared> batch);
  // A CRL value found in etcd: checked, taken or answered with ours.
  void take_crl(const std::string& pem, std::vector<Outgoing>& out);
  // Writes the Registry's CRL to etcd if it should be there (crl_dirty_)
  // and no write is on its way; retried every second while etcd fails.
  void write_crl();
  void fail(const std::string& error);
  // Applies one key as loaded or watched; lease changes go to `leases`.
  void take_key(const std::string& key, bool present, const std::string& value, LeaseRecords& leases,
                std::vector<NodeInfo>& nodes, std::string& crl);

  Registry& registry_;
  KvStore& kv_;
  std::string prefix_;
  Clock clock_;
  Sink sink_;
  std::map<std::string, Known> known_;
  std::unique_ptr<KvStore::Watch> watch_;
  Presence* presence_ = nullptr;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool loaded_ = false, reachable_ = false, loading_ = false;
  std::string last_error_;
  std::int64_t revision_ = 0;
  SharedRegistryCounters counters_;
  CrlCheck crl_check_;
  std::string refused_crl_;  // the last CRL value refused (not checked again)
  bool crl_dirty_ = false, crl_writing_ = false;
};

// The etcd value of a lease and back (nullopt if it does not parse).
std::string encode_lease_value(const Lease& lease);
std::optional<Lease> decode_lease_value(const std::string& value);
std::string encode_node_value(const NodeInfo& node);
std::optional<NodeInfo> decode_node_value(const std::string& value);

}  // namespace wownet::registry
