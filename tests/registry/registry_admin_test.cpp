// The registry's lease administration: reservations (their rules for
// remote requests, and the leases they end when they arrive) and the
// admin's release, stored and pushed to every node.
#include <unistd.h>

#include <filesystem>

#include "registry/registry_store.h"
#include "registry_fixture.h"

namespace wownet::registry::test {
namespace {

Ipv4Addr addr(const char* s) { return *Ipv4Addr::parse(s); }

TEST_F(RegistryTest, AReservedMacGetsItsAddressAndNameAndNobodyElseDoes) {
  std::vector<Outgoing> out;
  reg_.set_reservations(now_, {Reservation{addr("10.128.0.50"), MacAddr::parse(kMac1), {}, "fileserver"}}, {}, out);
  ov::Lease l = allocate("node-a", kMac1, "vm1", "myname");
  EXPECT_EQ(l.address(), "10.128.0.50");
  EXPECT_EQ(l.host_name(), "fileserver");
  // Another MAC asking for it by BIND is refused, and OFFER skips it.
  ov::LeaseReply r = ask("node-b", bind(3, kMac2, "vm2", "10.128.0.50"));
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.reason(), "address reserved for another VM");
  EXPECT_NE(allocate("node-b", kMac2, "vm2").address(), "10.128.0.50");
}

TEST_F(RegistryTest, AVmReservationFollowsTheVmToAnyNode) {
  std::vector<Outgoing> out;
  reg_.set_reservations(now_, {Reservation{addr("10.128.0.60"), std::nullopt, "db", {}}}, {}, out);
  EXPECT_EQ(allocate("node-b", kMac3, "db").address(), "10.128.0.60");
}

TEST_F(RegistryTest, AReservationEndsTheLeasesItForbidsAndTellsTheNodes) {
  ov::Lease a = allocate("node-a", kMac1, "vm1");  // 10.128.0.2
  ov::Lease b = allocate("node-b", kMac2, "vm2");  // 10.128.0.3
  ASSERT_EQ(a.address(), "10.128.0.2");
  ASSERT_EQ(b.address(), "10.128.0.3");
  // vm1 is to have .3 from now on: both leases end.
  std::vector<Outgoing> out;
  now_ += 10;
  reg_.set_reservations(now_, {Reservation{addr("10.128.0.3"), std::nullopt, "vm1", {}}}, {}, out);
  EXPECT_FALSE(reg_.leases().find_active(addr("10.128.0.2"), now_));
  EXPECT_FALSE(reg_.leases().find_active(addr("10.128.0.3"), now_));
  for (const char* node : {"node-a", "node-b"}) {
    auto pushed = updates_to(out, node);
    ASSERT_EQ(pushed.size(), 2u) << node;
    for (const ov::Lease& p : pushed) {
      EXPECT_EQ(p.state(), "offered");  // ended: hosts do not assert it again
      EXPECT_EQ(p.expiry_unix(), now_);
    }
  }
  // vm1's renewal of its old address is refused; it gets the reserved one.
  ov::LeaseReply r = ask("node-a", bind(5, kMac1, "vm1", "10.128.0.2"));
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.reason(), "another address is reserved for this VM");
  EXPECT_EQ(allocate("node-a", kMac1, "vm1").address(), "10.128.0.3");
}

TEST_F(RegistryTest, TheAdminsReleaseEndsALeaseForEveryNode) {
  ov::Lease a = allocate("node-a", kMac1, "vm1", "web");
  std::vector<Outgoing> out;
  std::string error;
  EXPECT_FALSE(reg_.revoke(now_, addr("10.128.0.99"), out, error));
  EXPECT_EQ(error, "no lease of 10.128.0.99");
  now_ += 5;
  ASSERT_TRUE(reg_.revoke(now_, addr(a.address().c_str()), out, error)) << error;
  EXPECT_FALSE(reg_.leases().find_active(addr(a.address().c_str()), now_));
  // Both nodes hear of it, the one that held it too.
  for (const char* node : {"node-a", "node-b"}) {
    auto pushed = updates_to(out, node);
    ASSERT_EQ(pushed.size(), 1u) << node;
    EXPECT_EQ(pushed[0].address(), a.address());
    EXPECT_EQ(pushed[0].state(), "offered");
  }
  // The expiry pass drops the record.
  out.clear();
  EXPECT_LE(reg_.next_deadline(), now_);
  reg_.on_timer(now_, out);
  EXPECT_EQ(reg_.leases().find(addr(a.address().c_str())), nullptr);
}

TEST(RegistryAdminStoreTest, AReleaseIsStored) {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("wownet-registry-admin-" + std::to_string(::getpid()) + ".db"))
          .string();
  std::filesystem::remove(path);
  std::string error;
  {
    auto store = RegistryStore::open(path, error);
    ASSERT_TRUE(store) << error;
    Registry reg(NetworkConfig{}, store.get());
    ASSERT_TRUE(reg.restore(kT0, error)) << error;
    std::vector<Outgoing> out;
    reg.on_node_up(kT0, "node-a", "host-a", "198.51.100.1", 5000, out);
    reg.on_message(kT0, "node-a", offer(1, kMac1, "vm1"), out);
    reg.on_message(kT0, "node-a", bind(2, kMac1, "vm1", "10.128.0.2"), out);
    ASSERT_TRUE(reg.leases().find_active(Ipv4Addr::from_octets(10, 128, 0, 2), kT0));
    ASSERT_TRUE(reg.revoke(kT0 + 1, Ipv4Addr::from_octets(10, 128, 0, 2), out, error)) << error;
  }
  auto store = RegistryStore::open(path, error);
  ASSERT_TRUE(store) << error;
  Registry reg(NetworkConfig{}, store.get());
  ASSERT_TRUE(reg.restore(kT0 + 2, error)) << error;
  EXPECT_FALSE(reg.leases().find_active(Ipv4Addr::from_octets(10, 128, 0, 2), kT0 + 2));
  std::filesystem::remove(path);
  std::filesystem::remove(path + "-wal");
  std::filesystem::remove(path + "-shm");
}

}  // namespace
}  // namespace wownet::registry::test
