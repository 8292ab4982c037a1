#include "daemon.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <sys/uio.h>

#include <cerrno>
#include <ctime>
#include <regex>

#include "control_version.h"
#include "core/dns.h"
#include "core/offload.h"

namespace wownet {
namespace {

namespace asio = boost::asio;
constexpr std::size_t kFramesPerWakeup = 64;
constexpr std::size_t kFrameBufferSize = 65536 + 64;  // a 64 KiB GSO frame and its header
constexpr UnixTime kRepairInterval = 1;
constexpr std::uint32_t kSyncSavesPerSecond = 20;
constexpr std::uint32_t kAgentReportsPerSecond = 5;

UnixTime wall_now() { return UnixTime(std::time(nullptr)); }

bool valid_vm_name(const std::string& s) {
  static const std::regex re("[A-Za-z0-9][A-Za-z0-9._-]{0,63}");
  return std::regex_match(s, re);
}

bool is_ours(const std::string& name, AttachmentId* id) {
  static const std::regex re("wn[bt]([0-9]{1,6})");
  std::smatch m;
  if (!std::regex_match(name, m, re)) return false;
  if (id) *id = AttachmentId(std::stoul(m[1].str()));
  return true;
}

void set_error(control::Response& r, control::Code code, const std::string& msg) {
  r.set_code(code);
  r.set_message(msg);
}

}  // namespace

Daemon::Daemon(asio::io_context& io, HostdConfig config)
    : io_(io),
      config_(std::move(config)),
      engine_(config_.network),
      store_(config_.state_dir),
      control_(io, [this](const control::Request& req, control::Response& resp) { handle(req, resp); }),
      agent_channel_(
          io, [this](int ifindex) { return admit_agent_report(ifindex); },
          [this](int ifindex, const agent::Report& r) { on_agent_report(ifindex, r); }),
      timer_(io),
      frame_buffer_(kFrameBufferSize),
      segment_buffer_(kFrameBufferSize),
      write_iov_(256) {}

Daemon::~Daemon() { stop(); }

bool Daemon::start(std::string& error) {
  started_ = wall_now();
  if (auto ec = store_.prepare()) {
    error = "state dir " + store_.dir() + ": " + ec.message();
    return false;
  }
  try {
    links_ = std::make_unique<io::LinkManager>();
  } catch (const std::system_error& e) {
    error = std::string("netlink: ") + e.what();
    return false;
  }
  state::State st;
  std::string detail;
  if (auto ec = store_.load(st, detail)) {
    error = detail.empty() ? store_.path() + ": " + ec.message() : detail;
    return false;
  }
  UnixTime now = wall_now();
  std::vector<Lease> leases;
  for (const auto& r : st.leases()) {
    Lease l;
    auto addr = Ipv4Addr::parse(r.address());
    auto mac = MacAddr::parse(r.mac());
    auto state = lease_state_from_string(r.state());
    auto origin = lease_origin_from_string(r.origin());
    if (!addr || !state || !origin || (!mac && *state != LeaseState::Declined)) {
      spdlog::warn("{}: skipping unreadable lease record for '{}'", store_.path(), r.address());
      continue;
    }
    l.address = *addr;
    if (mac) l.mac = *mac;
    l.vm = r.vm();
    l.host_name = sanitize_host_name(r.host_name());
    l.expiry = r.expiry_unix();
    l.state = *state;
    l.origin = *origin;
    l.node = r.node();
    leases.push_back(l);
  }
  engine_.leases().restore(leases);
  for (const auto& r : st.attachments()) {
    AttachmentId id{};
    if (r.id() == 0 || r.id() > 999999 || attachments_.count(r.id()) || !valid_vm_name(r.vm())) {
      spdlog::warn("{}: skipping unreadable attachment record {}", store_.path(), r.id());
      continue;
    }
    (void)id;
    auto a = std::make_unique<Attachment>();
    a->id = r.id();
    a->vm = r.vm();
    a->vif = r.vif();
    a->agent_ifname = r.agent_ifname();
    a->bridge = "wnb" + std::to_string(a->id);
    a->tap = "wnt" + std::to_string(a->id);
    engine_.add_attachment(a->id, a->vm, MacAddr::parse(r.mac()), now);
    Attachment& ref = *a;
    attachments_[a->id] = std::move(a);
    std::string why = bring_up(ref, true);
    if (why.empty()) {
      spdlog::info("restored attachment {} (vm {}, vif {})", ref.id, ref.vm, ref.vif);
    } else {
      spdlog::warn("attachment {} (vm {}) not up yet: {}", ref.id, ref.vm, why);
    }
  }
  remove_strays();
  engine_.on_timer(now);
  if (config_.overlay.enabled) {
    overlay_ = std::make_unique<OverlayService>(io_, config_, engine_, *this);
    if (!overlay_->start(error)) return false;
  }
  save_state();

  if (auto ec = control_.open(config_.control_socket)) {
    error = "control socket " + config_.control_socket + ": " + ec.message();
    return false;
  }
  if (auto ec = agent_channel_.open(config_.agent_port)) {
    error = "agent channel UDP port " + std::to_string(config_.agent_port) + ": " + ec.message();
    return false;
  }
  tick();
  spdlog::info("wownet-hostd up: network {} gateway {} domain {} mtu {}, {} attachments, {} leases",
               config_.network.network.to_string(), config_.network.gateway.to_string(), config_.network.domain,
               config_.network.mtu, attachments_.size(), engine_.leases().active_count(now));
  return true;
}

void Daemon::stop() {
  if (stopped_) return;
  stopped_ = true;
  timer_.cancel();
  control_.close();
  agent_channel_.close();
  if (overlay_) overlay_->stop();
  for (auto& [id, a] : attachments_) tear_down(*a, false);
  if (links_) maybe_save_state();
}

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
  std::error_code ec;
  auto link = links_->find(ifname, ec);
  if (ec) return set_error(resp, control::INTERNAL, "netlink: " + ec.message());
  if (!link) return set_error(resp, control::NOT_FOUND, "no interface named " + ifname);
  if (!link->is_ethernet || link->kind == "bridge" || link->kind == "tun")
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
  engine_.add_attachment(a->id, a->vm, std::nullopt, wall_now());
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

// --- data path -------------------------------------------------------------

void Daemon::read_tap(Attachment& a) {
  AttachmentId id = a.id;
  a.stream->async_wait(asio::posix::stream_descriptor::wait_read, [this, id](const boost::system::error_code& ec) {
    if (ec) return;  // operation_aborted: detached or stopping
    auto it = attachments_.find(id);
    if (it == attachments_.end() || !it->second->stream) return;
    drain_tap(*it->second);
    if (overlay_) overlay_->flush_lease_asks();
    auto again = attachments_.find(id);  // a control request cannot run in between, but stay safe
    if (again != attachments_.end() && again->second->stream) read_tap(*again->second);
  });
}

void Daemon::drain_tap(Attachment& a) {
  int fd = tap_fd_[a.id];
  bool vnet = tap_vnet_[a.id];
  std::size_t hdr = vnet ? io::TapDevice::kVnetHeaderSize : 0;
  UnixTime now = wall_now();
  std::uint8_t* buf = frame_buffer_.data();
  // What goes to peers in this round leaves in UDP GSO trains.
  struct Train {
    OverlayService* overlay;
    explicit Train(OverlayService* o) : overlay(o) {
      if (overlay) overlay->begin_train();
    }
    ~Train() {
      if (overlay) overlay->end_train();
    }
  } train(overlay_.get());
  for (std::size_t i = 0; i < kFramesPerWakeup; ++i) {
    ssize_t n = ::read(fd, buf, frame_buffer_.size());
    if (n <= 0) {
      if (n < 0 && errno != EAGAIN && errno != EINTR) lose_tap(a, errno);
      return;
    }
    if (std::size_t(n) <= hdr) continue;
    bool partial = vnet && (buf[0] & io::TapDevice::kVnetNeedsChecksum) != 0;
    bool gso = vnet && buf[1] != io::TapDevice::kVnetGsoNone;
    ByteSpan frame(buf + hdr, std::size_t(n) - hdr);
    FrameAction act = engine_.on_tap_frame(now, a.id, frame, partial);
    if (act.kind == FrameAction::Kind::SendToPeer) {
      if (!overlay_ || act.frame.size() < 20) {
        ++no_overlay_;
        continue;
      }
      send_to_peer(act, vnet ? buf : nullptr);
      continue;
    }
    if (act.kind != FrameAction::Kind::WriteToTap) continue;
    // A new binding must be on disk before the VM hears of it.
    if (!persist_before_reply()) continue;
    if (act.to >= tap_fd_.size() || tap_fd_[act.to] < 0) {
      ++tap_write_errors_;
      continue;
    }
    bool forwarded = act.frame.data() == frame.data();
    if (forwarded && vnet && tap_vnet_[act.to]) {
      // Forwarded in place between offloading TAPs: the header read with
      // the frame stays valid, so both go out as they came in.
      if (::write(tap_fd_[act.to], buf, std::size_t(n)) < 0) {
        ++tap_write_errors_;
        continue;
      }
      engine_.on_frame_sent(act.to, act.frame.size());
    } else if (forwarded && (partial || gso) && !tap_vnet_[act.to]) {
      ++offload_mismatch_;  // cannot hand an offloaded frame to a plain TAP
    } else {
      write_frame(act.to, act.frame, false);  // already persisted above
    }
  }
}

void Daemon::lose_tap(Attachment& a, int error) {
  ++taps_lost_;
  spdlog::warn("TAP {} of vm {} failed ({}): attachment down, recreating it", a.tap, a.vm, std::strerror(error));
  tear_down(a, false);
  a.state = std::string("TAP lost: ") + std::strerror(error);
}

void Daemon::send_to_peer(const FrameAction& act, const std::uint8_t* vnet_header) {
  // The engine's packet lies inside frame_buffer_, which this daemon owns.
  ByteSpan packet(const_cast<std::uint8_t*>(act.frame.data()), act.frame.size());
  Ipv4Addr dst = Ipv4Addr::from(packet.data() + 16);
  if (vnet_header) {
    // Finish what the TAP left to "hardware": the overlay is our NIC.
    VnetHeader h = VnetHeader::parse(vnet_header);
    if (h.gso() == VnetHeader::kGsoTcpV4) {
      // The VM chose gso_size: a tiny one would turn one frame into
      // tens of thousands of datagrams.
      if (h.gso_size < 536 || h.gso_size > 9000) {
        ++offload_mismatch_;
        return;
      }
      struct Sink : SegmentSink {
        OverlayService* overlay;
        std::string_view peer;
        Ipv4Addr dst;
        void segment(ConstByteSpan seg) override { overlay->send_packet(peer, seg, dst); }
      } sink;
      sink.overlay = overlay_.get();
      sink.peer = act.peer;
      sink.dst = dst;
      if (segment_tcp4(packet, h.gso_size, ByteSpan(segment_buffer_.data(), segment_buffer_.size()), sink) == 0)
        ++offload_mismatch_;
      return;
    }
    if (h.needs_checksum() && (h.checksum_start < kEthernetHeaderSize ||
                               !complete_checksum(packet, h.checksum_start - kEthernetHeaderSize, h.checksum_offset))) {
      ++offload_mismatch_;
      return;
    }
  }
  overlay_->send_packet(act.peer, packet, dst);
}

bool Daemon::write_frame(AttachmentId to, ConstByteSpan frame, bool persist) {
  static const std::uint8_t zero_header[io::TapDevice::kVnetHeaderSize] = {};
  int fd = to < tap_fd_.size() ? tap_fd_[to] : -1;
  if (fd < 0) return false;
  if (persist && !persist_before_reply()) return false;
  ssize_t w;
  if (tap_vnet_[to]) {
    iovec iov[2] = {{const_cast<std::uint8_t*>(zero_header), sizeof zero_header},
                    {const_cast<std::uint8_t*>(frame.data()), frame.size()}};
    w = ::writev(fd, iov, 2);
  } else {
    w = ::write(fd, frame.data(), frame.size());
  }
  if (w < 0) {
    ++tap_write_errors_;
    return false;
  }
  engine_.on_frame_sent(to, frame.size());
  return true;
}

bool Daemon::takes_super_frames(AttachmentId to) const {
  return to < tap_fd_.size() && tap_fd_[to] >= 0 && tap_vnet_[to];
}

bool Daemon::write_frame_parts(AttachmentId to, const std::uint8_t* vnet_header, ConstByteSpan ethernet_header,
                               std::span<const ConstByteSpan> parts, std::size_t bytes) {
  if (!takes_super_frames(to) || parts.size() + 2 > write_iov_.size()) return false;
  write_iov_[0] = {const_cast<std::uint8_t*>(vnet_header), io::TapDevice::kVnetHeaderSize};
  write_iov_[1] = {const_cast<std::uint8_t*>(ethernet_header.data()), ethernet_header.size()};
  for (std::size_t i = 0; i < parts.size(); ++i)
    write_iov_[i + 2] = {const_cast<std::uint8_t*>(parts[i].data()), parts[i].size()};
  if (::writev(tap_fd_[to], write_iov_.data(), int(parts.size() + 2)) < 0) {
    ++tap_write_errors_;
    return false;
  }
  engine_.on_frame_sent(to, ethernet_header.size() + bytes);
  return true;
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

// --- housekeeping ----------------------------------------------------------

void Daemon::tick() {
  UnixTime now = wall_now();
  if (now >= engine_.next_deadline()) engine_.on_timer(now);
  if (now - last_repair_ >= kRepairInterval) {
    last_repair_ = now;
    for (auto& [id, a] : attachments_) {
      std::error_code ec;
      if (a->state != "up") {
        std::string why = bring_up(*a, true);
        if (why.empty()) spdlog::info("attachment {} (vm {}) is up", a->id, a->vm);
        a->state = why.empty() ? "up" : why;
      } else {
        // Gone, or replaced by a new device of the same name (VM restarted):
        // the new one is not on our bridge yet.
        auto vif = links_->find(a->vif, ec);
        auto bridge = links_->find(a->bridge, ec);
        if (!vif) {
          a->state = "VIF " + a->vif + " is missing";
        } else if (vif->ifindex != a->vif_ifindex || !bridge || vif->master_ifindex != bridge->ifindex) {
          spdlog::info("attachment {} (vm {}): VIF {} changed, attaching it again", a->id, a->vm, a->vif);
          std::string why = bring_up(*a, true);
          a->state = why.empty() ? "up" : why;
        }
      }
      if (!a->agent_ifname.empty()) {
        auto agent_if = links_->find(a->agent_ifname, ec);
        a->agent_ifindex = agent_if ? agent_if->ifindex : 0;
      }
    }
  }
  maybe_save_state();
  timer_.expires_after(std::chrono::seconds(1));
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) tick();
  });
}

