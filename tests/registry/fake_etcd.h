// An in-memory etcd for the registry's etcd backend: keys with
// mod_revision, txn with etcd's compare semantics (MOD, VERSION, CREATE,
// VALUE; EQUAL, NOT_EQUAL, GREATER, LESS), ranges, prefix watches. Every
// answer and watch event is queued and delivered by run(), so a test
// decides what happens "at the same moment". set_available(false) fails
// every call. Leases: keys put with one go when a test calls
// expire_lease() (the fake keeps no time).
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "registry/kv_store.h"

namespace wownet::registry::test {

class FakeEtcd {
 public:
  struct Entry {
    std::string value;
    std::int64_t mod = 0, create = 0, version = 0;
  };

  // One rendezvous' connection to the fake (its own watches).
  class Client : public KvStore {
   public:
    explicit Client(FakeEtcd& etcd) : etcd_(etcd) {}
    void range(const etcdserverpb::RangeRequest& r, Done<etcdserverpb::RangeResponse> done) override {
      if (!etcd_.available_) return etcd_.later([done] { done("etcd unavailable", {}); });
      etcdserverpb::RangeResponse a = etcd_.do_range(r);
      etcd_.later([done, a]() mutable { done({}, std::move(a)); });
    }
    void put(const etcdserverpb::PutRequest& r, Done<etcdserverpb::PutResponse> done) override {
      if (!etcd_.available_) return etcd_.later([done] { done("etcd unavailable", {}); });
      if (r.lease() != 0 && !etcd_.leases_.count(r.lease()))
        return etcd_.later([done] { done("etcdserver: requested lease not found", {}); });
      ++etcd_.revision_;
      etcd_.write(r.key(), r.value());
      etcd_.attach(r.key(), r.lease());
      etcdserverpb::PutResponse a;
      a.mutable_header()->set_revision(etcd_.revision_);
      etcd_.later([done, a]() mutable { done({}, std::move(a)); });
    }
    void txn(const etcdserverpb::TxnRequest& r, Done<etcdserverpb::TxnResponse> done) override {
      if (etcd_.before_txn) etcd_.before_txn();
      etcd_.txn_sizes.push_back(std::size_t(r.success_size()));
      if (!etcd_.available_) return etcd_.later([done] { done("etcd unavailable", {}); });
      etcdserverpb::TxnResponse a = etcd_.do_txn(r);
      etcd_.later([done, a]() mutable { done({}, std::move(a)); });
    }
    std::unique_ptr<Watch> watch(const etcdserverpb::WatchCreateRequest& r, WatchDone on_message) override {
      auto w = std::make_shared<Watcher>();
      w->key = r.key();
      w->end = r.range_end();
      w->on_message = std::move(on_message);
      etcd_.watchers_.push_back(w);
      // History since start_revision is replayed (the fake keeps none:
      // tests start watches at the current revision).
      etcdserverpb::WatchResponse created;
      created.set_created(true);
      created.mutable_header()->set_revision(etcd_.revision_);
      etcd_.later([w, created] {
        if (w->active) w->on_message({}, created);
      });
      return std::make_unique<WatchHandle>(w);
    }
    void after(std::chrono::milliseconds, std::function<void()> f) override { etcd_.timers_.push_back(std::move(f)); }
    void lease_grant(const etcdserverpb::LeaseGrantRequest& r, Done<etcdserverpb::LeaseGrantResponse> done) override {
      if (!etcd_.available_) return etcd_.later([done] { done("etcd unavailable", {}); });
      etcdserverpb::LeaseGrantResponse a;
      a.set_id(++etcd_.next_lease_);
      a.set_ttl(r.ttl());
      etcd_.leases_[a.id()];
      ++etcd_.grants_;
      etcd_.later([done, a]() mutable { done({}, std::move(a)); });
    }
    void lease_keepalive(const etcdserverpb::LeaseKeepAliveRequest& r,
                         Done<etcdserverpb::LeaseKeepAliveResponse> done) override {
      if (!etcd_.available_) return etcd_.later([done] { done("etcd unavailable", {}); });
      etcdserverpb::LeaseKeepAliveResponse a;
      a.set_id(r.id());
      a.set_ttl(etcd_.leases_.count(r.id()) ? 10 : 0);
      ++etcd_.keepalives_;
      etcd_.later([done, a]() mutable { done({}, std::move(a)); });
    }

