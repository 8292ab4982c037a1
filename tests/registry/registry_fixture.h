// The RegistryTest fixture: a rendezvous registry with nodes node-a and
// node-b up, and helpers to send it messages. In a named namespace so that
// gtest sees one fixture in every registry_*_test.cpp.
#pragma once

#include <gtest/gtest.h>

#include "registry/registry.h"
#include "registry_test_util.h"

namespace wownet::registry::test {

constexpr const char* kMac1 = "52:54:00:00:00:01";
constexpr const char* kMac2 = "52:54:00:00:00:02";
constexpr const char* kMac3 = "52:54:00:00:00:03";

class RegistryTest : public ::testing::Test {
 protected:
  RegistryTest() : reg_(NetworkConfig{}, nullptr) {
    reg_.set_self("self-id", "rdv", {Endpoint{"192.0.2.1", 4789}});
    up("node-a", "host-a", "198.51.100.1", 5000);
    up("node-b", "host-b", "198.51.100.2", 5000);
  }

  std::vector<Outgoing> up(const std::string& id, const std::string& name, const std::string& addr,
                           std::uint16_t port) {
    std::vector<Outgoing> out;
    reg_.on_node_up(now_, id, name, addr, port, out);
    return out;
  }

  std::vector<Outgoing> send(const std::string& from, const ov::NodeMessage& m) {
    std::vector<Outgoing> out;
    reg_.on_message(now_, from, m, out);
    return out;
  }

  // Sends a LeaseRequest or LeaseRelease and returns the reply to `from`.
  ov::LeaseReply ask(const std::string& from, const ov::NodeMessage& m) { return reply_to(send(from, m), from); }

  // OFFER then BIND of the offered address; returns the bound lease.
  ov::Lease allocate(const std::string& from, const std::string& mac, const std::string& vm,
                     const std::string& host_name = {}) {
    ov::LeaseReply o = ask(from, offer(1, mac, vm, host_name));
    EXPECT_TRUE(o.ok()) << o.reason();
    ov::LeaseReply b = ask(from, bind(2, mac, vm, o.lease().address(), host_name));
    EXPECT_TRUE(b.ok()) << b.reason();
    return b.lease();
  }

  UnixTime now_ = kT0;
  Registry reg_;
};

}  // namespace wownet::registry::test
