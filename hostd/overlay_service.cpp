#include "overlay_service.h"

#include "util/file_io.h"

#include <netinet/in.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <ctime>
#include <fstream>
#include <random>
#include <sstream>

#include <unistd.h>
#include "io/etcd_client.h"
#include "overlay/peer_label.h"
#include "overlay/session_settings.h"
#include "registry/registry.h"
#include "registry/registry_etcd.h"
#include "registry/registry_store.h"
#include "registry_etcd_io.h"

namespace wownet {
namespace {

namespace asio = boost::asio;
constexpr std::size_t kReceiveBatch = 16;       // buffers per recvmmsg (64 KiB each, for UDP_GRO)
constexpr std::size_t kReceiveRounds = 4;       // recvmmsg calls per wakeup before other work runs
constexpr std::size_t kMaxTrainSegment = 9000;  // larger datagrams (rare) go alone
// A rendezvous commits the lease changes of a wakeup together (one SQLite
// transaction, or shared etcd txns): under a storm, more per wakeup makes
// fewer, larger commits.
constexpr std::size_t kRegistryReceiveRounds = 16;

}  // namespace

std::vector<overlay::UdpEndpoint> OverlayService::endpoints_of(
    const google::protobuf::RepeatedPtrField<overlay::Endpoint>& list, std::size_t limit) {
  std::vector<overlay::UdpEndpoint> eps;
  for (const auto& e : list) {
    auto a = Ipv4Addr::parse(e.address());
    if (a && e.port() > 0 && e.port() < 65536 && eps.size() < limit) eps.push_back({*a, std::uint16_t(e.port())});
  }
  return eps;
}

overlay::UdpEndpoint OverlayService::to_endpoint(const ConfigEndpoint& e) {
  return overlay::UdpEndpoint{e.address, e.port};
}

OverlayService::OverlayService(asio::io_context& io, const HostdConfig& config, HostEngine& engine, TapSink& taps)
    : io_(io),
      config_(config),
      engine_(engine),
      taps_(taps),
      nat_(overlay::NatTraversal::Options{std::uint8_t(config.overlay.punch_ttl),
                                          std::int64_t(config.overlay.direct_retry) * 1000},
           [](std::span<std::uint8_t> out) {
             if (RAND_bytes(out.data(), int(out.size())) != 1) std::fill(out.begin(), out.end(), 0);
           }),
      timer_(io),
      rx_batch_(kReceiveBatch) {
  deliveries_.reserve(kReceiveBatch * 64);
  train_.reserve(io::UdpSocket::kMaxPayload);
}

OverlayService::~OverlayService() { stop(); }

std::int64_t OverlayService::now_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - epoch_).count() + 1;
}

UnixTime OverlayService::now_s() const { return UnixTime(std::time(nullptr)); }

bool OverlayService::start(std::string& error) {
  const OverlayConfig& o = config_.overlay;
  std::string crl_error;
  std::string crl_path = crl_file();
  if (crl_path.empty() && !o.rendezvous && ::access((config_.state_dir + "/crl.pem").c_str(), R_OK) == 0)
    crl_path = config_.state_dir + "/crl.pem";  // the last CRL the registry sent
  if (!crl_path.empty() && !util::read_file(crl_path, crl_pem_, crl_error)) {
    spdlog::warn("{}; starting without a CRL", crl_error);
    crl_path.clear();
    crl_pem_.clear();
  }
  auto trust = crypto::TrustStore::load(o.ca, crl_path, error);
  if (!trust) return false;
  trust_.emplace(std::move(*trust));

  io::UdpSocketOptions so;
  so.send_buffer_bytes = so.receive_buffer_bytes = 4 << 20;
  so.gso = o.udp_gso;
  so.gro = o.udp_gro;
  if (auto ec = socket_.open({o.listen.address, o.listen.port}, so)) {
    error =
        "overlay socket " + o.listen.address.to_string() + ":" + std::to_string(o.listen.port) + ": " + ec.message();
    return false;
  }
  if (!socket_.gro_enabled()) spdlog::info("overlay socket without UDP_GRO: {}", socket_.gro_disabled_reason());

  if (o.rendezvous && !o.ca_dir.empty()) {
    desk_ = std::make_unique<EnrollmentDesk>(config_.state_dir, o.ca_dir);
    if (!desk_->prepare(error)) return false;
  }
  if (!o.rendezvous && !o.csr.empty() && ::access(o.cert.c_str(), F_OK) != 0) {
    // No certificate yet: submit the CSR and wait for an admin's approval.
    std::string key_pem;
    if (!util::read_file(o.key, key_pem, error) || !util::read_file(o.csr, csr_pem_, error)) return false;
    auto key = crypto::read_private_key(o.key, error);
    if (!key) return false;
    node_id_ = crypto::node_id_of_key(key.get());
    node_name_ = o.node_name;
    enrolling_ = true;
    engine_.use_registry(node_id_);
    spdlog::warn(
        "no certificate at {} yet: submitting {} to the rendezvous nodes; approve it there with "
        "wownetctl ca approve {}",
        o.cert, o.csr, node_id_);
  } else if (!start_sessions(error)) {
    return false;
  }
  read_socket();
  arm_timer();
  return true;
}

