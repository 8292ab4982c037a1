// Daemon, attachments: bringing a VM's TAP and bridge up and down, the
// attach and detach requests, stray links, and each attachment's agent
// channel (reports admitted at a limited rate).
#include <spdlog/spdlog.h>

#include <regex>

#include "daemon.h"
#include "daemon_internal.h"

namespace wownet {
namespace {

using daemon_internal::set_error;
using daemon_internal::valid_vm_name;
using daemon_internal::wall_now;

namespace asio = boost::asio;
constexpr std::uint32_t kAgentReportsPerSecond = 5;

bool is_ours(const std::string& name, AttachmentId* id) {
  static const std::regex re("wn[bt]([0-9]{1,6})");
  std::smatch m;
  if (!std::regex_match(name, m, re)) return false;
  if (id) *id = AttachmentId(std::stoul(m[1].str()));
  return true;
}

}  // namespace

// --- attachments -----------------------------------------------------------

std::string Daemon::bring_up(Attachment& a, bool adopt) {
  std::error_code ec;
  auto vif = links_->find(a.vif, ec);
  if (ec) return "netlink: " + ec.message();
  if (!vif) return "VIF " + a.vif + " is missing";
  auto bridge = links_->find(a.bridge, ec);
  if (ec) return "netlink: " + ec.message();
  if (bridge && bridge->kind != "bridge") {
    links_->delete_link(a.bridge);
    bridge.reset();
  }
  if (bridge) {
    if (!adopt) {
      // A leftover of ours from an earlier life: start clean.
      links_->delete_link(a.bridge);
      bridge.reset();
    } else if ((ec = links_->isolate_bridge(a.bridge))) {
      return "bridge " + a.bridge + ": " + ec.message();
    }
  }
  if (!bridge && (ec = links_->create_bridge(a.bridge))) return "bridge " + a.bridge + ": " + ec.message();
  if (vif->master_ifindex != 0) {
    auto master = links_->find(vif->master_ifindex, ec);
    if (!master || master->name != a.bridge)
      return "VIF " + a.vif + " is a port of " + (master ? master->name : std::string("another device"));
  }
  if (!a.stream) {
    // Offloads let the kernel hand over 64 KiB TSO frames: far fewer
    // system calls per byte. Fall back to plain frames if refused.
    if ((ec = a.tap_device.open(a.tap, true))) {
      spdlog::warn("TAP {} without offloads: {}", a.tap, ec.message());
      if ((ec = a.tap_device.open(a.tap, false))) return "TAP " + a.tap + ": " + ec.message();
    }
  }
  links_->disable_ipv6(a.tap);
  links_->disable_ipv6(a.vif);
  for (const std::string* name : {&a.tap, &a.vif, &a.bridge}) links_->silence(*name);
  if (vif->mtu) {
    unsigned mtu = links_->set_mtu_at_most(a.tap, vif->mtu, ec);
    if (ec) {
      spdlog::warn("TAP {}: cannot set MTU {} of VIF {}: {}", a.tap, vif->mtu, a.vif, ec.message());
    } else if (mtu != vif->mtu) {
      spdlog::warn("TAP {}: MTU {}, its maximum (VIF {} has {}): vm {}'s frames above {} bytes are dropped", a.tap, mtu,
                   a.vif, vif->mtu, a.vm, mtu);
    }
    if (mtu != a.mtu && mtu) spdlog::info("TAP {} (vm {}): MTU {}", a.tap, a.vm, mtu);
    a.mtu = mtu;
  }
  if ((ec = links_->set_master(a.tap, a.bridge))) return "TAP " + a.tap + " to bridge: " + ec.message();
  if ((ec = links_->set_master(a.vif, a.bridge))) return "VIF " + a.vif + " to bridge: " + ec.message();
  for (const std::string* name : {&a.tap, &a.vif, &a.bridge}) {
    if ((ec = links_->set_up(*name, true))) return "bring up " + *name + ": " + ec.message();
  }
  if (!a.agent_ifname.empty()) {
    auto agent_if = links_->find(a.agent_ifname, ec);
    a.agent_ifindex = agent_if ? agent_if->ifindex : 0;
  }
  if (!a.stream) {
    bool vnet = a.tap_device.offloads();
    int fd = a.tap_device.release();
    a.stream = std::make_unique<asio::posix::stream_descriptor>(io_, fd);
    if (tap_fd_.size() <= a.id) {
      tap_fd_.resize(a.id + 1, -1);
      tap_vnet_.resize(a.id + 1, false);
    }
    tap_fd_[a.id] = fd;
    tap_vnet_[a.id] = vnet;
    read_tap(a);
  }
  a.vif_ifindex = vif->ifindex;
  // Whatever the host's own devices send must never pass for the VM.
  std::vector<MacAddr> host_macs;
  for (const std::string* name : {&a.tap, &a.vif, &a.bridge}) {
    if (auto l = links_->find(*name, ec)) host_macs.push_back(MacAddr{l->mac});
  }
  engine_.set_host_macs(a.id, std::move(host_macs));
  a.state = "up";
  return {};
}

void Daemon::tear_down(Attachment& a, bool delete_bridge) {
  if (a.stream) {
    boost::system::error_code ignored;
    a.stream->close(ignored);  // closing the last descriptor removes the TAP
    a.stream.reset();
  }
  a.tap_device.close();
  if (a.id < tap_fd_.size()) tap_fd_[a.id] = -1;
  a.state = "down";
  a.mtu = 0;
  if (delete_bridge && links_) {
    std::error_code ec;
    if (auto vif = links_->find(a.vif, ec); vif && vif->master_ifindex != 0) {
      auto master = links_->find(vif->master_ifindex, ec);
      if (master && master->name == a.bridge) links_->clear_master(a.vif);
    }
    links_->delete_link(a.tap);
    links_->delete_link(a.bridge);
  }
}

void Daemon::remove_strays() {
  std::error_code ec;
  for (const auto& link : links_->list(ec)) {
    AttachmentId id = 0;
    if (!is_ours(link.name, &id) || attachments_.count(id)) continue;
    if (link.kind != "bridge" && link.kind != "tun") continue;
    spdlog::info("removing stray {} {} (no attachment {})", link.kind, link.name, id);
    links_->delete_link(link.name);
  }
}

Daemon::Attachment* Daemon::find_attachment(const std::string& name) {
  for (auto& [id, a] : attachments_) {
    if (a->vm == name || a->vif == name) return a.get();
  }
  return nullptr;
}

AttachmentId Daemon::next_id() const {
  AttachmentId id = 1;
  while (attachments_.count(id)) ++id;
  return id;
}

void Daemon::attach(const control::AttachRequest& req, control::Response& resp) {
  const std::string& ifname = req.ifname();
  std::string vm = req.vm().empty() ? ifname : req.vm();
  if (ifname.empty() || ifname.size() > 15)
    return set_error(resp, control::INVALID_ARGUMENT, "interface name must be 1 to 15 characters");
  if (!valid_vm_name(vm))
    return set_error(resp, control::INVALID_ARGUMENT,
                     "VM name must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit");
  if (is_ours(ifname, nullptr))
    return set_error(resp, control::INVALID_ARGUMENT, ifname + " is one of wownet's own bridges or TAPs");
  if (!req.agent_ifname().empty() && is_ours(req.agent_ifname(), nullptr))
    return set_error(resp, control::INVALID_ARGUMENT, req.agent_ifname() + " is one of wownet's own bridges or TAPs");
  // An interface serves one attachment in one role: a VIF that is also an
  // agent channel would let one VM report in another's name.
  for (const auto& [id, a] : attachments_) {
    if (a->vm == vm) return set_error(resp, control::ALREADY_EXISTS, "VM name " + vm + " is already attached");
    for (const std::string* name : {&ifname, &req.agent_ifname()}) {
      if (name->empty()) continue;
      if (*name == a->vif)
        return set_error(resp, control::ALREADY_EXISTS, *name + " is already the VIF of vm " + a->vm);
      if (*name == a->agent_ifname)
        return set_error(resp, control::ALREADY_EXISTS, *name + " is already the agent channel of vm " + a->vm);
    }
  }
  std::optional<MacAddr> mac;
  if (!req.mac().empty()) {
    mac = MacAddr::parse(req.mac());
    if (!mac || mac->is_zero() || mac->is_multicast())
      return set_error(resp, control::INVALID_ARGUMENT,
                       "MAC must be a unicast address like 52:54:00:12:34:56, not '" +
                           std::string(io::truncate_utf8(req.mac(), 32)) + "'");
  }
  std::error_code ec;
  auto link = links_->find(ifname, ec);
  if (ec) return set_error(resp, control::INTERNAL, "netlink: " + ec.message());
  if (!link) return set_error(resp, control::NOT_FOUND, "no interface named " + ifname);
  // A TAP that a hypervisor holds (qemu's, for libvirt's <interface
  // type='ethernet'>) is the VM's NIC like a Xen VIF or a veth; a TUN (no
  // Ethernet) is not.
  if (!link->is_ethernet || link->kind == "bridge")
    return set_error(resp, control::INVALID_ARGUMENT,
                     ifname + " is not an Ethernet VM interface" + (link->kind.empty() ? "" : " (" + link->kind + ")"));
  if (link->master_ifindex != 0) {
    auto master = links_->find(link->master_ifindex, ec);
    return set_error(resp, control::FAILED_PRECONDITION,
                     ifname + " is already a port of " + (master ? master->name : std::string("another device")));
  }
  if (!req.agent_ifname().empty()) {
    if (req.agent_ifname() == ifname)
      return set_error(resp, control::INVALID_ARGUMENT, "the agent channel must be a different interface");
    auto agent_link = links_->find(req.agent_ifname(), ec);
    if (!agent_link) return set_error(resp, control::NOT_FOUND, "no interface named " + req.agent_ifname());
    if (agent_link->master_ifindex != 0 || agent_link->kind == "bridge")
      return set_error(resp, control::FAILED_PRECONDITION,
                       req.agent_ifname() + " is a bridge or a bridge's port, not a host-only agent channel");
  }
  auto a = std::make_unique<Attachment>();
  a->id = next_id();
  a->vm = vm;
  a->vif = ifname;
  a->agent_ifname = req.agent_ifname();
  a->bridge = "wnb" + std::to_string(a->id);
  a->tap = "wnt" + std::to_string(a->id);
  engine_.add_attachment(a->id, a->vm, mac, wall_now());
  if (const AttachmentState* s = engine_.attachment(a->id); mac && (!s || s->mac != mac)) {
    // Another attached VM has it, or an active lease keeps it for another VM name.
    engine_.remove_attachment(a->id);
    return set_error(resp, control::ALREADY_EXISTS, "MAC " + mac->to_string() + " belongs to another VM");
  }
  std::string why = bring_up(*a, false);
  if (!why.empty()) {
    tear_down(*a, true);
    engine_.remove_attachment(a->id);
    return set_error(resp, control::INTERNAL, "attach " + ifname + ": " + why);
  }
  spdlog::info("attached vm {} (vif {}, bridge {}, tap {})", a->vm, a->vif, a->bridge, a->tap);
  fill(*a, *resp.mutable_attachment(), wall_now());
  attachments_[a->id] = std::move(a);
  ++attachments_version_;
  save_state();
  resp.set_message("attached " + vm);
}

void Daemon::detach(const control::DetachRequest& req, control::Response& resp) {
  Attachment* a = find_attachment(req.name());
  if (!a) return set_error(resp, control::NOT_FOUND, "no attachment named " + req.name());
  std::string vm = a->vm;
  AttachmentId id = a->id;
  tear_down(*a, true);
  engine_.remove_attachment(id);
  attachments_.erase(id);
  ++attachments_version_;
  save_state();
  spdlog::info("detached vm {}", vm);
  resp.set_message("detached " + vm);
}

// --- agent channel ---------------------------------------------------------

Daemon::Attachment* Daemon::find_agent_channel(int ifindex) {
  if (ifindex == 0) return nullptr;
  for (auto& [id, att] : attachments_) {
    if (att->agent_ifindex == ifindex) return att.get();
  }
  return nullptr;
}

bool Daemon::admit_agent_report(int ifindex) {
  // Only an attachment's agent channel may speak, and only so often: both
  // are checked before the datagram is parsed.
  Attachment* a = find_agent_channel(ifindex);
  if (!a) {
    ++agent_reports_ignored_;
    return false;
  }
  UnixTime now = wall_now();
  if (a->report_window != now) {
    a->report_window = now;
    a->reports_in_window = 0;
  }
  if (++a->reports_in_window > kAgentReportsPerSecond) {
    ++agent_reports_limited_;
    return false;
  }
  return true;
}

void Daemon::on_agent_report(int ifindex, const agent::Report& r) {
  Attachment* a = find_agent_channel(ifindex);
  if (!a) return;
  UnixTime now = wall_now();
  ++agent_reports_;
  control::AgentStatus s;
  s.set_agent_version(std::string(io::truncate_utf8(r.agent_version(), 32)));
  s.set_host_name(sanitize_host_name(r.host_name()));
  s.set_claimed_address(std::string(io::truncate_utf8(r.address(), 15)));
  s.set_lease_expiry_unix(r.lease_expiry_unix());
  s.set_uptime_seconds(r.uptime_seconds());
  s.set_dhcp_client(std::string(io::truncate_utf8(r.dhcp_client(), 16)));
  s.set_received_unix(now);
  s.set_reports(++a->agent_reports);
  a->agent = s;
  if (!s.host_name().empty()) engine_.on_agent_host_name(now, a->id, s.host_name());
}

}  // namespace wownet
