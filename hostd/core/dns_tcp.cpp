#include "core/dns_tcp.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/bytes.h"

namespace wownet {
namespace {

constexpr std::uint16_t kDefaultMss = 536;  // without an MSS option (RFC 9293 §3.7.1)
constexpr std::uint8_t kOptionEnd = 0, kOptionNop = 1, kOptionMss = 2;
constexpr UnixTime kMaxRto = 60;  // RFC 6298 §2.5
constexpr std::size_t kMaxSegmentHeader = kTcpHeaderSize + 4;
constexpr std::size_t kFrameRoom = kTcpOffset + kMaxSegmentHeader + DnsTcpResponder::kMaxMss;

// a - b as a signed distance in sequence space (RFC 9293 §3.4).
std::int32_t seq_diff(std::uint32_t a, std::uint32_t b) { return std::int32_t(a - b); }

// The MSS option of a SYN (RFC 9293 §3.2, §3.7.1); the default without one.
std::uint16_t peer_mss(ConstByteSpan options) {
  std::size_t i = 0;
  while (i < options.size()) {
    const std::uint8_t kind = options[i];
    if (kind == kOptionEnd) break;
    if (kind == kOptionNop) {
      ++i;
      continue;
    }
    if (i + 1 >= options.size()) break;
    const std::size_t len = options[i + 1];
    if (len < 2 || len > options.size() - i) break;
    if (kind == kOptionMss && len == 4) return load16(options.data() + i + 2);
    i += len;
  }
  return kDefaultMss;
}

std::uint64_t mix(std::uint64_t x) {  // splitmix64's finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

struct DnsTcpResponder::Connection {
  DnsTcpEndpoints ends;
  std::uint16_t vm_port = 0;
  std::uint16_t gateway_port = kDnsPort;
  bool established = false;  // our SYN is acknowledged
  bool peer_fin = false;     // the VM's FIN is counted in rcv_nxt
  bool fin_queued = false;   // our FIN follows the send buffer
  bool fin_sent = false;     // ... and snd_nxt counts it
  std::uint32_t iss = 0;
  std::uint32_t snd_una = 0;  // oldest unacknowledged sequence number; send[0] is at snd_una once established
  std::uint32_t snd_nxt = 0;
  std::uint32_t rcv_nxt = 0;
  std::uint32_t peer_window = 0;
  std::uint16_t mss = kDefaultMss;  // what we send per segment
  UnixTime last_heard = 0;
  UnixTime rto = 1;
  UnixTime rto_at = 0;  // 0: no retransmission timer running
  unsigned retries = 0;
  std::size_t received = 0;  // bytes in `receive`: queries not yet answered
  std::size_t queued = 0;    // bytes in `send`: answers not yet acknowledged
  std::array<std::uint8_t, kReceiveBuffer> receive{};
  std::array<std::uint8_t, kSendBuffer> send{};

  std::size_t receive_window() const { return kReceiveBuffer - received; }
  // Bytes of `send` already sent at least once.
  std::size_t in_flight() const {
    if (!established) return 0;
    std::size_t n = snd_nxt - snd_una;
    if (fin_sent && n > 0) --n;  // the FIN takes a sequence number but no room in `send`
    return n;
  }
};

struct DnsTcpResponder::Output {
  std::array<std::array<std::uint8_t, kFrameRoom>, kMaxFramesPerCall> frames{};
  std::array<ConstByteSpan, kMaxFramesPerCall> spans{};
  std::size_t count = 0;
  std::span<const ConstByteSpan> view() const { return {spans.data(), count}; }
};

DnsTcpResponder::DnsTcpResponder(DnsTcpLimits limits) : limits_(limits), out_(std::make_unique<Output>()) {
  limits_.mss = std::clamp(limits_.mss, kMinMss, kMaxMss);
  limits_.initial_rto = std::clamp<UnixTime>(limits_.initial_rto, 1, kMaxRto);
}

DnsTcpResponder::~DnsTcpResponder() = default;

std::size_t DnsTcpResponder::open_connections() const {
  return std::size_t(
      std::count_if(connections_.begin(), connections_.end(), [](const auto& c) { return c != nullptr; }));
}

std::size_t DnsTcpResponder::connections_of(std::uint32_t attachment) const {
  return std::size_t(std::count_if(connections_.begin(), connections_.end(),
                                   [&](const auto& c) { return c && c->ends.attachment == attachment; }));
}

DnsTcpResponder::Connection* DnsTcpResponder::find(const DnsTcpEndpoints& ends, std::uint16_t vm_port) {
  for (auto& c : connections_) {
    if (c && c->ends.attachment == ends.attachment && c->ends.vm_ip == ends.vm_ip && c->vm_port == vm_port)
      return c.get();
  }
  return nullptr;
}

void DnsTcpResponder::close(Connection& c) {
  for (auto& slot : connections_) {
    if (slot.get() == &c) slot.reset();
  }
}

void DnsTcpResponder::forget(std::uint32_t attachment) {
  for (auto& c : connections_) {
    if (c && c->ends.attachment == attachment) c.reset();
  }
}

// The VMs are policed by source address, so no one can inject segments into
// another VM's connection and the ISN only has to differ between successive
// connections (RFC 6528's concern is off-path spoofing).
std::uint32_t DnsTcpResponder::initial_sequence(const DnsTcpEndpoints& ends, std::uint16_t vm_port, UnixTime now) {
  const std::uint64_t key = std::uint64_t(ends.vm_ip.value) << 32 | std::uint64_t(vm_port) << 16 | ends.attachment;
  return std::uint32_t(mix(key ^ mix(std::uint64_t(now) ^ (std::uint64_t(++isn_counter_) << 40))));
}

void DnsTcpResponder::emit(const Connection& c, std::uint32_t seq, std::uint8_t flags,
                           std::span<const std::uint8_t> data) {
  if (out_->count == kMaxFramesPerCall) return;
  auto& frame = out_->frames[out_->count];
  std::uint8_t* t = frame.data() + kTcpOffset;
  const bool syn = (flags & kTcpSyn) != 0;
  const std::size_t header = syn ? kTcpHeaderSize + 4 : kTcpHeaderSize;
  store16(t, c.gateway_port);
  store16(t + 2, c.vm_port);
  store32(t + 4, seq);
  store32(t + 8, (flags & kTcpAck) ? c.rcv_nxt : 0);
  t[12] = std::uint8_t(header / 4 << 4);
  t[13] = flags;
  store16(t + 14, std::uint16_t(std::min<std::size_t>(c.receive_window(), 0xffff)));
  store16(t + 16, 0);
  store16(t + 18, 0);
  if (syn) {
    t[20] = kOptionMss;
    t[21] = 4;
    store16(t + 22, limits_.mss);
  }
  if (!data.empty()) std::memcpy(t + header, data.data(), data.size());  // data() may be null when empty
  const std::size_t n = finish_tcp_frame(ByteSpan(frame.data(), frame.size()), c.ends.vm_mac, c.ends.gateway_mac,
                                         c.ends.gateway_ip, c.ends.vm_ip, header + data.size());
  out_->spans[out_->count++] = ConstByteSpan(frame.data(), n);
  if (flags & kTcpRst) ++counters_.resets_sent;
}

void DnsTcpResponder::emit_reset(const DnsTcpEndpoints& ends, std::uint16_t vm_port, const TcpView& tcp) {
  if (tcp.flags & kTcpRst) return;  // never a RST for a RST
  // RFC 793 §3.4 (RFC 9293 §3.10.7.1): take the sequence number from the
  // segment's ACK, or else acknowledge everything the segment occupied.
  Connection c;
  c.ends = ends;
  c.vm_port = vm_port;
  c.gateway_port = tcp.dst_port;
  c.received = kReceiveBuffer;  // window 0
  if (tcp.flags & kTcpAck) {
    emit(c, tcp.ack, kTcpRst, {});
    return;
  }
  c.rcv_nxt =
      tcp.seq + std::uint32_t(tcp.payload.size()) + ((tcp.flags & kTcpSyn) ? 1 : 0) + ((tcp.flags & kTcpFin) ? 1 : 0);
  emit(c, 0, kTcpRst | kTcpAck, {});
}

std::span<const ConstByteSpan> DnsTcpResponder::reset(const DnsTcpEndpoints& ends, const TcpView& tcp) {
  out_->count = 0;
  ++counters_.closed_port;
  emit_reset(ends, tcp.src_port, tcp);
  return out_->view();
}

void DnsTcpResponder::accept(UnixTime now, const DnsTcpEndpoints& ends, const TcpView& tcp) {
  if (connections_of(ends.attachment) >= limits_.connections_per_vm || open_connections() >= limits_.connections) {
    ++counters_.refused_limit;
    emit_reset(ends, tcp.src_port, tcp);
    return;
  }
  auto c = std::make_unique<Connection>();
  c->ends = ends;
  c->vm_port = tcp.src_port;
  c->iss = initial_sequence(ends, tcp.src_port, now);
  c->snd_una = c->snd_nxt = c->iss;
  c->rcv_nxt = tcp.seq + 1;  // data and FIN on a SYN are not taken: the VM sends them again
  c->peer_window = tcp.window;
  c->mss = std::clamp<std::uint16_t>(std::min(peer_mss(tcp.options), limits_.mss), kMinMss, limits_.mss);
  c->last_heard = now;
  c->rto = limits_.initial_rto;
  ++counters_.connections;
  Connection& conn = *c;
  auto slot = std::find(connections_.begin(), connections_.end(), nullptr);
  if (slot != connections_.end()) {
    *slot = std::move(c);
  } else {
    connections_.push_back(std::move(c));
  }
  transmit(now, conn, false);
}

void DnsTcpResponder::transmit(UnixTime now, Connection& c, bool ack_due, bool probe) {
  bool sent = false;
  if (!c.established) {
    if (c.snd_nxt == c.iss || ack_due) {  // first or again: SYN-ACK (RFC 9293 §3.5)
      emit(c, c.iss, kTcpSyn | kTcpAck, {});
      c.snd_nxt = c.iss + 1;
    }
  } else {
    std::size_t offset = c.in_flight();
    while (!c.fin_sent && out_->count < kMaxFramesPerCall) {
      const std::size_t unsent = c.queued - offset;
      const std::size_t room = c.peer_window > offset ? c.peer_window - offset : 0;
      std::size_t n = std::min({unsent, std::size_t(c.mss), room});
      if (n == 0 && unsent > 0 && probe && offset == 0) n = 1;  // zero window probe (RFC 9293 §3.8.6.1)
      const bool fin = c.fin_queued && offset + n == c.queued;
      if (n == 0 && !fin) break;
      std::uint8_t flags = kTcpAck;
      if (n) flags |= kTcpPsh;
      if (fin) flags |= kTcpFin;
      emit(c, c.snd_nxt, flags, std::span<const std::uint8_t>(c.send.data() + offset, n));
      c.snd_nxt += std::uint32_t(n) + (fin ? 1 : 0);
      offset += n;
      c.fin_sent = fin;
      sent = true;
    }
    if (!sent && ack_due) emit(c, c.snd_nxt, kTcpAck, {});
  }
  const bool outstanding = c.snd_nxt != c.snd_una || (c.established && c.queued > c.in_flight());
  if (!outstanding) {
    c.rto_at = 0;
  } else if (c.rto_at == 0) {
    c.rto_at = now + c.rto;
  }
}

void DnsTcpResponder::answer_queries(Connection& c, const DnsZone& zone, const NameDirectory& names,
                                     DnsCounters& dns_counters, bool& oversized) {
  std::size_t pos = 0;
  while (c.received - pos >= 2) {
    const std::size_t length = load16(c.receive.data() + pos);
    if (2 + length > kReceiveBuffer) {
      oversized = true;
      return;
    }
    if (c.received - pos < 2 + length) break;
    // Room for any answer this server gives (at most 512 bytes); else the
    // query waits, and with it the receive window, for the VM's ACKs.
    if (kSendBuffer - c.queued < 2 + kDnsMaxUdpSize) break;
    ByteSpan out(c.send.data() + c.queued + 2, kSendBuffer - c.queued - 2);
    const std::size_t n = answer_dns_query(zone, names, ConstByteSpan(c.receive.data() + pos + 2, length), out,
                                           dns_counters, DnsTransport::Tcp);
    if (n) {
      store16(c.send.data() + c.queued, std::uint16_t(n));
      c.queued += 2 + n;
    }
    ++counters_.queries;
    pos += 2 + length;
  }
  std::memmove(c.receive.data(), c.receive.data() + pos, c.received - pos);
  c.received -= pos;
}

// RFC 9293 §3.10.7.4, for the states this responder has (SYN-RECEIVED,
// ESTABLISHED, CLOSE-WAIT, LAST-ACK), reduced to in-order data.
void DnsTcpResponder::on_connection_segment(UnixTime now, Connection& c, const TcpView& tcp, const DnsZone& zone,
                                            const NameDirectory& names, DnsCounters& dns_counters) {
  c.last_heard = now;
  if (tcp.flags & kTcpRst) {
    // RFC 5961 §3.2: only the exact next sequence number resets; one
    // elsewhere in the window gets a challenge ACK.
    if (tcp.seq == c.rcv_nxt) {
      ++counters_.resets_received;
      close(c);
    } else if (std::uint32_t(tcp.seq - c.rcv_nxt) < c.receive_window()) {
      emit(c, c.snd_nxt, kTcpAck, {});
    }
    return;
  }
  if (tcp.flags & kTcpSyn) {
    if (!c.established && tcp.seq + 1 == c.rcv_nxt) {
      transmit(now, c, true);  // the VM did not get our SYN-ACK
    } else {
      emit(c, c.snd_nxt, kTcpAck, {});  // RFC 5961 §4: challenge ACK
    }
    return;
  }
  if (!(tcp.flags & kTcpAck)) return;
  if (!c.established) {
    if (tcp.ack != c.iss + 1) {
      emit_reset(c.ends, c.vm_port, tcp);
      return;
    }
    c.established = true;
    c.snd_una = c.iss + 1;
  }
  bool ack_due = false;
  if (seq_diff(tcp.ack, c.snd_nxt) > 0) {  // acknowledges what was never sent
    emit(c, c.snd_nxt, kTcpAck, {});
    return;
  }
  if (seq_diff(tcp.ack, c.snd_una) > 0) {
    std::size_t acked = tcp.ack - c.snd_una;
    const std::size_t data = std::min(acked, c.queued);
    std::memmove(c.send.data(), c.send.data() + data, c.queued - data);
    c.queued -= data;
    c.snd_una += std::uint32_t(acked);
    c.retries = 0;
    c.rto = limits_.initial_rto;
    c.rto_at = 0;
  }
  if (seq_diff(tcp.ack, c.snd_una) >= 0) c.peer_window = tcp.window;

  // Data: only in order. What starts later is not kept; what overlaps is trimmed.
  const std::int32_t skip = seq_diff(c.rcv_nxt, tcp.seq);
  bool fin = (tcp.flags & kTcpFin) != 0;
  if (skip < 0) {
    ++counters_.out_of_order;
    ack_due = true;
    fin = false;
  } else if (!tcp.payload.empty() || fin) {
    ack_due = true;
    const std::size_t offset = std::size_t(skip);
    const std::size_t fresh = offset < tcp.payload.size() ? tcp.payload.size() - offset : 0;
    const std::size_t taken = c.peer_fin ? 0 : std::min(fresh, c.receive_window());
    if (taken) std::memcpy(c.receive.data() + c.received, tcp.payload.data() + offset, taken);
    c.received += taken;
    c.rcv_nxt += std::uint32_t(taken);
    if (fin && !c.peer_fin && offset <= tcp.payload.size() && taken == fresh) {
      c.peer_fin = true;
      c.rcv_nxt += 1;
    }
  }

  bool oversized = false;
  answer_queries(c, zone, names, dns_counters, oversized);
  if (oversized) {
    ++counters_.oversized;
    emit(c, c.snd_nxt, kTcpRst | kTcpAck, {});
    close(c);
    return;
  }
  // The VM is done sending: once its answers are queued, close our side
  // too; an incomplete last query has no one to read its answer.
  if (c.peer_fin && !c.fin_sent && !c.fin_queued) {
    const bool waiting = c.received >= 2 && c.received >= 2 + std::size_t(load16(c.receive.data()));
    if (!waiting) {
      c.received = 0;
      c.fin_queued = true;
    }
  }
  transmit(now, c, ack_due);
  if (c.peer_fin && c.fin_sent && c.snd_una == c.snd_nxt) {
    ++counters_.closed;
    close(c);
  }
}

std::span<const ConstByteSpan> DnsTcpResponder::on_segment(UnixTime now, const DnsTcpEndpoints& ends,
                                                           const TcpView& tcp, const DnsZone& zone,
                                                           const NameDirectory& names, DnsCounters& dns_counters) {
  out_->count = 0;
  ++counters_.segments;
  Connection* c = find(ends, tcp.src_port);
  if (c) {
    on_connection_segment(now, *c, tcp, zone, names, dns_counters);
  } else if ((tcp.flags & (kTcpSyn | kTcpAck | kTcpRst)) == kTcpSyn) {
    accept(now, ends, tcp);
  } else {
    emit_reset(ends, tcp.src_port, tcp);  // no such connection (RFC 9293 §3.10.7.1)
  }
  return out_->view();
}

void DnsTcpResponder::on_timer(UnixTime now, TapFrameSink& sink) {
  for (auto& slot : connections_) {
    if (!slot) continue;
    Connection& c = *slot;
    out_->count = 0;
    bool drop = false;
    if (now - c.last_heard >= limits_.idle_timeout) {
      ++counters_.idle_resets;
      drop = true;
    } else if (c.rto_at != 0 && now >= c.rto_at) {
      if (c.retries >= limits_.max_retransmits) {
        ++counters_.timeouts;
        drop = true;
      } else {
        // Go back to the oldest unacknowledged byte (RFC 6298 §5.4-5.6).
        ++c.retries;
        ++counters_.retransmits;
        c.rto = std::min(c.rto * 2, kMaxRto);
        c.snd_nxt = c.snd_una;
        c.fin_sent = false;
        c.rto_at = 0;
        transmit(now, c, false, true);
        c.rto_at = now + c.rto;
      }
    }
    if (drop) emit(c, c.snd_nxt, kTcpRst | kTcpAck, {});
    for (ConstByteSpan f : out_->view()) sink.frame(c.ends.attachment, f);
    if (drop) slot.reset();
  }
  out_->count = 0;
}

UnixTime DnsTcpResponder::next_deadline() const {
  UnixTime t = std::numeric_limits<UnixTime>::max();
  for (const auto& c : connections_) {
    if (!c) continue;
    t = std::min(t, c->last_heard + limits_.idle_timeout);
    if (c->rto_at != 0) t = std::min(t, c->rto_at);
  }
  return t;
}

}  // namespace wownet
