// wownetctl: the admin's command line to wownet-hostd's control socket.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>

#include "ca_commands.h"
#include "cli_output.h"
#include "json_print.h"
#include "proto/control.pb.h"

namespace {

using wownet::control::Request;
using wownet::control::Response;

constexpr int kTimeoutSeconds = 30;  // for connecting, sending the request and each read of the reply
constexpr std::uint32_t kMaxReply = 1u << 24;

// Writes all of p[0, n). MSG_NOSIGNAL: a hostd that hung up gives EPIPE, not
// a SIGPIPE that would kill us without a word. Returns 0 or the errno.
int send_all(int fd, const char* p, std::size_t n) {
  while (n) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return errno;
    p += w;
    n -= std::size_t(w);
  }
  return 0;
}

// Reads p[0, n), counting into `got`. Returns 0 (got < n: end of stream) or
// the errno (EAGAIN: the receive timeout passed).
int read_all(int fd, char* p, std::size_t n, std::size_t& got) {
  got = 0;
  while (got < n) {
    ssize_t r = ::read(fd, p + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return errno;
    if (r == 0) return 0;
    got += std::size_t(r);
  }
  return 0;
}

bool timed_out(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == ETIMEDOUT; }
bool hung_up(int err) { return err == EPIPE || err == ECONNRESET; }

// Sends one request and reads its response. On any failure sets `error` to
// "PATH: what went wrong" and returns false.
bool call(const std::string& path, const Request& req, Response& resp, std::string& error) {
  auto fail = [&path, &error](const std::string& why) {
    error = path + ": " + why;
    return false;
  };
  const std::string closed_early = "connection closed by hostd before the reply";
  const std::string timeout = std::to_string(kTimeoutSeconds) + " s";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path)
    return fail("socket path longer than " + std::to_string(sizeof addr.sun_path - 1) + " bytes");
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(std::string("cannot create a socket: ") + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  timeval tv{kTimeoutSeconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);  // also bounds connect() on a full backlog
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    if (timed_out(errno)) return fail("wownet-hostd accepted no connection within " + timeout);
    return fail(std::string("cannot connect to wownet-hostd: ") + std::strerror(errno));
  }

  std::string out = req.SerializeAsString();
  std::uint32_t out_len = std::uint32_t(out.size());
  out.insert(0, {char(out_len >> 24), char(out_len >> 16), char(out_len >> 8), char(out_len)});
  // A hostd that hung up on the request (EPIPE) may still have said why
  // (say, a request over 1 MiB): read on.
  if (int err = send_all(fd, out.data(), out.size()); err && !hung_up(err)) {
    if (timed_out(err)) return fail("wownet-hostd took no request for " + timeout);
    return fail(std::string("cannot send the request: ") + std::strerror(err));
  }

  unsigned char hdr[4];
  std::size_t got = 0;
  int err = read_all(fd, reinterpret_cast<char*>(hdr), sizeof hdr, got);
  if (timed_out(err)) return fail("no reply from wownet-hostd within " + timeout);
  if (hung_up(err) || (!err && got < sizeof hdr)) return fail(closed_early);
  if (err) return fail(std::string("cannot read the reply: ") + std::strerror(err));
  std::uint32_t len = (std::uint32_t(hdr[0]) << 24) | (std::uint32_t(hdr[1]) << 16) | (std::uint32_t(hdr[2]) << 8) |
                      std::uint32_t(hdr[3]);
  if (len > kMaxReply) return fail("reply announces " + std::to_string(len) + " bytes, more than 16 MiB");
  std::string in(len, '\0');
  err = read_all(fd, in.data(), len, got);
  std::string progress = std::to_string(got) + " of " + std::to_string(len) + " bytes of the reply";
  if (timed_out(err)) return fail("reply stalled for " + timeout + " after " + progress);
  if (hung_up(err) || (!err && got < len)) return fail("connection closed by hostd after " + progress);
  if (err) return fail("cannot read the reply: " + std::string(std::strerror(err)) + " after " + progress);
  if (!resp.ParseFromString(in)) return fail("malformed reply (" + std::to_string(len) + " bytes)");
  return true;
}

std::string ago(std::int64_t t, std::int64_t now) {
  if (t == 0) return "-";
  std::int64_t d = t - now;
  char buf[32];
  if (d >= 0)
    std::snprintf(buf, sizeof buf, "in %llds", static_cast<long long>(d));
  else
    std::snprintf(buf, sizeof buf, "%llds ago", static_cast<long long>(-d));
  return buf;
}

