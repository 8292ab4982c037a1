// wownet-hostd's io shell around the pure HostEngine: owns the bridges and
// TAPs of the attachments, the control socket, the agent channel and the
// state file, and runs everything on one Asio io_context.
#pragma once

#include <sys/uio.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include "io/asio.h"

#include "config.h"
#include "core/durable_replies.h"
#include "core/host_engine.h"
#include "io/agent_channel.h"
#include "io/control_server.h"
#include "io/link_manager.h"
#include "io/link_reaper.h"
#include "io/metrics_server.h"
#include "io/state_store.h"
#include "io/tap_device.h"
#include "overlay_service.h"
#include "proto/control.pb.h"

namespace wownet {

class Daemon : public OverlayService::TapSink {
 public:
  Daemon(boost::asio::io_context& io, HostdConfig config);
  ~Daemon() override;

  // Loads the state, restores attachments, removes stale bridges and TAPs of
  // ours, opens the control socket and the agent channel. On failure returns
  // false with a one-line `error`.
  bool start(std::string& error);
  // Closes sockets and TAPs; bridges stay for the next start to adopt.
  void stop();

  // Answers one control request.
  void handle(const control::Request& req, control::Response& resp);

  // Reads the config file again (validated, with the command line's
  // overrides applied); nullopt with a one-line `error` if it does not load.
  using ConfigLoader = std::function<std::optional<HostdConfig>(std::string& error)>;
  // `file` names the config file in reports; without a loader there is
  // nothing to reload.
  void set_config_loader(std::string file, ConfigLoader loader) {
    config_file_ = std::move(file);
    config_loader_ = std::move(loader);
  }
  struct ReloadResult {
    std::string error;  // non-empty: refused whole, nothing changed
    std::vector<std::string> applied, refused;
  };
  // SIGHUP, systemctl reload, wownetctl reload: re-reads the config and the
  // CRL, applies what can change live (config_reload.h) and logs a line
  // per refused key and one summary; `trigger` names the cause in the log.
  ReloadResult reload(const std::string& trigger);

 private:
  struct Attachment {
    AttachmentId id = 0;
    std::string vm, vif, agent_ifname, bridge, tap;
    std::string state = "down";
    int agent_ifindex = 0;
    io::TapDevice tap_device;
    std::unique_ptr<boost::asio::posix::stream_descriptor> stream;
    std::optional<control::AgentStatus> agent;
    std::uint64_t agent_reports = 0;
    int vif_ifindex = 0;  // the VIF we put on the bridge; a new one must be re-attached
    unsigned mtu = 0;     // the TAP's MTU as set
    UnixTime report_window = 0;
    std::uint32_t reports_in_window = 0;
  };

  void attach(const control::AttachRequest& req, control::Response& resp);
  void detach(const control::DetachRequest& req, control::Response& resp);
  void list(control::Response& resp);
  void leases(const control::LeasesRequest& req, control::Response& resp);
  void lease_release(const control::LeaseReleaseRequest& req, control::Response& resp);
  void status(control::Response& resp);
  void peers(control::Response& resp);
  void answer_reload(control::Response& resp);
  // Opens the metrics endpoint of `next` in place of the running one;
  // false (the running one kept) with `error` if it cannot listen.
  bool move_metrics(const MetricsConfig& next, std::string& error);
  void fill(const Attachment& a, control::Attachment& out, UnixTime now) const;

