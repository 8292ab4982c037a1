// PeerSession: record framing and tie-break helpers on byte-exact input, and
// two sessions wired back to back through a FakeHost (literal times,
// certificates made with pki.h in a temporary directory).
#include "overlay/session.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "crypto/pki.h"
#include "proto/overlay.pb.h"
#include "temp_dir.h"

namespace wownet::overlay {
namespace {

using Bytes = std::vector<std::uint8_t>;
constexpr UnixTime kT0s = 1'700'000'000;
constexpr std::int64_t kT0 = kT0s * 1000;

// A DTLS record header: type, version 0xfefd, epoch, 6-byte sequence, length.
Bytes record(std::uint8_t type, std::uint16_t epoch, std::size_t length) {
  Bytes r{type, 0xfe, 0xfd, std::uint8_t(epoch >> 8),  std::uint8_t(epoch), 0, 0, 0,
          0,    0,    0,    std::uint8_t(length >> 8), std::uint8_t(length)};
  r.resize(r.size() + length, 0xab);
  return r;
}

Bytes concat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A ClientHello's first record: handshake type 1 at offset 0, then the
// version and the 32-byte random filled with `fill`.
Bytes client_hello(std::uint8_t fill) {
  Bytes r = record(22, 0, 12 + 2 + 32 + 8);
  std::fill(r.begin() + 13, r.begin() + 13 + 12, 0);
  r[13] = 1;
  std::fill(r.begin() + 13 + 12 + 2, r.begin() + 13 + 12 + 2 + 32, fill);
  return r;
}

TEST(PeerSessionFramingTest, ShortestProtectedRecord) {
  EXPECT_EQ(PeerSession::shortest_protected_record(record(22, 0, 40)), SIZE_MAX);  // epoch 0 only
  EXPECT_EQ(PeerSession::shortest_protected_record(concat(record(23, 1, 40), record(21, 1, 18))), 18u);
  EXPECT_EQ(PeerSession::shortest_protected_record(Bytes{22, 0xfe, 0xfd}), std::nullopt);  // cut header
  Bytes overlong = record(23, 1, 10);
  overlong.pop_back();
  EXPECT_EQ(PeerSession::shortest_protected_record(overlong), std::nullopt);
}

TEST(PeerSessionFramingTest, ClientHelloRandom) {
  const auto r = PeerSession::client_hello_random(client_hello(0x5a));
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[0], 0x5a);
  EXPECT_EQ((*r)[31], 0x5a);
  Bytes fragment = client_hello(0x5a);
  fragment[13 + 8] = 1;  // fragment offset 1: not the start
  EXPECT_FALSE(PeerSession::client_hello_random(fragment));
  EXPECT_FALSE(PeerSession::client_hello_random(record(22, 1, 60)));  // epoch 1
  EXPECT_FALSE(PeerSession::client_hello_random(record(23, 0, 60)));  // not a handshake
}

// ---------------------------------------------------------------------------
// Two sessions back to back.

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct FakeHost : SessionHost {
  std::deque<Bytes> sent;
  std::uint32_t next_index = 100;
  int established = 0, keyed = 0, malformed = 0, not_allowed = 0;
  std::vector<NodeMessage> controls;
  std::vector<std::int64_t> rtts;
  std::vector<std::string> ended;

  void send_datagram(const UdpEndpoint&, ConstByteSpan d) override { sent.emplace_back(d.begin(), d.end()); }
  std::uint32_t on_established(PeerSession&) override {
    ++established;
    return next_index++;
  }
  void on_keyed(PeerSession&) override { ++keyed; }
  void on_control(PeerSession&, const NodeMessage& m) override { controls.push_back(m); }
  void on_rtt(PeerSession&, std::int64_t rtt) override { rtts.push_back(rtt); }
  void on_ended(PeerSession& s, const std::string& reason) override {
    s.mark_dead();
    ended.push_back(reason);
  }
  void tally(Tally t) override { ++(t == Tally::Malformed ? malformed : not_allowed); }
};

class PeerSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(tmp_.path().empty());
    root_ = tmp_.path();
    const std::string ca = root_ + "/ca";
    ASSERT_TRUE(crypto::ca_init(ca, "test CA", 3650, kT0s).ok);
    std::string error;
    auto ts = crypto::TrustStore::load(ca + "/ca.crt", ca + "/crl.pem", error);
    ASSERT_TRUE(ts) << error;
    trust_ = std::make_shared<crypto::TrustStore>(std::move(*ts));
    for (int i = 0; i < 2; ++i) {
      const std::string name = i == 0 ? "alpha" : "beta", dir = root_ + "/" + name;
      ASSERT_TRUE(crypto::cert_request(dir, name).ok);
      ASSERT_TRUE(crypto::ca_sign(ca, dir + "/node.csr", dir + "/node.crt", 365, kT0s).ok);
      crypto::DtlsIdentity ident{slurp(dir + "/node.crt"), slurp(dir + "/node.key"), slurp(ca + "/ca.crt")};
      ids_[i] = crypto::node_id_from_pem(ident.cert_pem, error);
      contexts_[i] = crypto::DtlsContext::create(ident, error);
      ASSERT_TRUE(contexts_[i]) << error;
      settings_[i].context = contexts_[i].get();
      settings_[i].self_name = name;
      settings_[i].verify = [trust = trust_](X509* cert, STACK_OF(X509) * chain, std::int64_t now_ms) {
        const crypto::PeerCheck check = trust->check(cert, chain, now_ms / 1000);
        crypto::VerifyOutcome o;
        o.ok = check.ok();
        o.peer_id = check.node_id;
        if (!o.ok) o.reason = check.detail;
        return o;
      };
    }
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
  }

  // Moves what each side sent to the other until both are quiet.
  void exchange(std::int64_t now) {
    while (!client_host_.sent.empty() || !server_host_.sent.empty()) {
      while (!client_host_.sent.empty()) {
        Bytes d = std::move(client_host_.sent.front());
        client_host_.sent.pop_front();
        if (d[0] == crypto::kDataPacketType) continue;  // data goes through open() in the tests
        if (!server_) {
          Bytes reply;
          server_ = PeerSession::server(settings_[1], kClientAt, d, now, reply);
          if (!reply.empty()) client_->on_dtls(now, reply, client_host_);
          if (server_) server_->start(now, server_host_);
        } else {
          server_->on_dtls(now, d, server_host_);
        }
      }
      while (!server_host_.sent.empty()) {
        Bytes d = std::move(server_host_.sent.front());
        server_host_.sent.pop_front();
        if (d[0] != crypto::kDataPacketType) client_->on_dtls(now, d, client_host_);
      }
    }
  }

  void connect() {
    client_ = PeerSession::client(settings_[0], kServerAt, ids_[1], false, kT0);
    ASSERT_TRUE(client_);
    client_->start(kT0, client_host_);
    exchange(kT0);
    ASSERT_TRUE(server_);
    ASSERT_TRUE(client_->keyed());
    ASSERT_TRUE(server_->keyed());
  }

  const UdpEndpoint kClientAt{Ipv4Addr::from_octets(192, 0, 2, 1), 4000};
  const UdpEndpoint kServerAt{Ipv4Addr::from_octets(192, 0, 2, 2), 4000};
  wownet::test::TempDir tmp_{"session_test"};
  std::string root_;
  std::shared_ptr<crypto::TrustStore> trust_;
  std::string ids_[2];
  std::unique_ptr<crypto::DtlsContext> contexts_[2];
  SessionSettings settings_[2];
  FakeHost client_host_, server_host_;
  std::unique_ptr<PeerSession> client_, server_;
};

