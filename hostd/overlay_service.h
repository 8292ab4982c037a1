// The overlay side of wownet-hostd: one UDP socket shared by every session,
// the PeerManager (DTLS + AEAD data channel per peer node), and either the
// registry itself (role "rendezvous") or a registry client that carries the
// engine's lease requests to the rendezvous nodes (role "host").
//
// NAT traversal (host role). To reach a node, a host resolves it at the
// rendezvous, which sends that node a Punch; the node sends punch probes
// with a low TTL that open its own NAT toward the host, and the host starts
// its handshake a moment later (punch_wait) so that it gets through. The
// rendezvous relays (datagram types 9 and 10, see overlay.proto): every
// resolved node also gets a relayed path, which PeerManager tries once
// traffic has waited relay_after for a direct session. While a node is
// reached only through the relay, the host asks for a new punch every
// direct_retry seconds and moves to the direct path once it opens.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "config.h"
#include "core/gro.h"
#include "core/host_engine.h"
#include "crypto/dtls.h"
#include "crypto/pki.h"
#include "enrollment.h"
#include "io/asio.h"
#include "io/udp_socket.h"
#include "overlay/nat_traversal.h"
#include "overlay/peer_manager.h"
#include "overlay/registry_client.h"
#include "overlay/relay.h"
#include "proto/control.pb.h"
#include "proto/overlay.pb.h"
#include "util/prom_text.h"

namespace wownet {
namespace registry {
class Registry;
class RegistryStore;
struct Outgoing;
class SharedRegistry;
class Presence;
enum class CrlVerdict : std::uint8_t;
}  // namespace registry
namespace io {
class EtcdClient;
}  // namespace io
class EtcdKvStore;

class OverlayService {
 public:
  // Where frames for the VMs go: the attachments' TAPs.
  class TapSink {
   public:
    virtual ~TapSink() = default;
    // Writes an Ethernet frame to an attachment's TAP; false if it could
    // not. `persist`: the frame announces new state (a DHCP reply), which
    // must be on disk first; data packets never wait for the disk.
    virtual bool write_frame(AttachmentId to, ConstByteSpan frame, bool persist) = 0;
    // True if the attachment's TAP takes frames behind a virtio-net header
    // (and so TCP super-frames that the kernel segments).
    virtual bool takes_super_frames(AttachmentId to) const = 0;
    // Writes one frame given as a virtio-net header, an Ethernet header and
    // the IPv4 packet in `parts` (`bytes` in all), with one system call.
    virtual bool write_frame_parts(AttachmentId to, const std::uint8_t* vnet_header, ConstByteSpan ethernet_header,
                                   std::span<const ConstByteSpan> parts, std::size_t bytes) = 0;
  };

  OverlayService(boost::asio::io_context& io, const HostdConfig& config, HostEngine& engine, TapSink& taps);
  ~OverlayService();

  // Loads the identity and trust store, opens the socket, restores the
  // registry (rendezvous) and starts registering (host). False with a
  // one-line `error` on failure.
  bool start(std::string& error);
  void stop();
  // After a config reload (the config this service reads already holds the
  // new live keys; `old` is the one before): applies the relay settings and
  // the rendezvous list, and re-reads the CRL file, adding what it did to
  // `applied` and what it could not to `refused`.
  void apply_reload(const HostdConfig& old, std::vector<std::string>& applied, std::vector<std::string>& refused);
  // The CA desk of a rendezvous with [overlay] ca_dir, else null.
  EnrollmentDesk* desk() { return desk_.get(); }
  const std::string& node_id() const { return node_id_; }
  const std::string& node_name() const { return node_name_; }