  // Creates or adopts the bridge and TAP of `a` and starts reading. Returns
  // an empty string on success, else why not.
  std::string bring_up(Attachment& a, bool adopt);
  static std::unique_ptr<io::LinkReaper> make_reaper();
  void tear_down(Attachment& a, bool delete_bridge);
  void remove_strays();
  // Writes a frame to an attachment's TAP (with a zero virtio-net header
  // when the TAP uses offloads). False if it could not. With `persist`,
  // while the own state in memory is not on disk the frame is held and
  // goes out after the one save at the end of this turn (flush_replies).
  bool write_frame(AttachmentId to, ConstByteSpan frame, bool persist) override;
  bool takes_super_frames(AttachmentId to) const override;
  bool write_frame_parts(AttachmentId to, const std::uint8_t* vnet_header, ConstByteSpan ethernet_header,
                         std::span<const ConstByteSpan> parts, std::size_t bytes) override;
  // Sends a VM's packet through the overlay, completing offloaded checksums
  // and cutting TSO frames into segments when `vnet_header` is given.
  void send_to_peer(const FrameAction& act, const std::uint8_t* vnet_header);
  void read_tap(Attachment& a);
  // The TAP failed under us (deleted with `ip link del`, ...): stops reading
  // it and marks the attachment down; tick() recreates it.
  void lose_tap(Attachment& a, int error);
  void drain_tap(Attachment& a);
  // The attachment whose agent channel has `ifindex`, or nullptr.
  Attachment* find_agent_channel(int ifindex);
  // Gate of the agent channel: true if a datagram that arrived on `ifindex`
  // may be parsed (an agent channel, within its rate); counts the rest.
  bool admit_agent_report(int ifindex);
  void on_agent_report(int ifindex, const wownet::agent::Report& report);
  void tick();
  // The Prometheus exposition ([metrics]): every counter of status, per VM
  // and per peer node, gauges, latency histograms.
  std::string metrics_text() const;
  // Calls f(name, value) for every counter the daemon keeps around the
  // engine (status: engine, metrics: wownet_engine_*).
  template <typename F>
  void visit_counters(F&& f) const {
    f("tap_write_errors", tap_write_errors_), f("offload_mismatch", offload_mismatch_), f("taps_lost", taps_lost_);
    f("replies_deferred", replies_.counters().dropped), f("no_overlay", no_overlay_);
    f("state_saves", state_saves_), f("replies_after_save", replies_.counters().replies);
    f("agent_reports", agent_reports_), f("agent_reports_ignored", agent_reports_ignored_ + agent_channel_.malformed());
    f("agent_reports_limited", agent_reports_limited_), f("agent_reports_malformed", agent_channel_.malformed());
    f("agent_reports_bad_utf8", agent_channel_.malformed(io::AgentReportError::Utf8));
  }
  // Writes the state file (the attachments and this host's own leases);
  // false (logged) if it could not be written.
  bool save_state();
  void maybe_save_state();
  // True if the attachments and own leases on disk are the ones in memory.
  bool own_state_saved() const;
  // Group commit of DHCP replies (write_frame with `persist`): at the end
  // of a turn of the loop, saves once and sends every reply held in it.
  void flush_replies();
  Attachment* find_attachment(const std::string& name);
  AttachmentId next_id() const;

  boost::asio::io_context& io_;
  HostdConfig config_;
  std::string config_file_;
  ConfigLoader config_loader_;
  HostEngine engine_;
  io::StateStore store_;
  // Registry mode: the other nodes' leases, written every kCacheInterval
  // at most (off the reply path), read at start until the snapshot comes.
  io::StateStore cache_;
  std::uint64_t cached_version_ = ~std::uint64_t{0};
  UnixTime cached_at_ = 0;
  std::unique_ptr<io::LinkManager> links_;
  std::unique_ptr<io::LinkReaper> reaper_;  // removes detached VMs' links off the io thread
  io::ControlServer control_;
  io::AgentChannel agent_channel_;
  std::unique_ptr<OverlayService> overlay_;
  std::unique_ptr<io::MetricsServer> metrics_;
  boost::asio::steady_timer timer_;
  std::map<AttachmentId, std::unique_ptr<Attachment>> attachments_;
  std::vector<int> tap_fd_;     // by attachment id, -1 if none
  std::vector<bool> tap_vnet_;  // by attachment id: frames carry a virtio-net header
  std::uint64_t saved_version_ = ~std::uint64_t{0};
  std::uint64_t saved_expiry_version_ = ~std::uint64_t{0};
  DurableReplies replies_;  // replies waiting for the save of this turn
  std::uint64_t state_saves_ = 0, agent_reports_limited_ = 0, no_overlay_ = 0;
  std::uint64_t attachments_version_ = 0;
  std::uint64_t agent_reports_ = 0, agent_reports_ignored_ = 0, tap_write_errors_ = 0, offload_mismatch_ = 0;
  std::uint64_t taps_lost_ = 0;
  UnixTime started_ = 0;
  UnixTime last_repair_ = 0;
  bool stopped_ = false;
  std::vector<std::uint8_t> frame_buffer_;
  std::vector<std::uint8_t> segment_buffer_;
  std::vector<iovec> write_iov_;  // write_frame_parts' gather list
};

}  // namespace wownet
