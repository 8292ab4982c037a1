// One session with a node: a DTLS 1.2 session (crypto::DtlsSession) and,
// once established, the AEAD data channel keyed from it, with the session's
// own timers: DTLS retransmission, Hello exchange and retries, keepalives
// and RTT, dead and stale detection. Sans-I/O: time is an argument, and
// what the session sends or learns goes to its SessionHost. Protocol: see
// peer_manager.h ("Session life", "Simultaneous handshakes").
//
// Which session of a node carries traffic, retirement and rekeying belong
// to the node (overlay/peer.h); the receiver index comes from the host.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/packet.h"
#include "crypto/data_channel.h"
#include "crypto/dtls.h"
#include "overlay/endpoint.h"
#include "overlay/peer_config.h"
#include "overlay/session_settings.h"

namespace wownet::overlay {

class NodeMessage;  // proto/overlay.proto
class PeerSession;
class Peer;

inline constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
inline constexpr std::int64_t kLongAgo = std::numeric_limits<std::int64_t>::min();

// What a session asks of its owner. Called synchronously from inside
// PeerSession calls.
class SessionHost {
 public:
  enum class Tally { Malformed, NotAllowed };
  virtual ~SessionHost() = default;
  // Sends one datagram to `to`.
  virtual void send_datagram(const UdpEndpoint& to, ConstByteSpan datagram) = 0;
  // DTLS is established (s.node_id() is the verified peer): returns the
  // receiver index bound to `s` for data packets to us.
  virtual std::uint32_t on_established(PeerSession& s) = 0;
  // The peer's Hello keyed `s` (it can seal now).
  virtual void on_keyed(PeerSession& s) = 0;
  // A control message other than Hello and Keepalive.
  virtual void on_control(PeerSession& s, const NodeMessage& m) = 0;
  // Our keepalive request was answered after `rtt_ms`.
  virtual void on_rtt(PeerSession& s, std::int64_t rtt_ms) = 0;
  // `s` ended (failed, closed, dead, stale); s.keyed() says whether it had
  // been keyed. The host must call s.mark_dead() (it may have done so).
  virtual void on_ended(PeerSession& s, const std::string& reason) = 0;
  virtual void tally(Tally what) = 0;
};

class PeerSession {
 public:
  using ClientRandom = std::array<std::uint8_t, 32>;

  // A client session to `endpoint` (start() sends its ClientHello); null if
  // DTLS cannot be created. `target_node`: the node we mean to reach (empty
  // if unknown); `replaces`: we have a keyed session with it (a rekey).
  static std::unique_ptr<PeerSession> client(const SessionSettings& settings, const UdpEndpoint& endpoint,
                                             std::string target_node, bool replaces, std::int64_t now_ms);
  // A server session for a ClientHello from `from` with a valid cookie;
  // otherwise null and `reply` holds what to send back (or is empty).
  static std::unique_ptr<PeerSession> server(const SessionSettings& settings, const UdpEndpoint& from,
                                             ConstByteSpan client_hello, std::int64_t now_ms,
                                             std::vector<std::uint8_t>& reply);
  ~PeerSession();
  PeerSession(const PeerSession&) = delete;
  PeerSession& operator=(const PeerSession&) = delete;

  // Once the owner holds the session: a client sends its ClientHello (its
  // random kept for the tie-break), a server its first flight.
  void start(std::int64_t now_ms, SessionHost& host);
  // A DTLS datagram from the session's endpoint.
  void on_dtls(std::int64_t now_ms, ConstByteSpan datagram, SessionHost& host);
  // Runs the session's timers: DTLS retransmission and timeout, Hello
  // retries, dead (nothing received for dead_after_ms) and, if `sending`
  // (the node's sending session), stale detection. True if the session is
  // still alive and keyed afterwards.
  bool on_timer(std::int64_t now_ms, bool sending, SessionHost& host);
  // When on_timer next has something to do (retirement included).
  std::int64_t next_deadline(bool sending) const;
  // When the next keepalive request is due (keyed sessions only).
  std::int64_t keepalive_due() const;
  // Sends a keepalive request: an empty data packet (which carries a
  // NAT rebinding to the peer), then the Keepalive message.
  void send_keepalive(std::int64_t now_ms, SessionHost& host);
  // Sends serialized NodeMessage bytes over DTLS; false unless established.
  bool send_message(std::int64_t now_ms, ConstByteSpan message, SessionHost& host);
  // Sends close_notify and ends the session.
  void close(const std::string& reason, SessionHost& host);

  // Seals `packet` into `buffer` (at least packet.size() + kDataOverhead)
  // and returns the datagram's size; 0 if not keyed or sealing failed.
  // Never allocates.
  std::size_t seal(std::int64_t now_ms, ConstByteSpan packet, ByteSpan buffer);
  // Opens a data packet for our receiver index in place (plaintext at
  // kDataHeaderSize). Never allocates.
  crypto::DataOpener::OpenResult open(std::int64_t now_ms, ByteSpan datagram);
  // True if `datagram` (just opened) carries the highest counter seen: the
  // peer's newest packet, which may move the session (NAT rebinding).
  bool is_newest(ConstByteSpan datagram) const;
  // Sealed rekey_after_packets or more.
  bool wants_rekey() const;

