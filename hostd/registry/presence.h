// Which rendezvous are alive and which nodes have a session with which of
// them, shared through etcd by every rendezvous on one registry. No I/O of
// its own: it drives a KvStore, and the SharedRegistry's load and watch
// hand it the keys under `prefix`:
//
//   rendezvous/ID            a RendezvousRecord, put with this rendezvous'
//                            etcd lease (TTL ttl_s): alive while it exists
//   presence/NODE/RENDEZVOUS a PresenceRecord, with the same lease: NODE
//                            has a session with RENDEZVOUS
//   punch/NODE/ASKER         a Punch (overlay.proto) for NODE, put and at
//                            once deleted: the rendezvous NODE has a session
//                            with passes it on (hole punching across
//                            rendezvous)
//
// A rendezvous that dies stops its keepalives; etcd drops its lease and
// with it every key above within ttl_s, and the watches of the others see
// them go. Every `beat` the lease is kept alive (granted again, with every
// key put again, if etcd lost it); every `heartbeat_every` beats, or when
// the count of nodes online here changed, the rendezvous record is put
// again with the time. That write is also the watch's liveness check: a
// watch that has not delivered it by the next beat after that is stalled
// (a half-open connection delivers nothing and reports no error), and the
// SharedRegistry is told to load and watch anew.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/types.h"
#include "proto/overlay.pb.h"
#include "registry/kv_store.h"

namespace wownet::registry {

struct PresenceCounters {
  std::uint64_t grants = 0, keepalives = 0, failures = 0, lost_leases = 0, watch_stalls = 0;
  std::uint64_t punches_sent = 0, punches_passed = 0;  // through etcd: for nodes elsewhere, for ours
  template <typename F>
  void visit(F&& f) const {
    f("etcd_lease_grants", grants), f("etcd_lease_keepalives", keepalives), f("etcd_presence_failures", failures);
    f("etcd_leases_lost", lost_leases), f("etcd_watch_stalls", watch_stalls);
    f("etcd_punches_sent", punches_sent), f("etcd_punches_passed", punches_passed);
  }
};

class Presence {
 public:
  struct Options {
    std::int64_t ttl_s = 10;
    std::chrono::milliseconds beat{2000};
    int heartbeat_every = 15;  // beats
  };
  struct Rendezvous {
    std::string id, name, endpoint;
    std::int64_t beat_unix = 0;
    std::uint32_t nodes_online = 0;
  };
  using Clock = std::function<UnixTime()>;

  Presence(KvStore& kv, std::string prefix, Clock clock, Options options);
  Presence(KvStore& kv, std::string prefix, Clock clock) : Presence(kv, std::move(prefix), std::move(clock), {}) {}
  ~Presence();
  Presence(const Presence&) = delete;
  Presence& operator=(const Presence&) = delete;

  // Names this rendezvous, before start().
  void set_self(std::string id, std::string name, std::string endpoint);
  // Starts beating. `watched` returns the revision the registry's watch
  // has delivered; `stalled` is called when it missed our heartbeat.
  void start(std::function<std::int64_t()> watched, std::function<void()> stalled);

  // Has `punch` reach node `node_id` through the other rendezvous it has
  // a session with.
  void send_punch(const std::string& node_id, const overlay::Punch& punch);
  // Where punches for nodes with a session here go (from the watch only:
  // a punch is worth nothing by the time a full load reads it).
  using PunchSink = std::function<void(const std::string& node_id, const overlay::Punch& punch)>;
  void on_punch(PunchSink sink) { punch_sink_ = std::move(sink); }
  // Called by the SharedRegistry before it applies a watch message
  // (true) or a load (false).
  void set_watching(bool watching) { watching_ = watching; }

  // A node's session with this rendezvous came up or went.
  void node_up(const std::string& node_id);
  void node_down(const std::string& node_id);

  // A key under the prefix as loaded or watched (`rest` without the
  // prefix); false if it is not a presence key. A key that does not parse
  // is counted and ignored.
  bool take_key(const std::string& rest, bool present, const std::string& value);
  // A full load follows: what was known of the others is dropped first.
  void forget_others();

  // The other rendezvous alive now, by ID.
  const std::map<std::string, Rendezvous>& others() const { return others_; }
  // The other rendezvous node `node_id` has a session with.
  std::vector<std::string> online_elsewhere(const std::string& node_id) const;
  // True while this rendezvous holds its etcd lease.
  bool holding() const { return lease_ != 0; }
  std::uint64_t bad_keys() const { return bad_keys_; }
  const PresenceCounters& counters() const { return counters_; }

  std::string rendezvous_key(const std::string& id) const { return prefix_ + "rendezvous/" + id; }
  std::string presence_key(const std::string& node, const std::string& rendezvous) const {
    return prefix_ + "presence/" + node + "/" + rendezvous;
  }

 private:
  void beat();
  void grant();
  void put_self();
  void put_presence(const std::string& node_id);
  void remove(const std::string& key);
  void failed();

  KvStore& kv_;
  std::string prefix_;
  Clock clock_;
  Options options_;
  std::string id_, name_, endpoint_;
  std::function<std::int64_t()> watched_;
  std::function<void()> stalled_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::int64_t lease_ = 0;
  bool granting_ = false;
  int beats_ = 0;
  std::uint32_t nodes_put_ = ~0u;   // nodes_online in the last record put
  std::int64_t heartbeat_rev_ = 0;  // revision of the last record put, until the watch delivers it
  bool heartbeat_checked_ = true;   // whether the beat after it looked
  std::set<std::string> nodes_;     // online here
  std::map<std::string, Rendezvous> others_;
  std::map<std::string, std::set<std::string>> online_;  // node -> other rendezvous
  std::uint64_t bad_keys_ = 0;
  PunchSink punch_sink_;
  bool watching_ = false;
  PresenceCounters counters_;
};

}  // namespace wownet::registry
