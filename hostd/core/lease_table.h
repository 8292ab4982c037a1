// The table of address leases: which overlay address belongs to which VM
// (MAC), under which host name, until when. Allocation policy lives here;
// the DHCP server and the learning code both go through it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/dns.h"
#include "core/network_config.h"
#include "core/types.h"

namespace wownet {

enum class LeaseState : std::uint8_t {
  Offered,   // reserved for a client between OFFER and REQUEST
  Bound,     // in use until `expiry`; after that remembered for the same MAC
  Declined,  // a client reported the address in use (DHCPDECLINE)
};
enum class LeaseOrigin : std::uint8_t { Dhcp, Learned };

struct Lease {
  Ipv4Addr address;
  MacAddr mac;
  std::string vm;
  std::string host_name;  // one DNS label, lowercase; empty if unknown
  std::string node;       // node ID of the host the VM runs on; empty: this host
  UnixTime expiry = 0;
  LeaseState state = LeaseState::Bound;
  LeaseOrigin origin = LeaseOrigin::Dhcp;
  // Registry mode: the expiry the registry last gave this lease. The host
  // answers renewals itself and moves `expiry`; this says when the
  // registry's own copy lapses unless the host refreshes it.
  UnixTime registry_expiry = 0;

  bool active(UnixTime now) const { return state == LeaseState::Bound && expiry > now; }
};

const char* to_string(LeaseState s);
const char* to_string(LeaseOrigin o);
std::optional<LeaseState> lease_state_from_string(std::string_view s);
std::optional<LeaseOrigin> lease_origin_from_string(std::string_view s);

// Sanitises a client-supplied host name to one lowercase DNS label
// ([a-z0-9-], at most 63 characters, no leading or trailing '-'); only the
// first label of a dotted name is kept. Returns empty if nothing usable is left.
std::string sanitize_host_name(std::string_view name);

class LeaseTable final : public NameDirectory {
 public:
  LeaseTable(Ipv4Prefix network, Ipv4Addr gateway);

  // Sets the time that NameDirectory queries are answered at.
  void set_now(UnixTime now) { now_ = now; }

  // The record for `addr` in any state, or nullptr.
  const Lease* find(Ipv4Addr addr) const;
  // The record held by `mac` (any state), or nullptr. A MAC holds at most one.
  const Lease* find_by_mac(MacAddr mac) const;
  // The active lease of a VM by its name (a linear search: attach time only).
  const Lease* find_active_by_vm(const std::string& vm, UnixTime now) const;
  // The active lease of `addr`, or nullptr.
  const Lease* find_active(Ipv4Addr addr, UnixTime now) const;

  // True if `addr` may be given to `mac` (of VM `vm`): a host address of
  // the pool, not the gateway, not reserved for another client, not another
  // address than the one reserved for this client, and not held by another
  // MAC (bound and unexpired, offered and unexpired, or declined and still
  // on hold).
  bool is_available(Ipv4Addr addr, MacAddr mac, UnixTime now, const std::string& vm = {}) const;

  // Picks an address for `mac` of VM `vm` (RFC 2131 §4.3.1): its reserved
  // address if it has one (and nothing else), else its current or previous
  // address if still available, else `requested` if available, else the
  // lowest never-used unreserved address, else the longest-expired one.
  // nullopt if the pool is exhausted (or the reserved address is held).
  std::optional<Ipv4Addr> choose(MacAddr mac, std::optional<Ipv4Addr> requested, UnixTime now,
                                 const std::string& vm = {}) const;

  // Replaces the reservations (validated by the config reader: distinct
  // addresses, MACs, VM names and names, inside the pool). Leases that
  // conflict with them stay until revoke_reservation_conflicts().
  void set_reservations(std::vector<Reservation> reservations);
  const std::vector<Reservation>& reservations() const { return reservations_; }
  // Names no lease may take (the gateway's static DNS names).
  void set_static_names(std::vector<std::string> names) { static_names_ = std::move(names); }
  // The reservation of `addr`, or nullptr.
  const Reservation* reservation_at(Ipv4Addr addr) const;
  // The reservation for the client `mac` of VM `vm` (by MAC first, then by
  // VM name), or nullptr.
  const Reservation* reservation_for(MacAddr mac, const std::string& vm) const;
  // Applies the reservations to the leases granted before them: another
  // lease's use of a reserved or static name is cleared, a reserved
  // address's lease gets the reservation's name. With `end_leases` (a
  // registry, whose hosts renew leases on their own) it also revoke()s a
  // lease of a reserved address held by another client and a reserved
  // client's lease of another address; without, those stay until their
  // next renewal, which is_available() refuses (a NAK). Returns the
  // addresses whose records changed.
  std::vector<Ipv4Addr> revoke_reservation_conflicts(UnixTime now, bool end_leases);
  // Ends the record of `addr` now, as an admin's release: it becomes an
  // expired offer, which expire() drops, so neither its MAC nor its VM
  // keeps a claim on the address (a DHCPRELEASE keeps the claim). False if
  // there is no bound record (active or not) or unexpired offer.
  bool revoke(Ipv4Addr addr, UnixTime now);