const char* dash(const std::string& s) { return s.empty() ? "-" : s.c_str(); }

void print_attachments(const wownet::control::AttachmentList& l) {
  std::int64_t now = std::time(nullptr);
  std::printf("%-14s %-12s %-7s %-7s %-17s %-15s %-11s %-22s %5s %10s %10s %8s  %s\n", "VM", "VIF", "BRIDGE", "TAP",
              "MAC", "IP", "LEASE", "AGENT", "MTU", "RX", "TX", "DROPPED", "STATE");
  for (const auto& a : l.attachments()) {
    std::string agent = "-";
    if (a.has_agent())
      agent = (a.agent().host_name().empty() ? std::string("?") : a.agent().host_name()) + " (" +
              std::to_string(a.agent().age_seconds()) + "s ago)";
    std::string mtu = a.mtu() ? std::to_string(a.mtu()) : "-";
    std::printf("%-14s %-12s %-7s %-7s %-17s %-15s %-11s %-22s %5s %10llu %10llu %8llu  %s\n", a.vm().c_str(),
                a.vif().c_str(), a.bridge().c_str(), a.tap().c_str(), dash(a.mac()), dash(a.address()),
                a.address().empty() ? "-" : ago(a.lease_expiry_unix(), now).c_str(), agent.c_str(), mtu.c_str(),
                static_cast<unsigned long long>(a.counters().rx_frames()),
                static_cast<unsigned long long>(a.counters().tx_frames()),
                static_cast<unsigned long long>(a.counters().dropped()), a.state().c_str());
  }
}

void print_leases(const wownet::control::LeaseList& l, bool all) {
  std::int64_t now = std::time(nullptr);
  std::printf("%-11s %-15s %-17s %-14s %-16s %-18s %-9s %-8s %-10s%s\n", "KIND", "ADDRESS", "MAC", "VM", "HOST NAME",
              "AUTO NAME", "STATE", "ORIGIN", "EXPIRES", all ? " NODE" : "");
  for (const auto& x : l.leases()) {
    std::printf("%-11s %-15s %-17s %-14s %-16s %-18s %-9s %-8s %-10s%s%s\n", dash(x.kind()), x.address().c_str(),
                dash(x.mac()), dash(x.vm()), dash(x.host_name()), x.auto_name().c_str(), x.state().c_str(),
                x.origin().c_str(), ago(x.expiry_unix(), now).c_str(), all ? " " : "", all ? dash(x.node()) : "");
  }
}

void print_peers(const wownet::control::PeerList& l) {
  std::int64_t now = std::time(nullptr);
  std::printf("%-16s %-34s %-22s %-7s %-5s %8s %12s %12s  %s\n", "NODE", "ID", "ENDPOINT", "PATH", "UP", "RTT",
              "TX BYTES", "RX BYTES", "HANDSHAKE");
  for (const auto& p : l.peers()) {
    std::string rtt = p.rtt_ms() < 0 ? "-" : std::to_string(p.rtt_ms()) + "ms";
    std::printf("%-16s %-34s %-22s %-7s %-5s %8s %12llu %12llu  %s%s\n", dash(p.node_name()), p.node_id().c_str(),
                p.endpoint().c_str(), p.path().c_str(), p.established() ? "yes" : "no", rtt.c_str(),
                static_cast<unsigned long long>(p.tx_bytes()), static_cast<unsigned long long>(p.rx_bytes()),
                p.last_handshake_unix() ? ago(p.last_handshake_unix(), now).c_str() : "-",
                p.rendezvous()          ? (p.asked_first() ? "  (rendezvous, asked first)"
                                           : p.suspected() ? "  (rendezvous, silent)"
                                                           : "  (rendezvous)")
                : p.path() == "relayed" ? ("  (via " + p.relay() + ")").c_str()
                                        : "");
  }
}

void print_nodes(const wownet::control::NodeList& l) {
  std::int64_t now = std::time(nullptr);
  std::printf("%-16s %-34s %-7s %-10s %6s %-22s %s\n", "NODE", "ID", "STATE", "SEEN", "LEASES", "REFLEXIVE",
              "LOCAL ENDPOINTS");
  for (const auto& n : l.nodes()) {
    std::string local;
    for (const auto& e : n.local_endpoints()) local += (local.empty() ? "" : " ") + e;
    const std::string state = n.online() ? "online" : n.online_at_size() > 0 ? "at " + n.online_at(0) : "offline";
    std::printf("%-16s %-34s %-7s %-10s %6u %-22s %s\n", dash(n.node_name()), n.node_id().c_str(), state.c_str(),
                n.last_seen_unix() ? ago(n.last_seen_unix(), now).c_str() : "-", n.active_leases(), dash(n.reflexive()),
                local.empty() ? "-" : local.c_str());
  }
}

