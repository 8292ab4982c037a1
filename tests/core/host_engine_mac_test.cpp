// HostEngine: MAC reservations.
#include "host_engine_fixture.h"

namespace wownet::engine_test {
namespace {

// A lease's binding (address, host name, MAC) is its VM's, by VM name, until
// it expires: detaching the VM does not free it for another VM name.
const MacAddr kMacX{{0x52, 0x54, 0x00, 0x00, 0x00, 0x03}};

class MacReservationTest : public HostEngineTest {
 protected:
  // vm1 on attachment 1 leases 10.128.0.2 as "alpha", then is detached.
  Ipv4Addr lease_alpha_and_detach() {
    send(1, dhcp_frame(kMac1, 1, kAny, kAll, kAny, true));
    auto ack = send(1, dhcp_frame(kMac1, 3, kAny, kAll, kAny, true,
                                  cat({opt_addr(50, ip(10, 128, 0, 2)), opt_addr(54, kGw), opt_str(12, "alpha")})));
    EXPECT_EQ(reply_options(out(ack))[53], Bytes{5});
    engine_.remove_attachment(1);
    return ip(10, 128, 0, 2);
  }
  std::uint64_t dropped(AttachmentId id, DropReason r) const {
    return engine_.attachment(id)->counters.drops[std::size_t(r)];
  }
};

TEST_F(MacReservationTest, AnotherVmNamePresentingADetachedVmsMacIsRefused) {
  Ipv4Addr a1 = lease_alpha_and_detach();
  engine_.add_attachment(3, "intruder", std::nullopt, T0 + 10);
  EXPECT_EQ(send(3, dhcp_frame(kMac1, 1, kAny, kAll, kAny, true), T0 + 10).reason, DropReason::SpoofedMac);
  EXPECT_EQ(send(3, dhcp_frame(kMac1, 3, a1, kGw, a1, false), T0 + 10).reason, DropReason::SpoofedMac);
  EXPECT_EQ(send(3, ethernet(kBcast, kMac1, 0x0806, arp(1, kMac1, a1, MacAddr{}, kGw)), T0 + 10).reason,
            DropReason::SpoofedMac);
  EXPECT_EQ(send(3, ethernet(kGwMac, kMac1, 0x0800, ipv4(a1, kGw, 1, icmp_echo(1, 1, {}))), T0 + 10).reason,
            DropReason::SpoofedMac);
  EXPECT_EQ(dropped(3, DropReason::SpoofedMac), 4u);
  EXPECT_FALSE(engine_.attachment(3)->mac.has_value());
  EXPECT_FALSE(engine_.attachment(3)->ip.has_value());
  const Lease* l = engine_.leases().find(a1);
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->vm, "vm1");
  EXPECT_EQ(l->host_name, "alpha");
  EXPECT_EQ(l->expiry, T0 + 3600);
  // The real vm1, attached again, gets its address and name back.
  engine_.add_attachment(1, "vm1", std::nullopt, T0 + 20);
  EXPECT_EQ(lease(1, kMac1, T0 + 20), a1);
  EXPECT_EQ(engine_.attachment(1)->ip, a1);
  EXPECT_EQ(engine_.leases().find(a1)->host_name, "alpha");
  engine_.leases().set_now(T0 + 20);
  EXPECT_EQ(engine_.leases().find_host_name("alpha"), a1);
  // And the intruder still gets nowhere with that MAC.
  EXPECT_EQ(send(3, dhcp_frame(kMac1, 1, kAny, kAll, kAny, true), T0 + 30).reason, DropReason::SpoofedMac);
}

TEST_F(MacReservationTest, AfterTheLeaseExpiredTheMacServesANewVmWithoutTheOldName) {
  Ipv4Addr a1 = lease_alpha_and_detach();
  engine_.add_attachment(3, "vm3", std::nullopt, T0 + 3600);
  engine_.on_timer(T0 + 3600);
  auto offer = send(3, dhcp_frame(kMac1, 1, kAny, kAll, kAny, true), T0 + 3600);
  ASSERT_EQ(offer.kind, FrameAction::Kind::WriteToTap);
  Ipv4Addr got = lease(3, kMac1, T0 + 3600);
  EXPECT_EQ(engine_.attachment(3)->mac, kMac1);
  EXPECT_EQ(engine_.attachment(3)->ip, got);
  const Lease* l = engine_.leases().find_by_mac(kMac1);
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->vm, "vm3");
  // vm1's host name went with vm1's lease; vm3 answers to its automatic name.
  EXPECT_EQ(l->host_name, "");
  EXPECT_EQ(reply_options(out(offer))[12], (Bytes{'C', '1', '2', '8', '0', '0', '0', '0', '0', '2'}));
  EXPECT_EQ(got, a1);  // RFC 2131 §4.3.1: the client's (chaddr's) previous address
}

