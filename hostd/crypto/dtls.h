// DTLS 1.2 session driver (OpenSSL 3), sans-I/O: datagrams in, datagrams
// out, time passed in as an argument, no sockets and no clock reads. The io
// layer demultiplexes its one UDP socket by peer address and hands each
// session its datagrams; tests wire two sessions back to back in memory.
//
// Both sides authenticate with X.509 certificates (mutual auth, ECDHE with
// AES-GCM or ChaCha20-Poly1305 only, no resumption, no renegotiation). The
// certificate policy is a pluggable Verifier; the session never decides
// trust itself. After the handshake, export_keys() derives the AEAD data
// channel keys; send()/receive() carry small control messages.
//
// Cookie exchange (RFC 6347 §4.2.1). A server keeps no per-client state until
// the client echoes a valid cookie: DtlsSession::server() feeds a datagram
// from an unknown address to one reusable listener SSL owned by the context
// and runs DTLSv1_listen() on it (this works with in-memory BIOs in OpenSSL
// 3: it only asks the BIO for a peer address, and tolerates not getting
// one). The cookie is HMAC-SHA256(context secret, peer address string), the
// secret random per context and rotated by rotate_cookie_secret(). Without a
// valid cookie server() returns null and a HelloVerifyRequest to send back;
// with one, the listener SSL (primed by DTLSv1_listen with the right message
// and record sequence numbers, which a hand-built HelloVerifyRequest could
// not do) becomes the session.
//
// Timers. OpenSSL 3.0 runs its DTLS retransmission timer on the wall clock
// (gettimeofday) and has no clock hook; DTLS_set_timer_cb only picks the
// duration. Worse, any SSL_read/SSL_do_handshake with an expired OpenSSL
// timer retransmits (and loops while it stays expired), so the timer cannot
// be made to fire "on demand" either. So the session pins OpenSSL's timer
// at one hour (it never fires) and retransmits itself on the caller's
// clock: it keeps a copy of the last handshake flight OpenSSL wrote and
// re-sends it byte for byte when next_timeout_ms() passes (backoff doubling
// from initial_retransmit_ms up to max_retransmit_ms). A byte-identical
// record is, to the peer, a network duplicate: harmless, and dropped by its
// replay check if it had arrived. The one case where the peer must answer a
// retransmission - the server's last flight (ChangeCipherSpec, Finished) got
// lost and the client repeats its Finished - is covered by an established
// server re-sending its last flight whenever the client's epoch-1 handshake
// record shows up again. A handshake not done by handshake_timeout_ms after
// the session was created fails.
//
// Datagrams travel through a small in-memory BIO that keeps datagram
// boundaries (a BIO_s_mem would merge records and shrink fragments); records
// of one flight are packed into datagrams of at most kDtlsMtu bytes. Every
// DTLS datagram starts with a content type byte 20..23, which is how the io
// layer tells them from data channel packets (type 4).
//
// Not thread-safe: one thread drives a context and its sessions. Sessions
// may outlive their context. No exceptions leave this API.
#pragma once

#include <openssl/x509.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/packet.h"

namespace wownet::crypto {

// Largest application message send() accepts.
inline constexpr std::size_t kDtlsMaxMessage = 1200;
// Largest handshake datagram (fits an IPv6 minimum-MTU path: 1280 - 48).
inline constexpr std::size_t kDtlsMtu = 1232;
// Size of each exported data channel key.
inline constexpr std::size_t kDtlsKeySize = 32;
// RFC 5705 exporter label for the data channel keys.
inline constexpr char kDtlsExporterLabel[] = "EXPORTER-wownet data channel";

// The TLS alert a rejecting verifier wants the peer to receive.
enum class VerifyAlert { BadCertificate, UnknownCa, CertificateExpired, CertificateRevoked };

struct VerifyOutcome {
  bool ok = false;
  std::string reason;   // why not ok, e.g. "peer certificate expired"
  std::string peer_id;  // node ID of the peer when ok (must be non-empty)
  VerifyAlert alert = VerifyAlert::BadCertificate;
};

// Certificate policy: decides on the peer's leaf certificate and the chain it
// sent (leaf included), at `now_ms` (the time passed to the call that is
// processing the peer's Certificate message). Must not throw (a throw counts
// as a rejection).
using Verifier = std::function<VerifyOutcome(X509* peer_cert, STACK_OF(X509) * chain, std::int64_t now_ms)>;

// PEM text of our certificate (optionally followed by intermediates), its
// private key, and the CA certificate(s) whose names a server lists in its
// CertificateRequest (optional). Empty cert_pem and key_pem give a context
// without a certificate: every handshake with it fails (for tests).
struct DtlsIdentity {
  std::string cert_pem;
  std::string key_pem;
  std::string ca_pem;
};

// Retransmission schedule and handshake deadline, in milliseconds.
struct DtlsTimers {
  std::int64_t initial_retransmit_ms = 1000;
  std::int64_t max_retransmit_ms = 8000;
  std::int64_t handshake_timeout_ms = 10000;
};

// True if the datagram starts with an epoch-0 DTLS handshake record holding a
// ClientHello (what DtlsSession::server() wants from an unknown address).
bool is_dtls_client_hello(ConstByteSpan datagram);

class DtlsSession;
namespace detail {
struct DtlsContextCore;
struct DtlsSessionCore;
}  // namespace detail

// An SSL_CTX for our identity plus the cookie secret. Used for both roles.
class DtlsContext {
 public:
  // Builds a context; null and `error` (one line) on failure.
  static std::unique_ptr<DtlsContext> create(const DtlsIdentity& identity, std::string& error,
                                             const DtlsTimers& timers = {});
  ~DtlsContext();
  DtlsContext(const DtlsContext&) = delete;
  DtlsContext& operator=(const DtlsContext&) = delete;

