// The registry a rendezvous node keeps for the whole overlay: which VM
// address is leased to which node, MAC, VM and host name until when; where
// each node can be reached; and the CRL. Other nodes reach it with
// wownet.overlay.NodeMessage over their authenticated DTLS sessions; the
// transport calls the on_* entry points and sends what they return.
//
// Allocation is LeaseTable's (choose, is_available, put, release, decline,
// name rules) with every record's `node` set to the node the VM runs on.
// Every change is committed to the RegistryStore before the reply that
// reports it is produced (in group mode: before commit_group() hands the
// reply out), so a reply the caller sends is never lost to a crash. Time comes in as an argument; no I/O besides the
// store. Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/lease_table.h"
#include "core/network_config.h"
#include "core/types.h"
#include "proto/overlay.pb.h"
#include "registry/registry_store.h"
#include "registry/relay_choice.h"

namespace wownet::registry {

// Budget for one LeaseSnapshot or LeaseUpdate message (serialized
// NodeMessage): a large table goes out as several messages so each fits one
// DTLS record in one unfragmented datagram. The first message after a
// session comes up is a LeaseSnapshot, the rest of the table follows as
// LeaseUpdate messages.
inline constexpr std::size_t kMaxLeaseMessageBytes = 1100;
// At most this many local endpoints per Register.
inline constexpr std::size_t kMaxLocalEndpoints = 16;
// Longest VM name accepted in a LeaseRequest, in bytes (valid UTF-8, no
// control characters).
inline constexpr std::size_t kMaxVmNameBytes = 255;

// One message for one node.
struct Outgoing {
  std::string node_id;
  wownet::overlay::NodeMessage message;
  // The node has no session here but one with another rendezvous on the
  // shared registry: the message (a Punch) goes there through etcd.
  bool elsewhere = false;
};

struct RegistryCounters {
  std::uint64_t lease_requests = 0, lease_refused = 0, releases = 0, resolves = 0, registers = 0;
  std::uint64_t pushes = 0;          // messages queued for nodes other than a requester
  std::uint64_t store_failures = 0;  // commits that failed (the change was undone)
  // Shared store (etcd): commits that lost their compare to another
  // rendezvous' change, and requests handled again after one.
  std::uint64_t commit_conflicts = 0, commit_retries = 0;
  std::uint64_t shared_changes = 0;  // records changed by other rendezvous, applied
  // Group commit (SQLite): transactions written, and the lease replies
  // they carried (replies / commits: the batching achieved).
  std::uint64_t group_commits = 0, group_replies = 0;
  // Calls f(name, value) for every counter.
  template <typename F>
  void visit(F&& f) const {
    f("lease_requests", lease_requests), f("lease_refused", lease_refused), f("releases", releases);
    f("resolves", resolves), f("registers", registers), f("pushes", pushes), f("store_failures", store_failures);
    f("commit_conflicts", commit_conflicts), f("commit_retries", commit_retries);
    f("shared_changes", shared_changes), f("group_commits", group_commits), f("group_replies", group_replies);
  }
};

// The records of some addresses: each address with its record, or none.
using LeaseRecords = std::vector<std::pair<Ipv4Addr, std::optional<Lease>>>;

// A change of the lease table waiting for a shared store (etcd), which
// must write it only if none of its addresses changed since `before`.
struct CommitRequest {
  std::uint64_t id = 0;
  LeaseRecords before, after;  // same addresses, same order
};

// What the shared store did with a CommitRequest.
enum class CommitOutcome : std::uint8_t {
  Committed,  // written
  Conflict,   // another writer changed one of its records first; `fresh` has them
  Failed,     // not written (store unreachable or broken)
};

// How many times a request that lost its compare is handled again.
inline constexpr int kMaxCommitAttempts = 4;

// The wire form of `lease`; `node_name` goes in Lease.node_name.
wownet::overlay::Lease lease_to_proto(const Lease& lease, const std::string& node_name);
// Parses a wire lease (address, MAC, state and origin must be valid);
// nullopt otherwise. Lease.node_name is not kept.
std::optional<Lease> lease_from_proto(const wownet::overlay::Lease& lease);

// True if two records say the same (registry_expiry aside).
bool same_lease(const Lease& a, const Lease& b);
bool same_record(const std::optional<Lease>& a, const Lease* b);

class Registry {
 public:
  // `store` may be null (memory only, for tests); otherwise it must outlive
  // the registry. Call restore() before anything else when there is a store.
  Registry(NetworkConfig network, RegistryStore* store);

