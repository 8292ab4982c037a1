// Writes the seed inputs of every fuzz target (corpus/<target>/seed-*):
// valid wownet traffic in each target's input format, built with the unit
// tests' frame helpers, the real protobuf messages and, for the overlay,
// a real DTLS ClientHello. Usage: fuzz_seeds <corpus dir>. Run after a
// target's input format changes; the fuzzer's own finds live beside them.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "crypto/data_channel.h"
#include "overlay_world.h"
#include "proto/agent.pb.h"
#include "proto/control.pb.h"
#include "proto/overlay.pb.h"
#include "test_frames.h"

using namespace wownet;
using namespace wownet::test;

namespace {

std::filesystem::path g_root;

void write(const std::string& target, const std::string& name, const Bytes& b) {
  const auto dir = g_root / target;
  std::filesystem::create_directories(dir);
  std::ofstream out(dir / ("seed-" + name), std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}
void write(const std::string& target, const std::string& name, const std::string& s) {
  write(target, name, Bytes(s.begin(), s.end()));
}

Bytes chunk(const Bytes& b) {
  Bytes out;
  put16(out, std::uint16_t(b.size()));
  out.insert(out.end(), b.begin(), b.end());
  return out;
}
Bytes chunk(const std::string& s) { return chunk(Bytes(s.begin(), s.end())); }
Bytes operator+(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}
Bytes serialized(const google::protobuf::MessageLite& m) {
  const std::string s = m.SerializeAsString();
  return Bytes(s.begin(), s.end());
}

const MacAddr kMac1{{0x52, 0x54, 0x00, 0x00, 0x00, 0x01}};
const MacAddr kGwMac{{0x02, 0x77, 0x6e, 0x00, 0x00, 0x01}};
const Ipv4Addr kGw = Ipv4Addr::from_octets(10, 128, 0, 1);
const Ipv4Addr kVm1 = Ipv4Addr::from_octets(10, 128, 0, 2);
const Ipv4Addr kRemote = Ipv4Addr::from_octets(10, 128, 0, 9);
const Ipv4Addr kAny{0}, kAll{0xffffffff};

Bytes dns_query(std::uint16_t id, const std::vector<std::string>& labels, std::uint16_t type, bool edns) {
  Bytes b;
  put16(b, id);
  put16(b, 0x0100);
  put16(b, 1);
  put16(b, 0);
  put16(b, 0);
  put16(b, edns ? 1 : 0);
  for (const auto& l : labels) {
    b.push_back(std::uint8_t(l.size()));
    b.insert(b.end(), l.begin(), l.end());
  }
  b.push_back(0);
  put16(b, type);
  put16(b, 1);
  if (edns) b = b + Bytes{0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0};
  return b;
}

Bytes tcp(std::size_t payload) {
  Bytes b;
  put16(b, 40000);
  put16(b, 80);
  put32(b, 1000);
  put32(b, 0);
  b.push_back(0x50);
  b.push_back(0x18);  // PSH ACK
  put16(b, 65535);
  put32(b, 0);
  for (std::size_t i = 0; i < payload; ++i) b.push_back(std::uint8_t(i));
  return b;
}

void core_seeds() {
  const Bytes discover = dhcp(1, 0x1234, kMac1, kAny, true, opt_str(12, "web"));
  const Bytes request = dhcp(3, 0x1234, kMac1, kAny, true, cat({opt_addr(50, kVm1), opt_addr(54, kGw)}));
  const Bytes renew = dhcp(3, 0x1235, kMac1, kVm1, false);
  const Bytes release = dhcp(7, 0x1236, kMac1, kVm1, false, opt_addr(54, kGw));
  const Bytes decline = dhcp(4, 0x1237, kMac1, kAny, false, cat({opt_addr(50, kVm1), opt_addr(54, kGw)}));
  const Bytes inform = dhcp(8, 0x1238, kMac1, kVm1, false);
  const Bytes q_web = dns_query(0x4242, {"web", "wow"}, 1, false);
  const Bytes q_ptr = dns_query(0x4243, {"2", "0", "128", "10", "in-addr", "arpa"}, 12, true);
  const Bytes q_auto = dns_query(0x4244, {"c128000005", "wow"}, 1, true);
  const Bytes q_out = dns_query(0x4245, {"example", "com"}, 28, false);
  const Bytes f_discover = ethernet(MacAddr::broadcast(), kMac1, 0x0800, ipv4(kAny, kAll, 17, udp(68, 67, discover)));
  const Bytes f_request = ethernet(MacAddr::broadcast(), kMac1, 0x0800, ipv4(kAny, kAll, 17, udp(68, 67, request)));
  const Bytes arp_req = arp(1, kMac1, kVm1, MacAddr{}, kGw);
  const Bytes f_arp = ethernet(MacAddr::broadcast(), kMac1, 0x0806, arp_req);
  const Bytes f_ping = ethernet(kGwMac, kMac1, 0x0800, ipv4(kVm1, kGw, 1, icmp_echo(1, 1, Bytes(32, 0x61))));
  const Bytes f_dns = ethernet(kGwMac, kMac1, 0x0800, ipv4(kVm1, kGw, 17, udp(5353, 53, q_web)));
  const Bytes f_to_remote = ethernet(kGwMac, kMac1, 0x0800, ipv4(kVm1, kRemote, 17, udp(1000, 2000, Bytes(20, 1))));
  const Bytes from_remote = ipv4(kRemote, kVm1, 17, udp(2000, 1000, Bytes(20, 2)));

  write("ethernet", "dhcp-discover", f_discover);
  write("ethernet", "arp-request", f_arp);
  write("ethernet", "dns-query", f_dns);
  write("arp", "request", arp_req);
  write("arp", "reply", arp(2, kMac1, kVm1, kGwMac, kGw));
  write("ipv4_udp", "dhcp", Bytes{0} + ipv4(kAny, kAll, 17, udp(68, 67, discover)));
  write("ipv4_udp", "ping", Bytes{0} + ipv4(kVm1, kGw, 1, icmp_echo(7, 9, Bytes(56, 0x33))));
  write("ipv4_udp", "tcp-fixed", Bytes{1} + ipv4(kVm1, kRemote, 6, tcp(100)));
  write("ipv4_udp", "udp-fixed", Bytes{1} + ipv4(kVm1, kRemote, 17, udp(1, 2, Bytes(10, 3))));

  // mode, then [op, length, message]...
  const Bytes exchange = Bytes{0, 0} + chunk(discover) + Bytes{0x20} + chunk(request) + Bytes{0x20} + chunk(renew) +
                         Bytes{0x20} + chunk(release);
  write("dhcp", "exchange", exchange);
  write("dhcp", "registry", Bytes{1, 0} + chunk(discover) + Bytes{0x20} + chunk(request));
  write("dhcp", "decline-inform", Bytes{2, 0} + chunk(decline) + Bytes{0} + chunk(inform) + Bytes{8} + chunk(request));

  write("dns", "a-web", Bytes{0} + q_web);
  write("dns", "ptr-edns", Bytes{0} + q_ptr);
  write("dns", "auto-name", Bytes{2} + q_auto);
  write("dns", "outside", Bytes{1} + q_out);

  Bytes big = ethernet(kGwMac, kMac1, 0x0800, ipv4(kVm1, kRemote, 6, tcp(4000)));
  Bytes vnet = {1, 1, 54, 0, 0x78, 0x05, 34, 0, 16, 0};  // NEEDS_CSUM, TCPV4, hdr 54, gso 1400, csum 34+16
  write("offload", "gso-tcp", Bytes{0x04, 0x05, 0x78} + vnet + big);
  write("offload", "csum-only",
        Bytes{0x00, 0x05, 0x78} + Bytes{1, 0, 0, 0, 0, 0, 34, 0, 16, 0} +
            ethernet(kGwMac, kMac1, 0x0800, ipv4(kVm1, kRemote, 6, tcp(20))));

  // mode, then [op, arg, ...]: see host_engine_fuzz.cpp.
  Bytes engine = Bytes{0};
  engine = engine + Bytes{0, 2} + chunk(f_discover);  // from attachment 1
  engine = engine + Bytes{0, 2} + chunk(f_request);
  engine = engine + Bytes{1, 2} + chunk(f_arp);
  engine = engine + Bytes{2, 2} + chunk(f_ping);
  engine = engine + Bytes{0, 2} + chunk(f_dns);
  engine = engine + Bytes{0, 2} + chunk(f_to_remote);
  engine = engine + Bytes{3, 0} + chunk(from_remote);  // from n1
  engine = engine + Bytes{4, 0, 5} + chunk(std::string("name")) + Bytes{0x10, 0, 1};
  engine = engine + Bytes{6, 0x85};
  write("host_engine", "local", engine);
  Bytes reg = Bytes{1} + Bytes{0, 6} +
              chunk(ethernet(MacAddr::broadcast(), MacAddr{{0x52, 0x54, 0, 0, 0, 3}}, 0x0800,
                             ipv4(kAny, kAll, 17, udp(68, 67, discover))));
  reg = reg + Bytes{4, 0x04, 7} + chunk(std::string("x")) + Bytes{0x10, 0, 0} + Bytes{5, 2} + Bytes{7, 1};
  write("host_engine", "registry", reg);

  // [op, port, flags, seq delta, ack delta, window(2), (SYN: mss(2)), chunk]: see dns_tcp_fuzz.cpp.
  const Bytes q_web_tcp = Bytes{0, std::uint8_t(q_web.size())} + q_web;
  const Bytes q_two = q_web_tcp + Bytes{0, std::uint8_t(q_auto.size())} + q_auto;
  Bytes tcp_conn = Bytes{0, 0, 0x02, 0, 0, 0xff, 0xff, 0x05, 0xb4} + chunk(Bytes{});  // SYN
  tcp_conn = tcp_conn + Bytes{0, 0, 0x10, 0, 0, 0xff, 0xff} + chunk(Bytes{});         // ACK
  tcp_conn = tcp_conn + Bytes{0, 0, 0x18, 0, 0, 0xff, 0xff} + chunk(Bytes(q_two.begin(), q_two.begin() + 5));
  tcp_conn = tcp_conn + Bytes{0, 0, 0x18, 0, 0, 0xff, 0xff} + chunk(Bytes(q_two.begin() + 5, q_two.end()));
  tcp_conn = tcp_conn + Bytes{6, 1};                                           // a retransmission
  tcp_conn = tcp_conn + Bytes{0, 0, 0x11, 0, 0, 0xff, 0xff} + chunk(Bytes{});  // FIN
  tcp_conn = tcp_conn + Bytes{0, 0, 0x10, 0, 0, 0xff, 0xff} + chunk(Bytes{});  // ACK of our FIN
  write("dns_tcp", "query-split-pipelined-fin", tcp_conn);
  write("dns_tcp", "closed-port", Bytes{0x80, 1, 0x02, 0, 0, 0x10, 0, 0x02, 0x00} + chunk(Bytes{}));
  write("dns_tcp", "idle", Bytes{0, 4, 0x02, 0, 0, 0, 100, 0, 64} + chunk(Bytes{}) + Bytes{6, 15});

  write("peer_packet", "from-n1", Bytes{0} + from_remote);
  write("peer_packet", "from-n1-tcp", Bytes{1} + ipv4(kRemote, kVm1, 6, tcp(10)));

  for (const char* s : {"52:54:00:12:34:56", "10.128.0.1", "10.128.0.0/9", "Web-Server.example", "C128000005", "wow",
                        "bound", "learned"})
    write("text", s, std::string(s));
}

void registry_seeds() {
  namespace ov = wownet::overlay;
  ov::NodeMessage reg;
  reg.set_request_id(1);
  auto* e = reg.mutable_register_()->add_local_endpoints();
  e->set_address("192.168.0.5");
  e->set_port(7700);
  ov::NodeMessage offer;
  offer.set_request_id(2);
  auto* r = offer.mutable_lease_request();
  r->set_kind(ov::LeaseRequest::OFFER);
  r->set_mac("52:54:00:00:00:01");
  r->set_vm("web");
  r->set_host_name("web");
  ov::NodeMessage bind = offer;
  bind.set_request_id(3);
  bind.mutable_lease_request()->set_kind(ov::LeaseRequest::BIND);
  bind.mutable_lease_request()->set_requested_address("10.128.0.2");
  ov::NodeMessage release;
  release.set_request_id(4);
  release.mutable_lease_release()->set_address("10.128.0.2");
  release.mutable_lease_release()->set_mac("52:54:00:00:00:01");
  ov::NodeMessage resolve;
  resolve.set_request_id(5);
  resolve.mutable_resolve()->set_address("10.128.0.2");
  // [op, arg (node), chunk]; op 0 on_message, 2 local, 4 time, 5 resolve.
  Bytes steps = Bytes{0, 0} + chunk(serialized(reg)) + Bytes{0, 0} + chunk(serialized(offer)) + Bytes{0, 0} +
                chunk(serialized(bind)) + Bytes{0, 1} + chunk(serialized(resolve)) + Bytes{4, 0x85} + chunk(Bytes{}) +
                Bytes{0, 0} + chunk(serialized(release));
  write("registry", "lease-cycle", steps);
  ov::NodeMessage local = offer;
  local.mutable_lease_request()->set_mac("52:54:00:00:00:07");
  write("registry", "local",
        Bytes{2, 4} + chunk(serialized(local)) + Bytes{5, 0} + chunk(std::string("10.128.0.2")) + Bytes{3, 0x81} +
            chunk(Bytes{}));
}

void overlay_seeds() {
  namespace ov = wownet::overlay;
  using namespace wownet::fuzz;
  const auto& w = overlay_world();
  auto pm = make_peer_manager(w.b, "node-b", 3);
  RecordingOutput out;
  pm->connect(kOverlayT0, ov::UdpEndpoint{Ipv4Addr::from_octets(192, 0, 2, 1), 7700}, out.box());
  if (!out.sent.empty()) {
    // A ClientHello from a stranger's endpoint (op 1) and from node-b's (op 0).
    write("overlay_datagram", "client-hello", Bytes{0, 1, 0} + chunk(out.sent[0].bytes));
    write("overlay_datagram", "client-hello-connected", Bytes{2, 0, 0} + chunk(out.sent[0].bytes));
  }
  Bytes data_packet = {4, 0, 0, 0};
  data_packet.resize(64, 0);
  write("overlay_datagram", "data-unknown-receiver", Bytes{0, 1, 0} + chunk(data_packet));
  ov::NodeMessage resolve;
  resolve.set_request_id(9);
  resolve.mutable_resolve()->set_address("10.128.0.2");
  Bytes ip = ipv4(kVm1, kRemote, 17, udp(1, 2, Bytes(8, 1)));
  write("overlay_datagram", "keyed",
        Bytes{1} + Bytes{1, 0} + chunk(ip) + Bytes{0, 0} + Bytes{2, 0} + chunk(serialized(resolve)) + Bytes{0, 0} +
            Bytes{3, 0} + chunk(data_packet) + Bytes{1, 0x40} + chunk(ip) + Bytes{0, 20});

  // data_channel: mode, then [op, chunk, ...].
  write("data_channel", "seal-open-replay",
        Bytes{0} + Bytes{1} + chunk(ip) + Bytes{0, 0, 0} + Bytes{2} + chunk(Bytes{}) + Bytes{0x81} + chunk(ip) +
            Bytes{0, 5, 1} + Bytes{2} + chunk(Bytes{}));
  write("data_channel", "chacha-raw",
        Bytes{1} + Bytes{0} + chunk(Bytes{4, 0, 0, 0, 1, 2, 3, 4} + Bytes(40, 0)) + Bytes{1} + chunk(Bytes{}) +
            Bytes{0, 0, 0});
}

void control_seeds() {
  namespace ctl = wownet::control;
  auto frame = [](const ctl::Request& r) {
    const std::string s = r.SerializeAsString();
    Bytes b;
    put32(b, std::uint32_t(s.size()));
    return b + Bytes(s.begin(), s.end());
  };
  ctl::Request list, attach, detach, decide, status;
  list.mutable_list();
  attach.mutable_attach()->set_ifname("vnet0");
  attach.mutable_attach()->set_vm("web");
  attach.mutable_attach()->set_agent_ifname("vnet1");
  detach.mutable_detach()->set_name("web");
  decide.mutable_ca_decide()->set_id("0123456789abcdef0123456789abcdef");
  decide.mutable_ca_decide()->set_approve(true);
  decide.mutable_ca_decide()->set_days(30);
  status.mutable_status();
  write("control_request", "session", frame(list) + frame(attach) + frame(detach) + frame(status));
  write("control_request", "ca-decide", frame(decide));
  write("control_request", "too-large", Bytes{0x00, 0x20, 0x00, 0x00, 1, 2, 3});

  wownet::agent::Report rep;
  rep.set_agent_version("0.1.0");
  rep.set_host_name("web");
  rep.set_nic("eth1");
  rep.set_address("10.128.0.2");
  rep.set_prefix_length(9);
  rep.set_lease_expiry_unix(1'700'003'600);
  rep.set_uptime_seconds(42);
  rep.set_dhcp_client("dhclient");
  rep.set_sequence(7);
  rep.set_mac("52:54:00:00:00:01");
  const std::string body = rep.SerializeAsString();
  write("agent_report", "report", "WNA1" + body);
  write("agent_report", "utf8-name", "WNA1" + std::string("\x12\x06h\xc3\xa9llo", 8));
}

void config_seeds(const std::filesystem::path& source) {
  std::ifstream in(source / "packaging" / "hostd.toml", std::ios::binary);
  const std::string example((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!example.empty()) write("config", "packaging-hostd.toml", example);
  write("config", "minimal.toml",
        std::string("[network]\nprefix = \"10.128.0.0/9\"\ngateway = \"10.128.0.1\"\ndomain = \"wow\"\nmtu = 1400\n"));
  write("config", "overlay-host.toml",
        std::string("[hostd]\nlog_level = \"debug\"\n[overlay]\ncert = \"/etc/wownet/node.crt\"\nkey = "
                    "\"/etc/wownet/node.key\"\nca = \"/etc/wownet/ca.crt\"\nrendezvous = [\"192.0.2.10:7700\"]\n"
                    "cipher = \"chacha20-poly1305\"\n[agent]\nport = 6570\n"));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seeds <tests/fuzz/corpus>\n");
    return 2;
  }
  g_root = argv[1];
  core_seeds();
  registry_seeds();
  overlay_seeds();
  control_seeds();
  config_seeds(g_root / ".." / ".." / "..");
  std::printf("seeds written under %s\n", argv[1]);
  return 0;
}