void print_path(const wownet::control::PathInfo& p) {
  std::string what = p.target();
  if (!p.address().empty() && p.address() != p.target()) what += " (" + p.address() + ")";
  if (p.path() == "local") {
    std::printf("%s: local, a VM of this host\n", what.c_str());
    return;
  }
  std::printf("%s: on node %s (%s)\n", what.c_str(), p.node_name().c_str(), p.node_id().c_str());
  if (p.path() == "none") {
    std::printf("path none: no session yet (the first packet asks the registry and starts one)\n");
    return;
  }
  const auto& peer = p.peer();
  std::printf("path %s", p.path().c_str());
  if (p.path() == "relayed") std::printf(" via %s", peer.relay().c_str());
  std::printf(", endpoint %s, rtt %s\n", peer.endpoint().c_str(),
              peer.rtt_ms() < 0 ? "unknown" : (std::to_string(peer.rtt_ms()) + " ms (last keepalive)").c_str());
}

void print_map(const char* title, const google::protobuf::Map<std::string, std::uint64_t>& m) {
  std::printf("%s:", title);
  std::map<std::string, std::uint64_t> sorted(m.begin(), m.end());
  for (const auto& [k, v] : sorted) std::printf(" %s=%llu", k.c_str(), static_cast<unsigned long long>(v));
  std::printf("\n");
}

void print_status(const wownet::control::Status& s) {
  std::printf("wownet-hostd %s, up %llus\n", s.version().c_str(), static_cast<unsigned long long>(s.uptime_seconds()));
  std::printf("network %s  gateway %s  domain %s  mtu %u\n", s.network().c_str(), s.gateway().c_str(),
              s.domain().c_str(), s.mtu());
  std::printf("attachments %u  active leases %u  state %s\n", s.attachments(), s.active_leases(),
              s.state_dir().c_str());
  if (!s.node_id().empty())
    std::printf("node %s (%s), role %s\n", s.node_name().c_str(), s.node_id().c_str(), s.role().c_str());
  else
    std::printf("role %s\n", s.role().c_str());
  std::printf("agent reports %llu (ignored %llu)\n", static_cast<unsigned long long>(s.agent_reports()),
              static_cast<unsigned long long>(s.agent_reports_ignored()));
  print_map("drops", s.drops());
  print_map("dhcp", s.dhcp());
  print_map("dns", s.dns());
  print_map("engine", s.engine());
  if (!s.overlay().empty()) print_map("overlay", s.overlay());
  if (!s.registry_backend().empty())
    std::printf("registry %s%s%s\n", s.registry_backend().c_str(), s.registry_state().empty() ? "" : ": ",
                s.registry_state().c_str());
  for (const auto& r : s.other_rendezvous())
    std::printf("other rendezvous %s at %s: alive, %u nodes online\n",
                r.node_name().empty() ? r.node_id().c_str() : r.node_name().c_str(), r.endpoint().c_str(),
                r.nodes_online());
  if (!s.registry().empty()) print_map("registry", s.registry());
}

// True if argv holds --json before any "--": known before parsing, so that
// even a command line CLI11 rejects gets its error as JSON.
bool wants_json(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--") break;
    if (a == "--json") return true;
  }
  return false;
}