  // Names the rendezvous itself: its node ID (leases of its own VMs carry
  // it), name and the endpoints Resolve gives for it.
  void set_self(const std::string& id, const std::string& name, std::vector<Endpoint> endpoints);
  const std::string& self_id() const { return self_id_; }
  // Whether Registered tells nodes that this rendezvous relays for them
  // (and lists it among the relays).
  void set_relay(bool relay);
  // The relays handed out: hosts that said relay in Register while their
  // session is up, and this rendezvous if it relays.
  const RelayChoice& relays() const { return relays_; }
  // Shared registry: whether a node has a session with another rendezvous
  // (its presence in etcd). A Resolve of such a node gets it punched there.
  void set_online_elsewhere(std::function<bool(const std::string&)> f) { online_elsewhere_ = std::move(f); }

  // Group commit (a RegistryStore): the lease changes of every request
  // handled before the next commit_group() are written together, in one
  // transaction and one fsync, and every lease reply (with the pushes to
  // other nodes) is held until then, so none leaves before what it reports
  // is on disk. Expiries join the group too. Call before anything else.
  void group_commits() { grouped_ = true; }
  bool grouped() const { return grouped_; }
  // Group mode: writes what the requests since the last call changed in
  // one transaction and queues their held replies and pushes to `out`. If
  // the write fails every change of the group is undone (the table is
  // re-read from the store), the replies that granted something become
  // refusals and the pushes are dropped. Cheap when nothing is held; call
  // once per turn of the event loop.
  void commit_group(UnixTime now, std::vector<Outgoing>& out);
  // Group mode: lease replies waiting for commit_group().
  std::size_t replies_held() const { return held_replies_; }

  // Shared-store mode (etcd; no RegistryStore): every change is queued
  // for take_commits() instead of written, and the reply that reports it
  // (with the pushes to other nodes) waits for on_commit_result(). Node
  // records and the CRL are queued for take_node_writes() and
  // take_crl_write(). Call before anything else.
  void share_commits() { shared_ = true; }
  bool shared() const { return shared_; }
  // Shared mode: loads what the store holds (other rendezvous' node
  // records are kept offline here: "online" means a session with us).
  void load_shared(UnixTime now, const std::vector<Lease>& leases, const std::vector<NodeInfo>& nodes,
                   const std::string& crl);
  // Changes queued since the last call, for the shared store to write.
  std::vector<CommitRequest> take_commits();
  std::vector<NodeInfo> take_node_writes();
  std::optional<std::string> take_crl_write();
  // The end of a CommitRequest. Committed: its reply and pushes go to
  // `out`. Conflict: the change is undone, the store's `fresh` records
  // applied, and the request handled again (at most kMaxCommitAttempts
  // times, then refused). Failed: undone and refused with `error`.
  void on_commit_result(UnixTime now, std::uint64_t id, CommitOutcome outcome, const LeaseRecords& fresh,
                        const std::string& error, std::vector<Outgoing>& out);
  // Records another rendezvous wrote to the shared store: applied, and
  // pushed to this rendezvous' online nodes.
  void apply_shared(UnixTime now, const LeaseRecords& changes, std::vector<Outgoing>& out);
  void apply_shared_node(const NodeInfo& node);
  // A CRL another rendezvous wrote to the shared store, already verified
  // by the caller (signed by the network's CA, newer than crl()): becomes
  // crl() and is queued to every online node, without being written back.
  void apply_shared_crl(const std::string& pem, std::vector<Outgoing>& out);
  // Commits waiting for on_commit_result().
  std::size_t commits_in_flight() const { return in_flight_.size(); }

  // A LeaseRequest or LeaseRelease of a VM on the rendezvous itself, as
  // on_message() does for other nodes: the reply goes to `out` addressed to
  // self_id() (at once, or when its commit ends in shared mode).
  void on_local_message(UnixTime now, const wownet::overlay::NodeMessage& m, std::vector<Outgoing>& out);

  // Replaces the in-memory state with the store's. Every node starts
  // offline (their sessions died with the process) and is written back so.
  // False with `error` set if the store cannot be read or written: do not
  // serve then. True without a store (the registry is then empty).
  bool restore(UnixTime now, std::string& error);

  // A node's session came up; `id` and `name` come from its verified
  // certificate, the reflexive endpoint from the transport. Records the
  // node as online and queues Registered, the lease table (LeaseSnapshot,
  // then LeaseUpdate for the rest) and the CRL, if one is set, to it. If
  // the node record cannot be stored an Error replaces Registered. Ignored
  // for an empty ID or the rendezvous' own.
  void on_node_up(UnixTime now, const std::string& id, const std::string& name, const std::string& reflexive_address,
                  std::uint16_t reflexive_port, std::vector<Outgoing>& out);
  // The transport saw a node's session move to a new reflexive endpoint
  // (NAT rebinding): Resolve gives the new one from now on.
  void on_node_moved(UnixTime now, const std::string& id, const std::string& reflexive_address,
                     std::uint16_t reflexive_port);
  // A node's session went down: it stops receiving pushes. Its leases stay.
  void on_node_down(UnixTime now, const std::string& id);

