// The plan of a config reload: which changed keys apply live, which are
// refused (and keep their running values), and what the plan says of each.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config_reload.h"

namespace wownet {
namespace {

HostdConfig host_with_overlay() {
  HostdConfig c;
  c.overlay.enabled = true;
  c.overlay.cert = "/etc/wownet/node.crt";
  c.overlay.key = "/etc/wownet/node.key";
  c.overlay.ca = "/etc/wownet/ca.crt";
  c.overlay.rendezvous_nodes = {{Ipv4Addr::from_octets(192, 0, 2, 10), 7700}};
  return c;
}

TEST(ConfigReloadTest, SameConfigChangesNothing) {
  HostdConfig c = host_with_overlay();
  ReloadPlan p = plan_reload(c, c);
  EXPECT_TRUE(p.applied.empty());
  EXPECT_TRUE(p.refused.empty());
  EXPECT_FALSE(p.log_level || p.metrics || p.engine || p.relay || p.rendezvous_nodes || p.crl);
  EXPECT_EQ(join_changes(p.applied), "nothing");
}

TEST(ConfigReloadTest, LiveKeysApply) {
  HostdConfig running = host_with_overlay();
  HostdConfig fresh = running;
  fresh.log_level = "debug";
  fresh.network.dns_ttl = 5;
  fresh.network.lease_time = 120;
  fresh.network.learn_static = false;
  fresh.metrics.enabled = true;
  fresh.metrics.listen = {Ipv4Addr::from_octets(127, 0, 0, 1), 9771};
  fresh.overlay.relay_after = 7;
  fresh.overlay.direct_retry = 90;
  fresh.overlay.punch_ttl = 3;
  fresh.overlay.crl = "/etc/wownet/crl.pem";
  fresh.overlay.crl_refresh = 30;
  fresh.overlay.rendezvous_nodes = {{Ipv4Addr::from_octets(192, 0, 2, 11), 7701}};
  ReloadPlan p = plan_reload(running, fresh);
  EXPECT_TRUE(p.refused.empty()) << join_changes(p.refused);
  EXPECT_EQ(p.applied, (std::vector<std::string>{
                           "hostd.log_level \"info\" -> \"debug\"",
                           "network.lease_time 3600 -> 120",
                           "network.learn_static true -> false",
                           "dns.ttl 60 -> 5",
                           "metrics.listen off -> 127.0.0.1:9771",
                           "overlay.crl \"\" -> \"/etc/wownet/crl.pem\"",
                           "overlay.crl_refresh 60 -> 30",
                           "overlay.relay_after 3 -> 7",
                           "overlay.direct_retry 45 -> 90",
                           "overlay.punch_ttl 2 -> 3",
                           "overlay.rendezvous [192.0.2.10:7700] -> [192.0.2.11:7701]",
                       }));
  EXPECT_TRUE(p.log_level && p.metrics && p.engine && p.relay && p.rendezvous_nodes && p.crl);
  EXPECT_EQ(p.next.log_level, "debug");
  EXPECT_EQ(p.next.network.dns_ttl, 5u);
  EXPECT_EQ(p.next.network.lease_time, 120u);
  EXPECT_FALSE(p.next.network.learn_static);
  EXPECT_EQ(p.next.metrics, fresh.metrics);
  EXPECT_EQ(p.next.overlay.rendezvous_nodes, fresh.overlay.rendezvous_nodes);
  EXPECT_EQ(p.next.overlay.crl_refresh, 30u);
}

TEST(ConfigReloadTest, ReservationsAndStaticNamesApply) {
  HostdConfig running;  // a standalone host: it allocates
  HostdConfig fresh = running;
  fresh.network.reservations = {
      Reservation{Ipv4Addr::from_octets(10, 128, 0, 50), MacAddr::parse("52:54:00:00:00:01"), {}, "fileserver"},
      Reservation{Ipv4Addr::from_octets(10, 128, 0, 51), std::nullopt, "db", {}}};
  fresh.network.static_names = {StaticName{"printer", Ipv4Addr::from_octets(10, 128, 0, 40)}};
  ReloadPlan p = plan_reload(running, fresh);
  EXPECT_TRUE(p.refused.empty()) << join_changes(p.refused);
  EXPECT_EQ(p.applied, (std::vector<std::string>{
                           "dhcp.reservation [] -> [10.128.0.50 52:54:00:00:00:01 fileserver, 10.128.0.51 vm db]",
                           "dns.static [] -> [printer 10.128.0.40]",
                       }));
  EXPECT_TRUE(p.reservations && p.engine);
  EXPECT_EQ(p.next.network.reservations, fresh.network.reservations);
  EXPECT_EQ(p.next.network.static_names, fresh.network.static_names);
  // Unchanged: nothing to do.
  EXPECT_FALSE(plan_reload(p.next, fresh).reservations);
}

TEST(ConfigReloadTest, RestartKeysAreRefusedAndKeepTheirRunningValues) {
  HostdConfig running = host_with_overlay();
  HostdConfig fresh = running;
  fresh.network.network = *Ipv4Prefix::parse("10.0.0.0/8");
  fresh.network.gateway = Ipv4Addr::from_octets(10, 0, 0, 1);
  fresh.network.domain = "corp";
  fresh.network.mtu = 1300;
  fresh.state_dir = "/srv/wownet";
  fresh.control_socket = "/run/other.sock";
  fresh.agent_port = 6571;
  fresh.overlay.cert = "/etc/wownet/other.crt";
  fresh.overlay.key = "/etc/wownet/other.key";
  fresh.overlay.listen.port = 7800;
  fresh.overlay.cipher = "chacha20-poly1305";
  fresh.overlay.keepalive = 20;
  fresh.network.dns_ttl = 9;  // live, among the refused ones
  ReloadPlan p = plan_reload(running, fresh);
  EXPECT_EQ(p.applied, std::vector<std::string>{"dns.ttl 60 -> 9"});
  EXPECT_EQ(p.refused, (std::vector<std::string>{
                           "hostd.state_dir \"/var/lib/wownet\" -> \"/srv/wownet\" (needs a restart)",
                           "hostd.control_socket \"/run/wownet/hostd.sock\" -> \"/run/other.sock\" (needs a restart)",
                           "network.prefix 10.128.0.0/9 -> 10.0.0.0/8 (needs a restart)",
                           "network.gateway 10.128.0.1 -> 10.0.0.1 (needs a restart)",
                           "network.domain \"wow\" -> \"corp\" (needs a restart)",
                           "network.mtu 1400 -> 1300 (needs a restart)",
                           "agent.port 6570 -> 6571 (needs a restart)",
                           "overlay.listen 0.0.0.0:7700 -> 0.0.0.0:7800 (needs a restart)",
                           "overlay.cert \"/etc/wownet/node.crt\" -> \"/etc/wownet/other.crt\" (needs a restart)",
                           "overlay.key \"/etc/wownet/node.key\" -> \"/etc/wownet/other.key\" (needs a restart)",
                           "overlay.cipher \"aes-256-gcm\" -> \"chacha20-poly1305\" (needs a restart)",
                           "overlay.keepalive 10 -> 20 (needs a restart)",
                       }));
  EXPECT_EQ(p.next.network.network.to_string(), "10.128.0.0/9");
  EXPECT_EQ(p.next.network.gateway.to_string(), "10.128.0.1");
  EXPECT_EQ(p.next.network.domain, "wow");
  EXPECT_EQ(p.next.state_dir, "/var/lib/wownet");
  EXPECT_EQ(p.next.overlay.cert, "/etc/wownet/node.crt");
  EXPECT_EQ(p.next.overlay.keepalive, 10u);
  EXPECT_EQ(p.next.network.dns_ttl, 9u);
  EXPECT_TRUE(p.engine);
}

TEST(ConfigReloadTest, MetricsMoveAndTurnOff) {
  HostdConfig running;
  running.metrics.enabled = true;
  HostdConfig moved = running;
  moved.metrics.listen.port = 9800;
  ReloadPlan p = plan_reload(running, moved);
  EXPECT_EQ(p.applied, std::vector<std::string>{"metrics.listen 127.0.0.1:9770 -> 127.0.0.1:9800"});
  EXPECT_TRUE(p.metrics);
  HostdConfig off = running;
  off.metrics.enabled = false;
  p = plan_reload(running, off);
  EXPECT_EQ(p.applied, std::vector<std::string>{"metrics.listen 127.0.0.1:9770 -> off"});
  EXPECT_FALSE(p.next.metrics.enabled);
  // Off stays off whatever address the (ignored) listen holds.
  HostdConfig off2 = off;
  off2.metrics.listen.port = 1;
  EXPECT_TRUE(plan_reload(off, off2).applied.empty());
}

TEST(ConfigReloadTest, LeaseTimeIsRefusedOnARendezvous) {
  HostdConfig running = host_with_overlay();
  running.overlay.rendezvous = true;
  HostdConfig fresh = running;
  fresh.network.lease_time = 600;
  fresh.overlay.relay = false;
  ReloadPlan p = plan_reload(running, fresh);
  EXPECT_EQ(p.refused, (std::vector<std::string>{"network.lease_time 3600 -> 600 (needs a restart on a rendezvous, "
                                                 "whose registry holds it)",
                                                 "overlay.relay true -> false (needs a restart on a rendezvous: hosts "
                                                 "learn it when they register)"}));
  EXPECT_TRUE(p.applied.empty());
  EXPECT_EQ(p.next.network.lease_time, 3600u);
  EXPECT_TRUE(p.next.overlay.relay);
  EXPECT_FALSE(p.engine);
  EXPECT_FALSE(p.relay);
  // A single host (no overlay) keeps its own leases: lease_time is live.
  HostdConfig single, single2;
  single2.network.lease_time = 600;
  EXPECT_EQ(plan_reload(single, single2).applied, std::vector<std::string>{"network.lease_time 3600 -> 600"});
}

TEST(ConfigReloadTest, OverlayOnOffOrRoleChangeIsOneRefusal) {
  HostdConfig single;
  HostdConfig with = host_with_overlay();
  ReloadPlan p = plan_reload(single, with);
  EXPECT_EQ(p.refused, std::vector<std::string>{"overlay off -> on (needs a restart)"});
  EXPECT_FALSE(p.next.overlay.enabled);
  EXPECT_TRUE(p.next.overlay.rendezvous_nodes.empty());
  p = plan_reload(with, single);
  EXPECT_EQ(p.refused, std::vector<std::string>{"overlay on -> off (needs a restart)"});
  HostdConfig rendezvous = with;
  rendezvous.overlay.rendezvous = true;
  rendezvous.overlay.relay_after = 9;
  p = plan_reload(with, rendezvous);
  EXPECT_EQ(p.refused, std::vector<std::string>{"overlay.role \"host\" -> \"rendezvous\" (needs a restart)"});
  EXPECT_TRUE(p.applied.empty());
  EXPECT_EQ(p.next.overlay.relay_after, 3u);
}

TEST(ConfigReloadTest, TheRegistryBackendNeedsARestart) {
  HostdConfig running = host_with_overlay();
  running.overlay.rendezvous = true;
  HostdConfig fresh = running;
  fresh.registry.backend = RegistryConfig::Backend::Etcd;
  fresh.registry.endpoints = {"http://127.0.0.1:2379"};
  ReloadPlan p = plan_reload(running, fresh);
  EXPECT_EQ(p.refused,
            std::vector<std::string>{"registry sqlite -> etcd /wownet/ [http://127.0.0.1:2379] (needs a restart)"});
  EXPECT_TRUE(p.applied.empty());
  EXPECT_EQ(p.next.registry.backend, RegistryConfig::Backend::Sqlite);
}

}  // namespace
}  // namespace wownet