  // Sends a VM's IPv4 packet to the node that holds its destination.
  void send_packet(std::string_view node, ConstByteSpan packet, Ipv4Addr destination);
  // Between begin_train() and end_train(), consecutive datagrams to one
  // endpoint are gathered and leave as UDP GSO trains (one sendmsg for up
  // to 64 of them): for the segments of a TSO frame read from a TAP.
  void begin_train() { training_ = true; }
  void end_train() {
    flush_train();
    training_ = false;
  }
  // Carries the engine's queued lease requests to the registry; on a
  // rendezvous, then commits what its registry batched in this turn of the
  // loop (commit_registry). Called at the end of every turn.
  void flush_lease_asks();
  // True on a rendezvous: its registry allocates for every node.
  bool allocates() const { return registry_ != nullptr; }
  // A rendezvous: ends the lease of `addr` in the registry now (wownetctl
  // lease release), stored and pushed to every node. False with `error`
  // set on a host, or if there is no such lease.
  bool revoke_lease(Ipv4Addr addr, std::string& error);
  // A rendezvous: gives the registry the config's reservations and static
  // names (at start and on a reload) and ends the leases they forbid.
  void apply_reservations();
  // The peers, for wownetctl peers.
  void fill_peers(control::PeerList& out) const;
  void fill_status(control::Status& out) const;
  // The registry's node records (a rendezvous only): false with `error`
  // set on a host.
  bool fill_nodes(control::NodeList& out, std::string& error) const;
  // Which way traffic to `target` (VM name, host name, overlay address,
  // node name or node ID) goes from here; false with `error` set if
  // nothing by that name is known.
  bool fill_path(const std::string& target, control::PathInfo& out, std::string& error) const;
  // The overlay's Prometheus metrics: its counters and gauges (the same as
  // fill_status), per peer node, the registry's, latency histograms.
  void write_metrics(util::PromText& out) const;

  // Sends one UDP datagram (to a relayed path: through the relay).
  void send_datagram(const overlay::UdpEndpoint& to, ConstByteSpan datagram);

 private:
  // Carries out what an overlay piece returned.
  void carry_out(const overlay::Action& action);
  void carry_out(const overlay::Actions& actions);
  // Runs call(PeerManager&, Outbox&) and carries out the actions it left in
  // the Outbox; returns what the call returned. A call made while carrying
  // out another's (a control message answered at once) gets an Outbox of
  // its own, so the first call's datagrams stay valid.
  template <typename Call>
  auto with_peers(Call&& call);
  std::vector<std::unique_ptr<overlay::Outbox>> outboxes_;
  std::size_t outbox_depth_ = 0;
  // What PeerManager reports (DeliverPacket, DeliverControl, PeerUp, PeerDown).
  void deliver_packet(std::string_view node_id, ByteSpan buffer, std::size_t offset, std::size_t length);
  void deliver_control(std::string_view node_id, const overlay::NodeMessage& message);
  void peer_up(std::string_view node_id, std::string_view node_name, const overlay::UdpEndpoint& endpoint);
  void peer_down(std::string_view node_id, std::string_view reason);
  // Gives `node` a path through our relay, if we have one and relaying is on.
  void offer_relay(const std::string& node);
  void on_resolved(const overlay::Resolved& r);
  void retry_direct_paths();
  void refresh_reflexive(const std::string& node);
  // How log lines name a node: "name (short id…)" once its name is known
  // (from its session, a Resolved or a Punch), else the short id.
  std::string peer_label(std::string_view node_id) const;
  void learn_name(std::string_view node_id, std::string_view node_name);
  void persist_crl();
  // A rendezvous on SQLite: writes the lease changes of this turn in one
  // transaction, then sends the replies and pushes that waited for it.
  void commit_registry();
  // Re-reads [overlay] crl (if set) and takes it if it changed.
  void reload_crl(std::vector<std::string>& applied, std::vector<std::string>& refused);
  bool start_sessions(std::string& error);
  void on_enroll_datagram(const overlay::UdpEndpoint& from, ConstByteSpan data);
  void read_socket();
  void drain_socket();
  // Sorts one datagram by its type (core/overlay_wire.h) to the piece that handles it.
  void on_datagram(const overlay::UdpEndpoint& from, ByteSpan data);
  void arm_timer();
  void on_timer();
  void tick_second();
  // overlay_service_crl.cpp. Every crl_refresh: re-reads the CRL file (a
  // rendezvous) and re-checks every session.
  void refresh_crl();
  // The CRL file a node reads: [overlay] crl, else a rendezvous' ca_dir/crl.pem.
  std::string crl_file() const;
  // Every second on a rendezvous: re-reads the CRL file once it changed on
  // disk (wownetctl ca revoke), so that a revocation is in force at once.
  void watch_crl_file();
  // A rendezvous takes the CRL file's content if it is newer than the CRL
  // in force: trust store, registry (etcd too), hosts, sessions.
  void take_crl_file(const std::string& pem, const std::string& path);
  // A CRL found in the shared registry (etcd), verified here: taken if
  // signed by the CA and newer than the CRL in force.
  registry::CrlVerdict take_shared_crl(const std::string& pem);
  std::string crl_file_stat_, crl_file_pem_;  // the CRL file as last read
  void send_to_registry(overlay::NodeMessage message);
  void handle_registry_message(const std::string& from, const overlay::NodeMessage& m);
  // Sends what the registry queued: to its nodes over their sessions, to
  // this node's own VMs directly.
  void send_outgoing(const std::vector<registry::Outgoing>& out);
  void sync_from_registry();
  std::int64_t now_ms() const;
  UnixTime now_s() const;
  // The valid endpoints of a registry message, at most `limit`, in order.
  static std::vector<overlay::UdpEndpoint> endpoints_of(
      const google::protobuf::RepeatedPtrField<overlay::Endpoint>& list, std::size_t limit);
  static overlay::UdpEndpoint to_endpoint(const ConfigEndpoint& e);
  // Calls f(name, value) for every counter of the overlay's status (the
  // pieces' and the shell's own), and for every gauge.
  template <typename F>
  void visit_counters(F&& f) const;
  template <typename F>
  void visit_gauges(F&& f) const;