TEST_F(PeerSessionTest, HandshakeAndHellosKeyBothSides) {
  connect();
  EXPECT_EQ(client_host_.established, 1);
  EXPECT_EQ(server_host_.keyed, 1);
  EXPECT_EQ(client_->node_id(), ids_[1]);
  EXPECT_EQ(server_->node_id(), ids_[0]);
  EXPECT_EQ(client_->peer_name(), "beta");
  EXPECT_EQ(server_->peer_name(), "alpha");
  EXPECT_EQ(client_->tag(), server_->tag());  // both derive it from the same keys
  EXPECT_TRUE(client_->peer_has_hello());
  EXPECT_TRUE(server_->peer_has_hello());
}

TEST_F(PeerSessionTest, SealsAndOpensDataInPlace) {
  connect();
  const Bytes ip(60, 0x45);
  Bytes buffer(ip.size() + crypto::kDataOverhead);
  const std::size_t n = client_->seal(kT0 + 5, ip, buffer);
  ASSERT_EQ(n, ip.size() + crypto::kDataOverhead);
  buffer.resize(n);
  Bytes copy = buffer;
  const auto r = server_->open(kT0 + 6, buffer);
  ASSERT_EQ(r.error, crypto::DataOpener::OpenResult::Error::None);
  EXPECT_EQ(Bytes(buffer.begin() + crypto::kDataHeaderSize, buffer.begin() + crypto::kDataHeaderSize + r.size), ip);
  EXPECT_TRUE(server_->is_newest(buffer));
  EXPECT_EQ(server_->last_rx_ms(), kT0 + 6);
  EXPECT_EQ(server_->open(kT0 + 7, copy).error, crypto::DataOpener::OpenResult::Error::Replayed);
}

TEST_F(PeerSessionTest, KeepaliveIsAnsweredWithRtt) {
  connect();
  EXPECT_EQ(client_->keepalive_due(), kT0 + settings_[0].config.keepalive_ms);  // after keepalive_ms idle
  client_->send_keepalive(kT0 + 100, client_host_);
  ASSERT_FALSE(client_host_.sent.empty());
  EXPECT_EQ(client_host_.sent.front()[0], crypto::kDataPacketType);  // the empty data packet goes first
  exchange(kT0 + 130);
  ASSERT_EQ(client_host_.rtts.size(), 1u);
  EXPECT_EQ(client_host_.rtts[0], 30);
}

TEST_F(PeerSessionTest, EndsAfterDeadAfterMsOfSilence) {
  connect();
  const std::int64_t dead_at = kT0 + settings_[0].config.dead_after_ms;
  EXPECT_LE(client_->next_deadline(true), dead_at);
  EXPECT_TRUE(client_->on_timer(dead_at - 1, false, client_host_));
  client_host_.sent.clear();
  EXPECT_FALSE(client_->on_timer(dead_at, false, client_host_));
  EXPECT_TRUE(client_->dead());
  ASSERT_EQ(client_host_.ended.size(), 1u);
  EXPECT_EQ(client_host_.ended[0], "no traffic for 35000 ms");
}

TEST_F(PeerSessionTest, HandshakingClientYieldsOnlyToALargerRandom) {
  client_ = PeerSession::client(settings_[0], kServerAt, ids_[1], false, kT0);
  client_->start(kT0, client_host_);
  ASSERT_EQ(client_host_.sent.size(), 1u);
  const auto ours = PeerSession::client_hello_random(client_host_.sent.front());
  ASSERT_TRUE(ours);
  EXPECT_TRUE(client_->handshaking());
  EXPECT_TRUE(client_->yields_to(client_hello(0xff)) || (*ours)[0] == 0xff);
  EXPECT_FALSE(client_->yields_to(client_hello(0x00)));
  EXPECT_FALSE(client_->yields_to(record(22, 0, 10)));  // no random to compare
}

}  // namespace
}  // namespace wownet::overlay