TEST_F(MacReservationTest, ARestoredAttachmentDoesNotTakeAnotherVmsLeasedMac) {
  Ipv4Addr a1 = lease(1, kMac1);
  auto fresh = restarted(engine_);
  fresh->add_attachment(2, "vm2", kMac1, T0 + 10);
  EXPECT_FALSE(fresh->attachment(2)->mac.has_value());
  Bytes f = dhcp_frame(kMac1, 1, kAny, kAll, kAny, true);
  EXPECT_EQ(fresh->on_tap_frame(T0 + 10, 2, ByteSpan(f.data(), f.size())).reason, DropReason::SpoofedMac);
  EXPECT_EQ(fresh->leases().find(a1)->vm, "vm1");
}

TEST(DhcpServerTest, AMacWhoseLeaseIsAnotherVmsIsNotServed) {
  NetworkConfig c;
  c.lease_time = 3600;
  const Ipv4Addr a1 = ip(10, 128, 0, 2);
  for (bool registry : {false, true}) {
    SCOPED_TRACE(registry ? "registry mode" : "local");
    LeaseTable t(c.network, c.gateway);
    DhcpServer s(c, t);
    if (registry) s.use_registry("self-node");
    t.set_now(T0);
    t.put(a1, kMac1, "vm1", "alpha", T0 + 3600, LeaseState::Bound, LeaseOrigin::Dhcp, registry ? "self-node" : "");
    std::array<std::uint8_t, 2048> buf{};
    const Bytes messages[] = {
        dhcp(1, 1, kMac1, kAny, true),                                              // DISCOVER
        dhcp(3, 2, kMac1, kAny, true, opt_addr(50, a1)),                            // REQUEST, INIT-REBOOT
        dhcp(3, 3, kMac1, kAny, true, cat({opt_addr(50, a1), opt_addr(54, kGw)})),  // REQUEST, SELECTING
        dhcp(3, 4, kMac1, a1, false),                                               // REQUEST, RENEWING
        dhcp(3, 5, kMac1, kAny, true, cat({opt_addr(50, a1), opt_str(12, "evil")})),
        dhcp(7, 6, kMac1, a1, false),                      // RELEASE
        dhcp(4, 7, kMac1, kAny, false, opt_addr(50, a1)),  // DECLINE
        dhcp(8, 8, kMac1, a1, false),                      // INFORM
    };
    for (const Bytes& m : messages) {
      auto msg = parse_dhcp(m);
      ASSERT_TRUE(msg.has_value());
      DhcpOutcome o = s.on_client_message(T0 + 10, *msg, kMac1, "vm2", ByteSpan(buf.data(), buf.size()));
      EXPECT_EQ(o.reply_size, 0u) << int(m[242]);
      EXPECT_FALSE(o.bound.has_value());
      EXPECT_FALSE(o.released);
      EXPECT_FALSE(o.ask.has_value());
    }
    const Lease* l = t.find(a1);
    ASSERT_NE(l, nullptr);
    EXPECT_EQ(l->vm, "vm1");
    EXPECT_EQ(l->host_name, "alpha");
    EXPECT_EQ(l->state, LeaseState::Bound);
    EXPECT_EQ(l->expiry, T0 + 3600);
    // vm1 itself is served.
    auto discover = parse_dhcp(dhcp(1, 9, kMac1, kAny, true));
    EXPECT_GT(s.on_client_message(T0 + 10, *discover, kMac1, "vm1", ByteSpan(buf.data(), buf.size())).reply_size, 0u);
  }
}