   private:
    FakeEtcd& etcd_;
  };

  void set_available(bool on) {
    available_ = on;
    if (!on) {
      // Watches break too.
      for (auto& w : watchers_) {
        if (!w->active) continue;
        w->active = false;
        later([w] { w->on_message("etcd unavailable", {}); });
      }
    }
  }
  // Delivers every queued answer and event (and those they cause).
  void run() {
    while (!queue_.empty()) {
      auto f = std::move(queue_.front());
      queue_.pop_front();
      f();
    }
  }
  // Runs the retries asked for with after().
  void run_timers() {
    auto t = std::move(timers_);
    timers_.clear();
    for (auto& f : t) f();
    run();
  }
  // Writes a key directly (another writer); watchers hear of it at run().
  std::int64_t put_direct(const std::string& key, const std::string& value) {
    ++revision_;
    write(key, value);
    return revision_;
  }
  // Ends lease `id` as etcd does when its TTL runs out: its keys go.
  void expire_lease(std::int64_t id) {
    auto it = leases_.find(id);
    if (it == leases_.end()) return;
    const std::set<std::string> keys = std::move(it->second);
    leases_.erase(it);
    if (keys.empty()) return;
    ++revision_;
    for (const std::string& k : keys) erase(k);
  }
  // The leases granted and not expired, with their keys.
  const std::map<std::int64_t, std::set<std::string>>& leases() const { return leases_; }
  int grants() const { return grants_; }
  int keepalives() const { return keepalives_; }
  // Whether watches still get events (false: they hang, as on a
  // half-open connection).
  void set_watch_delivery(bool on) { deliver_watch_ = on; }
  const std::map<std::string, Entry>& data() const { return data_; }
  std::int64_t revision() const { return revision_; }
  // Called at the start of every txn (to interleave another writer).
  std::function<void()> before_txn;
  // The number of write operations of every txn received, in order.
  std::vector<std::size_t> txn_sizes;

 private:
  struct Watcher {
    std::string key, end;
    KvStore::WatchDone on_message;
    bool active = true;
  };
  struct WatchHandle : KvStore::Watch {
    explicit WatchHandle(std::shared_ptr<Watcher> w) : watcher(std::move(w)) {}
    ~WatchHandle() override { watcher->active = false; }
    std::shared_ptr<Watcher> watcher;
  };