  // Records `addr` for `mac` in `state` until `expiry`, dropping any other
  // record of that MAC and any stale record of that address. Keeps the
  // previous host name if `host_name` is empty and the address, MAC and VM
  // are unchanged; the name of a reservation of `addr` for this client
  // overrides both. Callers check reserved_for_other_vm first.
  const Lease& put(Ipv4Addr addr, MacAddr mac, const std::string& vm, const std::string& host_name, UnixTime expiry,
                   LeaseState state, LeaseOrigin origin, const std::string& node = std::string{});
  // Stores a lease the registry reports for a VM on another node (or this
  // one), replacing whatever was known of that address and MAC.
  void apply(const Lease& lease);
  // Drops the record of `addr`, if there is one (a registry undoing a
  // change its shared store refused).
  void forget(Ipv4Addr addr);
  // Ends the lease of `addr` held by `mac` now (DHCPRELEASE); the record is
  // kept so the same MAC gets the address back. False if no such lease.
  bool release(Ipv4Addr addr, MacAddr mac, UnixTime now);
  // Takes `addr` out of the pool until `until` (DHCPDECLINE).
  void decline(Ipv4Addr addr, UnixTime until);
  // Sets the host name of the lease of `addr`. False if there is none or
  // the name may not be used (see name_available).
  bool set_host_name(Ipv4Addr addr, const std::string& host_name);
  // True if an active lease binds `mac` to a VM named other than `vm`. A
  // binding (address, host name, MAC) is its VM's until the lease expires,
  // even while that VM is detached: another VM presenting the MAC gets none
  // of it, and the VM itself, back under its name, gets all of it.
  bool reserved_for_other_vm(MacAddr mac, const std::string& vm, UnixTime now) const;
  // True if `mac` may use `name`: not reserved ("gateway", or shaped like an
  // automatic name such as c128000005) and not held by another MAC's active
  // lease. The first claimant keeps a name.
  // A static name is nobody's, a reserved name only its reservation's client's.
  bool name_available(const std::string& name, MacAddr mac, UnixTime now, const std::string& vm = {}) const;
  // Extends an active lease to `expiry`. False if there is none.
  bool extend(Ipv4Addr addr, MacAddr mac, UnixTime expiry);
  // Drops expired offers and declines. Bound records are kept as memory.
  void expire(UnixTime now);

  std::vector<Lease> snapshot() const;
  void restore(const std::vector<Lease>& leases);
  std::size_t size() const { return by_address_.size(); }
  std::size_t active_count(UnixTime now) const;
  // Increments on every change that must reach disk before a client hears
  // of it: a new or moved binding, a changed host name or state. Renewals
  // that only move an expiry bump expiry_version() instead.
  std::uint64_t version() const { return version_; }
  std::uint64_t expiry_version() const { return expiry_version_; }

  // The records a host keeps on its own disk: those of `node` (its own
  // VMs' leases in registry mode; empty, the default: every record without
  // a node, a standalone host's). The rest of a registry's table comes
  // back from the registry. own_version() moves when such a record is
  // made, changed or lost (its address taken by another node's lease);
  // own_expiry_version() when only its expiry moved.
  void set_own_node(const std::string& node);
  std::uint64_t own_version() const { return own_version_; }
  std::uint64_t own_expiry_version() const { return own_expiry_version_; }
  std::size_t own_count() const { return own_.size(); }
  // The own records, in address order.
  std::vector<Lease> own_leases() const;

  // NameDirectory, answered at set_now() time.
  std::optional<Ipv4Addr> find_host_name(std::string_view name) const override;
  bool is_leased(Ipv4Addr addr) const override;
  std::string host_name_of(Ipv4Addr addr) const override;

 private:
  void erase(std::map<std::uint32_t, Lease>::iterator it);
  // The record of `addr` now belongs to `node`: keeps own_ and the own
  // versions up to date.
  void note_record(std::uint32_t addr, const std::string& node);
  // The record of `addr` changed its host name from `from` to `to`: keeps by_name_.
  void rename(std::uint32_t addr, const std::string& from, const std::string& to);

  Ipv4Prefix network_;
  Ipv4Addr gateway_;
  UnixTime now_ = 0;
  std::uint64_t version_ = 0;
  std::uint64_t expiry_version_ = 0;
  std::map<std::uint32_t, Lease> by_address_;
  std::map<MacAddr, std::uint32_t> by_mac_;
  // Host name -> addresses of the records that carry it (any state): name
  // checks and DNS look-ups without a walk of the table.
  std::multimap<std::string, std::uint32_t, std::less<>> by_name_;
  // No address below this one is without a record (choose's search starts here).
  mutable std::uint32_t free_hint_ = 0;
  std::string own_node_;
  std::set<std::uint32_t> own_;  // addresses of the own records
  std::uint64_t own_version_ = 0;
  std::uint64_t own_expiry_version_ = 0;
  std::vector<Reservation> reservations_;
  std::vector<std::string> static_names_;
};

}  // namespace wownet
