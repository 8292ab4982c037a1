#include "registry/registry_etcd.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <optional>
#include <set>

#include "proto/state.pb.h"
#include "registry/etcd_json.h"

namespace wownet::registry {

namespace pb = google::protobuf;
using etcdserverpb::Compare;

std::string to_json(const pb::Message& m) {
  pb::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  std::string out;
  (void)pb::util::MessageToJsonString(m, &out, o);
  return out;
}

bool from_json(const std::string& text, pb::Message& m) {
  pb::util::JsonParseOptions o;
  o.ignore_unknown_fields = true;
  return pb::util::JsonStringToMessage(text, &m, o).ok();
}

std::string prefix_end(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty() && static_cast<unsigned char>(end.back()) == 0xff) end.pop_back();
  if (end.empty()) return std::string(1, '\0');
  end.back() = char(static_cast<unsigned char>(end.back()) + 1);
  return end;
}

std::string encode_lease_value(const Lease& lease) { return to_json(lease_to_proto(lease, std::string{})); }

std::optional<Lease> decode_lease_value(const std::string& value) {
  overlay::Lease p;
  if (!from_json(value, p)) return std::nullopt;
  auto l = lease_from_proto(p);
  if (l) l->host_name = sanitize_host_name(l->host_name);
  return l;
}

std::string encode_node_value(const NodeInfo& n) {
  state::NodeRecord r;
  r.set_id(n.id);
  r.set_name(n.name);
  r.set_reflexive_address(n.reflexive.address);
  r.set_reflexive_port(n.reflexive.port);
  for (const Endpoint& e : n.local_endpoints) r.add_local_endpoints(e.address + ":" + std::to_string(e.port));
  r.set_last_seen(n.last_seen);
  r.set_online(n.online);
  return to_json(r);
}

std::optional<NodeInfo> decode_node_value(const std::string& value) {
  state::NodeRecord r;
  if (!from_json(value, r) || r.id().empty() || r.reflexive_port() > 65535) return std::nullopt;
  NodeInfo n;
  n.id = r.id();
  n.name = r.name();
  n.reflexive = Endpoint{r.reflexive_address(), std::uint16_t(r.reflexive_port())};
  for (const std::string& e : r.local_endpoints()) {
    auto colon = e.rfind(':');
    auto a = Ipv4Addr::parse(e.substr(0, colon == std::string::npos ? 0 : colon));
    if (!a || colon == std::string::npos) return std::nullopt;
    long port = std::strtol(e.c_str() + colon + 1, nullptr, 10);
    if (port <= 0 || port > 65535) return std::nullopt;
    n.local_endpoints.push_back(Endpoint{a->to_string(), std::uint16_t(port)});
  }
  n.last_seen = r.last_seen();
  n.online = r.online();
  return n;
}

SharedRegistry::SharedRegistry(Registry& registry, KvStore& kv, std::string prefix, Clock clock, Sink sink)
    : registry_(registry), kv_(kv), prefix_(std::move(prefix)), clock_(std::move(clock)), sink_(std::move(sink)) {}

SharedRegistry::~SharedRegistry() {
  *alive_ = false;
  watch_.reset();
}

bool SharedRegistry::observe(const std::string& key, bool present, std::int64_t mod, const std::string& value,
                             std::int64_t seen) {
  Known& k = known_[key];
  if (seen < k.seen) return false;
  const bool changed = k.mod != (present ? mod : 0) || k.value != value;
  k.mod = present ? mod : 0;
  k.seen = seen;
  k.value = present ? value : std::string{};
  return changed;
}

void SharedRegistry::fail(const std::string& error) {
  reachable_ = false;
  last_error_ = error;
}

void SharedRegistry::start() { load(); }