bool OverlayService::start_sessions(std::string& error) {
  const OverlayConfig& o = config_.overlay;
  crypto::DtlsIdentity identity;
  if (!util::read_file(o.cert, identity.cert_pem, error) || !util::read_file(o.key, identity.key_pem, error) ||
      !util::read_file(o.ca, identity.ca_pem, error))
    return false;
  auto cert = crypto::parse_cert(identity.cert_pem, error);
  if (!cert) {
    error = o.cert + ": " + error;
    return false;
  }
  crypto::CertInfo info = crypto::cert_info(cert.get());
  node_id_ = info.node_id;
  node_name_ = o.node_name.empty() ? info.name : o.node_name;
  relay_.configure(node_id_, relay_limits(o));
  if (crypto::PeerCheck own = trust_->check(cert.get(), nullptr, now_s()); !own.ok()) {
    // Peers will refuse this node, but its own VMs keep their DHCP, DNS and
    // local traffic: a lapsed certificate must not take the host down.
    spdlog::error("{}: this node's own certificate fails against {}: {} {}; other nodes will refuse it", o.cert, o.ca,
                  crypto::to_string(own.result), own.detail);
  }
  dtls_ = crypto::DtlsContext::create(identity, error);
  if (!dtls_) return false;

  crypto::Verifier verify = [this](X509* peer, STACK_OF(X509) * chain, std::int64_t) {
    crypto::PeerCheck pc = trust_->check(peer, chain, now_s());
    crypto::VerifyOutcome out;
    out.ok = pc.ok();
    out.peer_id = pc.node_id;
    out.reason = std::string(crypto::to_string(pc.result)) + (pc.detail.empty() ? "" : ": " + pc.detail);
    switch (pc.result) {
      case crypto::PeerCheck::Result::Expired: out.alert = crypto::VerifyAlert::CertificateExpired; break;
      case crypto::PeerCheck::Result::Revoked: out.alert = crypto::VerifyAlert::CertificateRevoked; break;
      case crypto::PeerCheck::Result::UnknownCa: out.alert = crypto::VerifyAlert::UnknownCa; break;
      default: out.alert = crypto::VerifyAlert::BadCertificate; break;
    }
    if (!out.ok) spdlog::warn("refusing peer {}: {}", overlay::peer_label(pc.node_name, pc.node_id), out.reason);
    return out;
  };
  overlay::PeerConfig pc;
  pc.cipher = *crypto::parse_cipher(o.cipher);
  pc.keepalive_ms = std::int64_t(o.keepalive) * 1000;
  pc.dead_after_ms = std::max<std::int64_t>(pc.keepalive_ms * 3 + 5000, 15000);
  pc.relay_after_ms = std::int64_t(o.relay_after) * 1000;
  pc.stale_after_ms = pc.keepalive_ms * 2 + 1000;
  auto rng = std::make_shared<std::mt19937>(std::random_device{}());
  peers_ = std::make_unique<overlay::PeerManager>(overlay::SessionSettings{&*dtls_, verify, nullptr, node_name_, pc},
                                                  [rng] { return std::uint32_t((*rng)()); });

  engine_.use_registry(node_id_);
  if (o.rendezvous) {
    if (!start_registry(error)) return false;
    sync_from_registry();
  } else {
    for (const auto& e : o.rendezvous_nodes)
      with_peers(
          [&](overlay::PeerManager& pm, overlay::Outbox& box) { return pm.connect(now_ms(), to_endpoint(e), box); });
  }
  spdlog::info("overlay up: node {} ({}), {} on {}:{}", node_name_, node_id_, o.rendezvous ? "rendezvous" : "host",
               o.listen.address.to_string(), o.listen.port);
  return true;
}

