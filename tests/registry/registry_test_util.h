// Helpers shared by the registry tests: message builders, finding what the
// registry queued for whom, comparing lease tables, temporary directories.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "registry/registry.h"
#include "temp_dir.h"

namespace wownet::registry::test {

namespace ov = wownet::overlay;

inline constexpr UnixTime kT0 = 1'700'000'000;

inline ov::NodeMessage lease_request(std::uint64_t id, ov::LeaseRequest::Kind kind, const std::string& mac,
                                     const std::string& vm, const std::string& host_name = {},
                                     const std::string& requested = {}, bool learned = false) {
  ov::NodeMessage m;
  m.set_request_id(id);
  ov::LeaseRequest* r = m.mutable_lease_request();
  r->set_kind(kind);
  r->set_mac(mac);
  r->set_vm(vm);
  r->set_host_name(host_name);
  r->set_requested_address(requested);
  r->set_learned(learned);
  return m;
}

inline ov::NodeMessage offer(std::uint64_t id, const std::string& mac, const std::string& vm,
                             const std::string& host_name = {}, const std::string& requested = {}) {
  return lease_request(id, ov::LeaseRequest::OFFER, mac, vm, host_name, requested);
}

inline ov::NodeMessage bind(std::uint64_t id, const std::string& mac, const std::string& vm,
                            const std::string& requested, const std::string& host_name = {}, bool learned = false) {
  return lease_request(id, ov::LeaseRequest::BIND, mac, vm, host_name, requested, learned);
}

inline ov::NodeMessage release(std::uint64_t id, const std::string& address, const std::string& mac,
                               bool declined = false) {
  ov::NodeMessage m;
  m.set_request_id(id);
  ov::LeaseRelease* r = m.mutable_lease_release();
  r->set_address(address);
  r->set_mac(mac);
  r->set_declined(declined);
  return m;
}

inline ov::NodeMessage resolve(std::uint64_t id, const std::string& address) {
  ov::NodeMessage m;
  m.set_request_id(id);
  m.mutable_resolve()->set_address(address);
  return m;
}

inline ov::NodeMessage register_msg(std::uint64_t id, const std::vector<Endpoint>& locals) {
  ov::NodeMessage m;
  m.set_request_id(id);
  ov::Register* r = m.mutable_register_();
  for (const Endpoint& e : locals) {
    ov::Endpoint* p = r->add_local_endpoints();
    p->set_address(e.address);
    p->set_port(e.port);
  }
  return m;
}

// A lease of VM `vm` (`mac`) at `address` on node `node`, bound until `expiry`.
inline Lease make_lease(const std::string& address, const std::string& mac, const std::string& vm,
                        const std::string& host_name, const std::string& node, UnixTime expiry) {
  Lease l;
  l.address = *Ipv4Addr::parse(address);
  l.mac = *MacAddr::parse(mac);
  l.vm = vm;
  l.host_name = host_name;
  l.node = node;
  l.expiry = expiry;
  return l;
}

// Messages queued for `node`, in order.
inline std::vector<ov::NodeMessage> to(const std::vector<Outgoing>& out, const std::string& node) {
  std::vector<ov::NodeMessage> r;
  for (const Outgoing& o : out) {
    if (o.node_id == node) r.push_back(o.message);
  }
  return r;
}

// The single LeaseReply queued for `node` (fails the test otherwise).
inline ov::LeaseReply reply_to(const std::vector<Outgoing>& out, const std::string& node) {
  ov::LeaseReply reply;
  int n = 0;
  for (const Outgoing& o : out) {
    if (o.node_id == node && o.message.has_lease_reply()) {
      reply = o.message.lease_reply();
      ++n;
    }
  }
  EXPECT_EQ(n, 1) << "expected one LeaseReply to " << node;
  return reply;
}

// Leases pushed to `node` in LeaseUpdate messages.
inline std::vector<ov::Lease> updates_to(const std::vector<Outgoing>& out, const std::string& node) {
  std::vector<ov::Lease> r;
  for (const Outgoing& o : out) {
    if (o.node_id != node || !o.message.has_lease_update()) continue;
    for (const ov::Lease& l : o.message.lease_update().leases()) r.push_back(l);
  }
  return r;
}

inline bool same(const Lease& a, const Lease& b) {
  return a.address == b.address && a.mac == b.mac && a.vm == b.vm && a.host_name == b.host_name && a.node == b.node &&
         a.expiry == b.expiry && a.state == b.state && a.origin == b.origin;
}

inline ::testing::AssertionResult same_tables(const std::vector<Lease>& a, const std::vector<Lease>& b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << "sizes differ: " << a.size() << " vs " << b.size();
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!same(a[i], b[i]))
      return ::testing::AssertionFailure()
             << "record " << i << " differs: " << a[i].address.to_string() << " vs " << b[i].address.to_string();
  }
  return ::testing::AssertionSuccess();
}

// A temporary directory removed with everything in it on destruction.
using wownet::test::TempDir;

}  // namespace wownet::registry::test