  // Handles one control message from the node `from_id` (authenticated by
  // the transport), queuing the reply (same request_id) to it and any
  // LeaseUpdate to the other online nodes. A node whose session is not up
  // gets an Error. Register -> Registered; LeaseRequest and LeaseRelease ->
  // LeaseReply; Resolve -> Resolved or Error; Keepalive, Hello and Error
  // get no reply; anything else gets an Error.
  void on_message(UnixTime now, const std::string& from_id, const wownet::overlay::NodeMessage& m,
                  std::vector<Outgoing>& out);

  // Expires offers, declines and leases due by `now`: expired offers and
  // declines are dropped (bound leases stay remembered for their MAC), and
  // every online node gets a LeaseUpdate with the expired records. Call at
  // next_deadline() or later.
  void on_timer(UnixTime now, std::vector<Outgoing>& out);
  // When on_timer() next has work to do; INT64_MAX if never.
  UnixTime next_deadline() const;

  // Stores `pem` as the CRL and queues a Crl to every online node. False
  // with `error` set (and nothing sent) if it cannot be stored.
  bool set_crl(const std::string& pem, std::vector<Outgoing>& out, std::string& error);
  const std::string& crl() const { return crl_; }

  // Allocation for a VM on the rendezvous itself (node = self ID), under
  // the same rules as a remote LeaseRequest; other nodes get LeaseUpdate.
  wownet::overlay::LeaseReply request_local(UnixTime now, const wownet::overlay::LeaseRequest& r,
                                            std::vector<Outgoing>& out);
  // Release or decline for a VM on the rendezvous itself.
  wownet::overlay::LeaseReply release_local(UnixTime now, const wownet::overlay::LeaseRelease& r,
                                            std::vector<Outgoing>& out);
  // Answers Resolve{address}: true and `out` filled (reflexive endpoint
  // first, then the local ones) for an active lease whose node is known,
  // online or not (then its last known endpoints); false with `error` set
  // otherwise.
  bool resolve(UnixTime now, const std::string& address, wownet::overlay::Resolved& out, std::string& error) const;
  // Answers Resolve{node_id} alike (no address in `out`).
  bool resolve_node(const std::string& id, wownet::overlay::Resolved& out, std::string& error) const;

  // Ends the lease of `addr` now, as the admin's release
  // (LeaseTable::revoke): committed and pushed to every online node like
  // any change (in shared mode once the store wrote it). False with
  // `error` set if there is no such lease or it cannot be stored.
  bool revoke(UnixTime now, Ipv4Addr addr, std::vector<Outgoing>& out, std::string& error);
  // Replaces the reservations and static names (a config reload; the
  // constructor takes them from its NetworkConfig) and ends the leases
  // they forbid, committed and pushed as revoke() does. Call after
  // restore() too: leases stored before a reservation was added.
  void set_reservations(UnixTime now, std::vector<Reservation> reservations, std::vector<StaticName> static_names,
                        std::vector<Outgoing>& out);

  const LeaseTable& leases() const { return leases_; }
  const std::map<std::string, NodeInfo>& nodes() const { return nodes_; }
  // The node record of `id`, or nullptr.
  const NodeInfo* node(const std::string& id) const;
  const RegistryCounters& counters() const { return counters_; }
  // True after a failed commit could not be undone by re-reading the store:
  // every further change is refused until the process restarts.
  bool storage_failed() const { return storage_failed_; }

 private:
  // Records of the addresses an operation may change, as they were before.
  using Before = std::vector<std::pair<Ipv4Addr, std::optional<Lease>>>;