void OverlayService::on_enroll_datagram(const overlay::UdpEndpoint& from, ConstByteSpan data) {
  if (data[0] == std::uint8_t(wire::DatagramType::Enroll)) {
    if (!desk_) return;
    overlay::EnrollRequest req;
    if (!req.ParseFromArray(data.data() + 1, int(data.size() - 1)) || req.csr_pem().empty()) return;
    overlay::EnrollReply reply = desk_->on_request(now_s(), req, from.to_string());
    // Nothing goes back for what is not a signed CSR: no reflection to
    // spoofed sources, and replies (type 7) are never answered.
    if (reply.status() == overlay::EnrollReply::REFUSED && reply.request_id().empty()) return;
    std::string out(1, char(std::uint8_t(wire::DatagramType::EnrollReply)));
    out += reply.SerializeAsString();
    send_datagram(from, ConstByteSpan(reinterpret_cast<const std::uint8_t*>(out.data()), out.size()));
    return;
  }
  if (!enrolling_ || data[0] != std::uint8_t(wire::DatagramType::EnrollReply)) return;
  bool from_rendezvous = false;
  for (const auto& e : config_.overlay.rendezvous_nodes) from_rendezvous |= to_endpoint(e) == from;
  overlay::EnrollReply reply;
  if (!from_rendezvous || !reply.ParseFromArray(data.data() + 1, int(data.size() - 1))) return;
  if (reply.status() == overlay::EnrollReply::PENDING) {
    if (!enroll_announced_) spdlog::info("certificate request is waiting for an admin: {}", reply.message());
    enroll_announced_ = true;
    return;
  }
  if (reply.status() != overlay::EnrollReply::APPROVED) {
    spdlog::error("certificate request {}: {}", reply.status() == overlay::EnrollReply::DENIED ? "denied" : "refused",
                  reply.message());
    // A denial could be forged: keep asking, just rarely.
    enroll_interval_ = 60;
    return;
  }
  // Only a certificate for our own key, from our own CA, is taken.
  std::string error;
  auto cert = crypto::parse_cert(reply.cert_pem(), error);
  if (!cert || crypto::node_id(cert.get()) != node_id_ || !trust_->check(cert.get(), nullptr, now_s()).ok()) {
    spdlog::error("the rendezvous sent a certificate that is not ours or not from our CA; ignoring it");
    return;
  }
  if (auto ec = util::write_file_atomic(config_.overlay.cert, crypto::cert_to_pem(cert.get()), 0644)) {
    spdlog::error("cannot write {}: {}", config_.overlay.cert, ec.message());
    return;
  }
  enrolling_ = false;
  spdlog::info("certificate approved and written to {}", config_.overlay.cert);
  if (!start_sessions(error)) spdlog::error("overlay: {}", error);
}

void OverlayService::stop() {
  timer_.cancel();
  if (peers_)
    with_peers([&](overlay::PeerManager& pm, overlay::Outbox& box) {
      pm.close_all(now_ms(), box);
    });  // peers learn at once that we are gone
  socket_.close();
}

// --- socket --------------------------------------------------------------

void OverlayService::read_socket() {
  socket_.wait_readable(io_.get_executor(), [this](const boost::system::error_code& ec) {
    if (ec) return;  // operation_aborted: stopping
    drain_socket();
    read_socket();
  });
}

void OverlayService::drain_socket() {
  // One recvmmsg per round; with UDP_GRO a buffer holds several datagrams
  // of one source, each handled in place.
  const std::size_t rounds = registry_ ? kRegistryReceiveRounds : kReceiveRounds;
  for (std::size_t round = 0; round < rounds; ++round) {
    if (socket_.receive(rx_batch_) || rx_batch_.size() == 0) break;
    collecting_ = true;
    for (const io::ReceivedBuffer& b : rx_batch_.buffers()) {
      const overlay::UdpEndpoint ep{b.from.address, b.from.port};
      for (std::size_t i = 0, n = b.datagram_count(); i < n; ++i) on_datagram(ep, b.datagram(i));
    }
    collecting_ = false;
    flush_deliveries();  // before the next receive reuses the buffers
  }
  flush_lease_asks();
  if (now_s() != last_second_) {
    last_second_ = now_s();
    tick_second();
  }
  arm_timer();
}

