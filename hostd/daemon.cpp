#include "daemon.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <sys/uio.h>

#include <cerrno>
#include <ctime>
#include <regex>

#include "control_logging.h"
#include "control_version.h"
#include "core/dns.h"
#include "core/offload.h"
#include "daemon_internal.h"
#include "metrics.h"

namespace wownet {
namespace {

namespace asio = boost::asio;
constexpr std::size_t kFramesPerWakeup = 64;
constexpr std::size_t kFrameBufferSize = 65536 + 64;  // a 64 KiB GSO frame and its header
constexpr UnixTime kRepairInterval = 1;
// The registry's table (other nodes' leases) is kept as a cache for a
// restart at most this often, never on the reply path.
constexpr UnixTime kCacheInterval = 10;

using daemon_internal::set_error;
using daemon_internal::valid_vm_name;
using daemon_internal::wall_now;

}  // namespace

Daemon::Daemon(asio::io_context& io, HostdConfig config)
    : io_(io),
      config_(std::move(config)),
      engine_(config_.network),
      store_(config_.state_dir),
      cache_(config_.state_dir + "/registry-cache"),
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
    reaper_ = make_reaper();
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
  // Other nodes' leases as last cached (registry mode), until the
  // rendezvous' snapshot brings the current ones; the state file's own
  // leases come after them and win.
  state::State cached;
  std::string cache_detail;
  if (cache_.prepare() || cache_.load(cached, cache_detail)) cached.Clear();
  std::vector<const state::LeaseRecord*> records;
  for (const auto* from : {&cached, &st})
    for (const auto& r : from->leases()) records.push_back(&r);
  std::vector<Lease> leases;
  for (const state::LeaseRecord* record : records) {
    const auto& r = *record;
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
  engine_.apply_reservations(now);  // reservations added while hostd was down
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
    overlay_->apply_reservations();
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
  if (const auto& m = config_.metrics; m.enabled) {
    metrics_ = std::make_unique<io::MetricsServer>(io_, [this] { return metrics_text(); });
    if (auto ec = metrics_->open(m.listen.address, m.listen.port)) {
      error =
          "metrics listen " + m.listen.address.to_string() + ":" + std::to_string(m.listen.port) + ": " + ec.message();
      return false;
    }
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
  if (metrics_) metrics_->close();
  if (overlay_) overlay_->stop();
  for (auto& [id, a] : attachments_) tear_down(*a, false);
  if (links_) maybe_save_state();
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
      // The engine's own answer (DHCP, ARP, DNS): a new binding must be on
      // disk before the VM hears of it.
      write_frame(act.to, act.frame, true);
      for (ConstByteSpan more : act.more) write_frame(act.to, more, true);
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
  if (persist && !own_state_saved()) {
    // Sent with every other reply of this turn, after one save.
    if (replies_.hold(to, frame)) asio::post(io_, [this] { flush_replies(); });
    return true;
  }
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

// --- housekeeping ----------------------------------------------------------

void Daemon::tick() {
  UnixTime now = wall_now();
  if (now >= engine_.next_deadline()) {
    // Retransmissions and resets of DNS-over-TCP connections.
    struct TapWriter : TapFrameSink {
      Daemon& daemon;
      explicit TapWriter(Daemon& d) : daemon(d) {}
      void frame(std::uint32_t to, ConstByteSpan f) override { daemon.write_frame(to, f, false); }
    } writer(*this);
    engine_.on_timer(now, &writer);
  }
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
  if (!own_state_saved() || engine_.own_expiry_version() != saved_expiry_version_) save_state();
  // The rest of the table, for a restart that finds no rendezvous at once.
  const UnixTime now = wall_now();
  if (engine_.registry_mode() && engine_.state_version() != cached_version_ && now - cached_at_ >= kCacheInterval) {
    cached_at_ = now;
    cached_version_ = engine_.state_version();
    state::State st;
    st.set_format(1);
    for (const Lease& l : engine_.leases().snapshot()) {
      if (l.node == engine_.self_node()) continue;
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
    if (auto ec = cache_.save(st)) spdlog::debug("cannot write {}: {}", cache_.path(), ec.message());
  }
}

bool Daemon::own_state_saved() const { return engine_.own_state_version() + attachments_version_ == saved_version_; }

void Daemon::flush_replies() {
  if (stopped_) return;
  replies_.flush([this] { return own_state_saved() || save_state(); },
                 [this](AttachmentId to, ConstByteSpan frame) { write_frame(to, frame, false); });
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
  // Only this host's own leases: in registry mode the rest of the table
  // comes back from the registry's snapshot when the host registers.
  for (const Lease& l : engine_.leases().own_leases()) {
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
  saved_version_ = engine_.own_state_version() + attachments_version_;
  saved_expiry_version_ = engine_.own_expiry_version();
  ++state_saves_;
  return true;
}

// --- control requests ------------------------------------------------------

void Daemon::handle(const control::Request& req, control::Response& resp) {
  log_control_request(req);
  resp.set_code(control::OK);
  switch (req.body_case()) {
    case control::Request::kAttach: attach(req.attach(), resp); break;
    case control::Request::kDetach: detach(req.detach(), resp); break;
    case control::Request::kList: list(resp); break;
    case control::Request::kLeases: leases(req.leases(), resp); break;
    case control::Request::kLeaseRelease: lease_release(req.lease_release(), resp); break;
    case control::Request::kStatus: status(resp); break;
    case control::Request::kPeers: peers(resp); break;
    case control::Request::kNodes:
    case control::Request::kPath: {
      if (!overlay_) {
        set_error(resp, control::FAILED_PRECONDITION,
                  "this hostd runs without the overlay (no [overlay] in its config)");
        break;
      }
      std::string error;
      const bool ok = req.has_nodes() ? overlay_->fill_nodes(*resp.mutable_nodes(), error)
                                      : overlay_->fill_path(req.path().target(), *resp.mutable_path(), error);
      if (!ok) set_error(resp, req.has_nodes() ? control::FAILED_PRECONDITION : control::NOT_FOUND, error);
      break;
    }
    case control::Request::kVersion: answer_version(resp); break;
    case control::Request::kLogLevel: answer_log_level(req.log_level(), resp); break;
    case control::Request::kReload: answer_reload(resp); break;
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
  visit_counters(put(eng));
  engine_.dhcp_counters().visit(put(*s->mutable_dhcp()));
  engine_.dns_counters().visit(put(*s->mutable_dns()));
  engine_.dns_tcp_counters().visit(
      [&map = *s->mutable_dns()](const char* name, std::uint64_t v) { map[std::string("tcp_") + name] = v; });
  s->set_role(overlay_ ? "" : "single-host");
  if (overlay_) overlay_->fill_status(*s);
  s->set_agent_reports(agent_reports_);
  s->set_agent_reports_ignored(agent_reports_ignored_ + agent_channel_.malformed());
}

std::string Daemon::metrics_text() const {
  util::PromText out;
  metrics::gauge(out, "wownet_build_info", {{"version", WOWNET_VERSION}}, 1);
  metrics::gauge(out, "wownet_start_time_seconds", {}, double(started_));
  metrics::gauge(out, "wownet_attachments", {}, double(attachments_.size()));
  for (const auto& [id, a] : attachments_)
    metrics::gauge(out, "wownet_attachment_up", {{"vm", a->vm}}, a->state == "up");
  metrics::write_engine(out, engine_, wall_now());
  visit_counters(metrics::counters(out, "engine"));
  if (metrics_) metrics_->counters().visit(metrics::counters(out, "metrics_http"));
  if (overlay_) overlay_->write_metrics(out);
  return out.text();
}

}  // namespace wownet
