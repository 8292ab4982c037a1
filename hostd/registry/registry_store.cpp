#include "registry/registry_store.h"

#include <sqlite3.h>

#include <cstdio>
#include <limits>

namespace wownet::registry {

namespace {

std::string db_error(sqlite3* db, const std::string& what) {
  return what + ": " + (db ? sqlite3_errmsg(db) : "out of memory");
}

// Sets `error` and returns false.
bool fail(std::string& error, std::string message) {
  error = std::move(message);
  return false;
}

// One prepared statement; finalized on scope exit.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr); }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool prepared() const { return rc_ == SQLITE_OK && stmt_ != nullptr; }
  void bind(int i, std::int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void bind(int i, const std::string& v) { sqlite3_bind_text(stmt_, i, v.data(), int(v.size()), SQLITE_TRANSIENT); }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int step() { return sqlite3_step(stmt_); }
  // Runs a statement that returns no rows, then resets it for reuse.
  bool run() {
    int rc = sqlite3_step(stmt_);
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    return rc == SQLITE_DONE;
  }
  std::int64_t int_at(int i) const { return sqlite3_column_int64(stmt_, i); }
  bool is_int(int i) const { return sqlite3_column_type(stmt_, i) == SQLITE_INTEGER; }
  std::string text_at(int i) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, i));
    return p ? std::string(p, std::size_t(sqlite3_column_bytes(stmt_, i))) : std::string{};
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_ERROR;
};

// Reads a one-integer PRAGMA. False (and `error` set) if it fails.
bool pragma_int(sqlite3* db, const char* sql, std::int64_t& out, std::string& error) {
  Statement s(db, sql);
  if (!s.prepared() || s.step() != SQLITE_ROW) {
    error = db_error(db, sql);
    return false;
  }
  out = s.int_at(0);
  return true;
}

constexpr const char* kSchema =
    "CREATE TABLE leases ("
    "  address INTEGER PRIMARY KEY,"  // IPv4, host byte order
    "  mac TEXT NOT NULL,"
    "  vm TEXT NOT NULL,"
    "  host_name TEXT NOT NULL,"
    "  node TEXT NOT NULL,"
    "  expiry INTEGER NOT NULL,"
    "  state TEXT NOT NULL,"
    "  origin TEXT NOT NULL) STRICT;"
    "CREATE TABLE nodes ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  reflexive_address TEXT NOT NULL,"
    "  reflexive_port INTEGER NOT NULL,"
    "  last_seen INTEGER NOT NULL,"
    "  online INTEGER NOT NULL) STRICT;"
    "CREATE TABLE node_endpoints ("
    "  node_id TEXT NOT NULL,"
    "  position INTEGER NOT NULL,"
    "  address TEXT NOT NULL,"
    "  port INTEGER NOT NULL,"
    "  PRIMARY KEY (node_id, position)) STRICT;"
    "CREATE TABLE settings ("
    "  key TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL) STRICT;";

}  // namespace

std::unique_ptr<RegistryStore> RegistryStore::open(const std::string& path, std::string& error) {
  sqlite3* db = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    error = db_error(db, path + ": cannot open");
    sqlite3_close_v2(db);
    return nullptr;
  }
  std::unique_ptr<RegistryStore> store(new RegistryStore(db, path));
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, 1000);
  if (sqlite3_db_readonly(db, "main") == 1) {
    error = path + ": cannot open for writing";
    return nullptr;
  }
  // The first read of the header tells a foreign or damaged file apart.
  std::int64_t app_id = 0, version = 0, objects = 0;
  std::string detail;
  if (!pragma_int(db, "PRAGMA application_id", app_id, detail) ||
      !pragma_int(db, "PRAGMA user_version", version, detail) ||
      !pragma_int(db, "SELECT count(*) FROM sqlite_schema", objects, detail)) {
    error = path + ": not a readable SQLite database (" + detail + ")";
    return nullptr;
  }
  if (app_id == 0 && version == 0 && objects == 0) {
    // A new (empty) database: create the schema in one transaction.
    std::string sql = std::string("BEGIN IMMEDIATE;") + kSchema +
                      "PRAGMA application_id=" + std::to_string(kApplicationId) +
                      ";PRAGMA user_version=" + std::to_string(kSchemaVersion) + ";COMMIT;";
    if (!store->exec(sql.c_str(), detail)) {
      store->exec("ROLLBACK", detail);
      error = path + ": cannot create the registry schema (" + detail + ")";
      return nullptr;
    }
  } else if (app_id != kApplicationId) {
    char id[16];
    std::snprintf(id, sizeof id, "0x%08x", static_cast<unsigned>(app_id));
    error = path + ": not a wownet registry database (SQLite application id " + id + ")";
    return nullptr;
  } else if (version > kSchemaVersion) {
    error = path + ": registry schema version " + std::to_string(version) + " is newer than this wownet supports (" +
            std::to_string(kSchemaVersion) + ")";
    return nullptr;
  } else if (version < 1) {
    error = path + ": registry schema version " + std::to_string(version) + " is unknown";
    return nullptr;
  }
  {
    // "ok", or up to 100 lines describing damage (the first may only name
    // the database).
    Statement check(db, "PRAGMA quick_check");
    if (!check.prepared()) {
      error = db_error(db, path + ": damaged database");
      return nullptr;
    }
    std::string verdict;
    int lines = 0;
    while ((rc = check.step()) == SQLITE_ROW && lines < 3) {
      std::string line = check.text_at(0);
      if (line.rfind("***", 0) == 0) continue;
      verdict += (verdict.empty() ? "" : "; ") + line;
      ++lines;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
      error = db_error(db, path + ": damaged database");
      return nullptr;
    }
    if (verdict != "ok") {
      error = path + ": damaged database (" + verdict + ")";
      return nullptr;
    }
  }
  // WAL where the file system allows it; synchronous=FULL makes every
  // commit durable in either journal mode.
  if (!store->exec("PRAGMA journal_mode=WAL", detail) || !store->exec("PRAGMA synchronous=FULL", detail)) {
    error = path + ": " + detail;
    return nullptr;
  }
  return store;
}

