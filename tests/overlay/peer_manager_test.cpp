// PeerManager: two or three managers wired through an in-memory network
// (FakeNetwork: routes datagrams by endpoint, can drop, duplicate and NAT
// them), literal times, certificates made with pki.h in a temporary
// directory and verified through TrustStore::check.
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

namespace wownet::overlay {
namespace {

using Bytes = std::vector<std::uint8_t>;
using crypto::DtlsSession;

constexpr UnixTime kT0s = 1'700'000'000;
constexpr std::int64_t kT0 = kT0s * 1000;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

UdpEndpoint ep(std::uint8_t last, std::uint16_t port) {
  return UdpEndpoint{Ipv4Addr::from_octets(192, 0, 2, last), port};
}

// An "IPv4 packet" carrying a sequence number (the layer does not parse it).
Bytes packet(std::uint32_t seq, std::size_t size = 64) {
  Bytes p(size, 0);
  p[0] = 0x45;
  for (std::size_t i = 4; i < size; ++i) p[i] = std::uint8_t(seq >> (8 * (i % 4)));
  p[4] = std::uint8_t(seq >> 24);
  p[5] = std::uint8_t(seq >> 16);
  p[6] = std::uint8_t(seq >> 8);
  p[7] = std::uint8_t(seq);
  return p;
}

std::uint32_t seq_of(const Bytes& p) {
  return std::uint32_t(p[4]) << 24 | std::uint32_t(p[5]) << 16 | p[6] << 8 | p[7];
}

crypto::Verifier make_verifier(std::shared_ptr<crypto::TrustStore> trust) {
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
    char tmpl[] = "/tmp/peer_manager_test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    ca_ = root_ + "/ca";
    const crypto::Status s = crypto::ca_init(ca_, "test CA", 3650, kT0s);
    ASSERT_TRUE(s.ok) << s.error;
  }
  void TearDown() override {
    nodes_.clear();
    std::filesystem::remove_all(root_);
  }

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
  void establish(Node& a, Node& b) {
    a.knows(b);
    ASSERT_TRUE(a.send(b, packet(0)));
    net_.deliver();
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

  std::string root_, ca_;
  FakeNetwork net_;
  std::map<std::string, Identity> identities_;
  std::vector<std::unique_ptr<Node>> nodes_;
};

TEST_F(PeerManagerTest, EndpointText) {
  const UdpEndpoint e{Ipv4Addr::from_octets(10, 1, 2, 3), 4789};
  EXPECT_EQ(e.to_string(), "10.1.2.3:4789");
  EXPECT_EQ(UdpEndpoint::parse("10.1.2.3:4789"), e);
  EXPECT_FALSE(UdpEndpoint::parse("10.1.2.3"));
  EXPECT_FALSE(UdpEndpoint::parse("10.1.2.3:65536"));
  EXPECT_FALSE(UdpEndpoint::parse("10.1.2.3:"));
  EXPECT_FALSE(UdpEndpoint::parse("10.1.2.3:01"));
  EXPECT_FALSE(UdpEndpoint::parse("10.1.2:1"));
}

TEST_F(PeerManagerTest, QueuedPacketHandshakeAndDelivery) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  const Bytes p = packet(42, 100);

  // No endpoint known: refused and counted.
  EXPECT_FALSE(a.send(b, p));
  EXPECT_EQ(a.pm->counters().no_endpoint, 1u);

  a.knows(b);
  ASSERT_TRUE(a.send(b, p));
  ASSERT_EQ(net_.log.size(), 1u);  // the ClientHello, nothing else yet
  EXPECT_TRUE(crypto::is_dtls_client_hello(net_.log[0].bytes));
  EXPECT_TRUE(b.delivered.empty());
  net_.deliver();  // no timer needed

  ASSERT_EQ(b.delivered.size(), 1u);
  EXPECT_EQ(b.delivered[0].node_id, a.id);
  EXPECT_EQ(b.delivered[0].packet, p);
  EXPECT_EQ(b.delivered[0].offset, 16u);
  ASSERT_EQ(a.ups.size(), 1u);
  EXPECT_EQ(a.ups[0].node_id, b.id);
  EXPECT_EQ(a.ups[0].node_name, "node-b");
  EXPECT_EQ(a.ups[0].endpoint, b.endpoint);
  ASSERT_EQ(b.ups.size(), 1u);
  EXPECT_EQ(b.ups[0].node_id, a.id);
  EXPECT_EQ(b.ups[0].node_name, "node-a");
  EXPECT_EQ(b.ups[0].endpoint, a.endpoint);

  // Both ways now; B needs no endpoint for A (the session has one).
  for (std::uint32_t i = 1; i <= 20; ++i) {
    ASSERT_TRUE(a.send(b, packet(i, 40 + i)));
    ASSERT_TRUE(b.send(a, packet(1000 + i, 1400)));
  }
  net_.deliver();
  EXPECT_EQ(b.seqs_from(a).size(), 21u);
  ASSERT_EQ(a.seqs_from(b).size(), 20u);
  EXPECT_EQ(a.seqs_from(b).back(), 1020u);
  EXPECT_EQ(a.delivered.back().packet, packet(1020, 1400));

  const auto sa = a.stats_of(b);
  ASSERT_TRUE(sa);
  EXPECT_TRUE(sa->established);
  EXPECT_EQ(sa->node_name, "node-b");
  EXPECT_EQ(sa->endpoint, b.endpoint);
  EXPECT_EQ(sa->tx_packets, 21u);
  EXPECT_EQ(sa->rx_packets, 20u);
  EXPECT_EQ(sa->rx_bytes, 20u * 1400);
  EXPECT_EQ(sa->last_handshake_ms, kT0);
  EXPECT_EQ(a.pm->counters().handshakes, 1u);
  EXPECT_EQ(b.pm->counters().handshakes, 1u);
  for (const Node* n : {&a, &b}) {
    const auto& c = n->pm->counters();
    EXPECT_EQ(c.malformed + c.unknown_receiver + c.replayed + c.bad_tag + c.handshake_failures + c.queue_drops +
                  c.not_allowed,
              0u);
  }
  EXPECT_TRUE(a.downs.empty());
  EXPECT_TRUE(b.downs.empty());
}

TEST_F(PeerManagerTest, QueueLimitDropsOldest) {
  PeerConfig config;
  config.queue_limit = 4;
  Node& a = node("node-a", ep(1, 4000), config);
  Node& b = node("node-b", ep(2, 5000));
  a.knows(b);
  net_.drop = [](const Datagram&) { return true; };  // nothing gets through yet
  for (std::uint32_t i = 0; i < 10; ++i) ASSERT_TRUE(a.send(b, packet(i)));
  EXPECT_EQ(a.pm->counters().queue_drops, 6u);
  net_.drop = nullptr;
  net_.run_for(1000);  // the ClientHello is retransmitted
  EXPECT_EQ(b.seqs_from(a), (std::vector<std::uint32_t>{6, 7, 8, 9}));
}

TEST_F(PeerManagerTest, BadDataPacketsAreCountedAndDropped) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  establish(a, b);
  ASSERT_TRUE(a.send(b, packet(1)));
  net_.deliver();
  const Bytes good = last_data(a, b);
  ASSERT_EQ(b.delivered.size(), 2u);

  inject(b, a.endpoint, good);  // replayed
  EXPECT_EQ(b.pm->counters().replayed, 1u);

  ASSERT_TRUE(a.send(b, packet(2)));
  Bytes flipped = last_data(a, b);  // not delivered yet: the network still holds it
  flipped[20] ^= 0x01;
  inject(b, a.endpoint, flipped);
  EXPECT_EQ(b.pm->counters().bad_tag, 1u);

  inject(b, a.endpoint, Bytes(good.begin(), good.begin() + 20));  // truncated
  EXPECT_EQ(b.pm->counters().malformed, 1u);
  Bytes reserved = good;
  reserved[2] = 1;
  inject(b, a.endpoint, reserved);
  EXPECT_EQ(b.pm->counters().malformed, 2u);
  inject(b, a.endpoint, Bytes{});
  inject(b, a.endpoint, Bytes{0x99, 1, 2, 3});
  EXPECT_EQ(b.pm->counters().malformed, 4u);