void Daemon::maybe_save_state() {
  if (engine_.state_version() + attachments_version_ != saved_version_ ||
      engine_.expiry_version() != saved_expiry_version_)
    save_state();
}

bool Daemon::persist_before_reply() {
  if (engine_.state_version() + attachments_version_ == saved_version_) return true;
  UnixTime now = wall_now();
  if (save_window_ != now) {
    save_window_ = now;
    saves_in_window_ = 0;
  }
  // A VM churning its lease cannot make hostd fsync without end: past the
  // budget the reply waits for the client's retransmission.
  if (++saves_in_window_ > kSyncSavesPerSecond || !save_state()) {
    ++replies_deferred_;
    return false;
  }
  return true;
}

bool Daemon::save_state() {
  state::State st;
  st.set_format(1);
  for (const auto& [id, a] : attachments_) {
    auto* r = st.add_attachments();
    r->set_id(id);
    r->set_vm(a->vm);
    r->set_vif(a->vif);
    r->set_agent_ifname(a->agent_ifname);
    if (const AttachmentState* s = engine_.attachment(id); s && s->mac) r->set_mac(s->mac->to_string());
  }
  for (const Lease& l : engine_.leases().snapshot()) {
    auto* r = st.add_leases();
    r->set_address(l.address.to_string());
    if (l.state != LeaseState::Declined) r->set_mac(l.mac.to_string());
    r->set_vm(l.vm);
    r->set_host_name(l.host_name);
    r->set_expiry_unix(l.expiry);
    r->set_state(to_string(l.state));
    r->set_origin(to_string(l.origin));
    r->set_node(l.node);
  }
  if (auto ec = store_.save(st)) {
    spdlog::error("cannot save state to {}: {}", store_.path(), ec.message());
    return false;
  }
  saved_version_ = engine_.state_version() + attachments_version_;
  saved_expiry_version_ = engine_.expiry_version();
  return true;
}