  void later(std::function<void()> f) { queue_.push_back(std::move(f)); }
  static bool in_range(const std::string& key, const std::string& k, const std::string& end) {
    if (end.empty()) return key == k;
    if (end == std::string(1, '\0')) return key >= k;
    return key >= k && key < end;
  }
  void notify(const std::string& key, bool put) {
    mvccpb::Event ev;
    ev.set_type(put ? mvccpb::Event::PUT : mvccpb::Event::DELETE);
    ev.mutable_kv()->set_key(key);
    if (put) {
      const Entry& e = data_[key];
      ev.mutable_kv()->set_value(e.value);
      ev.mutable_kv()->set_mod_revision(e.mod);
      ev.mutable_kv()->set_create_revision(e.create);
      ev.mutable_kv()->set_version(e.version);
    } else {
      ev.mutable_kv()->set_mod_revision(revision_);
    }
    for (auto& w : watchers_) {
      if (!w->active || !in_range(key, w->key, w->end) || !deliver_watch_) continue;
      etcdserverpb::WatchResponse m;
      m.mutable_header()->set_revision(revision_);
      *m.add_events() = ev;
      later([w, m] {
        if (w->active) w->on_message({}, m);
      });
    }
  }
  void write(const std::string& key, const std::string& value) {
    Entry& e = data_[key];
    if (e.create == 0) e.create = revision_;
    e.value = value;
    e.mod = revision_;
    ++e.version;
    notify(key, true);
  }
  void erase(const std::string& key) {
    if (!data_.erase(key)) return;
    for (auto& [id, keys] : leases_) keys.erase(key);
    notify(key, false);
  }
  // A put without a lease detaches the key from the one it had.
  void attach(const std::string& key, std::int64_t lease) {
    for (auto& [id, keys] : leases_) keys.erase(key);
    if (lease != 0) leases_[lease].insert(key);
  }
  etcdserverpb::RangeResponse do_range(const etcdserverpb::RangeRequest& r) const {
    etcdserverpb::RangeResponse a;
    a.mutable_header()->set_revision(revision_);
    for (const auto& [k, e] : data_) {
      if (!in_range(k, r.key(), r.range_end())) continue;
      auto* kv = a.add_kvs();
      kv->set_key(k);
      kv->set_value(e.value);
      kv->set_mod_revision(e.mod);
      kv->set_create_revision(e.create);
      kv->set_version(e.version);
    }
    a.set_count(a.kvs_size());
    return a;
  }
  bool holds(const etcdserverpb::Compare& c) const {
    auto it = data_.find(c.key());
    const Entry none;
    const Entry& e = it == data_.end() ? none : it->second;
    int cmp = 0;
    auto three = [](auto x, auto y) { return x < y ? -1 : (x > y ? 1 : 0); };
    switch (c.target()) {
      case etcdserverpb::Compare::MOD: cmp = three(e.mod, c.mod_revision()); break;
      case etcdserverpb::Compare::VERSION: cmp = three(e.version, c.version()); break;
      case etcdserverpb::Compare::CREATE: cmp = three(e.create, c.create_revision()); break;
      case etcdserverpb::Compare::VALUE: cmp = three(e.value, c.value()); break;
      default: return false;
    }
    switch (c.result()) {
      case etcdserverpb::Compare::EQUAL: return cmp == 0;
      case etcdserverpb::Compare::NOT_EQUAL: return cmp != 0;
      case etcdserverpb::Compare::GREATER: return cmp > 0;
      case etcdserverpb::Compare::LESS: return cmp < 0;
      default: return false;
    }
  }
  etcdserverpb::TxnResponse do_txn(const etcdserverpb::TxnRequest& r) {
    bool ok = true;
    for (const auto& c : r.compare()) ok = ok && holds(c);
    const auto& ops = ok ? r.success() : r.failure();
    bool writes = false;
    for (const auto& op : ops) writes |= !op.has_request_range();
    if (writes) ++revision_;  // one revision for the whole transaction
    etcdserverpb::TxnResponse a;
    a.set_succeeded(ok);
    for (const auto& op : ops) {
      auto* resp = a.add_responses();
      if (op.has_request_range()) {
        *resp->mutable_response_range() = do_range(op.request_range());
      } else if (op.has_request_put()) {
        write(op.request_put().key(), op.request_put().value());
        attach(op.request_put().key(), op.request_put().lease());
        resp->mutable_response_put();
      } else if (op.has_request_delete_range()) {
        erase(op.request_delete_range().key());
        resp->mutable_response_delete_range();
      }
    }
    a.mutable_header()->set_revision(revision_);
    return a;
  }

  std::map<std::string, Entry> data_;
  std::int64_t revision_ = 1;
  bool available_ = true;
  std::deque<std::function<void()>> queue_;
  std::vector<std::function<void()>> timers_;
  std::vector<std::shared_ptr<Watcher>> watchers_;
  std::map<std::int64_t, std::set<std::string>> leases_;
  std::int64_t next_lease_ = 0x1000;
  int grants_ = 0, keepalives_ = 0;
  bool deliver_watch_ = true;
};

}  // namespace wownet::registry::test
