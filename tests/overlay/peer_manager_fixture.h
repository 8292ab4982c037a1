// The harness of the PeerManager tests: two or three managers wired through
// an in-memory network (FakeNetwork: routes datagrams by endpoint, can drop,
// duplicate and NAT them), literal times, certificates made with pki.h in a
// temporary directory and verified through TrustStore::check. Each
// peer_manager_*_test.cpp includes it; its tests live in the same namespace,
// so that gtest sees one PeerManagerTest fixture in every file.
#pragma once

#include "overlay/peer_manager.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "crypto/data_channel.h"
#include "crypto/dtls.h"
#include "crypto/pki.h"
#include "overlay/session_settings.h"
#include "proto/overlay.pb.h"
#include "temp_dir.h"

namespace wownet::overlay::test {

using Bytes = std::vector<std::uint8_t>;
using crypto::DtlsSession;

constexpr UnixTime kT0s = 1'700'000'000;
constexpr std::int64_t kT0 = kT0s * 1000;

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline UdpEndpoint ep(std::uint8_t last, std::uint16_t port) {
  return UdpEndpoint{Ipv4Addr::from_octets(192, 0, 2, last), port};
}

// An "IPv4 packet" carrying a sequence number (the layer does not parse it).
inline Bytes packet(std::uint32_t seq, std::size_t size = 64) {
  Bytes p(size, 0);
  p[0] = 0x45;
  for (std::size_t i = 4; i < size; ++i) p[i] = std::uint8_t(seq >> (8 * (i % 4)));
  p[4] = std::uint8_t(seq >> 24);
  p[5] = std::uint8_t(seq >> 16);
  p[6] = std::uint8_t(seq >> 8);
  p[7] = std::uint8_t(seq);
  return p;
}

inline std::uint32_t seq_of(const Bytes& p) {
  return std::uint32_t(p[4]) << 24 | std::uint32_t(p[5]) << 16 | p[6] << 8 | p[7];
}

inline crypto::Verifier make_verifier(std::shared_ptr<crypto::TrustStore> trust) {
  return [trust](X509* peer, STACK_OF(X509) * chain, std::int64_t now_ms) {
    const crypto::PeerCheck check = trust->check(peer, chain, now_ms / 1000);
    crypto::VerifyOutcome out;
    if (check.ok()) {
      out.ok = true;
      out.peer_id = check.node_id;
      return out;
    }
    out.reason = std::string(crypto::to_string(check.result)) + ": " + check.detail;
    switch (check.result) {
      case crypto::PeerCheck::Result::Revoked: out.alert = crypto::VerifyAlert::CertificateRevoked; break;
      case crypto::PeerCheck::Result::UnknownCa: out.alert = crypto::VerifyAlert::UnknownCa; break;
      case crypto::PeerCheck::Result::Expired: out.alert = crypto::VerifyAlert::CertificateExpired; break;
      default: break;
    }
    return out;
  };
}

// ---------------------------------------------------------------------------
// The network: datagrams queue up and are delivered in order by deliver();
// run_until() alternates delivery and the participants' timers.

struct Datagram {
  UdpEndpoint from, to;
  Bytes bytes;
};

class FakeNetwork {
 public:
  struct Participant {
    std::function<void(const UdpEndpoint& from, Bytes& datagram)> receive;
    std::function<std::int64_t()> next_deadline;
    std::function<void()> on_timer;
  };
  // Where a datagram sent from `from` to `to` arrives and whom it seems to
  // come from; nullopt drops it. Default: to a participant at `to`, as is.
  using Router =
      std::function<std::optional<std::pair<UdpEndpoint, UdpEndpoint>>(const UdpEndpoint& from, const UdpEndpoint& to)>;

  std::int64_t now = kT0;
  std::function<bool(const Datagram&)> drop;       // true: lost
  std::function<bool(const Datagram&)> duplicate;  // true: delivered twice
  Router router;
  std::int64_t latency_ms = 0;  // each delivery moves time on by this much (one way)
  std::vector<Datagram> log;    // everything sent (as sent)

  void attach(const UdpEndpoint& at, Participant p) { participants_[at] = std::move(p); }
  void detach(const UdpEndpoint& at) { participants_.erase(at); }

  void send(const UdpEndpoint& from, const UdpEndpoint& to, ConstByteSpan d) {
    Datagram g{from, to, Bytes(d.begin(), d.end())};
    log.push_back(g);
    if (drop && drop(g)) return;
    if (router) {
      const auto route = router(from, to);
      if (!route) return;
      g.to = route->first;
      g.from = route->second;
    }
    const bool twice = duplicate && duplicate(g);
    queue_.push_back(g);
    if (twice) queue_.push_back(g);
  }

