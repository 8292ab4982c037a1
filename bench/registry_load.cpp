// registry_load: lease allocation through one rendezvous' registry, with
// simulated hosts, on SQLite (a real file, fsync and all) or on a real etcd.
// The registry code is hostd's own (registry::Registry, RegistryStore,
// SharedRegistry over io::EtcdClient); the hosts are simulated in-process:
// H hosts, each keeping up to D VMs' DHCP exchanges in flight (OFFER, then
// BIND of the offered address). A turn of the loop handles the requests
// that arrived, up to --turn of them (256: what a rendezvous reads per wakeup), in
// order, then ends: on SQLite with one transaction (group commit), then
// the replies go out; on etcd with the turn's commits sent in shared txns
// (SharedRegistry::flush), several in flight. --no-group runs the code as
// it was before: SQLite commits every request alone, etcd gets one txn per
// request (hostd flushed after every message).
//
// Prints one line of key=value figures: leases/s (full OFFER+BIND
// exchanges), exchange latency p50/p99/max in ms, failures, store
// transactions (SQLite) or etcd txns, resolve latency p50/p99 in µs (after
// the leases), RSS.
// Opening the store and loading the registry is timed (open_ms, what a
// restarted rendezvous does before it serves) with the RSS after it;
// --preload N first fills the store with N leases (untimed).
//
// A benchmark, not a test. See bench/registry.sh.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/etcd_client.h"
#include "registry/registry.h"
#include "registry/registry_etcd.h"
#include "registry/registry_store.h"
#include "registry_etcd_io.h"

namespace {

using namespace wownet;
using Clock = std::chrono::steady_clock;
namespace ov = wownet::overlay;

struct Options {
  std::string backend = "sqlite";
  std::string db = "registry.db";
  std::string etcd = "http://127.0.0.1:2379";
  std::string prefix = "/wownet-bench/";
  int hosts = 10;
  int vms = 5000;
  int depth = 64;  // exchanges in flight per host
  bool group = true;
  int preload = 0;
  int resolves = 10000;
  bool names = true;
  // Requests handled per turn of the loop: a rendezvous reads up to 16
  // recvmmsg of 16 datagrams per wakeup (overlay_service.cpp), then commits.
  int turn = 256;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "registry_load: %s\n"
               "usage: registry_load [--backend sqlite|etcd] [--db FILE] [--etcd URL] [--prefix P]\n"
               "                     [--hosts H] [--vms N] [--depth D] [--no-group] [--preload N]\n"
               "                     [--resolves N] [--no-names] [--turn REQUESTS]\n",
               why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    auto number = [&]() {
      std::string v = value();
      char* end = nullptr;
      long n = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end || n < 0 || n > 10'000'000) usage(("bad number for " + a).c_str());
      return int(n);
    };
    if (a == "--backend") {
      o.backend = value();
    } else if (a == "--db") {
      o.db = value();
    } else if (a == "--etcd") {
      o.etcd = value();
    } else if (a == "--prefix") {
      o.prefix = value();
    } else if (a == "--hosts") {
      o.hosts = std::max(1, number());
    } else if (a == "--vms") {
      o.vms = number();
    } else if (a == "--depth") {
      o.depth = std::max(1, number());
    } else if (a == "--no-group") {
      o.group = false;
    } else if (a == "--preload") {
      o.preload = number();
    } else if (a == "--resolves") {
      o.resolves = number();
    } else if (a == "--turn") {
      o.turn = std::max(1, number());
    } else if (a == "--no-names") {
      o.names = false;
    } else {
      usage(("unknown argument " + a).c_str());
    }
  }
  if (o.backend != "sqlite" && o.backend != "etcd") usage("backend is sqlite or etcd");
  return o;
}

long rss_kib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t i = std::min(v.size() - 1, std::size_t(p * double(v.size() - 1) + 0.5));
  return v[i];
}

MacAddr mac_of(std::uint32_t i) {
  return MacAddr{{0x52, 0x54, std::uint8_t(i >> 24), std::uint8_t(i >> 16), std::uint8_t(i >> 8), std::uint8_t(i)}};
}

NetworkConfig network() {
  NetworkConfig n;  // 10.128.0.0/9: room for any --preload
  n.lease_time = 3600;
  return n;
}