void OverlayService::on_datagram(const overlay::UdpEndpoint& ep, ByteSpan data) {
  switch (wire::classify(data)) {
    case wire::DatagramType::Enroll:
    case wire::DatagramType::EnrollReply:
      if (data.size() > 1) on_enroll_datagram(ep, data);
      break;
    case wire::DatagramType::Relay: carry_out(relay_.on_request(now_ms(), ep, data, directory_)); break;
    case wire::DatagramType::Relayed: carry_out(relay_.on_relayed(ep, data, relay_endpoints_)); break;
    case wire::DatagramType::Probe: ++stray_probes_; break;  // meant to die on the way; never answered
    default:
      if (peers_)
        with_peers([&](overlay::PeerManager& pm, overlay::Outbox& box) {
          return pm.on_datagram(now_ms(), ep, data, box);
        });  // data, DTLS, or counted as malformed
      break;
  }
}

void OverlayService::send_datagram(const overlay::UdpEndpoint& to, ConstByteSpan datagram) {
  if (to.relayed()) {
    // To a node through the relay: the relay's header, then the datagram.
    auto route = relay_.route(to);
    if (!route) {
      ++send_errors_;
      return;
    }
    return send_to({route->relay.address, route->relay.port}, route->header, datagram);
  }
  send_to({to.address, to.port}, {}, datagram);
}

void OverlayService::send_to(io::Ipv4SocketAddress to, ConstByteSpan prefix, ConstByteSpan datagram) {
  const std::size_t size = prefix.size() + datagram.size();
  if (!training_ || size > kMaxTrainSegment) {
    if (training_) flush_train();  // keep the order
    std::error_code ec = prefix.empty() ? socket_.send(to, datagram) : socket_.send(to, prefix, datagram);
    if (ec) ++send_errors_;
    return;
  }
  // A datagram joins the train if it goes to the same place, is no larger
  // than the train's first, no shorter one came before it, and the train
  // stays within what one UDP_SEGMENT send may carry.
  if (train_count_ != 0 &&
      (to != train_to_ || size > train_segment_ || train_closed_ || train_count_ == io::UdpSocket::kMaxGsoSegments ||
       train_.size() + size > io::UdpSocket::kMaxPayload))
    flush_train();
  if (train_count_ == 0) {
    train_to_ = to;
    train_segment_ = size;
  }
  train_.insert(train_.end(), prefix.begin(), prefix.end());
  train_.insert(train_.end(), datagram.begin(), datagram.end());
  ++train_count_;
  if (size < train_segment_) train_closed_ = true;
}

void OverlayService::flush_train() {
  if (train_count_ == 0) return;
  const io::UdpSendResult r = socket_.send_train(train_to_, train_, train_segment_);
  if (r.error) send_errors_ += train_count_ - r.datagrams;
  ++trains_sent_;
  train_datagrams_ += train_count_;
  train_.clear();
  train_count_ = 0;
  train_closed_ = false;
}

// --- NAT traversal and relaying --------------------------------------------

void OverlayService::carry_out(const overlay::Action& action) {
  if (const auto* send = std::get_if<overlay::SendDatagram>(&action)) {
    if (send->ttl == 0) return send_datagram(send->to, send->bytes);
    // A punch probe: through our own NAT (which then maps us toward the
    // asker) and no further, so the asker's NAT never sees it.
    if (socket_.set_ttl(send->ttl)) return;
    send_datagram(send->to, send->bytes);
    (void)socket_.set_ttl(0);
  } else if (const auto* packet = std::get_if<overlay::DeliverPacket>(&action)) {
    deliver_packet(packet->node_id, packet->buffer, packet->offset, packet->length);
  } else if (const auto* message = std::get_if<overlay::DeliverControl>(&action)) {
    if (message->message) deliver_control(message->node_id, *message->message);
  } else if (const auto* up = std::get_if<overlay::PeerUp>(&action)) {
    peer_up(up->node_id, up->node_name, up->endpoint);
  } else if (const auto* down = std::get_if<overlay::PeerDown>(&action)) {
    peer_down(down->node_id, down->reason);
  } else if (const auto* deliver = std::get_if<overlay::DeliverDatagram>(&action)) {
    if (peers_)
      with_peers([&](overlay::PeerManager& pm, overlay::Outbox& box) {
        return pm.on_datagram(now_ms(), deliver->from, deliver->bytes, box);
      });
  } else if (const auto* control = std::get_if<overlay::SendControl>(&action)) {
    overlay::NodeMessage m;
    if (peers_ && m.ParseFromString(control->message))
      with_peers([&](overlay::PeerManager& pm, overlay::Outbox& box) {
        return pm.send_control(now_ms(), control->node_id, m, box);
      });
  } else if (const auto* path = std::get_if<overlay::SetPeerPath>(&action)) {
    if (!peers_) return;
    peers_->set_endpoints(path->node_id, path->endpoints);
    if (path->offer_relay) offer_relay(path->node_id);
  } else if (const auto* direct = std::get_if<overlay::TryDirect>(&action)) {
    if (peers_)
      with_peers([&](overlay::PeerManager& pm, overlay::Outbox& box) {
        return pm.try_direct(now_ms(), direct->node_id, box);
      });
  } else if (const auto* resolve = std::get_if<overlay::ResolveNode>(&action)) {
    overlay::Actions out;
    registry_client_.resolve(now_ms(), resolve->node_id, std::nullopt, out);
    carry_out(out);
  }  // Drop: counted by the piece that dropped it
}