  Bytes wrong_index = good;
  wrong_index[7] ^= 0x5a;
  inject(b, a.endpoint, wrong_index);
  EXPECT_EQ(b.pm->counters().unknown_receiver, 1u);

  // DTLS records from an endpoint without a session.
  Bytes record = {23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0};
  inject(b, ep(9, 9), record);
  EXPECT_EQ(b.pm->counters().not_allowed, 1u);

  EXPECT_EQ(b.delivered.size(), 2u);
  net_.deliver();  // the genuine packet 2 still arrives
  ASSERT_TRUE(a.send(b, packet(3)));
  ASSERT_TRUE(b.send(a, packet(4)));
  net_.deliver();
  EXPECT_EQ(b.seqs_from(a), (std::vector<std::uint32_t>{0, 1, 2, 3}));
  EXPECT_EQ(a.seqs_from(b), (std::vector<std::uint32_t>{4}));
  EXPECT_TRUE(a.downs.empty());
  EXPECT_TRUE(b.downs.empty());
}

TEST_F(PeerManagerTest, ControlMessagesRoundTrip) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  a.knows(b);

  NodeMessage resolve;
  resolve.set_request_id(7);
  resolve.mutable_resolve()->set_address("10.0.0.9");
  ASSERT_TRUE(a.send_control(b, resolve));  // queued until the session is keyed
  net_.deliver();
  ASSERT_EQ(b.controls.size(), 1u);
  EXPECT_EQ(b.controls[0].first, a.id);
  EXPECT_EQ(b.controls[0].second.request_id(), 7u);
  EXPECT_EQ(b.controls[0].second.resolve().address(), "10.0.0.9");

  NodeMessage resolved;
  resolved.set_request_id(7);
  resolved.mutable_resolved()->set_address("10.0.0.9");
  resolved.mutable_resolved()->set_node_id("x");
  ASSERT_TRUE(b.send_control(a, resolved));
  net_.deliver();
  ASSERT_EQ(a.controls.size(), 1u);
  EXPECT_EQ(a.controls[0].first, b.id);
  EXPECT_EQ(a.controls[0].second.resolved().node_id(), "x");

  // Hello and Keepalive are the layer's own; oversized messages do not fit.
  NodeMessage hello;
  hello.mutable_hello()->set_node_name("evil");
  EXPECT_FALSE(a.send_control(b, hello));
  NodeMessage big;
  big.mutable_crl()->set_pem(std::string(crypto::kDtlsMaxMessage, 'x'));
  EXPECT_FALSE(a.send_control(b, big));
  EXPECT_EQ(a.controls.size(), 1u);
  EXPECT_EQ(b.controls.size(), 1u);
}