RegistryStore::~RegistryStore() { sqlite3_close_v2(db_); }

bool RegistryStore::exec(const char* sql, std::string& error) {
  char* msg = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &msg) == SQLITE_OK) return true;
  error = msg ? msg : sqlite3_errmsg(db_);
  sqlite3_free(msg);
  return false;
}

bool RegistryStore::load(std::vector<Lease>& leases, std::vector<NodeInfo>& nodes, std::string& crl_pem,
                         std::string& error) {
  leases.clear();
  nodes.clear();
  crl_pem.clear();
  Statement ls(db_, "SELECT address, mac, vm, host_name, node, expiry, state, origin FROM leases ORDER BY address");
  if (!ls.prepared()) {
    error = db_error(db_, path_ + ": reading leases");
    return false;
  }
  int rc;
  while ((rc = ls.step()) == SQLITE_ROW) {
    std::int64_t addr = ls.int_at(0);
    auto mac = MacAddr::parse(ls.text_at(1));
    auto state = lease_state_from_string(ls.text_at(6));
    auto origin = lease_origin_from_string(ls.text_at(7));
    if (addr < 0 || addr > std::int64_t(std::numeric_limits<std::uint32_t>::max()) || !mac || !state || !origin) {
      error = path_ + ": damaged lease record for address " + std::to_string(addr);
      return false;
    }
    Lease l;
    l.address = Ipv4Addr{std::uint32_t(addr)};
    l.mac = *mac;
    l.vm = ls.text_at(2);
    l.host_name = ls.text_at(3);
    l.node = ls.text_at(4);
    l.expiry = ls.int_at(5);
    l.state = *state;
    l.origin = *origin;
    leases.push_back(std::move(l));
  }
  if (rc != SQLITE_DONE) {
    error = db_error(db_, path_ + ": reading leases");
    return false;
  }

  Statement ns(db_, "SELECT id, name, reflexive_address, reflexive_port, last_seen, online FROM nodes ORDER BY id");
  if (!ns.prepared()) {
    error = db_error(db_, path_ + ": reading nodes");
    return false;
  }
  while ((rc = ns.step()) == SQLITE_ROW) {
    NodeInfo n;
    n.id = ns.text_at(0);
    n.name = ns.text_at(1);
    n.reflexive.address = ns.text_at(2);
    std::int64_t port = ns.int_at(3);
    if (port < 0 || port > 65535) {
      error = path_ + ": damaged node record " + n.id;
      return false;
    }
    n.reflexive.port = std::uint16_t(port);
    n.last_seen = ns.int_at(4);
    n.online = ns.int_at(5) != 0;
    nodes.push_back(std::move(n));
  }
  if (rc != SQLITE_DONE) {
    error = db_error(db_, path_ + ": reading nodes");
    return false;
  }

  Statement es(db_, "SELECT node_id, address, port FROM node_endpoints ORDER BY node_id, position");
  if (!es.prepared()) {
    error = db_error(db_, path_ + ": reading node endpoints");
    return false;
  }
  std::size_t next = 0;  // both lists are sorted by node id
  while ((rc = es.step()) == SQLITE_ROW) {
    std::string id = es.text_at(0);
    while (next < nodes.size() && nodes[next].id < id) ++next;
    std::int64_t port = es.int_at(2);
    if (next == nodes.size() || nodes[next].id != id || port < 0 || port > 65535) {
      error = path_ + ": damaged endpoint record of node " + id;
      return false;
    }
    nodes[next].local_endpoints.push_back(Endpoint{es.text_at(1), std::uint16_t(port)});
  }
  if (rc != SQLITE_DONE) {
    error = db_error(db_, path_ + ": reading node endpoints");
    return false;
  }

  Statement cs(db_, "SELECT value FROM settings WHERE key = 'crl'");
  if (!cs.prepared()) {
    error = db_error(db_, path_ + ": reading the CRL");
    return false;
  }
  rc = cs.step();
  if (rc == SQLITE_ROW) {
    crl_pem = cs.text_at(0);
  } else if (rc != SQLITE_DONE) {
    error = db_error(db_, path_ + ": reading the CRL");
    return false;
  }
  return true;
}