TEST(LeaseTableTest, ALeaseTakenOverAfterExpiryDoesNotInheritTheOldVmsHostName) {
  LeaseTable t(*Ipv4Prefix::parse("10.128.0.0/9"), kGw);
  t.set_now(T0);
  t.put(ip(10, 128, 0, 2), kMac1, "vm1", "alpha", T0 + 100, LeaseState::Bound, LeaseOrigin::Dhcp);
  t.set_now(T0 + 200);
  // The same VM renewing late keeps its name.
  t.put(ip(10, 128, 0, 2), kMac1, "vm1", "", T0 + 300, LeaseState::Bound, LeaseOrigin::Dhcp);
  EXPECT_EQ(t.find(ip(10, 128, 0, 2))->host_name, "alpha");
  // Another VM with that MAC, after expiry, does not.
  t.set_now(T0 + 400);
  t.put(ip(10, 128, 0, 2), kMac1, "vm2", "", T0 + 500, LeaseState::Bound, LeaseOrigin::Dhcp);
  EXPECT_EQ(t.find(ip(10, 128, 0, 2))->host_name, "");
}

class RegistryMacReservationTest : public MacReservationTest {
 protected:
  RegistryMacReservationTest() { engine_.use_registry("self-node"); }
  static Lease vm1_lease(Ipv4Addr a, std::string node) {
    Lease l;
    l.address = a;
    l.mac = kMac1;
    l.vm = "vm1";
    l.host_name = "alpha";
    l.node = std::move(node);
    l.expiry = T0 + 3600;
    return l;
  }
};

TEST_F(RegistryMacReservationTest, AnotherVmNameCannotUseALeasedMacAndAMigratedVmCan) {
  const Ipv4Addr a9 = ip(10, 128, 3, 9);
  engine_.remove_attachment(1);
  for (const char* node : {"self-node", "other-node"}) {
    SCOPED_TRACE(node);
    engine_.on_registry_lease(T0, vm1_lease(a9, node));
    EXPECT_EQ(send(2, dhcp_frame(kMac1, 1, kAny, kAll, kAny, true)).reason, DropReason::SpoofedMac);
    EXPECT_EQ(send(2, ethernet(kBcast, kMac1, 0x0806, arp(1, kMac1, a9, MacAddr{}, kGw))).reason,
              DropReason::SpoofedMac);
    EXPECT_FALSE(engine_.attachment(2)->mac.has_value());
    EXPECT_TRUE(engine_.take_lease_asks().empty());
  }
  // vm1 migrating here (same name, same MAC) is let in: attaching it asks
  // the registry to move its lease here, its DISCOVER asks for an offer.
  engine_.add_attachment(3, "vm1", std::nullopt, T0);
  EXPECT_EQ(engine_.attachment(3)->mac, kMac1);
  EXPECT_EQ(send(3, dhcp_frame(kMac1, 1, kAny, kAll, kAny, true)).kind, FrameAction::Kind::None);
  auto asks = engine_.take_lease_asks();
  ASSERT_EQ(asks.size(), 2u);
  EXPECT_EQ(asks[0].kind, LeaseAsk::Kind::Bind);
  EXPECT_EQ(asks[0].address, a9);
  EXPECT_EQ(asks[1].kind, LeaseAsk::Kind::Offer);
  EXPECT_EQ(asks[1].vm, "vm1");
}

TEST_F(RegistryMacReservationTest, ALeaseOfAnotherVmNameIsNotBoundToTheAttachmentWithItsMac) {
  // vm2 holds the MAC (no lease yet); the registry then reports vm1's lease
  // of that MAC on this node.
  engine_.add_attachment(2, "vm2", kMac1, T0);
  ASSERT_EQ(engine_.attachment(2)->mac, kMac1);
  const Ipv4Addr a9 = ip(10, 128, 3, 9);
  engine_.on_registry_lease(T0, vm1_lease(a9, "self-node"));
  EXPECT_FALSE(engine_.attachment(2)->ip.has_value());
  engine_.on_agent_host_name(T0, 2, "evil");
  EXPECT_EQ(engine_.leases().find(a9)->host_name, "alpha");
  EXPECT_EQ(send(2, ethernet(kGwMac, kMac1, 0x0800, ipv4(a9, kGw, 1, icmp_echo(1, 1, {})))).reason,
            DropReason::SpoofedIp);
  EXPECT_TRUE(engine_.take_lease_asks().empty());
}

}  // namespace
}  // namespace wownet::engine_test
