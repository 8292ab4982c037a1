// The overlay's UDP socket over 127.0.0.1: trains out with one sendmsg
// (UDP GSO) or datagram by datagram, batches in with recvmmsg, coalesced by
// UDP_GRO or not; either way the same datagrams, byte for byte.
#include "io/udp_socket.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

namespace wownet::io {
namespace {

namespace asio = boost::asio;

using Bytes = std::vector<std::uint8_t>;

const Ipv4Addr kLoopback = Ipv4Addr::from_octets(127, 0, 0, 1);

// `count` datagrams of `size` bytes then a `tail`-byte one, back to back;
// every datagram's bytes differ from every other's.
Bytes make_train(std::size_t count, std::size_t size, std::size_t tail) {
  Bytes b;
  for (std::size_t d = 0; d <= count; ++d) {
    std::size_t n = d < count ? size : tail;
    for (std::size_t i = 0; i < n; ++i) b.push_back(std::uint8_t(d * 7 + i * 13 + (i >> 8)));
  }
  return b;
}

std::vector<Bytes> split_expected(const Bytes& train, std::size_t size) {
  std::vector<Bytes> out;
  for (std::size_t at = 0; at < train.size(); at += size)
    out.emplace_back(train.begin() + std::ptrdiff_t(at),
                     train.begin() + std::ptrdiff_t(std::min(train.size(), at + size)));
  return out;
}

struct Received {
  std::vector<Bytes> datagrams;
  std::vector<std::size_t> segment_sizes;  // per buffer
  std::size_t calls = 0;
  bool truncated = false;
};

// Receives until `want` datagrams are in or two seconds pass. Loopback
// delivers synchronously, so this rarely needs more than one call.
Received receive_all(UdpSocket& socket, UdpReceiveBatch& batch, std::size_t want, Ipv4SocketAddress from) {
  Received r;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (r.datagrams.size() < want && std::chrono::steady_clock::now() < deadline) {
    std::error_code ec = socket.receive(batch);
    EXPECT_FALSE(ec) << ec.message();
    if (batch.size() == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    ++r.calls;
    for (const ReceivedBuffer& buf : batch.buffers()) {
      EXPECT_EQ(buf.from, from);
      r.truncated |= buf.truncated;
      r.segment_sizes.push_back(buf.segment_size);
      for (std::size_t i = 0; i < buf.datagram_count(); ++i) {
        ByteSpan d = buf.datagram(i);
        r.datagrams.emplace_back(d.begin(), d.end());
      }
    }
  }
  return r;
}

struct Pair {
  UdpSocket sender;
  UdpSocket receiver;
  Pair(UdpSocketOptions send_options, UdpSocketOptions receive_options) {
    EXPECT_FALSE(sender.open({kLoopback, 0}, send_options));
    receive_options.receive_buffer_bytes = 4 << 20;
    EXPECT_FALSE(receiver.open({kLoopback, 0}, receive_options));
  }
  // `train` from sender to receiver in datagrams of `size` bytes.
  UdpSendResult send(const Bytes& train, std::size_t size) {
    return sender.send_train(receiver.local_address(), train, size);
  }
  // Sends `train` as above; it must go as `datagrams` datagrams in
  // `gso_sends` GSO sends (in total since the pair was made).
  void send_counted(const Bytes& train, std::size_t size, std::size_t datagrams, std::uint64_t gso_sends) {
    UdpSendResult sent = send(train, size);
    ASSERT_FALSE(sent.error) << sent.error.message();
    EXPECT_EQ(sent.datagrams, datagrams);
    EXPECT_EQ(sender.stats().gso_sends, gso_sends);
  }
  // What the receiver gets from the sender until `want` datagrams are in.
  Received receive(UdpReceiveBatch& batch, std::size_t want) {
    return receive_all(receiver, batch, want, sender.local_address());
  }
};

TEST(UdpSocketTest, OpensOnAnEphemeralPortWithOffloads) {
  UdpSocket s;
  EXPECT_FALSE(s.gso_enabled());
  EXPECT_EQ(s.gso_disabled_reason(), "not open");
  ASSERT_FALSE(s.open({kLoopback, 0}));
  EXPECT_TRUE(s.is_open());
  EXPECT_EQ(s.local_address().address, kLoopback);
  EXPECT_NE(s.local_address().port, 0);
  // Linux >= 5.0 has both; the build hosts and CI run newer kernels.
  EXPECT_TRUE(s.gso_enabled()) << s.gso_disabled_reason() << ": " << s.gso_error().message();
  EXPECT_TRUE(s.gro_enabled()) << s.gro_disabled_reason() << ": " << s.gro_error().message();
  s.close();
  EXPECT_FALSE(s.is_open());
}

TEST(UdpSocketTest, TrainWithGsoArrivesWholeWithGro) {
  Pair p({}, {});
  Bytes train = make_train(40, 1400, 300);
  ASSERT_EQ(train.size(), 40u * 1400 + 300);
  UdpSendResult sent = p.send(train, 1400);
  ASSERT_FALSE(sent.error) << sent.error.message();
  EXPECT_EQ(sent.datagrams, 41u);
  EXPECT_TRUE(p.sender.gso_enabled()) << p.sender.gso_disabled_reason();
  EXPECT_EQ(p.sender.stats().gso_sends, 1u);  // 41 datagrams, 56300 bytes: one sendmsg

  UdpReceiveBatch batch(8);
  Received r = p.receive(batch, 41);
  EXPECT_FALSE(r.truncated);
  EXPECT_EQ(r.datagrams, split_expected(train, 1400));
  // Coalesced (gso_size 1400) or one datagram per buffer: both are right.
  for (std::size_t s : r.segment_sizes) EXPECT_TRUE(s == 1400 || s == 300) << s;
  RecordProperty("receive_buffers", int(r.segment_sizes.size()));
  EXPECT_EQ(p.receiver.stats().datagrams_received, 41u);
}

TEST(UdpSocketTest, TrainWithGsoOffArrivesTheSame) {
  UdpSocketOptions no_gso;
  no_gso.gso = false;
  for (bool gro : {true, false}) {
    UdpSocketOptions rx;
    rx.gro = gro;
    Pair p(no_gso, rx);
    EXPECT_FALSE(p.sender.gso_enabled());
    EXPECT_EQ(p.sender.gso_disabled_reason(), "turned off by configuration");
    EXPECT_EQ(p.receiver.gro_enabled(), gro);
    Bytes train = make_train(40, 1400, 300);
    ASSERT_NO_FATAL_FAILURE(p.send_counted(train, 1400, 41, 0));
    UdpReceiveBatch batch(16);
    Received r = p.receive(batch, 41);
    EXPECT_EQ(r.datagrams, split_expected(train, 1400)) << "gro " << gro;
    // Without GSO on the sender nothing is coalesced on loopback; the 41
    // buffers need at least three recvmmsg calls of 16.
    EXPECT_EQ(r.segment_sizes.size(), 41u);
    EXPECT_GE(r.calls, 3u);
  }
}

TEST(UdpSocketTest, GsoTrainToAReceiverWithoutGroIsSplitByTheKernel) {
  UdpSocketOptions rx;
  rx.gro = false;
  Pair p({}, rx);
  Bytes train = make_train(40, 1400, 300);
  UdpSendResult sent = p.send(train, 1400);
  ASSERT_FALSE(sent.error);
  UdpReceiveBatch batch(64);
  Received r = p.receive(batch, 41);
  EXPECT_EQ(r.datagrams, split_expected(train, 1400));
  EXPECT_EQ(r.segment_sizes.size(), 41u);
}

TEST(UdpSocketTest, LongTrainsAreCutAtTheKernelLimits) {
  Pair p({}, {});
  // 150 datagrams: at most 64 per sendmsg.
  Bytes many = make_train(149, 200, 200);
  ASSERT_NO_FATAL_FAILURE(p.send_counted(many, 200, 150, 3));
  UdpReceiveBatch batch(64);
  EXPECT_EQ(p.receive(batch, 150).datagrams, split_expected(many, 200));
  // 60 datagrams of 8000 bytes: at most 65507 bytes, so 8 per sendmsg.
  Bytes big = make_train(59, 8000, 8000);
  ASSERT_NO_FATAL_FAILURE(p.send_counted(big, 8000, 60, 3 + 8));
  EXPECT_EQ(p.receive(batch, 60).datagrams, split_expected(big, 8000));
}

// The kernel refuses UDP GSO on a socket that sends without UDP checksums
// (SO_NO_CHECK): EINVAL, as a kernel or socket that cannot do GSO answers.
TEST(UdpSocketTest, RefusedGsoOnTheFirstSendFallsBackForGood) {
  Pair p({}, {});
  int one = 1;
  ASSERT_EQ(::setsockopt(p.sender.fd(), SOL_SOCKET, SO_NO_CHECK, &one, sizeof one), 0);
  Bytes train = make_train(40, 1400, 300);
  UdpSendResult sent = p.send(train, 1400);
  ASSERT_FALSE(sent.error) << sent.error.message();
  EXPECT_EQ(sent.datagrams, 41u);
  EXPECT_FALSE(p.sender.gso_enabled());
  EXPECT_EQ(p.sender.gso_error(), std::errc::invalid_argument);
  EXPECT_NE(p.sender.gso_disabled_reason().find("first send"), std::string_view::npos);
  EXPECT_EQ(p.sender.stats().gso_fallbacks, 1u);
  UdpReceiveBatch batch(64);
  EXPECT_EQ(p.receive(batch, 41).datagrams, split_expected(train, 1400));
  // Later trains do not try again.
  sent = p.send(train, 1400);
  EXPECT_EQ(sent.datagrams, 41u);
  EXPECT_EQ(p.sender.stats().gso_fallbacks, 1u);
  EXPECT_EQ(p.sender.stats().gso_sends, 0u);
  EXPECT_EQ(p.receive(batch, 41).datagrams, split_expected(train, 1400));
}

TEST(UdpSocketTest, RefusedGsoAfterItWorkedFallsBackForThatTrainOnly) {
  Pair p({}, {});
  Bytes train = make_train(10, 1000, 1000);
  UdpReceiveBatch batch(64);
  ASSERT_EQ(p.send(train, 1000).datagrams, 11u);
  EXPECT_EQ(p.receive(batch, 11).datagrams, split_expected(train, 1000));
  int one = 1;
  ASSERT_EQ(::setsockopt(p.sender.fd(), SOL_SOCKET, SO_NO_CHECK, &one, sizeof one), 0);
  UdpSendResult sent = p.send(train, 1000);
  ASSERT_FALSE(sent.error) << sent.error.message();
  EXPECT_EQ(sent.datagrams, 11u);
  EXPECT_TRUE(p.sender.gso_enabled());
  EXPECT_EQ(p.sender.stats().gso_fallbacks, 1u);
  EXPECT_EQ(p.receive(batch, 11).datagrams, split_expected(train, 1000));
}

TEST(UdpSocketTest, SingleDatagramsAndBatchedReceive) {
  Pair p({}, {});
  std::vector<Bytes> sent;
  for (std::size_t i = 0; i < 10; ++i) {
    Bytes d(100 + i * 37, std::uint8_t(i));
    ASSERT_FALSE(p.sender.send(p.receiver.local_address(), d));
    sent.push_back(d);
  }
  // A one-datagram "train" goes as a plain datagram.
  Bytes one(500, 0xab);
  UdpSendResult r1 = p.send(one, 1400);
  EXPECT_FALSE(r1.error);
  EXPECT_EQ(r1.datagrams, 1u);
  sent.push_back(one);
  UdpReceiveBatch batch(4, 2048);
  Received r = p.receive(batch, sent.size());
  EXPECT_EQ(r.datagrams, sent);
  // Up to four buffers per recvmmsg: three calls at least.
  EXPECT_GE(r.calls, 3u);
  // Nothing more to read: an empty batch, no error.
  EXPECT_FALSE(p.receiver.receive(batch));
  EXPECT_EQ(batch.size(), 0u);
}

TEST(UdpSocketTest, SmallBuffersReportTruncation) {
  Pair p({}, {});
  Bytes d(3000, 7);
  ASSERT_FALSE(p.sender.send(p.receiver.local_address(), d));
  UdpReceiveBatch batch(2, 1024);
  Received r = p.receive(batch, 1);
  EXPECT_TRUE(r.truncated);
  EXPECT_EQ(p.receiver.stats().truncated, 1u);
}

TEST(UdpSocketTest, SendingToAClosedPortDoesNotFail) {
  UdpSocket closed;
  ASSERT_FALSE(closed.open({kLoopback, 0}));
  Ipv4SocketAddress nobody = closed.local_address();
  closed.close();  // the port is free now: the kernel answers ICMP port unreachable
  UdpSocket s;
  ASSERT_FALSE(s.open({kLoopback, 0}));
  Bytes train = make_train(9, 1000, 10);
  for (int round = 0; round < 3; ++round) {
    EXPECT_FALSE(s.send(nobody, Bytes(100, 1)));
    UdpSendResult r = s.send_train(nobody, train, 1000);
    EXPECT_FALSE(r.error) << r.error.message();
    UdpReceiveBatch batch(4, 2048);
    EXPECT_FALSE(s.receive(batch));
    EXPECT_EQ(batch.size(), 0u);
  }
  EXPECT_TRUE(s.gso_enabled());
}

TEST(UdpSocketTest, RejectsTrainsItCannotSend) {
  UdpSocket s;
  ASSERT_FALSE(s.open({kLoopback, 0}));
  Bytes d(100, 1);
  EXPECT_EQ(s.send_train({kLoopback, 9}, d, 0).error, std::errc::invalid_argument);
  EXPECT_EQ(s.send_train({kLoopback, 9}, {}, 100).error, std::errc::invalid_argument);
  EXPECT_EQ(s.send_train({kLoopback, 9}, d, 70000).error, std::errc::message_size);
}

TEST(UdpSocketTest, WaitsForReadabilityOnAnExecutor) {
  asio::io_context io;
  Pair p({}, {});
  bool woke = false;
  p.receiver.wait_readable(io.get_executor(), [&](const boost::system::error_code& ec) { woke = !ec; });
  ASSERT_FALSE(p.sender.send(p.receiver.local_address(), Bytes(10, 3)));
  io.run_for(std::chrono::seconds(2));
  EXPECT_TRUE(woke);
  UdpReceiveBatch batch(2, 2048);
  EXPECT_EQ(p.receive(batch, 1).datagrams.size(), 1u);
  // Closing ends a pending wait with operation_aborted.
  io.restart();
  boost::system::error_code seen;
  p.receiver.wait_readable(io.get_executor(), [&](const boost::system::error_code& ec) { seen = ec; });
  p.receiver.close();
  io.run_for(std::chrono::seconds(2));
  EXPECT_EQ(seen, asio::error::operation_aborted);
}

TEST(UdpSocketTest, ReceivedBufferSplitsCoalescedDatagrams) {
  Bytes b = make_train(3, 100, 42);
  ReceivedBuffer r;
  r.bytes = ByteSpan(b.data(), b.size());
  r.segment_size = 100;
  ASSERT_EQ(r.datagram_count(), 4u);
  EXPECT_EQ(r.datagram(3).size(), 42u);
  EXPECT_EQ(r.datagram(3).data(), b.data() + 300);
  r.segment_size = 100;
  r.bytes = ByteSpan(b.data(), 300);  // an exact multiple
  EXPECT_EQ(r.datagram_count(), 3u);
  EXPECT_EQ(r.datagram(2).size(), 100u);
  r.bytes = {};
  r.segment_size = 0;
  EXPECT_EQ(r.datagram_count(), 1u);  // an empty datagram
  EXPECT_TRUE(r.datagram(0).empty());
}

}  // namespace
}  // namespace wownet::io
