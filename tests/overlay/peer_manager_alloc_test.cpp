// PeerManager's steady-state data path allocates nothing: operator new is
// replaced here, for the whole overlay test binary; only the loop is counted.
#include <cstdlib>
#include <new>

#include "peer_manager_fixture.h"

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

namespace wownet::overlay::test {
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
  auto [a, b] = established_pair();
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

}  // namespace
}  // namespace wownet::overlay::test