  // Re-verifies the peer certificate at `now_ms`; nullopt if there is none
  // to check, else the verifier's outcome (a throw counts as rejection).
  std::optional<crypto::VerifyOutcome> recheck(std::int64_t now_ms) const;

  // Simultaneous open: a handshaking client session yields to a
  // ClientHello from the same endpoint only if its client random is the
  // larger one (both sides decide alike).
  bool yields_to(ConstByteSpan client_hello) const;
  // Whether `datagram` (well framed, shortest protected record
  // `shortest_protected`) may be offered to this session.
  bool accepts_record_length(std::size_t shortest_protected) const { return shortest_protected >= min_record_; }
  // Server: the datagram is a ClientHello other than the one that started it.
  bool is_new_client_hello(ConstByteSpan datagram) const;

  // The client random of a datagram whose first record holds the start of a
  // ClientHello; nullopt otherwise.
  static std::optional<ClientRandom> client_hello_random(ConstByteSpan datagram);
  // The shortest record in epoch 1 or later (SIZE_MAX if none); nullopt if
  // the records are not well framed.
  static std::optional<std::size_t> shortest_protected_record(ConstByteSpan datagram);

  const UdpEndpoint& endpoint() const { return endpoint_; }
  // The peer moved (NAT rebinding): its datagrams come from `to` now.
  void set_endpoint(const UdpEndpoint& to) { endpoint_ = to; }
  bool relayed() const { return endpoint_.relayed(); }
  bool is_client() const { return client_; }
  const std::string& target_node() const { return target_node_; }
  bool replaces() const { return replaces_; }
  bool established() const { return established_; }
  bool handshaking() const;
  bool keyed() const { return sealer_.has_value(); }
  bool dead() const { return dead_; }
  void mark_dead() { dead_ = true; }
  const std::string& node_id() const { return node_id_; }
  // The peer's name (its certificate's if name_of is set, else its Hello's); once keyed.
  const std::string& peer_name() const { return peer_name_; }
  std::uint32_t receiver_index() const { return my_index_; }
  std::uint64_t tag() const { return tag_; }
  std::int64_t keyed_ms() const { return keyed_ms_; }
  // When the session was created (client: its ClientHello; server: the
  // ClientHello with a valid cookie).
  std::int64_t created_ms() const { return created_ms_; }
  bool peer_has_hello() const { return peer_has_hello_; }
  std::int64_t last_rx_ms() const { return last_rx_ms_; }
  std::int64_t last_tx_ms() const { return last_tx_ms_; }

  // Owned by the node (overlay/peer.h): the node once established, and when
  // the session retires (kNever: not retiring).
  Peer* peer = nullptr;
  std::int64_t retire_at_ms = kNever;

 private:
  struct Cert;
  PeerSession(const SessionSettings& settings, const UdpEndpoint& endpoint, bool client);
  static crypto::Verifier wrap_verifier(const SessionSettings& settings, std::shared_ptr<Cert> holder);

  void flush(SessionHost& host);
  void pump(std::int64_t now_ms, SessionHost& host);
  void end(const std::string& reason, SessionHost& host);
  void on_established(std::int64_t now_ms, SessionHost& host);
  void send_hello(std::int64_t now_ms, bool wants_reply, SessionHost& host);
  bool send_node_message(std::int64_t now_ms, const NodeMessage& m, SessionHost& host);
  void handle_message(std::int64_t now_ms, ConstByteSpan bytes, bool hello_answered, SessionHost& host);
  void on_hello(std::int64_t now_ms, const NodeMessage& m, bool hello_answered, SessionHost& host);
  void on_keepalive(std::int64_t now_ms, const NodeMessage& m, SessionHost& host);
  std::int64_t stale_due(bool sending) const;

  const SessionSettings& settings_;
  std::unique_ptr<crypto::DtlsSession> dtls_;
  std::shared_ptr<Cert> cert_;
  UdpEndpoint endpoint_;
  bool client_ = false;
  std::string target_node_;
  bool replaces_ = false;
  std::optional<ClientRandom> client_random_;
  std::size_t min_record_;

  bool established_ = false;
  bool dead_ = false;
  std::string node_id_, peer_name_;

  std::uint32_t my_index_ = 0;
  std::uint64_t tag_ = 0;
  std::array<std::uint8_t, crypto::kDtlsKeySize> send_key_{};  // until the peer's Hello builds the sealer
  std::optional<crypto::DataOpener> opener_;
  std::optional<crypto::DataSealer> sealer_;
  std::int64_t keyed_ms_ = 0;
  std::int64_t created_ms_ = 0;
  bool peer_has_hello_ = false;
  std::int64_t hello_interval_ms_ = 0;
  std::int64_t hello_retry_at_ms_ = kNever;

  std::int64_t last_rx_ms_ = 0, last_tx_ms_ = 0;
  std::int64_t last_keepalive_ms_ = kLongAgo;
  std::uint64_t keepalive_seq_ = 0, keepalive_outstanding_ = 0;
  std::int64_t keepalive_sent_ms_ = 0;
  std::vector<std::uint8_t> dtls_buffer_;
};

}  // namespace wownet::overlay