void SharedRegistry::take_key(const std::string& key, bool present, const std::string& value, LeaseRecords& leases,
                              std::vector<NodeInfo>& nodes, std::string& crl) {
  if (key.rfind(prefix_, 0) != 0) return;
  const std::string rest = key.substr(prefix_.size());
  if (presence_ && presence_->take_key(rest, present, value)) return;
  if (rest.rfind("lease/", 0) == 0) {
    auto addr = Ipv4Addr::parse(rest.substr(6));
    if (!addr) return;
    if (!present) {
      leases.emplace_back(*addr, std::nullopt);
      return;
    }
    auto l = decode_lease_value(value);
    if (l && l->address == *addr) leases.emplace_back(*addr, *l);  // else not ours to apply: ignored
  } else if (rest.rfind("node/", 0) == 0) {
    if (!present) return;
    if (auto n = decode_node_value(value)) nodes.push_back(std::move(*n));
  } else if (rest == "crl") {
    if (present) crl = value;
  }
}

void SharedRegistry::load() {
  if (loading_) return;
  loading_ = true;
  etcdserverpb::RangeRequest r;
  r.set_key(prefix_);
  r.set_range_end(prefix_end(prefix_));
  kv_.range(r, [this, alive = alive_](const std::string& error, etcdserverpb::RangeResponse&& answer) {
    if (!*alive) return;
    loading_ = false;
    if (!error.empty()) {
      fail("loading the registry: " + error);
      kv_.after(std::chrono::seconds(1), [this, alive] {
        if (*alive) load();
      });
      return;
    }
    ++counters_.loads;
    reachable_ = true;
    const std::int64_t rev = answer.header().revision();
    LeaseRecords leases;
    std::vector<NodeInfo> nodes;
    std::string crl;
    if (presence_) {
      presence_->forget_others();
      presence_->set_watching(false);
    }
    std::optional<std::string> crl_value;
    for (const auto& kv : answer.kvs()) {
      observe(kv.key(), true, kv.mod_revision(), kv.value(), rev);
      take_key(kv.key(), true, kv.value(), leases, nodes, crl);
      if (kv.key() == crl_key()) crl_value = kv.value();
    }
    std::vector<Outgoing> out;
    const UnixTime now = clock_();
    if (!loaded_) {
      // Hosts whose sessions came up before the load (etcd was down) got
      // an empty table: the leases reach them as updates.
      registry_.load_shared(now, {}, nodes, std::string{});  // the CRL is checked first
      loaded_ = true;
    }
    registry_.apply_shared(now, leases, out);
    for (const NodeInfo& n : nodes) registry_.apply_shared_node(n);
    revision_ = rev;
    if (crl_value) {
      take_crl(*crl_value, out);
    } else {
      crl_dirty_ = true;  // none in etcd (or deleted while we were away): ours, if we hold one
    }
    write_crl();
    follow();
    if (!out.empty()) sink_(out);
  });
}

void SharedRegistry::follow() {
  etcdserverpb::WatchCreateRequest w;
  w.set_key(prefix_);
  w.set_range_end(prefix_end(prefix_));
  w.set_start_revision(revision_ + 1);
  watch_ = kv_.watch(w, [this, alive = alive_](const std::string& error, const etcdserverpb::WatchResponse& m) {
    if (!*alive) return;
    if (!error.empty()) {
      ++counters_.watch_errors;
      fail("watching the registry: " + error);
      // Read everything again (the watch may have missed changes), then watch anew.
      kv_.after(std::chrono::seconds(1), [this, alive] {
        if (*alive) load();
      });
      return;
    }
    reachable_ = true;
    LeaseRecords leases;
    std::vector<NodeInfo> nodes;
    std::string crl;
    if (presence_) presence_->set_watching(true);
    std::optional<std::string> crl_value;
    for (const auto& ev : m.events()) {
      ++counters_.watch_events;
      const bool present = ev.type() == mvccpb::Event::PUT;
      const std::int64_t rev = ev.kv().mod_revision();
      // Our own writes (already applied) and anything older are skipped.
      if (!observe(ev.kv().key(), present, rev, ev.kv().value(), rev)) continue;
      take_key(ev.kv().key(), present, ev.kv().value(), leases, nodes, crl);
      if (ev.kv().key() == crl_key()) {
        crl_value.reset();
        if (present) crl_value = ev.kv().value();
        crl_dirty_ = !present;  // deleted: ours goes back
      }
    }
    revision_ = std::max(revision_, m.header().revision());
    std::vector<Outgoing> out;
    registry_.apply_shared(clock_(), leases, out);
    for (const NodeInfo& n : nodes) registry_.apply_shared_node(n);
    if (crl_value) take_crl(*crl_value, out);
    write_crl();
    if (!out.empty()) sink_(out);
  });
}