  wownet::overlay::LeaseReply handle_request(UnixTime now, const std::string& node,
                                             const wownet::overlay::LeaseRequest& r, std::vector<Outgoing>& pushes);
  wownet::overlay::LeaseReply handle_release(UnixTime now, const std::string& node,
                                             const wownet::overlay::LeaseRelease& r, std::vector<Outgoing>& pushes);
  void handle_register(UnixTime now, const std::string& node, const wownet::overlay::NodeMessage& m,
                       std::vector<Outgoing>& out);
  // True if `node` may take over the record `mac` holds for VM `vm`: it is
  // not held (expired or declined), or it is the same named VM's (renewing
  // on its node, or moved to `node`).
  bool may_take_mac(const std::string& node, MacAddr mac, const std::string& vm, UnixTime now) const;
  // Clears the host name of the record at `addr` if another VM's active
  // lease holds it.
  void drop_taken_name(Ipv4Addr addr, UnixTime now);
  Before capture(std::initializer_list<Ipv4Addr> addresses) const;
  // Writes what changed since `before` to the store and queues LeaseUpdate
  // to online nodes other than `requester`. On a store failure the table
  // is re-read from the store (the change is undone) and false returned.
  bool commit(UnixTime now, const Before& before, const std::string& requester, std::vector<Outgoing>& pushes,
              std::string& error);
  bool store_nodes(std::vector<NodeInfo> nodes, std::string& error);
  // Re-reads the lease table from the store (undoing an uncommitted
  // change). Node records and the CRL in memory stay.
  bool reload(UnixTime now, std::string& error);
  // Replaces the lease table with the store's (empty without a store) and
  // tracks its deadlines; the store's node records and CRL go to `nodes`
  // and `crl`, for the caller to keep or not.
  bool load_leases(UnixTime now, std::vector<NodeInfo>& nodes, std::string& crl, std::string& error);
  void track_deadline(const Lease& lease, UnixTime now);
  // An empty lease table under network_'s reservations and static names.
  LeaseTable fresh_table() const;
  // Queues `leases` to `node_id` in messages within kMaxLeaseMessageBytes;
  // the first is a LeaseSnapshot if `snapshot`.
  void queue_leases(const std::string& node_id, const std::vector<Lease>& leases, bool snapshot,
                    std::vector<Outgoing>& out) const;
  void push_to_others(const std::string& except, const std::vector<Lease>& leases, std::vector<Outgoing>& out);
  const std::string& node_name(const std::string& id) const;
  wownet::overlay::LeaseReply refuse(const std::string& reason);
  wownet::overlay::LeaseReply accept(const Lease& lease, const std::string& reason = std::string{}) const;

  // A shared-store commit on its way: what to undo, what to send.
  struct InFlight {
    CommitRequest commit;
    std::string requester;                 // empty: no request (expiry)
    wownet::overlay::NodeMessage request;  // handled again after a conflict
    int attempt = 1;
    std::vector<Outgoing> held;  // the reply first, then pushes
  };
  // Handles a lease request or release from `from` (attempt n); the reply
  // goes to `out` or, when its commit is deferred, into the commit.
  void handle_lease_message(UnixTime now, const std::string& from, const wownet::overlay::NodeMessage& m, int attempt,
                            std::vector<Outgoing>& out);
  // Shared mode: queues what changed since `before` as a CommitRequest.
  void defer_commit(UnixTime now, const Before& before, const std::string& requester);
  void undo(const InFlight& f);
  // Group mode: the record of `address` (as it is at commit_group) goes
  // into the group's transaction.
  void group_touch(Ipv4Addr address) { group_touched_.insert(address.value); }
  // Group mode, after a commit: the records of group_pushes_ to every
  // online node but the one that asked for each, packed into as few
  // LeaseUpdate messages per node as fit kMaxLeaseMessageBytes.
  void push_group(std::vector<Outgoing>& out);

  NetworkConfig network_;
  RegistryStore* store_;
  bool shared_ = false;
  bool grouped_ = false;
  // Group mode: addresses whose records the open group changed, and what
  // waits for its commit (lease replies and pushes, in the order they
  // were made).
  std::set<std::uint32_t> group_touched_;
  // Addresses whose new records go to the other nodes after the commit,
  // with the node that asked (it has the record in its reply).
  std::map<std::uint32_t, std::string> group_pushes_;
  std::vector<Outgoing> held_;
  std::size_t held_replies_ = 0;
  std::uint64_t next_commit_ = 1;
  std::vector<CommitRequest> commits_;
  std::map<std::uint64_t, InFlight> in_flight_;
  std::vector<NodeInfo> node_writes_;
  std::optional<std::string> crl_write_;
  // While a lease message is handled: who asked, and the commit it made.
  const wownet::overlay::NodeMessage* handling_ = nullptr;
  std::string handling_from_;
  int handling_attempt_ = 1;
  std::uint64_t deferred_id_ = 0;
  LeaseTable leases_;
  std::map<std::string, NodeInfo> nodes_;
  std::string crl_;
  std::string self_id_, self_name_;
  std::vector<Endpoint> self_endpoints_;
  std::set<std::pair<UnixTime, std::uint32_t>> deadlines_;  // (expiry, address) of records to look at
  RegistryCounters counters_;
  bool storage_failed_ = false;
  bool relay_ = false;
  RelayChoice relays_;
  // Registered for `node`: its reflexive endpoint and the relays to use.
  void fill_registered(wownet::overlay::Registered* r, const std::string& node, const Endpoint& reflexive);
  std::function<bool(const std::string&)> online_elsewhere_;
};

}  // namespace wownet::registry