  boost::asio::io_context& io_;
  const HostdConfig& config_;
  HostEngine& engine_;
  TapSink& taps_;
  // The train being gathered: datagrams of train_segment_ bytes (the last
  // may be shorter) to train_to_, back to back.
  bool training_ = false, train_closed_ = false;
  io::Ipv4SocketAddress train_to_;
  std::size_t train_segment_ = 0, train_count_ = 0;
  std::vector<std::uint8_t> train_;
  std::uint64_t trains_sent_ = 0, train_datagrams_ = 0;
  void flush_train();
  // Sends `prefix` + `datagram` to `to`, into the train when gathering one.
  void send_to(io::Ipv4SocketAddress to, ConstByteSpan prefix, ConstByteSpan datagram);
  // Received data packets for VMs, held until the end of a receive round so
  // that consecutive TCP segments of a flow reach the TAP as one frame.
  struct Delivery {
    AttachmentId to;
    ByteSpan frame;  // Ethernet frame inside rx_batch_
  };
  std::vector<Delivery> deliveries_;
  bool collecting_ = false;
  TcpCoalescer gro_;
  std::vector<ByteSpan> gro_input_;
  std::vector<bool> delivered_;
  std::uint64_t gro_frames_ = 0, gro_super_frames_ = 0;
  void flush_deliveries();
  io::UdpSocket socket_;
  overlay::NatTraversal nat_;
  boost::asio::steady_timer timer_;
  std::chrono::steady_clock::time_point epoch_ = std::chrono::steady_clock::now();

  std::optional<crypto::TrustStore> trust_;
  std::unique_ptr<crypto::DtlsContext> dtls_;
  std::unique_ptr<overlay::PeerManager> peers_;
  std::unique_ptr<registry::RegistryStore> store_;
  std::unique_ptr<registry::Registry> registry_;
  // [registry] backend = "etcd": the client, the registry's store on it,
  // and what keeps registry_ in step with etcd (destroyed in this order's
  // reverse: shared_ first).
  std::unique_ptr<io::EtcdClient> etcd_client_;
  std::unique_ptr<EtcdKvStore> etcd_kv_;
  std::unique_ptr<registry::SharedRegistry> shared_;
  std::unique_ptr<registry::Presence> presence_;  // etcd: which rendezvous live, nodes online where
  bool start_registry(std::string& error);
  bool etcd_reachable_ = false;  // as last logged
  std::string node_id_, node_name_;
  std::string crl_pem_;
  std::unique_ptr<EnrollmentDesk> desk_;
  bool enrolling_ = false, enroll_announced_ = false;
  std::string csr_pem_;
  UnixTime last_enroll_ = 0, enroll_interval_ = 3;
  UnixTime last_crl_check_ = 0, last_second_ = 0;
  std::uint64_t synced_version_ = ~std::uint64_t{0};
  bool timer_armed_ = false;

