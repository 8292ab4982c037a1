#include "config_leases.h"

#include <cctype>

#include "core/lease_table.h"

namespace wownet {
namespace {

std::string at(const char* list, std::size_t i) { return std::string(list) + "[" + std::to_string(i) + "]"; }

// The string value of `key` in `t`: nullopt (after fail) if it is there but
// not a string; "" if absent.
std::optional<std::string> text(const toml::table& t, const std::string& where, const char* key,
                                const ConfigFail& fail) {
  const toml::node* n = t.get(key);
  if (!n) return std::string{};
  auto v = n->value<std::string>();
  if (!n->is_string() || !v) {
    fail(where + "." + key, "expected a string");
    return std::nullopt;
  }
  return *v;
}

bool only_keys(const toml::table& t, const std::string& where, std::initializer_list<const char*> known,
               const ConfigFail& fail) {
  for (const auto& [k, v] : t) {
    bool ok = false;
    for (const char* key : known) ok |= k.str() == key;
    if (!ok) {
      fail(where + "." + std::string(k.str()), "unknown key");
      return false;
    }
  }
  return true;
}

// The pool address of `key`: a host address inside the network, not the gateway.
std::optional<Ipv4Addr> pool_address(const std::string& value, const NetworkConfig& n, const std::string& key,
                                     const ConfigFail& fail) {
  auto a = Ipv4Addr::parse(value);
  if (!a || !n.network.is_host(*a) || *a == n.gateway) {
    fail(key, "expected an address inside network.prefix " + n.network.to_string() + ", not the gateway " +
                  n.gateway.to_string() + (value.empty() ? " (it is required)" : ", got \"" + value + "\""));
    return std::nullopt;
  }
  return a;
}

// A VM name as attach accepts it: [A-Za-z0-9][A-Za-z0-9._-]{0,63}.
bool valid_vm(const std::string& vm) {
  if (vm.empty() || vm.size() > 64 || !std::isalnum(static_cast<unsigned char>(vm[0]))) return false;
  for (char ch : vm)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '_' && ch != '-') return false;
  return true;
}

bool check_name(const std::string& name, const std::string& key, const ConfigFail& fail) {
  if (is_assignable_host_name(name)) return true;
  fail(key,
       "expected one DNS label of lowercase letters, digits and '-' (at most 63), not \"gateway\" or an automatic "
       "name like c128000005, got \"" +
           name + "\"");
  return false;
}

const toml::array* array_of_tables(const toml::node& list, const char* key, const char* example,
                                   const ConfigFail& fail) {
  const toml::array* a = list.as_array();
  bool ok = a != nullptr;
  if (a)
    for (const toml::node& item : *a) ok &= item.is_table();
  if (!ok) fail(key, std::string("expected tables, written [[") + key + "]] " + example);
  return ok ? a : nullptr;
}

}  // namespace

bool is_assignable_host_name(const std::string& name) {
  if (name.empty() || sanitize_host_name(name) != name || name == "gateway") return false;
  // Shaped like an automatic name (c128000005), in or out of the network.
  return !(name.size() == 10 && name[0] == 'c' && name.find_first_not_of("0123456789", 1) == std::string::npos);
}

bool read_reservations(const toml::node& list, NetworkConfig& n, const ConfigFail& fail) {
  const toml::array* items = array_of_tables(list, "dhcp.reservation", "with address and mac or vm", fail);
  if (!items) return false;
  if (items->size() > kMaxReservations) {
    fail("dhcp.reservation", "at most " + std::to_string(kMaxReservations) + " reservations");
    return false;
  }
  std::vector<Reservation> out;
  for (std::size_t i = 0; i < items->size(); ++i) {
    const toml::table& t = *(*items)[i].as_table();
    const std::string where = at("dhcp.reservation", i);
    if (!only_keys(t, where, {"address", "mac", "vm", "name"}, fail)) return false;
    auto address = text(t, where, "address", fail), mac = text(t, where, "mac", fail), vm = text(t, where, "vm", fail),
         name = text(t, where, "name", fail);
    if (!address || !mac || !vm || !name) return false;
    Reservation r;
    auto a = pool_address(*address, n, where + ".address", fail);
    if (!a) return false;
    r.address = *a;
    if (mac->empty() == vm->empty()) {
      fail(where, "expected either mac or vm (one of them): whom the address is reserved for");
      return false;
    }
    if (!mac->empty()) {
      auto m = MacAddr::parse(*mac);
      if (!m || m->is_zero() || m->is_multicast()) {
        fail(where + ".mac", "expected a unicast MAC address like \"52:54:00:12:34:56\", got \"" + *mac + "\"");
        return false;
      }
      r.mac = *m;
    }
    if (!vm->empty() && !valid_vm(*vm)) {
      fail(where + ".vm",
           "expected a VM name as wownetctl attach takes it: 1 to 64 letters, digits, '.', '_' or "
           "'-', starting with a letter or digit, got \"" +
               *vm + "\"");
      return false;
    }
    r.vm = *vm;
    for (char& ch : *name) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    if (!name->empty() && !check_name(*name, where + ".name", fail)) return false;
    r.name = *name;
    for (std::size_t j = 0; j < out.size(); ++j) {
      const Reservation& o = out[j];
      const std::string other = at("dhcp.reservation", j);
      if (o.address == r.address) {
        fail(where + ".address", r.address.to_string() + " is reserved already by " + other);
        return false;
      }
      if (r.mac && o.mac == r.mac) {
        fail(where + ".mac", r.mac->to_string() + " has a reservation already: " + other);
        return false;
      }
      if (!r.vm.empty() && o.vm == r.vm) {
        fail(where + ".vm", "\"" + r.vm + "\" has a reservation already: " + other);
        return false;
      }
      if (!r.name.empty() && o.name == r.name) {
        fail(where + ".name", "\"" + r.name + "\" is the name of " + other + " already");
        return false;
      }
    }
    out.push_back(std::move(r));
  }
  n.reservations = std::move(out);
  return true;
}

bool read_static_names(const toml::node& list, NetworkConfig& n, const ConfigFail& fail) {
  const toml::array* items = array_of_tables(list, "dns.static", "with name and address", fail);
  if (!items) return false;
  if (items->size() > kMaxStaticNames) {
    fail("dns.static", "at most " + std::to_string(kMaxStaticNames) + " static names");
    return false;
  }
  std::vector<StaticName> out;
  for (std::size_t i = 0; i < items->size(); ++i) {
    const toml::table& t = *(*items)[i].as_table();
    const std::string where = at("dns.static", i);
    if (!only_keys(t, where, {"name", "address"}, fail)) return false;
    auto name = text(t, where, "name", fail), address = text(t, where, "address", fail);
    if (!name || !address) return false;
    std::string lower = *name;
    for (char& ch : lower) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    if (!check_name(lower, where + ".name", fail)) return false;
    auto a = pool_address(*address, n, where + ".address", fail);
    if (!a) return false;
    for (std::size_t j = 0; j < out.size(); ++j) {
      if (out[j].name == lower) {
        fail(where + ".name", "\"" + lower + "\" is the name of " + at("dns.static", j) + " already");
        return false;
      }
    }
    for (std::size_t j = 0; j < n.reservations.size(); ++j) {
      if (n.reservations[j].name == lower) {
        fail(where + ".name", "\"" + lower + "\" is the name of " + at("dhcp.reservation", j) + " already");
        return false;
      }
    }
    out.push_back(StaticName{lower, *a});
  }
  n.static_names = std::move(out);
  return true;
}

}  // namespace wownet
