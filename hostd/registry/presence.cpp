#include "registry/presence.h"

#include "proto/state.pb.h"
#include "registry/etcd_json.h"

namespace wownet::registry {

Presence::Presence(KvStore& kv, std::string prefix, Clock clock, Options options)
    : kv_(kv), prefix_(std::move(prefix)), clock_(std::move(clock)), options_(options) {}

Presence::~Presence() { *alive_ = false; }

void Presence::set_self(std::string id, std::string name, std::string endpoint) {
  id_ = std::move(id);
  name_ = std::move(name);
  endpoint_ = std::move(endpoint);
}

void Presence::start(std::function<std::int64_t()> watched, std::function<void()> stalled) {
  watched_ = std::move(watched);
  stalled_ = std::move(stalled);
  beat();
}

void Presence::failed() { ++counters_.failures; }

void Presence::beat() {
  ++beats_;
  // The heartbeat put a beat ago must have come back through the watch.
  if (heartbeat_rev_ != 0 && !heartbeat_checked_) {
    heartbeat_checked_ = true;
    if (watched_ && watched_() < heartbeat_rev_) {
      ++counters_.watch_stalls;
      heartbeat_rev_ = 0;
      if (stalled_) stalled_();
    }
  }
  if (lease_ == 0) {
    grant();
  } else {
    etcdserverpb::LeaseKeepAliveRequest r;
    r.set_id(lease_);
    kv_.lease_keepalive(
        r, [this, alive = alive_, lease = lease_](const std::string& error, etcdserverpb::LeaseKeepAliveResponse&& a) {
          if (!*alive || lease != lease_) return;
          if (!error.empty()) return failed();  // unreachable: the next beat tries again
          ++counters_.keepalives;
          if (a.ttl() <= 0) {
            // etcd let it expire (we were cut off longer than its TTL): our
            // keys are gone; take a new lease and put them again.
            ++counters_.lost_leases;
            lease_ = 0;
            grant();
            return;
          }
          if (beats_ % options_.heartbeat_every == 0 || nodes_.size() != nodes_put_) put_self();
        });
  }
  kv_.after(options_.beat, [this, alive = alive_] {
    if (*alive) beat();
  });
}

void Presence::grant() {
  if (granting_) return;
  granting_ = true;
  etcdserverpb::LeaseGrantRequest r;
  r.set_ttl(options_.ttl_s);
  kv_.lease_grant(r, [this, alive = alive_](const std::string& error, etcdserverpb::LeaseGrantResponse&& a) {
    if (!*alive) return;
    granting_ = false;
    if (!error.empty() || a.id() == 0 || !a.error().empty()) return failed();
    ++counters_.grants;
    lease_ = a.id();
    put_self();
    for (const std::string& n : nodes_) put_presence(n);
  });
}

void Presence::put_self() {
  if (lease_ == 0 || id_.empty()) return;
  state::RendezvousRecord rec;
  rec.set_id(id_);
  rec.set_name(name_);
  rec.set_endpoint(endpoint_);
  rec.set_beat_unix(clock_());
  rec.set_nodes_online(std::uint32_t(nodes_.size()));
  etcdserverpb::PutRequest p;
  p.set_key(rendezvous_key(id_));
  p.set_value(to_json(rec));
  p.set_lease(lease_);
  const std::uint32_t count = std::uint32_t(nodes_.size());
  kv_.put(p, [this, alive = alive_, count](const std::string& error, etcdserverpb::PutResponse&& a) {
    if (!*alive) return;
    if (!error.empty()) return failed();
    nodes_put_ = count;
    heartbeat_rev_ = a.header().revision();
    heartbeat_checked_ = false;
  });
}

void Presence::put_presence(const std::string& node_id) {
  if (lease_ == 0) return;  // put with every other key once the lease is granted
  state::PresenceRecord rec;
  rec.set_node_id(node_id);
  rec.set_rendezvous_id(id_);
  etcdserverpb::PutRequest p;
  p.set_key(presence_key(node_id, id_));
  p.set_value(to_json(rec));
  p.set_lease(lease_);
  kv_.put(p, [this, alive = alive_](const std::string& error, etcdserverpb::PutResponse&&) {
    if (*alive && !error.empty()) failed();
  });
}

void Presence::remove(const std::string& key) {
  etcdserverpb::TxnRequest t;
  t.add_success()->mutable_request_delete_range()->set_key(key);
  kv_.txn(t, [this, alive = alive_](const std::string& error, etcdserverpb::TxnResponse&&) {
    if (*alive && !error.empty()) failed();  // the lease takes it when this rendezvous goes
  });
}

void Presence::send_punch(const std::string& node_id, const overlay::Punch& punch) {
  if (node_id.empty() || punch.node_id().empty()) return;
  etcdserverpb::PutRequest p;
  p.set_key(prefix_ + "punch/" + node_id + "/" + punch.node_id());
  p.set_value(to_json(punch));
  ++counters_.punches_sent;
  // The watchers see the put; the key itself is not kept.
  kv_.put(p, [this, alive = alive_, key = p.key()](const std::string& error, etcdserverpb::PutResponse&&) {
    if (!*alive) return;
    if (!error.empty()) return failed();
    remove(key);
  });
}

void Presence::node_up(const std::string& node_id) {
  if (node_id.empty() || !nodes_.insert(node_id).second) return;
  put_presence(node_id);
}

void Presence::node_down(const std::string& node_id) {
  if (!nodes_.erase(node_id)) return;
  if (lease_ != 0) remove(presence_key(node_id, id_));
}

bool Presence::take_key(const std::string& rest, bool present, const std::string& value) {
  if (rest.rfind("rendezvous/", 0) == 0) {
    const std::string id = rest.substr(11);
    if (id == id_) return true;
    if (!present) {
      others_.erase(id);
      return true;
    }
    state::RendezvousRecord r;
    if (!from_json(value, r) || r.id() != id || id.empty()) {
      ++bad_keys_;
      return true;
    }
    others_[id] = Rendezvous{id, r.name(), r.endpoint(), r.beat_unix(), r.nodes_online()};
    return true;
  }
  if (rest.rfind("punch/", 0) == 0) {
    const std::string path = rest.substr(6);
    const auto slash = path.find('/');
    if (slash == std::string::npos || slash == 0) {
      ++bad_keys_;
      return true;
    }
    const std::string node = path.substr(0, slash);
    if (!present || !watching_ || !nodes_.count(node)) return true;  // not for a node of ours
    overlay::Punch punch;
    if (!from_json(value, punch) || punch.node_id() != path.substr(slash + 1)) {
      ++bad_keys_;
      return true;
    }
    ++counters_.punches_passed;
    if (punch_sink_) punch_sink_(node, punch);
    return true;
  }
  if (rest.rfind("presence/", 0) == 0) {
    const std::string path = rest.substr(9);
    const auto slash = path.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == path.size()) {
      ++bad_keys_;
      return true;
    }
    const std::string node = path.substr(0, slash), rv = path.substr(slash + 1);
    if (rv == id_) return true;
    if (present) {
      online_[node].insert(rv);
    } else if (auto it = online_.find(node); it != online_.end()) {
      it->second.erase(rv);
      if (it->second.empty()) online_.erase(it);
    }
    return true;
  }
  return false;
}

void Presence::forget_others() {
  others_.clear();
  online_.clear();
}

std::vector<std::string> Presence::online_elsewhere(const std::string& node_id) const {
  auto it = online_.find(node_id);
  if (it == online_.end()) return {};
  return {it->second.begin(), it->second.end()};
}

}  // namespace wownet::registry