// The JSON document (or text) for a successful reply.
void print_reply(const Response& resp, bool json, bool all_leases) {
  if (json) {
    const google::protobuf::Message* body = nullptr;
    if (resp.has_attachment()) body = &resp.attachment();
    if (resp.has_attachments()) body = &resp.attachments();
    if (resp.has_leases()) body = &resp.leases();
    if (resp.has_status()) body = &resp.status();
    if (resp.has_peers()) body = &resp.peers();
    if (resp.has_pending()) body = &resp.pending();
    if (resp.has_log_level()) body = &resp.log_level();
    if (resp.has_nodes()) body = &resp.nodes();
    if (resp.has_path()) body = &resp.path();
    if (resp.has_reload()) body = &resp.reload();
    if (body)
      std::printf("%s\n", wownet::json::print(*body).c_str());
    else
      wownet::print_message(true, resp.message());
    return;
  }
  if (resp.has_attachments())
    print_attachments(resp.attachments());
  else if (resp.has_leases())
    print_leases(resp.leases(), all_leases);
  else if (resp.has_status())
    print_status(resp.status());
  else if (resp.has_peers())
    print_peers(resp.peers());
  else if (resp.has_nodes())
    print_nodes(resp.nodes());
  else if (resp.has_path())
    print_path(resp.path());
  else if (resp.has_pending()) {
    std::printf("%-32s  %-20s  %-22s  %s\n", "ID", "NAME", "FROM", "SUBMITTED");
    std::int64_t now = std::time(nullptr);
    for (const auto& p : resp.pending().requests())
      std::printf("%-32s  %-20s  %-22s  %s\n", p.id().c_str(), p.name().c_str(), p.from().c_str(),
                  ago(p.submitted_unix(), now).c_str());
  } else if (resp.has_log_level()) {
    const auto& l = resp.log_level();
    if (l.old_level() == l.level())
      std::printf("log level %s\n", l.level().c_str());
    else
      std::printf("log level %s -> %s\n", l.old_level().c_str(), l.level().c_str());
  } else if (resp.has_reload()) {
    const auto& r = resp.reload();
    std::printf("reloaded %s\n", r.config().c_str());
    for (const auto& a : r.applied()) std::printf("applied: %s\n", a.c_str());
    for (const auto& x : r.refused()) std::printf("refused: %s\n", x.c_str());
    if (r.applied().empty() && r.refused().empty()) std::printf("no changes\n");
  } else if (resp.has_attachment()) {
    wownet::control::AttachmentList one;
    *one.add_attachments() = resp.attachment();
    std::printf("%s\n", resp.message().c_str());
    print_attachments(one);
  } else
    std::printf("%s\n", resp.message().c_str());
}

