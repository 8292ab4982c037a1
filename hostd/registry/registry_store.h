// The registry's durable state in one SQLite file in the rendezvous node's
// state directory: leases, node records and the CRL. WAL journal with
// synchronous=FULL, so a change is on disk once commit() returns and a
// kill -9 (or power loss) afterwards loses nothing.
//
// The file carries an application id and a schema version; a file that is
// not SQLite, is damaged, belongs to another program or was written by a
// newer wownet is refused with a message saying so, never a crash.
// Not thread-safe: one Registry uses it from one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/lease_table.h"
#include "core/types.h"

struct sqlite3;

namespace wownet::registry {

// Where a node can be reached (UDP).
struct Endpoint {
  std::string address;  // dotted quad
  std::uint16_t port = 0;
  bool operator==(const Endpoint&) const = default;
};

// What the registry knows about a node (a host running hostd).
struct NodeInfo {
  std::string id;                         // node ID, from its verified certificate
  std::string name;                       // node name, from its verified certificate
  Endpoint reflexive;                     // its address and port as the rendezvous saw them
  std::vector<Endpoint> local_endpoints;  // as it reported them in Register
  UnixTime last_seen = 0;                 // when its session last came up, registered or went down
  bool online = false;                    // a session with this rendezvous is up
  bool operator==(const NodeInfo&) const = default;
};

// Everything one registry operation changes, written in one transaction.
struct StoreBatch {
  std::vector<Lease> put_leases;  // upserted by address
  std::vector<Ipv4Addr> erase_leases;
  std::vector<NodeInfo> put_nodes;  // upserted by id, local endpoints replaced
  std::optional<std::string> crl;   // set: replaces the stored CRL
  bool empty() const { return put_leases.empty() && erase_leases.empty() && put_nodes.empty() && !crl; }
};

class RegistryStore {
 public:
  // Schema version this build writes and reads; PRAGMA user_version.
  static constexpr int kSchemaVersion = 1;
  // PRAGMA application_id of a registry file ("wwrg").
  static constexpr std::int32_t kApplicationId = 0x77777267;

  // Opens (creating if missing) the registry database at `path`; ":memory:"
  // gives a private in-memory database. Checks that an existing file is an
  // intact registry of a known schema version. Returns nullptr and sets
  // `error` on any failure.
  static std::unique_ptr<RegistryStore> open(const std::string& path, std::string& error);
  ~RegistryStore();
  RegistryStore(const RegistryStore&) = delete;
  RegistryStore& operator=(const RegistryStore&) = delete;

  // Reads the whole state. Leases come in address order, nodes in id order.
  // A row that cannot be decoded is an error (the file is damaged), as is
  // any SQLite failure. On error the outputs are unspecified.
  bool load(std::vector<Lease>& leases, std::vector<NodeInfo>& nodes, std::string& crl_pem, std::string& error);

  // Applies `batch` atomically and durably: on true it is on disk; on false
  // nothing of it is, and `error` says why.
  bool commit(const StoreBatch& batch, std::string& error);

  // One-change shorthands for commit(); on false see last_error().
  bool put_lease(const Lease& lease);
  bool erase_lease(Ipv4Addr address);
  bool put_node(const NodeInfo& node);
  bool put_crl(const std::string& pem);
  const std::string& last_error() const { return last_error_; }

  const std::string& path() const { return path_; }
  // Transactions committed (each one fsync) since open.
  std::uint64_t commits() const { return commits_; }

 private:
  RegistryStore(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  bool exec(const char* sql, std::string& error);
  bool write_batch(const StoreBatch& batch, std::string& error);
  bool commit_one(const StoreBatch& batch);

  sqlite3* db_ = nullptr;
  std::string path_;
  std::string last_error_;
  std::uint64_t commits_ = 0;
};

}  // namespace wownet::registry