// --- control requests ------------------------------------------------------

void Daemon::handle(const control::Request& req, control::Response& resp) {
  resp.set_code(control::OK);
  switch (req.body_case()) {
    case control::Request::kAttach: attach(req.attach(), resp); break;
    case control::Request::kDetach: detach(req.detach(), resp); break;
    case control::Request::kList: list(resp); break;
    case control::Request::kLeases: leases(resp); break;
    case control::Request::kStatus: status(resp); break;
    case control::Request::kPeers: peers(resp); break;
    case control::Request::kVersion: answer_version(resp); break;
    case control::Request::kCaPending:
    case control::Request::kCaDecide: {
      EnrollmentDesk* desk = overlay_ ? overlay_->desk() : nullptr;
      if (!desk) {
        set_error(resp, control::FAILED_PRECONDITION,
                  "this hostd holds no CA (set [overlay] ca_dir on the rendezvous that has the CA's files)");
        break;
      }
      if (req.has_ca_pending()) {
        for (const auto& e : desk->list()) {
          auto* p = resp.mutable_pending()->add_requests();
          p->set_id(e.id);
          p->set_name(e.name);
          p->set_from(e.from);
          p->set_submitted_unix(e.submitted);
          p->set_state(e.state);
        }
        break;
      }
      const auto& d = req.ca_decide();
      std::string why = desk->decide(wall_now(), d.id(), d.approve(), d.days() ? int(d.days()) : 365);
      if (!why.empty()) {
        set_error(resp, control::INVALID_ARGUMENT, why);
      } else {
        resp.set_message((d.approve() ? "approved " : "denied ") + d.id());
      }
      break;
    }
    default: set_error(resp, control::INVALID_ARGUMENT, "unknown request"); break;
  }
}