void OverlayService::carry_out(const overlay::Actions& actions) {
  for (const auto& a : actions) carry_out(a);
}

void OverlayService::offer_relay(const std::string& node) {
  const auto raw = overlay::raw_node_id(node);
  if (our_relay_ && raw && node != relay_node_ && !relay_nodes_.count(node) && config_.overlay.relay_after > 0)
    peers_->set_relay(node, relay_.name(*our_relay_, *raw));
}

void OverlayService::on_resolved(const overlay::Resolved& r) {
  const std::string& node = r.node_id();
  std::vector<overlay::UdpEndpoint> eps = endpoints_of(r.endpoints(), overlay::NatTraversal::kMaxEndpoints);
  learn_name(node, r.node_name());
  spdlog::debug("resolved {} -> peer {} ({} endpoints{})", r.address(), peer_label(node), eps.size(),
                r.punched() ? ", punched" : "");
  if (node.empty() || node == node_id_) return;
  // How long the Punch needs to reach the node: about our own round trip
  // to the rendezvous.
  std::int64_t rtt = -1;
  for (const auto& p : peers_->peers())
    if (p.node_id == relay_node_) rtt = p.rtt_ms;
  overlay::Actions out;
  nat_.on_resolved(now_ms(), node, std::move(eps), r.punched(), rtt, out);
  carry_out(out);
}

void OverlayService::retry_direct_paths() {
  std::vector<overlay::NatTraversal::PeerPath> paths;
  const auto peers = peers_->peers();
  for (const auto& p : peers) paths.push_back({p.node_id, p.established, p.relayed});
  overlay::Actions out;
  nat_.retry_relayed(now_ms(), paths, out);
  carry_out(out);
}

void OverlayService::refresh_reflexive(const std::string& node) {
  // Rendezvous: a node's session follows its NAT's new mapping; so does
  // what Resolve and Punch give out.
  const auto ep = peers_->endpoint_of(node);
  if (ep && !ep->relayed()) registry_->on_node_moved(now_s(), node, ep->address.to_string(), ep->port);
}

// --- data ----------------------------------------------------------------

void OverlayService::send_packet(std::string_view node, ConstByteSpan packet, Ipv4Addr destination) {
  if (!peers_) return;
  if (with_peers(
          [&](overlay::PeerManager& pm, overlay::Outbox& box) { return pm.send_packet(now_ms(), node, packet, box); }))
    return;
  // No known endpoint for that node yet: ask the registry where it is.
  ++unresolved_;
  if (registry_) {
    overlay::NodeMessage m;
    m.mutable_resolve()->set_address(destination.to_string());
    send_to_registry(std::move(m));
    return;
  }
  overlay::Actions out;
  if (registry_client_.resolve(now_ms(), node, destination, out))
    spdlog::debug("no endpoint for peer {}: resolving {}", peer_label(node), destination.to_string());
  carry_out(out);
}

void OverlayService::deliver_packet(std::string_view node_id, ByteSpan buffer, std::size_t offset, std::size_t length) {
  FrameAction act = engine_.on_peer_packet(now_s(), node_id, buffer, offset, length);
  if (act.kind != FrameAction::Kind::WriteToTap) return;
  if (collecting_ && taps_.takes_super_frames(act.to) && deliveries_.size() < deliveries_.capacity()) {
    // The frame lies in rx_batch_, which stays until the round is flushed.
    deliveries_.push_back(Delivery{act.to, ByteSpan(const_cast<std::uint8_t*>(act.frame.data()), act.frame.size())});
    return;
  }
  if (!taps_.write_frame(act.to, act.frame, false)) ++tap_errors_;
}