  // Host role: the rendezvous sessions and requests in flight.
  std::map<std::string, overlay::UdpEndpoint> rendezvous_up_;   // node id -> endpoint
  std::map<std::string, std::string, std::less<>> peer_names_;  // node id -> name, for log lines
  overlay::RegistryClient registry_client_;
  std::uint64_t next_local_request_ = 1;  // rendezvous: its own VMs' requests

  // NAT traversal and relaying.
  // Relays answer to the rendezvous' registry: a node with a session is
  // found through the session layer.
  struct Directory : overlay::Relay::Directory {
    explicit Directory(const std::unique_ptr<overlay::PeerManager>* p) : peers(p) {}
    const std::unique_ptr<overlay::PeerManager>* peers;
    std::string_view node_at(const overlay::UdpEndpoint& e) const override {
      return *peers ? (*peers)->node_at(e) : std::string_view{};
    }
    std::optional<overlay::UdpEndpoint> endpoint_of(std::string_view node) const override {
      return *peers ? (*peers)->endpoint_of(node) : std::nullopt;
    }
  };
  Directory directory_{&peers_};
  overlay::Relay relay_;                           // relaying for others (relay = true), names of our relayed paths
  std::optional<overlay::UdpEndpoint> our_relay_;  // the relay we send through
  std::string relay_node_;                         // its node ID
  std::set<std::string> relay_offers_;             // rendezvous up that relay for us
  // The relays each rendezvous handed out (Registered.relays), in its order.
  struct RelayEntry {
    std::string id;
    std::optional<overlay::UdpEndpoint> endpoint;  // none: the rendezvous itself
  };
  std::map<std::string, std::vector<RelayEntry>> relay_lists_;  // rendezvous id -> its list
  std::map<std::string, overlay::UdpEndpoint> relay_nodes_;     // relay hosts we keep sessions with
  std::map<std::string, overlay::UdpEndpoint> relays_up_;       // those with a keyed session
  std::set<overlay::UdpEndpoint> relay_endpoints_;              // every relay we take deliveries from
  static overlay::Relay::Limits relay_limits(const OverlayConfig& o);
  // Sends Register (our endpoints, whether we relay) to rendezvous `id`.
  void send_register(const std::string& id);
  // Takes in a rendezvous' Registered: whether it relays and its relay list.
  void on_registered(const std::string& from, const overlay::Registered& r);
  // After any change to the relays: connects to the listed relay hosts
  // (and stops connecting to those no longer listed), recomputes
  // relay_endpoints_ and picks our relay: the first one up in the list of
  // the rendezvous we ask first, then in the others', then any rendezvous
  // that relays.
  void refresh_relays();
  // Takes relay `node` (empty: none) as ours.
  void use_relay(const std::string& node);

  io::UdpReceiveBatch rx_batch_;
  std::uint64_t send_errors_ = 0, tap_errors_ = 0, unresolved_ = 0;
  std::uint64_t stray_probes_ = 0;
};

template <typename Call>
auto OverlayService::with_peers(Call&& call) {
  if (outbox_depth_ == outboxes_.size()) outboxes_.push_back(std::make_unique<overlay::Outbox>());
  overlay::Outbox& box = *outboxes_[outbox_depth_];
  box.clear();
  struct Depth {
    std::size_t& depth;
    explicit Depth(std::size_t& d) : depth(d) { ++depth; }
    ~Depth() { --depth; }
    Depth(const Depth&) = delete;
    Depth& operator=(const Depth&) = delete;
  } depth(outbox_depth_);
  if constexpr (std::is_void_v<decltype(call(*peers_, box))>) {
    call(*peers_, box);
    carry_out(box.actions);
  } else {
    auto result = call(*peers_, box);
    carry_out(box.actions);
    return result;
  }
}

}  // namespace wownet