bool RegistryStore::write_batch(const StoreBatch& batch, std::string& error) {
  if (!batch.put_leases.empty()) {
    Statement s(db_,
                "INSERT OR REPLACE INTO leases (address, mac, vm, host_name, node, expiry, state, origin) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    if (!s.prepared()) return fail(error, db_error(db_, "writing a lease"));
    for (const Lease& l : batch.put_leases) {
      s.bind(1, std::int64_t(l.address.value));
      s.bind(2, l.mac.to_string());
      s.bind(3, l.vm);
      s.bind(4, l.host_name);
      s.bind(5, l.node);
      s.bind(6, std::int64_t(l.expiry));
      s.bind(7, std::string(to_string(l.state)));
      s.bind(8, std::string(to_string(l.origin)));
      if (!s.run()) return fail(error, db_error(db_, "writing lease " + l.address.to_string()));
    }
  }
  if (!batch.erase_leases.empty()) {
    Statement s(db_, "DELETE FROM leases WHERE address = ?");
    if (!s.prepared()) return fail(error, db_error(db_, "erasing a lease"));
    for (Ipv4Addr a : batch.erase_leases) {
      s.bind(1, std::int64_t(a.value));
      if (!s.run()) return fail(error, db_error(db_, "erasing lease " + a.to_string()));
    }
  }
  if (!batch.put_nodes.empty()) {
    Statement put(db_,
                  "INSERT OR REPLACE INTO nodes (id, name, reflexive_address, reflexive_port, last_seen, online) "
                  "VALUES (?, ?, ?, ?, ?, ?)");
    Statement clear(db_, "DELETE FROM node_endpoints WHERE node_id = ?");
    Statement add(db_, "INSERT INTO node_endpoints (node_id, position, address, port) VALUES (?, ?, ?, ?)");
    if (!put.prepared() || !clear.prepared() || !add.prepared()) return fail(error, db_error(db_, "writing a node"));
    for (const NodeInfo& n : batch.put_nodes) {
      put.bind(1, n.id);
      put.bind(2, n.name);
      put.bind(3, n.reflexive.address);
      put.bind(4, std::int64_t(n.reflexive.port));
      put.bind(5, std::int64_t(n.last_seen));
      put.bind(6, std::int64_t(n.online ? 1 : 0));
      clear.bind(1, n.id);
      if (!put.run() || !clear.run()) return fail(error, db_error(db_, "writing node " + n.id));
      for (std::size_t i = 0; i < n.local_endpoints.size(); ++i) {
        add.bind(1, n.id);
        add.bind(2, std::int64_t(i));
        add.bind(3, n.local_endpoints[i].address);
        add.bind(4, std::int64_t(n.local_endpoints[i].port));
        if (!add.run()) return fail(error, db_error(db_, "writing endpoints of node " + n.id));
      }
    }
  }
  if (batch.crl) {
    Statement s(db_, "INSERT OR REPLACE INTO settings (key, value) VALUES ('crl', ?)");
    if (!s.prepared()) return fail(error, db_error(db_, "writing the CRL"));
    s.bind(1, *batch.crl);
    if (!s.run()) return fail(error, db_error(db_, "writing the CRL"));
  }
  return true;
}

bool RegistryStore::commit(const StoreBatch& batch, std::string& error) {
  if (batch.empty()) return true;
  std::string detail;
  if (!exec("BEGIN IMMEDIATE", detail)) {
    error = path_ + ": cannot start a transaction (" + detail + ")";
    return false;
  }
  if (!write_batch(batch, detail) || !exec("COMMIT", detail)) {
    std::string ignored;
    if (sqlite3_get_autocommit(db_) == 0) exec("ROLLBACK", ignored);
    error = path_ + ": " + detail;
    return false;
  }
  ++commits_;
  return true;
}

bool RegistryStore::commit_one(const StoreBatch& batch) {
  last_error_.clear();
  return commit(batch, last_error_);
}

bool RegistryStore::put_lease(const Lease& lease) {
  StoreBatch b;
  b.put_leases.push_back(lease);
  return commit_one(b);
}

bool RegistryStore::erase_lease(Ipv4Addr address) {
  StoreBatch b;
  b.erase_leases.push_back(address);
  return commit_one(b);
}

bool RegistryStore::put_node(const NodeInfo& node) {
  StoreBatch b;
  b.put_nodes.push_back(node);
  return commit_one(b);
}

bool RegistryStore::put_crl(const std::string& pem) {
  StoreBatch b;
  b.crl = pem;
  return commit_one(b);
}

}  // namespace wownet::registry