void OverlayService::flush_deliveries() {
  // Per attachment, in the order the packets came: coalesce, then one TAP
  // write per frame behind a virtio-net header.
  delivered_.assign(deliveries_.size(), false);
  for (std::size_t i = 0; i < deliveries_.size(); ++i) {
    if (delivered_[i]) continue;
    const AttachmentId to = deliveries_[i].to;
    gro_input_.clear();
    for (std::size_t j = i; j < deliveries_.size(); ++j) {
      if (delivered_[j] || deliveries_[j].to != to) continue;
      delivered_[j] = true;
      gro_input_.push_back(deliveries_[j].frame.subspan(kEthernetHeaderSize));
    }
    std::span<const ByteSpan> rest(gro_input_);
    while (!rest.empty()) {
      const GroBatch batch = gro_.coalesce(rest);
      for (const GroFrame& f : batch.frames) {
        std::uint8_t vnet[VnetHeader::kSize];
        write_vnet_header(vnet_header_for(f), vnet);
        const ConstByteSpan ethernet(f.parts[0].data() - kEthernetHeaderSize, kEthernetHeaderSize);
        if (!taps_.write_frame_parts(to, vnet, ethernet, f.parts, f.size)) ++tap_errors_;
        ++gro_frames_;
        gro_super_frames_ += f.is_super_frame();
      }
      if (batch.consumed == 0) break;
      rest = rest.subspan(batch.consumed);
    }
  }
  deliveries_.clear();
}

// --- timers --------------------------------------------------------------

void OverlayService::arm_timer() {
  std::int64_t now = now_ms();
  std::int64_t next = std::min<std::int64_t>(peers_ ? peers_->next_deadline_ms() : now + 1000, now + 1000);
  next = std::min(next, nat_.next_deadline_ms());
  auto when = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::max<std::int64_t>(1, next - now));
  // Only ever move the deadline earlier: steady traffic must not starve it.
  if (timer_armed_ && timer_.expiry() <= when) return;
  timer_armed_ = true;
  timer_.expires_at(when);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;  // cancelled: re-armed earlier, or stopping
    timer_armed_ = false;
    on_timer();
  });
}

void OverlayService::on_timer() {
  if (peers_) {
    overlay::Actions out;
    nat_.on_timer(now_ms(), out);
    carry_out(out);
    with_peers([&](overlay::PeerManager& pm, overlay::Outbox& box) { return pm.on_timer(now_ms(), box); });
  }
  UnixTime now = now_s();
  if (now != last_second_) {
    last_second_ = now;
    tick_second();
  }
  flush_lease_asks();
  arm_timer();
}

void OverlayService::tick_second() {
  UnixTime now = now_s();
  if (enrolling_) {
    if (now - last_enroll_ >= enroll_interval_) {
      last_enroll_ = now;
      overlay::EnrollRequest req;
      req.set_csr_pem(csr_pem_);
      std::string out(1, char(std::uint8_t(wire::DatagramType::Enroll)));
      out += req.SerializeAsString();
      for (const auto& e : config_.overlay.rendezvous_nodes)
        send_datagram(to_endpoint(e), ConstByteSpan(reinterpret_cast<const std::uint8_t*>(out.data()), out.size()));
    }
    return;
  }
  if (!peers_) return;
  if (shared_ && shared_->reachable() != etcd_reachable_) {
    // One line per change, not per failed call.
    etcd_reachable_ = shared_->reachable();
    if (etcd_reachable_) {
      spdlog::info("registry: etcd reachable at {}, revision {}", etcd_client_->current_endpoint(),
                   shared_->revision());
    } else {
      spdlog::warn("registry: etcd unreachable: {}; lease requests are refused until it is back",
                   shared_->last_error());
    }
  }
  if (registry_) {
    std::vector<registry::Outgoing> out;
    if (!shared_ || shared_->loaded()) registry_->on_timer(now, out);
    send_outgoing(out);
    commit_registry();
  } else if (rendezvous_up_.empty()) {
    for (const auto& e : config_.overlay.rendezvous_nodes)
      with_peers(
          [&](overlay::PeerManager& pm, overlay::Outbox& box) { return pm.connect(now_ms(), to_endpoint(e), box); });
  } else {
    overlay::Actions out;
    registry_client_.on_timer(now_ms(), out);
    carry_out(out);
    retry_direct_paths();
  }
  if (registry_)
    for (const auto& [id, n] : registry_->nodes())
      if (n.online) refresh_reflexive(id);

  if (now - last_crl_check_ >= UnixTime(config_.overlay.crl_refresh)) {
    last_crl_check_ = now;
    refresh_crl();
  } else {
    watch_crl_file();
  }
}

}  // namespace wownet