  // Delivers everything in flight, including what the deliveries send.
  void deliver() {
    while (!queue_.empty()) {
      Datagram g = std::move(queue_.front());
      queue_.pop_front();
      now += latency_ms;
      const auto it = participants_.find(g.to);
      if (it != participants_.end()) it->second.receive(g.from, g.bytes);
    }
  }

  // Runs deliveries and timers up to time t (timers due at t included).
  void run_until(std::int64_t t) {
    int spins = 0;
    for (;;) {
      deliver();
      std::int64_t next = PeerManager::kNoDeadline;
      for (auto& [at, p] : participants_)
        if (p.next_deadline) next = std::min(next, p.next_deadline());
      if (next > t) break;
      if (next <= now) {
        // Deadlines in the past must be consumed by on_timer, not repeat.
        ASSERT_LT(++spins, 50) << "timer busy loop at " << now;
      } else {
        spins = 0;
      }
      now = std::max(now, next);
      for (auto& [at, p] : participants_)
        if (p.on_timer) p.on_timer();
    }
    now = std::max(now, t);
  }
  void run_for(std::int64_t ms) { run_until(now + ms); }

 private:
  std::map<UdpEndpoint, Participant> participants_;
  std::deque<Datagram> queue_;
};

// ---------------------------------------------------------------------------
// The test side of a PeerManager call's actions: out() lends an Outbox for
// one call, and the actions are carried out, in order, by the handlers at
// the end of the full expression (after the call has returned).

class ActionSink {
 public:
  virtual ~ActionSink() = default;
  virtual void send_datagram(const UdpEndpoint& to, ConstByteSpan datagram) = 0;
  virtual void deliver_packet(std::string_view node_id, ByteSpan buffer, std::size_t offset, std::size_t length) = 0;
  virtual void deliver_control(std::string_view node_id, const NodeMessage& message) = 0;
  virtual void peer_up(std::string_view node_id, std::string_view node_name, const UdpEndpoint& endpoint) = 0;
  virtual void peer_down(std::string_view node_id, std::string_view reason) = 0;

  class Lent {
   public:
    explicit Lent(ActionSink& sink) : sink_(sink) { sink_.box_.clear(); }
    ~Lent() { sink_.carry_out(); }
    Lent(const Lent&) = delete;
    Lent& operator=(const Lent&) = delete;
    operator Outbox&() { return sink_.box_; }  // NOLINT(google-explicit-constructor)

   private:
    ActionSink& sink_;
  };
  Lent out() { return Lent(*this); }

 private:
  void carry_out() {
    for (const Action& a : box_.actions) {
      if (const auto* s = std::get_if<SendDatagram>(&a)) {
        send_datagram(s->to, s->bytes);
      } else if (const auto* d = std::get_if<DeliverPacket>(&a)) {
        deliver_packet(d->node_id, d->buffer, d->offset, d->length);
      } else if (const auto* c = std::get_if<DeliverControl>(&a)) {
        deliver_control(c->node_id, *c->message);
      } else if (const auto* u = std::get_if<PeerUp>(&a)) {
        peer_up(u->node_id, u->node_name, u->endpoint);
      } else if (const auto* g = std::get_if<PeerDown>(&a)) {
        peer_down(g->node_id, g->reason);
      } else {
        ADD_FAILURE() << "PeerManager returned an action it never returns";
      }
    }
    box_.clear();
  }
  Outbox box_;
};

// ---------------------------------------------------------------------------
// A node: identity, trust store, PeerManager and everything it reported.

class Node : public ActionSink {
 public:
  struct Delivery {
    std::string node_id;
    Bytes packet;
    std::size_t offset = 0;
  };
  struct Up {
    std::string node_id, node_name;
    UdpEndpoint endpoint;
  };
  struct Down {
    std::string node_id, reason;
    std::int64_t at = 0;
  };

  Node(FakeNetwork& net, std::string node_name, UdpEndpoint at, const crypto::DtlsIdentity& identity,
       std::shared_ptr<crypto::TrustStore> trust_store, PeerConfig config, std::uint32_t seed, std::string node_id)
      : name(std::move(node_name)),
        endpoint(at),
        id(std::move(node_id)),
        trust(std::move(trust_store)),
        net_(net),
        rng_(seed) {
    std::string error;
    ctx = crypto::DtlsContext::create(identity, error);
    EXPECT_NE(ctx, nullptr) << error;
    pm = std::make_unique<PeerManager>(SessionSettings{&*ctx, make_verifier(this->trust), nullptr, this->name, config},
                                       [this] { return rng_(); });
    net.attach(endpoint, FakeNetwork::Participant{
                             [this](const UdpEndpoint& from, Bytes& d) { pm->on_datagram(net_.now, from, d, out()); },
                             [this] { return pm->next_deadline_ms(); }, [this] { pm->on_timer(net_.now, out()); }});
  }
  ~Node() override { net_.detach(endpoint); }

