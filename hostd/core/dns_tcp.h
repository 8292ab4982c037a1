// DNS over TCP at the gateway (RFC 7766): a minimal TCP responder for the
// gateway address, port 53 only. The VMs reach hostd only as Ethernet frames
// on their TAPs, so there is no kernel socket to accept on; this speaks just
// enough TCP (RFC 793/9293) to take length-prefixed queries (RFC 1035
// §4.2.2) and return the same answers as UDP.
//
// What it does: SYN -> SYN-ACK with an MSS option; in-order data only (a
// segment past the expected sequence number is not kept, just acknowledged
// again); queries split across segments and pipelined on one connection;
// answers sent within the peer's MSS and window, piggybacking the ACK;
// go-back-N retransmission on a timer with exponential backoff; the peer's
// FIN answered with ACK + FIN once its answers are out (the gateway is
// always the passive closer, so it has no TIME-WAIT); RST handled (RFC
// 5961 §3.2: exact sequence number only, in-window gets a challenge ACK).
// What it does not: window scaling, SACK, timestamps (never offered, so
// the peer may not use them: RFC 7323 §1.3, RFC 2018 §2), urgent data.
// Limits: connections per VM and in all, an idle timeout, a receive and a
// send buffer per connection; each one is counted when it bites.
//
// Pure: time comes in as an argument, frames go out as return values (or
// to a sink, from the timer). Memory: one fixed-size block per open
// connection, nothing per segment.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/dns.h"
#include "core/packet.h"
#include "core/types.h"

namespace wownet {

struct DnsTcpLimits {
  std::size_t connections_per_vm = 8;
  std::size_t connections = 256;  // over all VMs
  UnixTime idle_timeout = 10;     // seconds without a segment from the VM: RST (RFC 7766 §6.2.3)
  UnixTime initial_rto = 1;       // seconds (RFC 6298 §2: 1 s)
  unsigned max_retransmits = 5;   // then the connection is reset
  std::uint16_t mss = 1360;       // advertised; the VM's MTU minus 40
};

struct DnsTcpCounters {
  std::uint64_t segments = 0;         // segments to the gateway's port 53 that parsed
  std::uint64_t connections = 0;      // SYNs accepted
  std::uint64_t closed = 0;           // connections closed by FIN exchange
  std::uint64_t queries = 0;          // messages taken off connections and answered
  std::uint64_t refused_limit = 0;    // SYNs reset: the VM or the host is at its connection limit
  std::uint64_t resets_sent = 0;      // RSTs sent (no connection, closed port, bad ACK, limits)
  std::uint64_t resets_received = 0;  // connections the VM reset
  std::uint64_t idle_resets = 0;      // connections reset after the idle timeout
  std::uint64_t retransmits = 0;      // segments sent again on the timer
  std::uint64_t timeouts = 0;         // connections reset after max_retransmits
  std::uint64_t oversized = 0;        // connections reset for a query longer than the receive buffer
  std::uint64_t out_of_order = 0;     // segments not at the expected sequence number (data not kept)
  std::uint64_t closed_port = 0;      // segments to the gateway's other TCP ports (answered RST)
  template <typename F>
  void visit(F&& f) const {
    f("segments", segments), f("connections", connections), f("closed", closed), f("queries", queries);
    f("refused_limit", refused_limit), f("resets_sent", resets_sent), f("resets_received", resets_received);
    f("idle_resets", idle_resets), f("retransmits", retransmits), f("timeouts", timeouts);
    f("oversized", oversized), f("out_of_order", out_of_order), f("closed_port", closed_port);
  }
};

// Who a segment came from: the VM's attachment, MAC and address; the
// gateway's address and MAC answer it.
struct DnsTcpEndpoints {
  std::uint32_t attachment = 0;
  MacAddr vm_mac;
  Ipv4Addr vm_ip;
  MacAddr gateway_mac;
  Ipv4Addr gateway_ip;
};

// Receives frames for VMs one at a time (each valid during the call): what
// timers produce, outside any frame from the VM.
class TapFrameSink {
 public:
  virtual ~TapFrameSink() = default;
  virtual void frame(std::uint32_t attachment, ConstByteSpan frame) = 0;
};

class DnsTcpResponder {
 public:
  static constexpr std::size_t kReceiveBuffer = 2048;  // the longest query taken, with its length prefix
  static constexpr std::size_t kSendBuffer = 4096;     // unacknowledged answers
  static constexpr std::size_t kMaxFramesPerCall = 8;  // the rest waits for the VM's ACKs
  static constexpr std::uint16_t kMinMss = 64;         // a smaller MSS from the VM is raised to this
  static constexpr std::uint16_t kMaxMss = 1460;