void SharedRegistry::attach_presence(Presence& presence) {
  presence_ = &presence;
  presence.start([this] { return revision_; },
                 [this] {
                   // The watch missed our own heartbeat: read everything
                   // again and watch from there.
                   watch_.reset();
                   ++counters_.watch_errors;
                   fail("the registry's watch stalled");
                   load();
                 });
}

void SharedRegistry::flush() {
  // The commits share txns: as many as fit etcd's limit, none writing a
  // key another one writes.
  std::vector<Prepared> batch;
  std::set<std::string> keys;
  std::size_t ops = 0;
  for (const CommitRequest& c : registry_.take_commits()) {
    Prepared p = prepare(c);
    bool overlaps = false;
    for (const auto& [key, value] : p.ops) overlaps |= keys.count(key) != 0;
    if (!batch.empty() && (overlaps || ops + p.ops.size() > kMaxTxnOps)) {
      send_txn(std::move(batch));
      batch.clear();
      keys.clear();
      ops = 0;
    }
    for (const auto& [key, value] : p.ops) keys.insert(key);
    ops += p.ops.size();
    batch.push_back(std::move(p));
  }
  if (!batch.empty()) send_txn(std::move(batch));
  auto write = [this](const std::string& key, const std::string& value) {
    etcdserverpb::PutRequest p;
    p.set_key(key);
    p.set_value(value);
    kv_.put(p, [this, alive = alive_](const std::string& error, etcdserverpb::PutResponse&&) {
      if (!*alive) return;
      if (error.empty()) {
        reachable_ = true;
      } else {
        ++counters_.failures;
        fail("writing to the registry: " + error);
      }
    });
  };
  for (const NodeInfo& n : registry_.take_node_writes()) write(node_key(n.id), encode_node_value(n));
  if (registry_.take_crl_write()) {
    crl_dirty_ = true;
    write_crl();
  }
}

SharedRegistry::Prepared SharedRegistry::prepare(const CommitRequest& c) const {
  // key -> value to put, or nullopt to delete. The MAC and name index
  // keys hold a copy of their lease and are written with it every time,
  // so that two writers relying on one index always collide on it, and
  // the loser reads the holder's lease back from the index itself.
  Prepared p;
  p.commit = c;
  auto& ops = p.ops;
  for (std::size_t i = 0; i < c.before.size(); ++i) {
    const auto& [addr, after] = c.after[i];
    ops[lease_key(addr)] = after ? std::optional<std::string>(encode_lease_value(*after)) : std::nullopt;
  }
  auto index_names = [this](const std::string& key, Ipv4Addr addr) {
    auto it = known_.find(key);
    if (it == known_.end() || it->second.mod == 0) return false;
    auto l = decode_lease_value(it->second.value);
    return l && l->address == addr;
  };
  // Index keys of the old records, if they still name their address...
  for (std::size_t i = 0; i < c.before.size(); ++i) {
    const auto& [addr, before] = c.before[i];
    if (!before || before->state == LeaseState::Declined) continue;
    if (index_names(mac_key(before->mac), addr)) ops[mac_key(before->mac)] = std::nullopt;
    if (!before->host_name.empty() && index_names(name_key(before->host_name), addr))
      ops[name_key(before->host_name)] = std::nullopt;
  }
  // ...then those of the new ones.
  for (std::size_t i = 0; i < c.after.size(); ++i) {
    const auto& [addr, after] = c.after[i];
    if (!after || after->state == LeaseState::Declined) continue;
    const std::string value = encode_lease_value(*after);
    ops[mac_key(after->mac)] = value;
    if (!after->host_name.empty()) ops[name_key(after->host_name)] = value;
  }
  for (const auto& [key, value] : ops) {
    auto it = known_.find(key);
    p.compares.emplace_back(key, it == known_.end() ? 0 : it->second.mod);
  }
  return p;
}