  bool send(const Node& to, const Bytes& p) { return pm->send_packet(net_.now, to.id, p, out()); }
  // Sends data packet `seq` to `to` and lets the network deliver what is
  // under way; false (and nothing delivered) if the send is refused.
  bool send_delivered(const Node& to, std::uint32_t seq) {
    if (!send(to, packet(seq))) return false;
    net_.deliver();
    return true;
  }
  bool send_control(const Node& to, const NodeMessage& m) { return pm->send_control(net_.now, to.id, m, out()); }
  void knows(const Node& other) { pm->set_endpoints(other.id, {other.endpoint}); }

  std::vector<std::uint32_t> seqs_from(const Node& n) const {
    std::vector<std::uint32_t> out;
    for (const auto& d : delivered)
      if (d.node_id == n.id) out.push_back(seq_of(d.packet));
    return out;
  }
  std::optional<PeerManager::PeerStats> stats_of(const Node& n) const {
    for (auto& s : pm->peers())
      if (s.node_id == n.id) return s;
    return std::nullopt;
  }
  bool is_up(const Node& n) const {
    const auto s = stats_of(n);
    return s && s->established;
  }

  // ActionSink
  void send_datagram(const UdpEndpoint& to, ConstByteSpan datagram) override { net_.send(endpoint, to, datagram); }
  void deliver_packet(std::string_view node_id, ByteSpan buffer, std::size_t offset, std::size_t length) override {
    EXPECT_GE(offset, 14u);
    EXPECT_LE(offset + length, buffer.size());
    // The 14 bytes before the packet are ours to overwrite.
    std::fill(buffer.begin() + long(offset) - 14, buffer.begin() + long(offset), std::uint8_t{0xee});
    delivered.push_back(Delivery{std::string(node_id),
                                 Bytes(buffer.begin() + long(offset), buffer.begin() + long(offset + length)), offset});
  }
  void deliver_control(std::string_view node_id, const NodeMessage& message) override {
    controls.emplace_back(std::string(node_id), message);
  }
  void peer_up(std::string_view node_id, std::string_view node_name, const UdpEndpoint& at) override {
    ups.push_back(Up{std::string(node_id), std::string(node_name), at});
  }
  void peer_down(std::string_view node_id, std::string_view reason) override {
    downs.push_back(Down{std::string(node_id), std::string(reason), net_.now});
  }

  std::string name;
  UdpEndpoint endpoint;
  std::string id;
  std::shared_ptr<crypto::TrustStore> trust;
  std::unique_ptr<crypto::DtlsContext> ctx;
  std::unique_ptr<PeerManager> pm;
  std::vector<Delivery> delivered;
  std::vector<std::pair<std::string, NodeMessage>> controls;
  std::vector<Up> ups;
  std::vector<Down> downs;