void Daemon::peers(control::Response& resp) {
  if (!overlay_) {
    resp.set_code(control::FAILED_PRECONDITION);
    resp.set_message("this hostd runs without the overlay (no [overlay] in its config)");
    return;
  }
  overlay_->fill_peers(*resp.mutable_peers());
}

void Daemon::fill(const Attachment& a, control::Attachment& out, UnixTime now) const {
  out.set_id(a.id);
  out.set_vm(a.vm);
  out.set_vif(a.vif);
  out.set_bridge(a.bridge);
  out.set_tap(a.tap);
  out.set_agent_ifname(a.agent_ifname);
  out.set_state(a.state);
  out.set_mtu(a.mtu);
  if (const AttachmentState* s = engine_.attachment(a.id)) {
    if (s->mac) out.set_mac(s->mac->to_string());
    if (s->ip) {
      out.set_address(s->ip->to_string());
      if (const Lease* l = engine_.leases().find(*s->ip)) {
        out.set_lease_expiry_unix(l->expiry);
        out.set_host_name(l->host_name);
      }
    }
    auto* c = out.mutable_counters();
    c->set_rx_frames(s->counters.rx_frames);
    c->set_rx_bytes(s->counters.rx_bytes);
    c->set_tx_frames(s->counters.tx_frames);
    c->set_tx_bytes(s->counters.tx_bytes);
    c->set_dropped(s->counters.total_drops());
    for (std::size_t i = 0; i < s->counters.drops.size(); ++i) {
      if (s->counters.drops[i]) (*c->mutable_drops())[to_string(DropReason(i))] = s->counters.drops[i];
    }
  }
  if (a.agent) {
    auto* g = out.mutable_agent();
    *g = *a.agent;
    g->set_age_seconds(std::uint64_t(std::max<UnixTime>(0, now - a.agent->received_unix())));
  }
}