void SharedRegistry::send_txn(std::vector<Prepared> batch) {
  etcdserverpb::TxnRequest t;
  std::vector<std::string> compared;
  for (const Prepared& p : batch) {
    for (const auto& [key, mod] : p.compares) {
      Compare* cmp = t.add_compare();
      cmp->set_key(key);
      cmp->set_target(Compare::MOD);
      cmp->set_result(Compare::EQUAL);
      cmp->set_mod_revision(mod);
      t.add_failure()->mutable_request_range()->set_key(key);
      compared.push_back(key);
    }
  }
  for (const Prepared& p : batch) {
    for (const auto& [key, value] : p.ops) {
      if (value) {
        auto* put = t.add_success()->mutable_request_put();
        put->set_key(key);
        put->set_value(*value);
      } else {
        t.add_success()->mutable_request_delete_range()->set_key(key);
      }
    }
  }
  ++counters_.txns;
  kv_.txn(t, [this, alive = alive_, batch = std::move(batch), compared = std::move(compared)](
                 const std::string& error, etcdserverpb::TxnResponse&& answer) {
    if (!*alive) return;
    std::vector<Outgoing> out;
    const UnixTime now = clock_();
    if (!error.empty()) {
      ++counters_.failures;
      fail("registry transaction: " + error);
      for (const Prepared& p : batch)
        registry_.on_commit_result(now, p.commit.id, CommitOutcome::Failed, {}, error, out);
    } else if (answer.succeeded()) {
      reachable_ = true;
      const std::int64_t rev = answer.header().revision();
      for (const Prepared& p : batch) {
        for (const auto& [key, value] : p.ops) observe(key, value.has_value(), rev, value.value_or(""), rev);
        registry_.on_commit_result(now, p.commit.id, CommitOutcome::Committed, {}, {}, out);
      }
    } else {
      reachable_ = true;
      ++counters_.conflicts;
      const std::int64_t rev = answer.header().revision();
      // What etcd holds now of every compared key.
      struct Fresh {
        bool present = false;
        std::int64_t mod = 0;
        std::string value;
      };
      std::map<std::string, Fresh> fresh_of;
      for (std::size_t i = 0; i < compared.size() && i < std::size_t(answer.responses_size()); ++i) {
        const auto& range = answer.responses(int(i)).response_range();
        Fresh f;
        f.present = range.kvs_size() > 0;
        f.mod = f.present ? range.kvs(0).mod_revision() : 0;
        f.value = f.present ? range.kvs(0).value() : std::string{};
        observe(compared[i], f.present, f.mod, f.value, rev);
        fresh_of[compared[i]] = std::move(f);
      }
      for (const Prepared& p : batch) {
        const bool lost = batch.size() == 1 || std::any_of(p.compares.begin(), p.compares.end(), [&](const auto& c) {
                            auto it = fresh_of.find(c.first);
                            return it == fresh_of.end() || it->second.mod != c.second;
                          });
        if (!lost) {
          // Its records did not change: another commit of the txn lost.
          send_txn({prepare(p.commit)});
          continue;
        }
        LeaseRecords fresh;
        std::vector<NodeInfo> nodes;
        std::string crl;
        for (const auto& [key, mod] : p.compares) {
          auto it = fresh_of.find(key);
          if (it == fresh_of.end()) continue;
          take_key(key, it->second.present, it->second.value, fresh, nodes, crl);
          // An index that another lease holds: that lease, as it was written.
          const std::string rest = key.substr(prefix_.size());
          if (it->second.present && (rest.rfind("mac/", 0) == 0 || rest.rfind("name/", 0) == 0)) {
            if (auto holder = decode_lease_value(it->second.value)) fresh.emplace_back(holder->address, *holder);
          }
        }
        registry_.on_commit_result(now, p.commit.id, CommitOutcome::Conflict, fresh, {}, out);
      }
    }
    // A request handled again makes a new commit.
    flush();
    if (!out.empty()) sink_(out);
  });
}

}  // namespace wownet::registry