  struct Stats {
    std::uint64_t hellos_ignored = 0;     // not a ClientHello, or malformed
    std::uint64_t hello_verify_sent = 0;  // ClientHellos answered with a cookie
    std::uint64_t sessions_accepted = 0;  // ClientHellos with a valid cookie
  };
  const Stats& stats() const;

  // Starts a new cookie secret; cookies made with the previous one stay
  // valid until the next rotation (call every minute or so). False if the
  // RNG fails (nothing changes).
  bool rotate_cookie_secret();

 private:
  friend class DtlsSession;
  explicit DtlsContext(std::unique_ptr<detail::DtlsContextCore> core);
  std::unique_ptr<detail::DtlsContextCore> core_;
};

class DtlsSession {
 public:
  enum class State { Handshaking, Established, Failed, Closed };

  // Starts a handshake towards `peer_address` (an opaque label such as
  // "192.0.2.1:4000"); the ClientHello is ready in take_datagram(). Null
  // only if OpenSSL cannot allocate.
  static std::unique_ptr<DtlsSession> client(DtlsContext& context, std::string peer_address, Verifier verifier,
                                             std::int64_t now_ms);
  // Handles a datagram from an address with no session. Returns a new server
  // session if it is a ClientHello with a valid cookie for `peer_address`;
  // otherwise null, keeping no state, with `reply` holding a
  // HelloVerifyRequest to send back (or empty: datagram ignored).
  static std::unique_ptr<DtlsSession> server(DtlsContext& context, std::string peer_address, ConstByteSpan datagram,
                                             Verifier verifier, std::int64_t now_ms, std::vector<std::uint8_t>& reply);
  ~DtlsSession();
  DtlsSession(const DtlsSession&) = delete;
  DtlsSession& operator=(const DtlsSession&) = delete;

  // Processes one datagram from the peer; malformed or unauthentic records
  // are dropped (counted in stats().ignored_datagrams when we can tell).
  void on_datagram(ConstByteSpan data, std::int64_t now_ms);
  // Moves the oldest outgoing datagram into `out`; false if there is none.
  bool take_datagram(std::vector<std::uint8_t>& out);
  // When on_timeout() wants to run next; nullopt when no timer is armed.
  std::optional<std::int64_t> next_timeout_ms() const;
  // Retransmits the last flight or gives up, if their time has come.
  void on_timeout(std::int64_t now_ms);

  State state() const;
  bool is_client() const;
  const std::string& peer_address() const;
  // Why the session failed or closed; empty while healthy.
  const std::string& failure_reason() const;
  // The verifier's peer_id for the peer's accepted certificate; empty if the
  // handshake failed.
  const std::string& peer_id() const;
  // True for a server session and a ClientHello other than the one that
  // started it (a different client random): the peer restarted, and the io
  // layer may offer the datagram to server() and replace this session once
  // that returns one. Duplicates of the original hello give false.
  bool is_new_client_hello(ConstByteSpan datagram) const;
  // Negotiated cipher suite (OpenSSL name); empty before Established.
  std::string cipher() const;

  // Derives 64 bytes with kDtlsExporterLabel (no context) and splits them:
  // the first 32 for client-to-server, the last 32 for server-to-client.
  // Both sides get the same values. False unless Established.
  bool export_keys(std::span<std::uint8_t, kDtlsKeySize> client_to_server,
                   std::span<std::uint8_t, kDtlsKeySize> server_to_client);
  // Encrypts one message (1..kDtlsMaxMessage bytes) into a datagram; false
  // unless Established or if the message is empty or too long.
  bool send(ConstByteSpan message);
  // Moves the oldest received message into `message`; false if there is none.
  bool receive(std::vector<std::uint8_t>& message);
  // Sends close_notify (if the session is up) and enters Closed.
  void close();

  struct Stats {
    std::uint64_t datagrams_in = 0;
    std::uint64_t datagrams_out = 0;
    std::uint64_t ignored_datagrams = 0;  // not DTLS records, or arrived after Failed/Closed
    std::uint64_t retransmitted_flights = 0;
    std::uint64_t dropped_messages = 0;  // receive queue full
  };
  const Stats& stats() const;

 private:
  explicit DtlsSession(std::unique_ptr<detail::DtlsSessionCore> core);
  std::unique_ptr<detail::DtlsSessionCore> core_;
};

}  // namespace wownet::crypto