// The registry under test and its store, in either backend.
struct Rendezvous {
  Options opt;
  boost::asio::io_context io;
  std::unique_ptr<registry::RegistryStore> store;
  std::unique_ptr<io::EtcdClient> etcd;
  std::unique_ptr<EtcdKvStore> kv;
  std::unique_ptr<registry::Registry> reg;
  std::unique_ptr<registry::SharedRegistry> shared;
  std::function<void(std::vector<registry::Outgoing>&)> sink;  // replies that come later (etcd)

  explicit Rendezvous(const Options& o) : opt(o) {}

  // Opens the store and loads the registry; false with a message on stderr.
  bool open(bool group) {
    std::string error;
    if (opt.backend == "sqlite") {
      store = registry::RegistryStore::open(opt.db, error);
      if (!store) {
        std::fprintf(stderr, "%s\n", error.c_str());
        return false;
      }
      reg = std::make_unique<registry::Registry>(network(), store.get());
      if (group) reg->group_commits();
      reg->set_self("rendezvous", "rdv", {});
      if (!reg->restore(now(), error)) {
        std::fprintf(stderr, "%s\n", error.c_str());
        return false;
      }
      return true;
    }
    io::EtcdOptions eo;
    eo.endpoints = {opt.etcd};
    eo.timeout = std::chrono::milliseconds(10000);
    etcd = io::EtcdClient::create(io, eo, error);
    if (!etcd) {
      std::fprintf(stderr, "%s\n", error.c_str());
      return false;
    }
    kv = std::make_unique<EtcdKvStore>(io, *etcd);
    reg = std::make_unique<registry::Registry>(network(), nullptr);
    reg->share_commits();
    reg->set_self("rendezvous", "rdv", {});
    shared = std::make_unique<registry::SharedRegistry>(
        *reg, *kv, opt.prefix, [] { return now(); },
        [this](std::vector<registry::Outgoing>& late) {
          if (sink) sink(late);
        });
    shared->start();
    const auto deadline = Clock::now() + std::chrono::seconds(120);
    while (!shared->loaded() && Clock::now() < deadline) io.run_one_for(std::chrono::milliseconds(100));
    if (!shared->loaded()) {
      std::fprintf(stderr, "etcd at %s: registry not loaded: %s\n", opt.etcd.c_str(), shared->last_error().c_str());
      return false;
    }
    return true;
  }

  static UnixTime now() { return UnixTime(std::time(nullptr)); }

  // The end of a turn: the group's transaction (SQLite) or the txns (etcd).
  void end_turn(std::vector<registry::Outgoing>& out) {
    if (shared) {
      shared->flush();
    } else {
      reg->commit_group(now(), out);
    }
  }

  std::uint64_t writes() const {
    if (store) return store->commits();
    return shared ? shared->counters().txns : 0;
  }
};

ov::NodeMessage lease_request(std::uint64_t id, ov::LeaseRequest::Kind kind, MacAddr mac, const std::string& vm,
                              const std::string& host_name, std::optional<Ipv4Addr> requested) {
  ov::NodeMessage m;
  m.set_request_id(id);
  auto* r = m.mutable_lease_request();
  r->set_kind(kind);
  r->set_mac(mac.to_string());
  r->set_vm(vm);
  r->set_host_name(host_name);
  if (requested) r->set_requested_address(requested->to_string());
  return m;
}

// H hosts, each with its VMs, running exchanges against one Rendezvous.
struct Load {
  struct Vm {
    int host = 0;
    std::uint32_t index = 0;
    Clock::time_point started;
    int attempts = 0;
  };
  Rendezvous& rv;
  const Options& opt;
  std::uint32_t first_index;
  int total;
  std::vector<Vm> vms;
  std::vector<std::deque<std::uint32_t>> waiting;  // per host: VMs not started yet
  std::vector<int> in_flight;
  bool use_names;
  std::deque<std::pair<std::string, ov::NodeMessage>> inbox;  // sent, not yet handled
  std::vector<double> latency_ms;
  int done = 0, failures = 0;
  bool turn_posted = false;