 private:
  FakeNetwork& net_;
  std::mt19937 rng_;
};

// ---------------------------------------------------------------------------

class PeerManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(tmp_.path().empty());
    root_ = tmp_.path();
    ca_ = root_ + "/ca";
    const crypto::Status s = crypto::ca_init(ca_, "test CA", 3650, kT0s);
    ASSERT_TRUE(s.ok) << s.error;
  }
  void TearDown() override { nodes_.clear(); }

  struct Identity {
    crypto::DtlsIdentity dtls;
    std::string cert_file;
    std::string id;
  };

  // A node certificate from CA directory `ca`.
  Identity identity(const std::string& name, const std::string& ca) {
    const std::string dir = root_ + "/" + name;
    crypto::Status s = crypto::cert_request(dir, name);
    EXPECT_TRUE(s.ok) << s.error;
    s = crypto::ca_sign(ca, dir + "/node.csr", dir + "/node.crt", 365, kT0s);
    EXPECT_TRUE(s.ok) << s.error;
    Identity out;
    out.cert_file = dir + "/node.crt";
    out.dtls = crypto::DtlsIdentity{slurp(out.cert_file), slurp(dir + "/node.key"), slurp(ca + "/ca.crt")};
    std::string error;
    out.id = crypto::node_id_from_pem(out.dtls.cert_pem, error);
    EXPECT_EQ(out.id.size(), 32u) << error;
    return out;
  }

  std::shared_ptr<crypto::TrustStore> trust(const std::string& ca) {
    std::string error;
    auto ts = crypto::TrustStore::load(ca + "/ca.crt", ca + "/crl.pem", error);
    EXPECT_TRUE(ts) << error;
    return std::make_shared<crypto::TrustStore>(std::move(*ts));
  }

  Node& node(const std::string& name, UdpEndpoint at, PeerConfig config = {}, std::string ca = {}) {
    if (ca.empty()) ca = ca_;
    Identity ident = identity(name, ca);
    identities_[name] = ident;
    nodes_.push_back(std::make_unique<Node>(net_, name, at, ident.dtls, trust(ca), config,
                                            std::uint32_t(nodes_.size() * 7919 + 17), ident.id));
    return *nodes_.back();
  }

  // A and B with a keyed session (A started it by sending a packet).
  // Nodes A and B with a session between them.
  std::pair<Node&, Node&> established_pair() {
    Node& a = node("node-a", ep(1, 4000));
    Node& b = node("node-b", ep(2, 5000));
    establish(a, b);
    return {a, b};
  }

  // `n` saw exactly one session come up: with `peer`, named `name`, at the
  // peer's endpoint.
  static void expect_one_up(const Node& n, const Node& peer, const std::string& name) {
    ASSERT_EQ(n.ups.size(), 1u);
    EXPECT_EQ(n.ups[0].node_id, peer.id);
    EXPECT_EQ(n.ups[0].node_name, name);
    EXPECT_EQ(n.ups[0].endpoint, peer.endpoint);
  }

  // From now on the NAT in front of `n` maps it to `moved`: what is sent to
  // its old endpoint is lost, what is sent to `moved` reaches it, and what
  // it sends comes from `moved`.
  void rebind(const Node& n, const UdpEndpoint& moved) {
    net_.router = [old = n.endpoint, moved](
                      const UdpEndpoint& from,
                      const UdpEndpoint& to) -> std::optional<std::pair<UdpEndpoint, UdpEndpoint>> {
      if (to == old) return std::nullopt;
      if (to == moved) return std::pair{old, from};
      if (from == old) return std::pair{to, moved};
      return std::pair{to, from};
    };
  }

  void establish(Node& a, Node& b) {
    a.knows(b);
    ASSERT_TRUE(a.send_delivered(b, 0));
    ASSERT_TRUE(a.is_up(b));
    ASSERT_TRUE(b.is_up(a));
  }

  // The last data datagram sent from `from` to `to`.
  Bytes last_data(const Node& from, const Node& to) {
    for (auto it = net_.log.rbegin(); it != net_.log.rend(); ++it)
      if (it->from == from.endpoint && it->to == to.endpoint && !it->bytes.empty() && it->bytes[0] == 4)
        return it->bytes;
    ADD_FAILURE() << "no data datagram";
    return {};
  }

  void inject(Node& at, const UdpEndpoint& from, Bytes d) { at.pm->on_datagram(net_.now, from, d, at.out()); }

  wownet::test::TempDir tmp_{"peer_manager_test"};
  std::string root_, ca_;
  FakeNetwork net_;
  std::map<std::string, Identity> identities_;
  std::vector<std::unique_ptr<Node>> nodes_;
};

// ---------------------------------------------------------------------------
// Relayed paths: A names "B through the relay" 0.0.0.1:1, B names "A through
// the relay" 0.0.0.2:1; the router carries what is sent to those names.

class RelayTest : public PeerManagerTest {
 protected:
  const UdpEndpoint a_via_relay{Ipv4Addr::from_octets(0, 0, 0, 2), 1};  // at B: A through the relay
  const UdpEndpoint b_via_relay{Ipv4Addr::from_octets(0, 0, 0, 1), 1};  // at A: B through the relay
  bool direct_blocked = true;
  std::size_t relayed_datagrams = 0;

  void wire(Node& a, Node& b) {
    net_.router = [&](const UdpEndpoint& from,
                      const UdpEndpoint& to) -> std::optional<std::pair<UdpEndpoint, UdpEndpoint>> {
      if (from == a.endpoint && to == b_via_relay) {
        ++relayed_datagrams;
        return std::pair{b.endpoint, a_via_relay};
      }
      if (from == b.endpoint && to == a_via_relay) {
        ++relayed_datagrams;
        return std::pair{a.endpoint, b_via_relay};
      }
      if (direct_blocked) return std::nullopt;
      return std::pair{to, from};
    };
  }

  // Nodes A and B wired through the relay; A knows B's direct endpoint
  // (with `knows_direct`) and B's relayed one.
  std::pair<Node&, Node&> relayed_pair(bool knows_direct = true) {
    Node& a = node("node-a", ep(1, 4000));
    Node& b = node("node-b", ep(2, 5000));
    wire(a, b);
    if (knows_direct) a.knows(b);
    a.pm->set_relay(b.id, b_via_relay);
    return {a, b};
  }

  // Nodes A and B (with `config`) wired through the relay, the direct path
  // open and a direct session between them established.
  std::pair<Node&, Node&> direct_pair(const PeerConfig& config = {}) {
    Node& a = node("node-a", ep(1, 4000), config);
    Node& b = node("node-b", ep(2, 5000), config);
    direct_blocked = false;
    wire(a, b);
    establish(a, b);
    return {a, b};
  }
};

}  // namespace wownet::overlay::test