TEST_F(PeerManagerTest, KeepalivesHoldIdleSessionAndSilentPeerGoesDown) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  establish(a, b);
  std::size_t before = net_.log.size();
  net_.run_for(120'000);  // idle for two minutes, well past dead_after_ms
  EXPECT_TRUE(a.downs.empty());
  EXPECT_TRUE(b.downs.empty());
  EXPECT_TRUE(a.is_up(b));
  // Keepalives flowed (a few per keepalive_ms, plus two rekeys), not a flood.
  const std::size_t sent = net_.log.size() - before;
  EXPECT_GE(sent, 12u);
  EXPECT_LE(sent, 100u);
  EXPECT_GE(a.stats_of(b)->rtt_ms, 0);  // zero-latency network

  // B falls silent: A notices after dead_after_ms and reports it.
  net_.drop = [&](const Datagram& d) { return d.from == b.endpoint; };
  net_.run_for(40'000);
  ASSERT_EQ(a.downs.size(), 1u);
  EXPECT_EQ(a.downs[0].node_id, b.id);
  EXPECT_NE(a.downs[0].reason.find("no traffic"), std::string::npos) << a.downs[0].reason;
  EXPECT_FALSE(a.is_up(b));
  // B heard A's keepalives until A gave up, then nothing: it goes down too.
  EXPECT_TRUE(b.downs.empty());
  net_.run_for(40'000);
  ASSERT_EQ(b.downs.size(), 1u);
  EXPECT_EQ(b.downs[0].node_id, a.id);

  // After the partition heals, traffic brings the session back.
  net_.drop = nullptr;
  ASSERT_TRUE(a.send(b, packet(77)));
  net_.run_for(5'000);
  EXPECT_TRUE(a.is_up(b));
  EXPECT_EQ(b.seqs_from(a).back(), 77u);
  EXPECT_EQ(a.ups.size(), 2u);
}

TEST_F(PeerManagerTest, HandshakeTimesAndRoundTripsAreMeasured) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  net_.latency_ms = 20;
  const std::int64_t start = net_.now;
  establish(a, b);
  const auto& ha = a.pm->counters().handshake_ms;
  // A started the session: one handshake, timed from its ClientHello to keyed.
  ASSERT_EQ(ha.count, 1u);
  EXPECT_EQ(ha.sum_ms, a.stats_of(b)->last_handshake_ms - start);
  EXPECT_GE(ha.sum_ms, 4 * 20);  // at least two round trips (DTLS, then Hello)
  std::uint64_t in_buckets = 0;
  for (auto n : ha.buckets) in_buckets += n;
  EXPECT_EQ(in_buckets, 1u);
  EXPECT_EQ(b.pm->counters().handshake_ms.count, 0u);  // B only answered
  EXPECT_EQ(a.pm->counters().rtt_ms.count, 0u);
  EXPECT_EQ(a.pm->keyed_sessions(), 1u);
  EXPECT_EQ(b.pm->keyed_sessions(), 1u);

  // Idle: keepalives flow (sent by whichever side's timer fires first)
  // and the sender times each answered one.
  net_.run_for(60'000);
  std::uint64_t answered = 0;
  for (const Node* n : {&a, &b}) {
    const auto& r = n->pm->counters().rtt_ms;
    answered += r.count;
    EXPECT_GE(r.sum_ms, std::int64_t(r.count) * 2 * 20);                       // at least a round trip each
    EXPECT_EQ(r.buckets[0] + r.buckets[1] + r.buckets[2] + r.buckets[3], 0u);  // none at or under 10 ms
  }
  EXPECT_GE(answered, 2u);
  EXPECT_GE(std::max(a.stats_of(b)->rtt_ms, b.stats_of(a)->rtt_ms), 40);
}

TEST(LatencyHistogram, BucketsAreInclusiveUpperBounds) {
  LatencyHistogram h;
  h.add(-5);     // as 0: first bucket
  h.add(1);      // le 1
  h.add(2);      // le 2
  h.add(3);      // le 5
  h.add(30000);  // le 30000, the highest bound
  h.add(30001);  // above every bound
  EXPECT_EQ(h.count, 6u);
  EXPECT_EQ(h.sum_ms, 0 + 1 + 2 + 3 + 30000 + 30001);
  EXPECT_EQ(h.buckets[0], 2u);
  EXPECT_EQ(h.buckets[1], 1u);
  EXPECT_EQ(h.buckets[2], 1u);
  EXPECT_EQ(h.buckets[LatencyHistogram::kBoundsMs.size() - 1], 1u);
  EXPECT_EQ(h.buckets.back(), 1u);
}

TEST_F(PeerManagerTest, SilentPeerIsDroppedAfterDeadAfterMs) {
  PeerConfig config;
  config.keepalive_ms = 1'000;
  config.dead_after_ms = 5'000;
  Node& a = node("node-a", ep(1, 4000), config);
  Node& b = node("node-b", ep(2, 5000), config);
  establish(a, b);
  const std::int64_t t0 = net_.now;
  net_.drop = [&](const Datagram& d) { return d.from == b.endpoint; };
  net_.run_for(10'000);
  ASSERT_EQ(a.downs.size(), 1u);
  // The last thing A heard from B was at t0 (nothing after): down at t0 + 5 s.
  EXPECT_EQ(a.downs[0].at, t0 + 5'000);
  const auto stats = a.stats_of(b);
  ASSERT_TRUE(stats);
  EXPECT_FALSE(stats->established);
  EXPECT_NE(stats->last_error.find("no traffic for 5000 ms"), std::string::npos) << stats->last_error;
  // B, which kept hearing A's keepalives until then, goes down 5 s after A's last one.
  ASSERT_EQ(b.downs.size(), 1u);
  EXPECT_LE(b.downs[0].at, t0 + 10'000);
}

TEST_F(PeerManagerTest, RekeyWithoutPacketLoss) {
  PeerConfig config;
  config.rekey_after_ms = 30'000;
  Node& a = node("node-a", ep(1, 4000), config);
  Node& b = node("node-b", ep(2, 5000), config);
  establish(a, b);
  const std::int64_t start = net_.now;
  std::uint32_t seq = 1;
  std::set<std::uint32_t> sent_ab, sent_ba;
  while (net_.now < start + 100'000) {
    ASSERT_TRUE(a.send(b, packet(seq)));
    sent_ab.insert(seq++);
    ASSERT_TRUE(b.send(a, packet(seq)));
    sent_ba.insert(seq++);
    net_.run_for(100);
  }
  net_.run_for(1'000);
  const auto got_ab = b.seqs_from(a);
  const auto got_ba = a.seqs_from(b);
  EXPECT_EQ(std::set<std::uint32_t>(got_ab.begin() + 1, got_ab.end()), sent_ab);
  EXPECT_EQ(got_ab.size() - 1, sent_ab.size());  // no duplicates either
  EXPECT_EQ(std::set<std::uint32_t>(got_ba.begin(), got_ba.end()), sent_ba);
  EXPECT_EQ(got_ba.size(), sent_ba.size());
  // Three rekeys (at 30, 60 and 90 s), started by A, the original initiator.
  EXPECT_EQ(a.pm->counters().handshakes, 4u);
  EXPECT_EQ(b.pm->counters().handshakes, 4u);
  EXPECT_EQ(a.stats_of(b)->last_handshake_ms, start + 90'000);
  std::size_t client_hellos_from_b = 0;
  for (const auto& d : net_.log)
    if (d.from == b.endpoint && crypto::is_dtls_client_hello(d.bytes)) ++client_hellos_from_b;
  EXPECT_EQ(client_hellos_from_b, 0u);
  EXPECT_TRUE(a.downs.empty());
  EXPECT_TRUE(b.downs.empty());
  EXPECT_EQ(a.ups.size(), 1u);
  for (const Node* n : {&a, &b}) {
    const auto& c = n->pm->counters();
    EXPECT_EQ(c.unknown_receiver + c.replayed + c.bad_tag + c.handshake_failures + c.malformed, 0u);
  }
  // Old sessions were retired: data goes to the newest receiver index only.
  ASSERT_TRUE(a.send(b, packet(999999)));
  const Bytes d = last_data(a, b);
  const auto index = crypto::DataOpener::peek_receiver_index(d);
  ASSERT_TRUE(index);
  std::set<std::uint32_t> indices;
  for (const auto& g : net_.log)
    if (g.from == a.endpoint && !g.bytes.empty() && g.bytes[0] == 4 && g.bytes.size() >= 32)
      indices.insert(*crypto::DataOpener::peek_receiver_index(g.bytes));
  EXPECT_EQ(indices.size(), 4u);
}

TEST_F(PeerManagerTest, RekeyAfterPacketCount) {
  PeerConfig config;
  config.rekey_after_packets = 50;
  Node& a = node("node-a", ep(1, 4000), config);
  Node& b = node("node-b", ep(2, 5000), config);
  establish(a, b);
  for (std::uint32_t i = 1; i <= 60; ++i) {
    ASSERT_TRUE(b.send(a, packet(i)));  // B, the DTLS server, hits the limit
    net_.run_for(10);
  }
  EXPECT_EQ(a.pm->counters().handshakes, 2u);
  EXPECT_EQ(a.seqs_from(b).size(), 60u);
  EXPECT_EQ(b.pm->counters().handshake_failures, 0u);
}

TEST_F(PeerManagerTest, SimultaneousConnectBothWays) {
  for (int round = 0; round < 8; ++round) {
    SCOPED_TRACE(round);
    nodes_.clear();
    net_.log.clear();
    net_.duplicate = round % 2 ? [](const Datagram&) { return true; } : std::function<bool(const Datagram&)>();
    Node& a = node("node-a" + std::to_string(round), ep(1, std::uint16_t(4000 + round)));
    Node& b = node("node-b" + std::to_string(round), ep(2, std::uint16_t(5000 + round)));
    a.knows(b);
    b.knows(a);
    ASSERT_TRUE(a.send(b, packet(1)));
    ASSERT_TRUE(b.send(a, packet(2)));
    net_.run_for(3'000);
    EXPECT_EQ(b.seqs_from(a), std::vector<std::uint32_t>{1});
    EXPECT_EQ(a.seqs_from(b), std::vector<std::uint32_t>{2});
    ASSERT_EQ(a.ups.size(), 1u);
    ASSERT_EQ(b.ups.size(), 1u);
    EXPECT_EQ(a.ups[0].node_id, b.id);
    EXPECT_EQ(b.ups[0].node_id, a.id);
    EXPECT_EQ(a.pm->counters().handshake_failures + b.pm->counters().handshake_failures, 0u);
    // The two handshakes met: only the one with the larger client random went on.
    EXPECT_EQ(a.pm->counters().handshakes, 1u);
    EXPECT_EQ(b.pm->counters().handshakes, 1u);
    for (std::uint32_t i = 10; i < 20; ++i) {
      ASSERT_TRUE(a.send(b, packet(i)));
      ASSERT_TRUE(b.send(a, packet(i + 100)));
    }
    net_.run_for(60'000);  // past every retirement
    for (std::uint32_t i = 20; i < 30; ++i) {
      ASSERT_TRUE(a.send(b, packet(i)));
      ASSERT_TRUE(b.send(a, packet(i + 100)));
    }
    net_.deliver();
    EXPECT_EQ(b.seqs_from(a).size(), 21u);
    EXPECT_EQ(a.seqs_from(b).size(), 21u);
    EXPECT_TRUE(a.downs.empty());
    EXPECT_TRUE(b.downs.empty());
  }
}

// A and B on one LAN behind one NAT: A reaches B at its LAN address, B
// reaches A at its public address (hairpinned). Two handshakes over two
// endpoint pairs both complete; both sides must settle on the same session.
TEST_F(PeerManagerTest, SimultaneousOverDifferentPaths) {
  for (int round = 0; round < 6; ++round) {
    SCOPED_TRACE(round);
    nodes_.clear();
    net_.log.clear();
    const UdpEndpoint a_lan = ep(1, std::uint16_t(4000 + round)), b_lan = ep(2, std::uint16_t(5000 + round));
    const UdpEndpoint a_pub{Ipv4Addr::from_octets(203, 0, 113, 1), std::uint16_t(40000 + round)};
    const UdpEndpoint b_pub{Ipv4Addr::from_octets(203, 0, 113, 1), std::uint16_t(50000 + round)};
    net_.router = [=](const UdpEndpoint& from,
                      const UdpEndpoint& to) -> std::optional<std::pair<UdpEndpoint, UdpEndpoint>> {
      const auto pub_of = [&](const UdpEndpoint& e) { return e == a_lan ? a_pub : b_pub; };
      if (to == a_pub) return std::pair{a_lan, pub_of(from)};
      if (to == b_pub) return std::pair{b_lan, pub_of(from)};
      return std::pair{to, from};
    };
    Node& a = node("a" + std::to_string(round), a_lan);
    Node& b = node("b" + std::to_string(round), b_lan);
    a.pm->set_endpoints(b.id, {b_lan});
    b.pm->set_endpoints(a.id, {a_pub});
    ASSERT_TRUE(a.send(b, packet(1)));
    ASSERT_TRUE(b.send(a, packet(2)));
    net_.run_for(2'000);
    EXPECT_EQ(b.seqs_from(a), std::vector<std::uint32_t>{1});
    EXPECT_EQ(a.seqs_from(b), std::vector<std::uint32_t>{2});
    // Both handshakes completed; one session survives, the same on both sides.
    EXPECT_EQ(a.pm->counters().handshakes, 2u);
    EXPECT_EQ(b.pm->counters().handshakes, 2u);
    net_.run_for(60'000);
    for (std::uint32_t i = 10; i < 20; ++i) {
      ASSERT_TRUE(a.send(b, packet(i)));
      ASSERT_TRUE(b.send(a, packet(i + 100)));
    }
    net_.deliver();
    EXPECT_EQ(b.seqs_from(a).size(), 11u);
    EXPECT_EQ(a.seqs_from(b).size(), 11u);
    EXPECT_EQ(a.ups.size(), 1u);
    EXPECT_EQ(b.ups.size(), 1u);
    EXPECT_TRUE(a.downs.empty());
    EXPECT_TRUE(b.downs.empty());
    EXPECT_EQ(a.pm->counters().unknown_receiver + b.pm->counters().unknown_receiver, 0u);
  }
  net_.router = nullptr;
}

TEST_F(PeerManagerTest, CertificateFromAnotherCaNeverComesUp) {
  const std::string other_ca = root_ + "/other-ca";
  ASSERT_TRUE(crypto::ca_init(other_ca, "other CA", 3650, kT0s).ok);
  Node& a = node("node-a", ep(1, 4000));
  Node& m = node("mallory", ep(6, 6000), {}, other_ca);
  m.knows(a);
  ASSERT_TRUE(m.send(a, packet(1)));
  net_.run_for(20'000);
  EXPECT_TRUE(a.ups.empty());
  EXPECT_TRUE(m.ups.empty());
  EXPECT_TRUE(a.delivered.empty());
  EXPECT_GE(a.pm->counters().handshake_failures, 1u);
  // M keeps trying for its queued packet, but no more often than retry_after_ms.
  const auto failures = m.pm->counters().handshake_failures;
  EXPECT_GE(failures, 5u);
  EXPECT_LE(failures, 11u);
  const auto st = m.stats_of(a);
  ASSERT_TRUE(st);
  EXPECT_FALSE(st->established);
  EXPECT_FALSE(st->last_error.empty());
  // A reached M the other way round fails the same way.
  a.knows(m);
  ASSERT_TRUE(a.send(m, packet(2)));
  net_.run_for(2'000);
  EXPECT_TRUE(a.ups.empty());
  EXPECT_TRUE(m.delivered.empty());
}

TEST_F(PeerManagerTest, RevokedPeerGoesDownOnRecheck) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  Node& c = node("node-c", ep(3, 6000));
  establish(a, b);
  establish(a, c);
  net_.run_for(1'000);

  // Nothing changed: recheck keeps everyone.
  a.pm->recheck(net_.now, a.out());
  EXPECT_TRUE(a.downs.empty());

  ASSERT_TRUE(crypto::ca_revoke(ca_, identities_["node-b"].cert_file, kT0s + 1).ok);
  std::string error;
  ASSERT_TRUE(a.trust->update_crl(slurp(ca_ + "/crl.pem"), error)) << error;
  a.pm->recheck(net_.now, a.out());
  ASSERT_EQ(a.downs.size(), 1u);
  EXPECT_EQ(a.downs[0].node_id, b.id);
  EXPECT_NE(a.downs[0].reason.find("revoked"), std::string::npos) << a.downs[0].reason;
  EXPECT_FALSE(a.is_up(b));
  EXPECT_TRUE(a.is_up(c));
  net_.deliver();  // A's close_notify takes B's side down too
  ASSERT_EQ(b.downs.size(), 1u);
  EXPECT_EQ(b.downs[0].node_id, a.id);

  // B cannot come back; C is unaffected.
  const auto failures = a.pm->counters().handshake_failures;
  b.knows(a);
  ASSERT_TRUE(b.send(a, packet(5)));
  net_.run_for(3'000);
  EXPECT_FALSE(a.is_up(b));
  EXPECT_GT(a.pm->counters().handshake_failures, failures);
  EXPECT_TRUE(a.seqs_from(b).empty());
  ASSERT_TRUE(c.send(a, packet(6)));
  net_.deliver();
  EXPECT_EQ(a.seqs_from(c), std::vector<std::uint32_t>{6});
}

TEST_F(PeerManagerTest, NatRebindingMovesThePeer) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  establish(a, b);
  // B's NAT picks a new public port; the old mapping is gone.
  const UdpEndpoint b_new = ep(2, 5999);
  net_.router = [&](const UdpEndpoint& from,
                    const UdpEndpoint& to) -> std::optional<std::pair<UdpEndpoint, UdpEndpoint>> {
    if (to == b.endpoint) return std::nullopt;
    if (to == b_new) return std::pair{b.endpoint, from};
    if (from == b.endpoint) return std::pair{to, b_new};
    return std::pair{to, from};
  };
  ASSERT_TRUE(b.send(a, packet(10)));
  net_.deliver();
  EXPECT_EQ(a.seqs_from(b), std::vector<std::uint32_t>{10});
  EXPECT_EQ(a.stats_of(b)->endpoint, b_new);
  ASSERT_TRUE(a.send(b, packet(11)));
  net_.deliver();
  EXPECT_EQ(b.seqs_from(a).back(), 11u);
  EXPECT_EQ(net_.log.back().to, b_new);
  // Control and keepalives follow as well; the session stays up.
  net_.run_for(60'000);
  EXPECT_TRUE(a.downs.empty());
  EXPECT_TRUE(b.downs.empty());
  ASSERT_TRUE(a.send(b, packet(12)));
  net_.deliver();
  EXPECT_EQ(b.seqs_from(a).back(), 12u);
  // A stale (replayed) packet from the old port does not move it back.
  net_.router = nullptr;
}

TEST_F(PeerManagerTest, ConnectLearnsNodeIdAndKeepsTheSession) {
  Node& a = node("node-a", ep(1, 4000));
  Node& r = node("rendezvous", ep(8, 7000));
  a.pm->connect(net_.now, r.endpoint, a.out());
  a.pm->connect(net_.now, r.endpoint, a.out());  // idempotent
  net_.deliver();
  ASSERT_EQ(a.ups.size(), 1u);
  EXPECT_EQ(a.ups[0].node_id, r.id);
  EXPECT_EQ(a.ups[0].node_name, "rendezvous");
  EXPECT_EQ(a.ups[0].endpoint, r.endpoint);
  ASSERT_EQ(r.ups.size(), 1u);
  EXPECT_EQ(r.ups[0].node_id, a.id);
  EXPECT_EQ(a.pm->counters().handshakes, 1u);

  NodeMessage reg;
  reg.mutable_register_();
  ASSERT_TRUE(a.send_control(r, reg));
  net_.deliver();
  ASSERT_EQ(r.controls.size(), 1u);
  EXPECT_TRUE(r.controls[0].second.has_register_());

  // The rendezvous disappears for a while: A notices, then reconnects by itself.
  net_.drop = [&](const Datagram& d) { return d.from == r.endpoint || d.to == r.endpoint; };
  net_.run_for(60'000);
  ASSERT_EQ(a.downs.size(), 1u);
  net_.drop = nullptr;
  net_.run_for(15'000);
  ASSERT_EQ(a.ups.size(), 2u);
  EXPECT_EQ(a.ups[1].node_id, r.id);

  // disconnect() stops the reconnecting.
  a.pm->disconnect(r.endpoint);
  net_.drop = [&](const Datagram& d) { return d.from == r.endpoint || d.to == r.endpoint; };
  net_.run_for(60'000);
  ASSERT_EQ(a.downs.size(), 2u);
  net_.drop = nullptr;
  const auto handshakes = a.pm->counters().handshakes;
  net_.run_for(30'000);
  EXPECT_EQ(a.pm->counters().handshakes, handshakes);
}

TEST_F(PeerManagerTest, LossyNetworkStillComesUp) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  a.knows(b);
  std::mt19937 rng(99);
  int dropped = 0;
  net_.drop = [&](const Datagram&) {
    const bool d = rng() % 3 == 0;
    dropped += d;
    return d;
  };
  net_.duplicate = [&](const Datagram&) { return rng() % 5 == 0; };
  ASSERT_TRUE(a.send(b, packet(1)));
  net_.run_for(10'000);
  EXPECT_GT(dropped, 0);
  net_.drop = nullptr;
  net_.duplicate = nullptr;
  net_.run_for(10'000);
  EXPECT_TRUE(a.is_up(b));
  EXPECT_TRUE(b.is_up(a));
  ASSERT_TRUE(a.send(b, packet(2)));
  ASSERT_TRUE(b.send(a, packet(3)));
  net_.deliver();
  EXPECT_EQ(b.seqs_from(a).back(), 2u);
  EXPECT_EQ(a.seqs_from(b).back(), 3u);
}

TEST_F(PeerManagerTest, LostHellosAreRepeated) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  a.knows(b);
  // Drop the first three application-data records (the Hellos) each way.
  int dropped_ab = 0, dropped_ba = 0;
  net_.drop = [&](const Datagram& d) {
    if (d.bytes.empty() || d.bytes[0] != 23) return false;
    int& n = d.from == a.endpoint ? dropped_ab : dropped_ba;
    return n++ < 3;
  };
  ASSERT_TRUE(a.send(b, packet(1)));
  net_.deliver();
  EXPECT_FALSE(a.is_up(b));
  net_.run_for(20'000);
  EXPECT_TRUE(a.is_up(b));
  EXPECT_TRUE(b.is_up(a));
  EXPECT_EQ(b.seqs_from(a), std::vector<std::uint32_t>{1});
  EXPECT_EQ(a.pm->counters().handshake_failures + b.pm->counters().handshake_failures, 0u);
}

TEST_F(PeerManagerTest, PeerRestartReplacesTheSession) {
  Node& a = node("node-a", ep(1, 4000));
  Node* b = &node("node-b", ep(2, 5000));
  establish(a, *b);
  net_.run_for(20'000);
  // B restarts: same identity and endpoint, no memory of the session.
  const Identity ib = identities_["node-b"];
  const std::string b_id = b->id;
  nodes_.pop_back();
  nodes_.push_back(std::make_unique<Node>(net_, "node-b", ep(2, 5000), ib.dtls, trust(ca_), PeerConfig{}, 4242, b_id));
  b = nodes_.back().get();
  b->knows(a);
  ASSERT_TRUE(b->send(a, packet(5)));
  net_.deliver();
  EXPECT_EQ(a.seqs_from(*b), std::vector<std::uint32_t>{5});
  ASSERT_TRUE(a.send(*b, packet(6)));
  net_.deliver();
  EXPECT_EQ(b->seqs_from(a), std::vector<std::uint32_t>{6});
  net_.run_for(60'000);
  ASSERT_TRUE(a.send(*b, packet(7)));
  net_.deliver();
  EXPECT_EQ(b->seqs_from(a).back(), 7u);
  EXPECT_TRUE(a.downs.empty());
}

TEST_F(PeerManagerTest, ThreeNodesMesh) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  Node& c = node("node-c", ep(3, 6000));
  for (Node* x : {&a, &b, &c}) {
    for (Node* y : {&a, &b, &c})
      if (x != y) x->knows(*y);
  }
  std::uint32_t seq = 0;
  for (int i = 0; i < 5; ++i) {
    for (Node* x : {&a, &b, &c}) {
      for (Node* y : {&a, &b, &c}) {
        if (x == y) continue;
        ASSERT_TRUE(x->send(*y, packet(seq++)));
      }
    }
  }
  net_.run_for(5'000);
  for (Node* x : {&a, &b, &c}) {
    EXPECT_EQ(x->delivered.size(), 10u) << x->name;
    EXPECT_EQ(x->ups.size(), 2u) << x->name;
  }
  const auto peers = a.pm->peers();
  ASSERT_EQ(peers.size(), 2u);
  EXPECT_TRUE(peers[0].established && peers[1].established);
}

// A hand-driven DTLS client with a valid certificate that speaks raw bytes.
class RawPeer {
 public:
  RawPeer(FakeNetwork& net, UdpEndpoint at, UdpEndpoint to, const crypto::DtlsIdentity& identity,
          std::shared_ptr<crypto::TrustStore> trust)
      : net_(net), at_(at), to_(to) {
    std::string error;
    ctx_ = crypto::DtlsContext::create(identity, error);
    EXPECT_NE(ctx_, nullptr) << error;
    session = DtlsSession::client(*ctx_, to.to_string(), make_verifier(std::move(trust)), net.now);
    net.attach(at, FakeNetwork::Participant{[this](const UdpEndpoint&, Bytes& d) {
                                              if (d[0] == 4) {
                                                data.push_back(d);
                                                return;
                                              }
                                              session->on_datagram(d, net_.now);
                                              flush();
                                            },
                                            nullptr, nullptr});
    flush();
  }
  ~RawPeer() { net_.detach(at_); }
  void flush() {
    Bytes d;
    while (session->take_datagram(d)) net_.send(at_, to_, d);
    Bytes m;
    while (session->receive(m)) {
      NodeMessage msg;
      EXPECT_TRUE(msg.ParseFromArray(m.data(), int(m.size())));
      messages.push_back(msg);
    }
  }
  void send(const std::string& bytes) {
    ASSERT_TRUE(session->send(ConstByteSpan(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size())));
    flush();
  }
  void send(const NodeMessage& m) { send(m.SerializeAsString()); }

  std::unique_ptr<DtlsSession> session;
  std::vector<NodeMessage> messages;
  std::vector<Bytes> data;

 private:
  FakeNetwork& net_;
  UdpEndpoint at_, to_;
  std::unique_ptr<crypto::DtlsContext> ctx_;
};

TEST_F(PeerManagerTest, RawPeerProtocolChecks) {
  Node& a = node("node-a", ep(1, 4000));
  const Identity ir = identity("raw", ca_);
  RawPeer raw(net_, ep(5, 5555), a.endpoint, ir.dtls, trust(ca_));
  net_.deliver();
  ASSERT_EQ(raw.session->state(), DtlsSession::State::Established) << raw.session->failure_reason();
  // A's Hello arrived, asking for ours.
  ASSERT_EQ(raw.messages.size(), 1u);
  ASSERT_TRUE(raw.messages[0].has_hello());
  EXPECT_EQ(raw.messages[0].request_id(), 1u);
  EXPECT_EQ(raw.messages[0].hello().node_name(), "node-a");
  EXPECT_EQ(raw.messages[0].hello().cipher(), "aes-256-gcm");
  const std::uint32_t a_index = raw.messages[0].hello().receiver_index();

  // Garbage instead of a NodeMessage; a message with no body.
  raw.send(std::string("\xff\xff\xff\xff", 4));
  net_.deliver();
  EXPECT_EQ(a.pm->counters().malformed, 1u);
  NodeMessage empty;
  empty.set_request_id(5);
  raw.send(empty);
  net_.deliver();
  EXPECT_EQ(a.pm->counters().malformed, 2u);

  // Control before Hello is delivered (the peer is authenticated), but the
  // node is not up until its Hello.
  NodeMessage err;
  err.mutable_error()->set_message("hi");
  raw.send(err);
  net_.deliver();
  ASSERT_EQ(a.controls.size(), 1u);
  EXPECT_EQ(a.controls[0].first, ir.id);
  EXPECT_TRUE(a.ups.empty());

  // Our Hello: ChaCha20 for packets to us, receiver index 77, answer wanted.
  NodeMessage hello;
  hello.set_request_id(1);
  hello.mutable_hello()->set_node_name("raw");
  hello.mutable_hello()->set_receiver_index(77);
  hello.mutable_hello()->set_cipher("chacha20-poly1305");
  raw.send(hello);
  net_.deliver();
  ASSERT_EQ(a.ups.size(), 1u);
  EXPECT_EQ(a.ups[0].node_id, ir.id);
  EXPECT_EQ(a.ups[0].node_name, "raw");
  EXPECT_EQ(a.ups[0].endpoint, ep(5, 5555));
  ASSERT_EQ(raw.messages.size(), 2u);  // A answered with its Hello, wanting nothing back
  EXPECT_EQ(raw.messages[1].request_id(), 0u);
  EXPECT_EQ(raw.messages[1].hello().receiver_index(), a_index);

  // The data channel interoperates with DataSealer/DataOpener on the exported keys.
  std::array<std::uint8_t, 32> c2s{}, s2c{};
  ASSERT_TRUE(raw.session->export_keys(c2s, s2c));
  crypto::DataOpener opener(crypto::Cipher::ChaCha20Poly1305, s2c, 77);
  crypto::DataSealer sealer(crypto::Cipher::Aes256Gcm, c2s, a_index);
  ASSERT_TRUE(a.pm->send_packet(net_.now, ir.id, packet(8), a.out()));
  net_.deliver();
  ASSERT_EQ(raw.data.size(), 1u);
  Bytes plain(raw.data[0].size());
  const auto r = opener.open(raw.data[0], plain);
  ASSERT_EQ(r.error, crypto::DataOpener::OpenResult::Error::None);
  plain.resize(r.size);
  EXPECT_EQ(plain, packet(8));
  const Bytes p9 = packet(9);
  Bytes sealed(p9.size() + crypto::kDataOverhead);
  ASSERT_EQ(sealer.seal(p9, sealed), sealed.size());
  inject(a, ep(5, 5555), sealed);
  ASSERT_EQ(a.delivered.size(), 1u);
  EXPECT_EQ(a.delivered[0].packet, p9);
  // An empty data packet is a keepalive: accepted, not delivered.
  Bytes ka(crypto::kDataOverhead);
  ASSERT_EQ(sealer.seal({}, ka), ka.size());
  inject(a, ep(5, 5555), ka);
  EXPECT_EQ(a.delivered.size(), 1u);
  EXPECT_EQ(a.pm->counters().bad_tag + a.pm->counters().replayed, 0u);

  // A keepalive request is echoed with its id.
  NodeMessage ping;
  ping.set_request_id(41);  // odd: from the DTLS client
  ping.mutable_keepalive();
  raw.send(ping);
  net_.deliver();
  ASSERT_EQ(raw.messages.size(), 3u);
  EXPECT_TRUE(raw.messages[2].has_keepalive());
  EXPECT_EQ(raw.messages[2].request_id(), 41u);

  // A changed Hello is refused.
  hello.mutable_hello()->set_receiver_index(78);
  raw.send(hello);
  net_.deliver();
  EXPECT_EQ(a.pm->counters().not_allowed, 1u);
}

TEST_F(PeerManagerTest, HelloWithUnknownCipherIsRefused) {
  Node& a = node("node-a", ep(1, 4000));
  const Identity ir = identity("raw", ca_);
  RawPeer raw(net_, ep(5, 5555), a.endpoint, ir.dtls, trust(ca_));
  net_.deliver();
  NodeMessage hello;
  hello.mutable_hello()->set_node_name("raw");
  hello.mutable_hello()->set_receiver_index(1);
  hello.mutable_hello()->set_cipher("rot13");
  raw.send(hello);
  net_.deliver();
  EXPECT_TRUE(a.ups.empty());
  EXPECT_EQ(a.pm->counters().not_allowed, 1u);
  EXPECT_EQ(a.pm->counters().handshake_failures, 1u);
  EXPECT_EQ(raw.session->state(), DtlsSession::State::Closed);
}

TEST_F(PeerManagerTest, NodeNameFromCertificate) {
  Node& a = node("node-a", ep(1, 4000));
  const Identity ib = identity("node-b", ca_);
  // B claims another name in its Hello; A takes names from certificates.
  auto trust_a = trust(ca_);
  PeerManager pm(SessionSettings{&*a.ctx,
                                 make_verifier(trust_a),
                                 [&](X509* cert) { return trust_a->check(cert, nullptr, kT0s).node_name; },
                                 "node-a",
                                 {}},
                 [] { return 5u; });
  a.pm.reset();  // replaced by pm at A's endpoint
  Node& b = *nodes_.emplace_back(
      std::make_unique<Node>(net_, "liar", ep(2, 5000), ib.dtls, trust(ca_), PeerConfig{}, 3, ib.id));
  b.pm->set_endpoints(a.id, {a.endpoint});
  net_.attach(a.endpoint, FakeNetwork::Participant{
                              [&](const UdpEndpoint& from, Bytes& d) { pm.on_datagram(net_.now, from, d, a.out()); },
                              [&] { return pm.next_deadline_ms(); }, [&] { pm.on_timer(net_.now, a.out()); }});
  ASSERT_TRUE(b.send(a, packet(1)));
  net_.deliver();
  ASSERT_EQ(a.ups.size(), 1u);
  EXPECT_EQ(a.ups[0].node_name, "node-b");
  ASSERT_EQ(b.ups.size(), 1u);
  EXPECT_EQ(b.ups[0].node_name, "node-a");
  net_.detach(a.endpoint);
}

TEST_F(PeerManagerTest, FuzzedDatagramsAreCountedNotFatal) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  establish(a, b);
  for (std::uint32_t i = 1; i < 20; ++i) {
    ASSERT_TRUE(a.send(b, packet(i)));
    ASSERT_TRUE(b.send(a, packet(i)));
  }
  NodeMessage m;
  m.mutable_resolve()->set_address("10.0.0.1");
  ASSERT_TRUE(b.send_control(a, m));
  net_.deliver();
  std::vector<Bytes> real;
  for (const auto& d : net_.log)
    if (d.to == a.endpoint) real.push_back(d.bytes);
  ASSERT_FALSE(real.empty());
  const std::size_t delivered = a.delivered.size();
  const std::size_t controls = a.controls.size();

  std::mt19937 rng(20240601);
  const int kRounds = 30000;
  for (int i = 0; i < kRounds; ++i) {
    Bytes d;
    switch (rng() % 5) {
      case 0: {  // random bytes
        d.resize(rng() % 200);
        for (auto& x : d) x = std::uint8_t(rng());
        break;
      }
      case 1: {  // random bytes with a plausible first byte
        d.resize(1 + rng() % 200);
        for (auto& x : d) x = std::uint8_t(rng());
        static constexpr std::uint8_t kFirst[] = {4, 20, 21, 22, 23, 24, 25};
        d[0] = kFirst[rng() % 7];
        if (d[0] == 4 && d.size() >= 4) d[1] = d[2] = d[3] = 0;
        break;
      }
      case 2: {  // a real datagram, its record framing kept, mutated inside
        d = real[rng() % real.size()];
        if (d[0] == 4) {
          d[8 + rng() % 8] ^= std::uint8_t(1u << (rng() % 8));
          break;
        }
        for (std::size_t off = 0; off + 13 <= d.size();) {
          const std::size_t len = std::size_t(d[off + 11]) << 8 | d[off + 12];
          switch (rng() % 5) {
            case 0: d[off] = std::uint8_t(20 + rng() % 4); break;         // content type
            case 1: d[off + 4] ^= std::uint8_t(1 + rng() % 3); break;     // epoch
            case 2: d[off + 5 + rng() % 6] = std::uint8_t(rng()); break;  // sequence number
            case 3:
              if (len != 0) d[off + 13 + rng() % len] ^= std::uint8_t(1u << (rng() % 8));  // body
              break;
            default: break;
          }
          off += 13 + len;
        }
        break;
      }
      default: {  // a real datagram, mutated
        d = real[rng() % real.size()];
        const int flips = 1 + int(rng() % 4);
        for (int f = 0; f < flips && !d.empty(); ++f) d[rng() % d.size()] ^= std::uint8_t(1u << (rng() % 8));
        if (rng() % 4 == 0) d.resize(rng() % (d.size() + 1));
        break;
      }
    }
    const UdpEndpoint from = rng() % 2 ? b.endpoint : ep(std::uint8_t(rng()), std::uint16_t(rng()));
    inject(a, from, d);
    if (i % 1000 == 0) net_.deliver();
  }
  net_.deliver();
  const auto& c = a.pm->counters();
  EXPECT_GT(c.malformed, 0u);
  EXPECT_GT(c.unknown_receiver, 0u);
  EXPECT_GT(c.bad_tag + c.replayed, 0u);
  EXPECT_GT(c.not_allowed, 0u);
  EXPECT_EQ(a.delivered.size(), delivered);  // nothing forged got through
  EXPECT_EQ(a.controls.size(), controls);
  // The session still works both ways.
  for (const auto& d : b.downs) ADD_FAILURE() << "b down: " << d.reason;
  for (const auto& d : a.downs) ADD_FAILURE() << "a down: " << d.reason;
  EXPECT_EQ(a.pm->counters().handshakes, 1u);
  ASSERT_TRUE(b.send(a, packet(500)));
  ASSERT_TRUE(a.send(b, packet(501)));
  net_.run_for(1'000);
  EXPECT_EQ(a.seqs_from(b).back(), 500u);
  EXPECT_EQ(b.seqs_from(a).back(), 501u);
  EXPECT_TRUE(a.is_up(b));
}

TEST_F(PeerManagerTest, DeadlinesAreConsistent) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  EXPECT_EQ(a.pm->next_deadline_ms(), PeerManager::kNoDeadline);
  a.knows(b);
  EXPECT_EQ(a.pm->next_deadline_ms(), PeerManager::kNoDeadline);  // nothing to send yet
  net_.drop = [](const Datagram&) { return true; };
  ASSERT_TRUE(a.send(b, packet(1)));
  EXPECT_EQ(a.pm->next_deadline_ms(), net_.now + 1000);  // ClientHello retransmission
  net_.run_for(30'000);                                  // handshakes time out and are retried
  EXPECT_GE(a.pm->counters().handshake_failures, 2u);
  net_.drop = nullptr;
  net_.run_for(15'000);
  EXPECT_EQ(b.seqs_from(a), std::vector<std::uint32_t>{1});
  EXPECT_LE(a.pm->next_deadline_ms(), net_.now + PeerConfig{}.keepalive_ms);
}

}  // namespace
}  // namespace wownet::overlay

namespace wownet::overlay {
namespace {

// OpenSSL 3.0 ends a DTLS session on a protected record shorter than the
// AEAD's nonce and tag; anyone can forge one from the peer's address. The
// layer does not let them reach the session.
TEST_F(PeerManagerTest, ForgedShortRecordsDoNotKillSessions) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  establish(a, b);
  for (std::uint8_t type = 20; type <= 23; ++type) {
    for (std::size_t len : {0, 1, 2, 8, 15, 16, 17, 23, 24, 40}) {
      Bytes d = {type, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, std::uint8_t(len)};
      for (std::size_t i = 0; i < len; ++i) d.push_back(std::uint8_t(i * 37 + 1));
      Bytes copy = d;
      inject(a, b.endpoint, d);     // to the DTLS client
      inject(b, a.endpoint, copy);  // to the DTLS server
    }
  }
  net_.deliver();
  EXPECT_TRUE(a.downs.empty());
  EXPECT_TRUE(b.downs.empty());
  ASSERT_TRUE(a.send(b, packet(1)));
  ASSERT_TRUE(b.send(a, packet(2)));
  net_.run_for(60'000);  // keepalives still work
  EXPECT_EQ(b.seqs_from(a).back(), 1u);
  EXPECT_EQ(a.seqs_from(b).back(), 2u);
  EXPECT_TRUE(a.downs.empty());
  EXPECT_TRUE(b.downs.empty());
}

TEST_F(PeerManagerTest, NextEndpointAfterFailedHandshake) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  Node& c = node("node-c", ep(3, 6000));
  // The registry lists a dead endpoint first, then C's (stale), then B's.
  a.pm->set_endpoints(b.id, {ep(2, 1), c.endpoint, b.endpoint});
  ASSERT_TRUE(a.send(b, packet(1)));
  net_.run_for(11'000);  // the first handshake times out after 10 s
  EXPECT_EQ(a.pm->counters().handshake_failures, 1u);
  EXPECT_TRUE(b.delivered.empty());
  net_.run_for(2'000);  // retry_after_ms later: C answers, as C
  ASSERT_EQ(a.ups.size(), 1u);
  EXPECT_EQ(a.ups[0].node_id, c.id);
  EXPECT_NE(a.stats_of(b)->last_error.find("answered as node " + c.id), std::string::npos) << a.stats_of(b)->last_error;
  EXPECT_TRUE(c.delivered.empty());  // B's packet is not C's
  net_.run_for(2'000);               // then B's own endpoint
  ASSERT_EQ(a.ups.size(), 2u);
  EXPECT_EQ(a.ups[1].node_id, b.id);
  EXPECT_EQ(b.seqs_from(a), std::vector<std::uint32_t>{1});
  EXPECT_EQ(a.stats_of(b)->endpoint, b.endpoint);
}

}  // namespace
}  // namespace wownet::overlay

// Counts heap allocations, for the steady-state data path check below.
namespace {
std::size_t g_allocations = 0;
}  // namespace

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"  // the replacements pair malloc and free
#endif
void* operator new(std::size_t size) {
  ++g_allocations;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace wownet::overlay {
namespace {

// Sends and receives without allocating itself: the datagram goes into a
// buffer sized beforehand.
class Wire : public ActionSink {
 public:
  Wire() : last(2048) {}
  void send_datagram(const UdpEndpoint&, ConstByteSpan d) override {
    std::copy(d.begin(), d.end(), last.begin());
    size = d.size();
  }
  void deliver_packet(std::string_view, ByteSpan, std::size_t, std::size_t length) override {
    ++delivered;
    bytes += length;
  }
  void deliver_control(std::string_view, const NodeMessage&) override {}
  void peer_up(std::string_view, std::string_view, const UdpEndpoint&) override {}
  void peer_down(std::string_view, std::string_view) override {}
  Bytes last;
  std::size_t size = 0, delivered = 0, bytes = 0;
};

TEST_F(PeerManagerTest, SteadyStateDataPathDoesNotAllocate) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  establish(a, b);
  Wire wire;
  const Bytes p = packet(7, 1400);
  // Warm up (first use of every buffer).
  ASSERT_TRUE(a.pm->send_packet(net_.now, b.id, p, wire.out()));
  b.pm->on_datagram(net_.now, a.endpoint, ByteSpan(wire.last.data(), wire.size), wire.out());
  ASSERT_EQ(wire.delivered, 1u);

  const std::size_t before = g_allocations;
  for (int i = 0; i < 1000; ++i) {
    a.pm->send_packet(net_.now, b.id, p, wire.out());
    b.pm->on_datagram(net_.now, a.endpoint, ByteSpan(wire.last.data(), wire.size), wire.out());
    b.pm->send_packet(net_.now, a.id, p, wire.out());
    a.pm->on_datagram(net_.now, b.endpoint, ByteSpan(wire.last.data(), wire.size), wire.out());
  }
  const std::size_t allocations = g_allocations - before;
  EXPECT_EQ(allocations, 0u);
  EXPECT_EQ(wire.delivered, 2001u);
  EXPECT_EQ(wire.bytes, 2001u * 1400);
}

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
};

TEST_F(RelayTest, RelayAfterDirectFailsThenDirectTakesOver) {
  EXPECT_TRUE(b_via_relay.relayed());
  EXPECT_FALSE(ep(1, 1).relayed());
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  wire(a, b);
  a.knows(b);
  a.pm->set_relay(b.id, b_via_relay);
  ASSERT_TRUE(a.send(b, packet(1)));
  // The direct handshake gets no answer; the relay is not tried before
  // relay_after_ms.
  net_.run_for(2'900);
  EXPECT_FALSE(a.is_up(b));
  EXPECT_EQ(relayed_datagrams, 0u);
  net_.run_for(200);
  ASSERT_TRUE(a.is_up(b));
  EXPECT_TRUE(a.stats_of(b)->relayed);
  EXPECT_TRUE(b.stats_of(a)->relayed);
  EXPECT_EQ(a.stats_of(b)->endpoint, b_via_relay);
  EXPECT_EQ(b.seqs_from(a), std::vector<std::uint32_t>{1});
  ASSERT_TRUE(b.send(a, packet(2)));
  net_.deliver();
  EXPECT_EQ(a.seqs_from(b), std::vector<std::uint32_t>{2});
  EXPECT_EQ(net_.log.back().to, a_via_relay);

  // The first direct handshake runs out; no other starts by itself.
  net_.run_for(12'000);
  EXPECT_TRUE(a.stats_of(b)->relayed);
  // The direct path opens (the far NAT was asked to open): it takes over on
  // both sides and the relayed session is retired.
  direct_blocked = false;
  EXPECT_TRUE(a.pm->try_direct(net_.now, b.id, a.out()));
  net_.deliver();
  EXPECT_FALSE(a.stats_of(b)->relayed);
  EXPECT_FALSE(b.stats_of(a)->relayed);
  EXPECT_FALSE(a.pm->try_direct(net_.now, b.id, a.out())) << "direct already keyed";
  const std::size_t relayed_before = relayed_datagrams;
  ASSERT_TRUE(a.send(b, packet(3)));
  ASSERT_TRUE(b.send(a, packet(4)));
  net_.deliver();
  EXPECT_EQ(b.seqs_from(a).back(), 3u);
  EXPECT_EQ(a.seqs_from(b).back(), 4u);
  EXPECT_EQ(relayed_datagrams, relayed_before) << "data went through the relay";
  net_.run_for(60'000);
  EXPECT_TRUE(a.downs.empty());
  EXPECT_TRUE(a.is_up(b));
  EXPECT_FALSE(a.stats_of(b)->relayed);
  // The relay going away does not disturb the direct session.
  const std::size_t after_retire = relayed_datagrams;
  net_.run_for(60'000);
  EXPECT_EQ(relayed_datagrams, after_retire) << "the retired relayed session is still used";
  EXPECT_TRUE(a.downs.empty());
  EXPECT_TRUE(b.downs.empty());
}

TEST_F(RelayTest, SlowDirectPathStillTakesOverOnceItOpens) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  wire(a, b);
  a.knows(b);
  a.pm->set_relay(b.id, b_via_relay);
  ASSERT_TRUE(a.send(b, packet(1)));
  net_.run_for(3'500);
  ASSERT_TRUE(a.is_up(b));
  EXPECT_TRUE(a.stats_of(b)->relayed);
  // The direct handshake that was under way goes on and, once the path
  // opens, replaces the relayed session.
  direct_blocked = false;
  net_.run_for(8'000);
  EXPECT_FALSE(a.stats_of(b)->relayed);
  EXPECT_FALSE(b.stats_of(a)->relayed);
  EXPECT_TRUE(a.downs.empty());
}

TEST_F(RelayTest, NoDirectEndpointGoesThroughTheRelayAtOnce) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  wire(a, b);
  a.pm->set_relay(b.id, b_via_relay);
  ASSERT_TRUE(a.send(b, packet(1)));
  net_.deliver();
  ASSERT_TRUE(a.is_up(b));
  EXPECT_TRUE(a.stats_of(b)->relayed);
  EXPECT_EQ(b.seqs_from(a), std::vector<std::uint32_t>{1});
  EXPECT_EQ(a.pm->endpoint_of(b.id), b_via_relay);
  EXPECT_EQ(b.pm->node_at(a_via_relay), a.id);
  EXPECT_EQ(b.pm->node_at(a.endpoint), "");
  // No direct endpoint: nothing to try.
  EXPECT_FALSE(a.pm->try_direct(net_.now, b.id, a.out()));
}

TEST_F(RelayTest, RelayedSessionNeverDisplacesADirectOne) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  direct_blocked = false;
  wire(a, b);
  establish(a, b);
  // A relayed session keyed later (e.g. started by the far side before the
  // direct one opened) does not take over.
  a.pm->connect(net_.now, b_via_relay, a.out());
  net_.deliver();
  net_.run_for(1'000);
  EXPECT_FALSE(a.stats_of(b)->relayed);
  EXPECT_FALSE(b.stats_of(a)->relayed);
  const std::size_t before = relayed_datagrams;
  ASSERT_TRUE(a.send(b, packet(5)));
  ASSERT_TRUE(b.send(a, packet(6)));
  net_.deliver();
  EXPECT_EQ(relayed_datagrams, before);
  EXPECT_EQ(b.seqs_from(a).back(), 5u);
  EXPECT_EQ(a.seqs_from(b).back(), 6u);
}

TEST_F(RelayTest, DirectDiesRelayCarriesOn) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  direct_blocked = false;
  wire(a, b);
  establish(a, b);
  a.pm->set_relay(b.id, b_via_relay);
  // The direct path breaks for good (e.g. a NAT rebinding the far NAT
  // refuses): the session dies, and traffic finds the relay.
  direct_blocked = true;
  const std::int64_t broke = net_.now;
  for (std::uint32_t i = 0; i < 80; ++i) {
    a.send(b, packet(100 + i));
    net_.run_for(500);
  }
  ASSERT_TRUE(a.is_up(b));
  EXPECT_TRUE(a.stats_of(b)->relayed);
  EXPECT_GE(b.seqs_from(a).back(), 100u + 79u - 2u);
  EXPECT_LT(net_.now - broke, 60'000);
}

TEST_F(RelayTest, BrokenDirectPathEndsEarlyWhileSendingAndTheRelayTakesOver) {
  PeerConfig config;
  config.stale_after_ms = 5'000;
  Node& a = node("node-a", ep(1, 4000), config);
  Node& b = node("node-b", ep(2, 5000), config);
  direct_blocked = false;
  wire(a, b);
  establish(a, b);
  a.pm->set_relay(b.id, b_via_relay);
  // Idle, nothing is stale: keepalives answer each other.
  net_.run_for(30'000);
  EXPECT_TRUE(a.downs.empty());
  // The direct path breaks while A sends: A gives the session up after
  // stale_after_ms, well before dead_after_ms (35 s), and the relay
  // carries the traffic.
  direct_blocked = true;
  const std::int64_t broke = net_.now;
  for (std::uint32_t i = 0; i < 40 && a.downs.empty(); ++i) {
    a.send(b, packet(200 + i));
    net_.run_for(250);
  }
  ASSERT_FALSE(a.downs.empty());
  EXPECT_NE(a.downs[0].reason.find("no answer"), std::string::npos) << a.downs[0].reason;
  EXPECT_LE(a.downs[0].at - broke, 5'500);
  for (std::uint32_t i = 0; i < 40 && !(a.is_up(b) && a.stats_of(b)->relayed); ++i) {
    a.send(b, packet(300 + i));
    net_.run_for(250);
  }
  EXPECT_TRUE(a.stats_of(b)->relayed);
  EXPECT_LT(net_.now - broke, 10'000);
}

TEST_F(PeerManagerTest, ForgottenEndpointsMakeTheCallerResolveAgain) {
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  establish(a, b);
  // B goes away; once A's session is dead, A forgets where B was.
  net_.detach(b.endpoint);
  net_.run_for(60'000);
  ASSERT_FALSE(a.downs.empty());
  a.pm->set_endpoints(b.id, {});
  const auto before = a.pm->counters().no_endpoint;
  EXPECT_FALSE(a.send(b, packet(1))) << "the last endpoint was kept";
  EXPECT_EQ(a.pm->counters().no_endpoint, before + 1);
}

TEST_F(PeerManagerTest, KeepaliveMovesAControlOnlySessionAfterRebinding) {
  // A session that carries only control messages (a host and its
  // rendezvous) follows the host's new public port: keepalive requests go
  // with an empty data packet, which roams the session.
  Node& a = node("node-a", ep(1, 4000));
  Node& b = node("node-b", ep(2, 5000));
  establish(a, b);
  const UdpEndpoint a_new = ep(1, 4999);
  net_.router = [&](const UdpEndpoint& from,
                    const UdpEndpoint& to) -> std::optional<std::pair<UdpEndpoint, UdpEndpoint>> {
    if (to == a.endpoint) return std::nullopt;  // the old mapping is gone
    if (to == a_new) return std::pair{a.endpoint, from};
    if (from == a.endpoint) return std::pair{to, a_new};
    return std::pair{to, from};
  };
  net_.run_for(120'000);
  EXPECT_TRUE(a.downs.empty());
  EXPECT_TRUE(b.downs.empty());
  EXPECT_EQ(b.stats_of(a)->endpoint, a_new);
  NodeMessage m;
  m.set_request_id(7);
  m.mutable_resolve()->set_address("10.0.0.1");
  ASSERT_TRUE(b.send_control(a, m));
  net_.deliver();
  ASSERT_FALSE(a.controls.empty());
  EXPECT_EQ(a.controls.back().second.request_id(), 7u);
}

}  // namespace
}  // namespace wownet::overlay