  Load(Rendezvous& r, const Options& o, std::uint32_t first, int count, int hosts, bool names)
      : rv(r),
        opt(o),
        first_index(first),
        total(count),
        waiting(std::size_t(hosts)),
        in_flight(std::size_t(hosts)),
        use_names(names) {
    vms.resize(std::size_t(count));
    for (int i = 0; i < count; ++i) {
      vms[std::size_t(i)].host = i % hosts;
      vms[std::size_t(i)].index = first + std::uint32_t(i);
      waiting[std::size_t(i % hosts)].push_back(std::uint32_t(i));
    }
  }

  static std::string host_id(int h) { return "host-" + std::to_string(h); }
  std::string vm_name(std::uint32_t i) const { return "vm" + std::to_string(vms[i].index); }

  // Request ids: VM * 2 + (0 OFFER, 1 BIND).
  void send_offer(std::uint32_t i) {
    Vm& v = vms[i];
    v.started = Clock::now();
    inbox.emplace_back(host_id(v.host),
                       lease_request(std::uint64_t(i) * 2, ov::LeaseRequest::OFFER, mac_of(v.index), vm_name(i),
                                     use_names ? vm_name(i) : std::string{}, std::nullopt));
  }
  void start_more(int h) {
    while (in_flight[std::size_t(h)] < opt.depth && !waiting[std::size_t(h)].empty()) {
      std::uint32_t i = waiting[std::size_t(h)].front();
      waiting[std::size_t(h)].pop_front();
      ++in_flight[std::size_t(h)];
      send_offer(i);
    }
  }
  void finish(std::uint32_t i, bool ok) {
    Vm& v = vms[i];
    if (ok) {
      latency_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - v.started).count());
    } else {
      ++failures;
    }
    ++done;
    --in_flight[std::size_t(v.host)];
    start_more(v.host);
  }
  void on_replies(std::vector<registry::Outgoing>& out) {
    for (registry::Outgoing& o : out) {
      if (!o.message.has_lease_reply() || o.node_id.rfind("host-", 0) != 0) continue;  // pushes
      const std::uint64_t id = o.message.request_id();
      const std::uint32_t i = std::uint32_t(id / 2);
      if (i >= vms.size()) continue;
      const ov::LeaseReply& r = o.message.lease_reply();
      if (!r.ok()) {
        // A conflict between our own requests (etcd) or a full pool: the
        // VM's client would start over; count it and do so a few times.
        if (++vms[i].attempts < 3 && r.reason().find("busy") != std::string::npos) {
          send_offer(i);
        } else {
          std::fprintf(stderr, "refused: %s\n", r.reason().c_str());
          finish(i, false);
        }
        continue;
      }
      if (id % 2 == 0) {
        auto addr = Ipv4Addr::parse(r.lease().address());
        inbox.emplace_back(o.node_id, lease_request(id + 1, ov::LeaseRequest::BIND, mac_of(vms[i].index), vm_name(i),
                                                    use_names ? vm_name(i) : std::string{}, addr));
      } else {
        finish(i, true);
      }
    }
    post_turn();
  }
  void turn() {
    turn_posted = false;
    std::vector<registry::Outgoing> out;
    const UnixTime now = Rendezvous::now();
    for (int k = 0; k < opt.turn && !inbox.empty(); ++k) {
      rv.reg->on_message(now, inbox.front().first, inbox.front().second, out);
      inbox.pop_front();
      // Before batching, hostd flushed after every message: one txn each.
      if (!opt.group && rv.shared) rv.shared->flush();
    }
    rv.end_turn(out);
    on_replies(out);
  }
  void post_turn() {
    if (turn_posted || inbox.empty()) return;
    turn_posted = true;
    boost::asio::post(rv.io, [this] { turn(); });
  }
  // Runs every VM's exchange; returns the seconds it took.
  double run() {
    rv.sink = [this](std::vector<registry::Outgoing>& late) { on_replies(late); };
    std::vector<registry::Outgoing> out;
    for (std::size_t h = 0; h < waiting.size(); ++h)
      rv.reg->on_node_up(Rendezvous::now(), host_id(int(h)), host_id(int(h)), "192.0.2.1", std::uint16_t(1000 + h),
                         out);
    rv.end_turn(out);
    if (rv.shared) {
      // The node records are written before the load starts.
      for (int k = 0; k < 50; ++k) rv.io.run_one_for(std::chrono::milliseconds(10));
    }
    const auto t0 = Clock::now();
    for (std::size_t h = 0; h < waiting.size(); ++h) start_more(int(h));
    post_turn();
    while (done < total) {
      if (rv.io.run_one_for(std::chrono::seconds(30)) == 0) {
        std::fprintf(stderr, "stalled: %d of %d done\n", done, total);
        break;
      }
    }
    rv.sink = nullptr;
    return std::chrono::duration<double>(Clock::now() - t0).count();
  }
};

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse(argc, argv);
  const std::string mode = opt.group ? "batched" : "per-request";
  std::uint32_t next_index = 1;
  if (opt.preload > 0) {
    // Fill the registry (untimed): many hosts, deep pipelines, no names.
    Rendezvous rv(opt);
    if (!rv.open(true)) return 1;
    Options fill = opt;
    fill.depth = 256;
    Load load(rv, fill, next_index, opt.preload, 20, false);
    load.run();
    if (load.failures) std::fprintf(stderr, "preload: %d failures\n", load.failures);
  }
  // Opening the store and loading the registry: what a restarted
  // rendezvous does before it serves.
  const long rss_start = rss_kib();
  const auto t_open = Clock::now();
  Rendezvous rv(opt);
  if (!rv.open(opt.group)) return 1;
  const double open_ms = std::chrono::duration<double, std::milli>(Clock::now() - t_open).count();
  const long rss_opened = rss_kib();
  // The load's VMs are others than any loaded or preloaded ones.
  next_index = std::uint32_t(rv.reg->leases().size()) + std::uint32_t(opt.preload) + 2'000'000;
  const std::size_t leases_before = rv.reg->leases().size();
  const std::uint64_t writes_before = rv.writes();
  Load load(rv, opt, next_index, opt.vms, opt.hosts, opt.names);
  const double secs = opt.vms > 0 ? load.run() : 0;
  const std::uint64_t writes = rv.writes() - writes_before;

  // Resolves of random leased addresses (each answered at once from memory,
  // with a punch to the target: what a rendezvous does per new path).
  std::vector<double> resolve_us;
  if (opt.resolves > 0 && rv.reg->leases().size() > 0) {
    std::vector<Ipv4Addr> addrs;
    for (const Lease& l : rv.reg->leases().snapshot())
      if (l.active(Rendezvous::now())) addrs.push_back(l.address);
    std::uint64_t seed = 12345;
    std::vector<registry::Outgoing> out;
    for (int k = 0; k < opt.resolves && !addrs.empty(); ++k) {
      seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
      ov::NodeMessage m;
      m.set_request_id(std::uint64_t(k));
      m.mutable_resolve()->set_address(addrs[(seed >> 33) % addrs.size()].to_string());
      out.clear();
      const auto t0 = Clock::now();
      rv.reg->on_message(Rendezvous::now(), "host-0", m, out);
      resolve_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
  }
  std::printf(
      "backend=%s mode=%s hosts=%d depth=%d turn=%d vms=%d preloaded=%zu leases_per_s=%.0f p50_ms=%.1f p99_ms=%.1f "
      "max_ms=%.1f failures=%d writes=%llu replies_per_write=%.1f resolve_p50_us=%.1f resolve_p99_us=%.1f "
      "open_ms=%.0f rss_opened_kib=%ld rss_start_kib=%ld rss_end_kib=%ld\n",
      opt.backend.c_str(), mode.c_str(), opt.hosts, opt.depth, opt.turn, opt.vms, leases_before,
      secs > 0 ? double(load.done - load.failures) / secs : 0.0, percentile(load.latency_ms, 0.5),
      percentile(load.latency_ms, 0.99), percentile(load.latency_ms, 1.0), load.failures,
      static_cast<unsigned long long>(writes), writes ? 2.0 * double(opt.vms) / double(writes) : 0.0,
      percentile(resolve_us, 0.5), percentile(resolve_us, 0.99), open_ms, rss_opened, rss_start, rss_kib());
  return load.failures == 0 && load.done == opt.vms ? 0 : 1;
}