// `wownetctl version`: this program's version and the daemon's.
int print_versions(const std::string& socket_path, bool json) {
  Request req;
  req.mutable_version();
  Response resp;
  std::string error;
  if (call(socket_path, req, resp, error) && resp.code() != wownet::control::OK) error = resp.message();
  if (error.empty() && !resp.has_version()) error = "hostd sent no version";
  if (json) {
    std::printf("{\"client\": %s, \"daemon\": %s", wownet::json::quote(WOWNET_VERSION).c_str(),
                error.empty() ? wownet::json::quote(resp.version().version()).c_str() : "null");
    if (!error.empty()) std::printf(", \"error\": %s", wownet::json::quote(error).c_str());
    std::printf("}\n");
  } else {
    std::printf("wownetctl %s\n", WOWNET_VERSION);
    if (error.empty()) std::printf("wownet-hostd %s\n", resp.version().version().c_str());
  }
  if (error.empty()) return 0;
  std::fprintf(stderr, "wownetctl: %s\n", error.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"wownetctl: control wownet-hostd (with no command: status)"};
  app.require_subcommand(0, 1);
  // Options of the main command (--json, --socket) are also taken after a
  // subcommand: `wownetctl status --json`.
  app.fallthrough();
  std::string socket_path = "/run/wownet/hostd.sock";
  bool json = wants_json(argc, argv), client_version = false;
  app.add_option("-s,--socket", socket_path, "hostd's control socket");
  app.add_flag("--json", json, "print exactly one JSON document, also on error");
  app.add_flag("--version", client_version, "print wownetctl's version and exit");

  std::string ifname, vm, agent_if, mac, name;
  auto* attach = app.add_subcommand("attach", "attach a VM interface (VIF, veth or TAP) to the overlay");
  attach->add_option("IFNAME", ifname, "the VM's interface on this host")->required();
  attach->add_option("--vm", vm, "VM name (default: IFNAME)");
  attach->add_option("--agent-if", agent_if, "host end of the VM's host-only agent channel");
  attach->add_option("--mac", mac, "the VM's MAC, policed from the first frame (default: learned)");
  auto* detach = app.add_subcommand("detach", "detach a VM and remove its bridge and TAP");
  detach->add_option("NAME", name, "VM name or VIF")->required();
  auto* list = app.add_subcommand("list", "show attachments");
  auto* leases = app.add_subcommand(
      "leases", "show this node's address leases, reservations and static names (--all: the whole network's leases)");
  bool all_leases = false;
  leases->add_flag("--all", all_leases,
                   "every lease of the network: a host's copy of the rendezvous' table, or the registry's");
  std::string release_address;
  auto* lease = app.add_subcommand("lease", "administer one lease (on the node that allocates addresses)");
  lease->require_subcommand(1);
  auto* release = lease->add_subcommand("release", "end the lease of ADDRESS now; the VM gets a new one when it asks");
  release->add_option("ADDRESS", release_address, "the leased overlay address")->required();
  app.add_subcommand("status", "show hostd status and counters (the default)");
  auto* peers = app.add_subcommand("peers", "show the overlay's peer nodes");
  auto* nodes = app.add_subcommand("nodes", "on a rendezvous: every node of the network, online or not");
  std::string target;
  auto* path = app.add_subcommand("path", "which way traffic to a VM or node goes: local, direct or relayed");
  path->add_option("TARGET", target, "VM name, host name, overlay address, node name or node ID")->required();
  auto* version = app.add_subcommand("version", "show the versions of wownetctl and wownet-hostd");
  std::string log_level;
  auto* log_level_cmd =
      app.add_subcommand("log-level", "show or set hostd's log level (until restart, or a reload that changes it)");
  log_level_cmd->add_option("LEVEL", log_level, "trace, debug, info, warn, error, critical or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  auto* reload = app.add_subcommand(
      "reload", "re-read hostd's config file and CRL, as SIGHUP does: apply what can change live, list the rest");
  int exit_code = 0;
  wownet::add_ca_commands(app, exit_code, json);
  // Online CA work, on a rendezvous that holds the CA: through its hostd.
  CLI::App* ca = app.get_subcommand("ca");
  std::string request_id;
  unsigned days = 365;
  auto* pending = ca->add_subcommand("pending", "list certificate requests that hosts submitted (via hostd)");
  auto* approve = ca->add_subcommand("approve", "sign a submitted request; the host picks its certificate up");
  approve->add_option("ID", request_id, "request ID from ca pending")->required();
  approve->add_option("--days", days, "validity in days")->check(CLI::Range(1, 3650));
  auto* deny = ca->add_subcommand("deny", "refuse a submitted request");
  deny->add_option("ID", request_id, "request ID from ca pending")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (!json || e.get_exit_code() == 0) return app.exit(e);  // help (text), or a text error
    wownet::print_error(true, e.what());
    return e.get_exit_code();
  }
  if (client_version) {
    if (json)
      std::printf("{\"client\": %s}\n", wownet::json::quote(WOWNET_VERSION).c_str());
    else
      std::printf("wownetctl %s\n", WOWNET_VERSION);
    return 0;
  }
  bool online_ca = pending->parsed() || approve->parsed() || deny->parsed();
  if (!online_ca && wownet::ca_command_parsed(app)) return exit_code;
  if (version->parsed()) return print_versions(socket_path, json);

  Request req;
  if (pending->parsed()) {
    req.mutable_ca_pending();
  } else if (approve->parsed() || deny->parsed()) {
    req.mutable_ca_decide()->set_id(request_id);
    req.mutable_ca_decide()->set_approve(approve->parsed());
    req.mutable_ca_decide()->set_days(days);
  } else if (attach->parsed()) {
    req.mutable_attach()->set_ifname(ifname);
    req.mutable_attach()->set_vm(vm);
    req.mutable_attach()->set_agent_ifname(agent_if);
    req.mutable_attach()->set_mac(mac);
  } else if (detach->parsed()) {
    req.mutable_detach()->set_name(name);
  } else if (list->parsed()) {
    req.mutable_list();
  } else if (leases->parsed()) {
    req.mutable_leases()->set_all(all_leases);
  } else if (release->parsed()) {
    req.mutable_lease_release()->set_address(release_address);
  } else if (peers->parsed()) {
    req.mutable_peers();
  } else if (nodes->parsed()) {
    req.mutable_nodes();
  } else if (path->parsed()) {
    req.mutable_path()->set_target(target);
  } else if (log_level_cmd->parsed()) {
    req.mutable_log_level()->set_level(log_level);
  } else if (reload->parsed()) {
    req.mutable_reload();
  } else {
    req.mutable_status();  // `status`, or no command at all
  }
  Response resp;
  std::string error;
  if (!call(socket_path, req, resp, error)) {
    wownet::print_error(json, error);
    return 1;
  }
  if (resp.code() != wownet::control::OK) {
    wownet::print_error(json, resp.message(), wownet::control::Code_Name(resp.code()));
    return 1;
  }
  print_reply(resp, json, all_leases);
  return 0;
}