  explicit DnsTcpResponder(DnsTcpLimits limits = {});
  ~DnsTcpResponder();
  DnsTcpResponder(const DnsTcpResponder&) = delete;
  DnsTcpResponder& operator=(const DnsTcpResponder&) = delete;

  // Handles one TCP segment a VM sent to the gateway's port 53 (`tcp`
  // parsed, checksum checked). Complete queries are answered with
  // answer_dns_query over `names`. Returns the frames to write to the VM,
  // in order (valid until the next call); possibly none.
  std::span<const ConstByteSpan> on_segment(UnixTime now, const DnsTcpEndpoints& ends, const TcpView& tcp,
                                            const DnsZone& zone, const NameDirectory& names, DnsCounters& dns_counters);
  // The answer to a TCP segment for a port with no listener: RST (RFC 793
  // §3.4, "Reset Generation"); none for a RST. Valid until the next call.
  std::span<const ConstByteSpan> reset(const DnsTcpEndpoints& ends, const TcpView& tcp);
  // Retransmits, resets idle connections and gives up on unanswered ones;
  // frames go to `out`. Call at next_deadline() or later.
  void on_timer(UnixTime now, TapFrameSink& out);
  // When on_timer next has work; INT64_MAX if no connection is open.
  UnixTime next_deadline() const;
  // Forgets the connections of an attachment that went away (no RST: there is no one to send it to).
  void forget(std::uint32_t attachment);

  std::size_t open_connections() const;
  const DnsTcpCounters& counters() const { return counters_; }

 private:
  struct Connection;
  struct Output;

  Connection* find(const DnsTcpEndpoints& ends, std::uint16_t vm_port);
  std::size_t connections_of(std::uint32_t attachment) const;
  void accept(UnixTime now, const DnsTcpEndpoints& ends, const TcpView& tcp);
  void on_connection_segment(UnixTime now, Connection& c, const TcpView& tcp, const DnsZone& zone,
                             const NameDirectory& names, DnsCounters& dns_counters);
  // Answers the complete queries in the receive buffer while the send
  // buffer has room. `oversized`: a length prefix exceeds the buffer.
  void answer_queries(Connection& c, const DnsZone& zone, const NameDirectory& names, DnsCounters& dns_counters,
                      bool& oversized);
  // Sends what the window allows from snd_nxt on (SYN-ACK before the
  // handshake completes), an ACK alone if `ack_due` and nothing else went,
  // one byte into a zero window if `probe`; runs the retransmission timer.
  void transmit(UnixTime now, Connection& c, bool ack_due, bool probe = false);
  void emit(const Connection& c, std::uint32_t seq, std::uint8_t flags, std::span<const std::uint8_t> data);
  void emit_reset(const DnsTcpEndpoints& ends, std::uint16_t vm_port, const TcpView& tcp);
  void close(Connection& c);
  std::uint32_t initial_sequence(const DnsTcpEndpoints& ends, std::uint16_t vm_port, UnixTime now);

  DnsTcpLimits limits_;
  DnsTcpCounters counters_;
  std::vector<std::unique_ptr<Connection>> connections_;  // open ones; null slots are reused
  std::uint32_t isn_counter_ = 0;
  std::unique_ptr<Output> out_;
};

}  // namespace wownet