void Daemon::list(control::Response& resp) {
  UnixTime now = wall_now();
  auto* l = resp.mutable_attachments();
  for (const auto& [id, a] : attachments_) fill(*a, *l->add_attachments(), now);
}

void Daemon::leases(control::Response& resp) {
  UnixTime now = wall_now();
  auto* out = resp.mutable_leases();
  for (const Lease& l : engine_.leases().snapshot()) {
    auto* r = out->add_leases();
    r->set_address(l.address.to_string());
    if (l.state != LeaseState::Declined) r->set_mac(l.mac.to_string());
    r->set_vm(l.vm);
    r->set_host_name(l.host_name);
    r->set_auto_name(auto_name(l.address) + "." + config_.network.domain);
    r->set_expiry_unix(l.expiry);
    r->set_state(l.state == LeaseState::Bound && !l.active(now) ? "expired" : to_string(l.state));
    r->set_origin(to_string(l.origin));
  }
}

void Daemon::status(control::Response& resp) {
  UnixTime now = wall_now();
  auto* s = resp.mutable_status();
  s->set_version(WOWNET_VERSION);
  s->set_network(config_.network.network.to_string());
  s->set_gateway(config_.network.gateway.to_string());
  s->set_domain(config_.network.domain);
  s->set_mtu(config_.network.mtu);
  s->set_attachments(std::uint32_t(attachments_.size()));
  s->set_active_leases(std::uint32_t(engine_.leases().active_count(now)));
  s->set_uptime_seconds(std::uint64_t(now - started_));
  s->set_state_dir(config_.state_dir);
  const auto& ec = engine_.counters();
  for (std::size_t i = 0; i < ec.drops.size(); ++i) (*s->mutable_drops())[to_string(DropReason(i))] = ec.drops[i];
  auto& eng = *s->mutable_engine();
  const auto put = [](auto& map) { return [&map](const char* name, std::uint64_t v) { map[name] = v; }; };
  ec.visit(put(eng));
  // Packets from other nodes that were dropped on arrival, by reason.
  for (std::size_t i = 0; i < ec.peer_drops.size(); ++i)
    if (ec.peer_drops[i]) eng[std::string("peer_drop_") + to_string(DropReason(i))] = ec.peer_drops[i];
  eng["tap_write_errors"] = tap_write_errors_;
  eng["offload_mismatch"] = offload_mismatch_;
  eng["taps_lost"] = taps_lost_;
  eng["replies_deferred"] = replies_deferred_;
  eng["no_overlay"] = no_overlay_;
  eng["agent_reports_limited"] = agent_reports_limited_;
  eng["agent_reports_malformed"] = agent_channel_.malformed();
  eng["agent_reports_bad_utf8"] = agent_channel_.malformed(io::AgentReportError::Utf8);
  engine_.dhcp_counters().visit(put(*s->mutable_dhcp()));
  engine_.dns_counters().visit(put(*s->mutable_dns()));
  s->set_role(overlay_ ? "" : "single-host");
  if (overlay_) overlay_->fill_status(*s);
  s->set_agent_reports(agent_reports_);
  s->set_agent_reports_ignored(agent_reports_ignored_ + agent_channel_.malformed());
}

}  // namespace wownet
