// wownet's small PKI: a network CA on disk (ca init / sign / revoke), node
// keys and CSRs, node IDs, and the trust store that checks a peer's
// certificate against the CA and its CRL.
//
// CA directory: ca.key (EC P-256, 0600), ca.crt, serial (next serial, hex),
// crl.pem, revoked.txt ("SERIAL-HEX REVOKED-AT-UNIX" per line). Node
// directory: node.key (EC P-256, 0600), node.csr.
//
// Nothing here reads a clock: times come in as UnixTime. notBefore of certs
// and lastUpdate of CRLs are backdated by kBackdate so that hosts whose
// clocks lag the CA's a little still accept them. Nothing throws; failures
// come back as a Status whose error is one line naming the file.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/types.h"
#include "crypto/ossl.h"

namespace wownet::crypto {

struct Status {
  bool ok = true;
  std::string error;  // one line, empty when ok
};

inline constexpr int kDefaultCaDays = 3650;
inline constexpr int kDefaultCertDays = 365;
inline constexpr int kMaxDays = 36500;
inline constexpr int kCrlDays = 30;
inline constexpr UnixTime kBackdate = 3600;

// True for a valid node name: 1 to 63 characters from [a-z0-9-].
bool valid_node_name(std::string_view name);

// Creates CA directory `dir` (0700; parents as needed) with ca.key, ca.crt
// (CN=name, valid `days`), serial, an empty crl.pem and revoked.txt; refuses
// if any of them exists.
Status ca_init(const std::string& dir, const std::string& name, int days, UnixTime now);

// Writes dir/node.key (new EC P-256 key, 0600; refuses to overwrite) and
// dir/node.csr (CN=node_name), creating dir (0700) if needed.
Status cert_request(const std::string& dir, const std::string& node_name);

// Verifies the CSR's self-signature and node name, then writes to out_file
// a node certificate valid `days` from `now`, using and advancing ca_dir/serial.
Status ca_sign(const std::string& ca_dir, const std::string& csr_file, const std::string& out_file, int days,
               UnixTime now);

// Revokes cert_file (which must be issued by this CA) at `now`: records its
// serial in revoked.txt and re-issues crl.pem with the next CRL number.
// Revoking an already revoked certificate keeps its date and re-issues the CRL.
Status ca_revoke(const std::string& ca_dir, const std::string& cert_file, UnixTime now);

// Re-issues crl.pem (next CRL number, nextUpdate now + kCrlDays) without
// revoking anything, so that it does not expire.
Status ca_refresh_crl(const std::string& ca_dir, UnixTime now);

// Node ID of a certificate: lowercase hex of the first 16 bytes of SHA-256
// over its DER SubjectPublicKeyInfo (32 characters); empty if it has no key.
std::string node_id(const X509* cert);
// Node ID of a public (or private) key, as node_id() of a certificate holding it.
std::string node_id_of_key(const EVP_PKEY* key);
// Node ID of the first certificate in PEM text; empty and `error` set on failure.
std::string node_id_from_pem(const std::string& pem, std::string& error);

// Reads the first PEM object of its kind from a file; null and `error` (one
// line naming the file) on failure.
ossl::X509Ptr read_cert(const std::string& path, std::string& error);
ossl::X509ReqPtr read_csr(const std::string& path, std::string& error);
ossl::X509CrlPtr read_crl(const std::string& path, std::string& error);
ossl::EvpPkeyPtr read_private_key(const std::string& path, std::string& error);
// Parses the first PEM certificate / CRL in `pem`; null and `error` on failure.
ossl::X509Ptr parse_cert(const std::string& pem, std::string& error);
ossl::X509CrlPtr parse_crl(const std::string& pem, std::string& error);
// PEM text of a certificate; empty on failure.
std::string cert_to_pem(const X509* cert);

// What `wownetctl cert show` prints about a certificate.
struct CertInfo {
  std::string name;    // subject CN
  std::string issuer;  // issuer CN (or the whole issuer name if it has no CN)
  std::string node_id;
  std::string serial;  // hex, as in the serial file
  UnixTime not_before = 0;
  UnixTime not_after = 0;
  bool is_ca = false;
};
// Describes a certificate.
CertInfo cert_info(const X509* cert);
// Formats a UnixTime as "2024-01-02T03:04:05Z".
std::string format_time(UnixTime t);

struct PeerCheck {
  enum class Result { Ok, Expired, NotYetValid, Revoked, UnknownCa, Invalid };
  Result result = Result::Invalid;
  std::string detail;     // why, when not Ok
  std::string node_id;    // set whenever the certificate has a key
  std::string node_name;  // subject CN, set whenever present
  bool ok() const { return result == Result::Ok; }
};
// "ok", "expired", "not-yet-valid", "revoked", "unknown-ca", "invalid".
const char* to_string(PeerCheck::Result r);

// The CA certificate (and CRL, once there is one) that peers are checked
// against. check() may run on many threads at once and concurrently with
// handshakes using configure()d SSL_CTXs; update_crl() must not run
// concurrently with itself, and the first CRL (which switches CRL checking
// on) should be loaded before the store is shared between threads.
class TrustStore {
 public:
  // Loads the CA certificate and, unless crl_pem_file is empty, its CRL
  // (which must be signed by that CA); nullopt and `error` on failure.
  static std::optional<TrustStore> load(const std::string& ca_cert_pem_file, const std::string& crl_pem_file,
                                        std::string& error);

  // Replaces the CRL with `crl_pem` (e.g. from a rendezvous node) if it is
  // signed by the CA and its CRL number is not older than the current one.
  // Takes effect for check() and for configure()d SSL_CTXs immediately.
  bool update_crl(const std::string& crl_pem, std::string& error);

  // How a CRL compares with the one in force, without taking it.
  struct CrlExamination {
    enum class Verdict {
      Newer,    // signed by the CA, CRL number above the current one (or no CRL yet)
      Same,     // signed by the CA, the current CRL number
      Older,    // signed by the CA, a lower CRL number: taking it would un-revoke
      Invalid,  // not PEM, not a CRL, not signed by the CA or without a CRL number
    };
    Verdict verdict = Verdict::Invalid;
    long number = -1;   // its CRL number, when it has one
    std::string error;  // why, when Invalid or Older
  };
  // Examines `crl_pem` as update_crl() would (signature by the CA, CRL
  // number against crl_number()); changes nothing.
  CrlExamination examine_crl(const std::string& crl_pem) const;

  // Verifies a peer's certificate (plus untrusted chain, may be null) at
  // time `now`: issued by the CA, within validity, not revoked, not a CA,
  // CN a valid node name.
  PeerCheck check(X509* peer, STACK_OF(X509) * chain_or_null, UnixTime now) const;

  // Makes `ctx` verify peers against this store (shared, so later CRL
  // updates apply) and require a peer certificate. Handshake time: see
  // set_verify_time().
  void configure(SSL_CTX* ctx) const;
  // Makes `ssl` verify its peer at time `now` instead of the wall clock.
  static void set_verify_time(SSL* ssl, UnixTime now);

  X509_STORE* store() const { return store_.get(); }
  const X509* ca_cert() const { return ca_.get(); }
  // CRL number of the loaded CRL; -1 without a CRL.
  long crl_number() const { return crl_number_; }

 private:
  TrustStore() = default;

  ossl::X509Ptr ca_;
  ossl::X509StorePtr store_;
  long crl_number_ = -1;
};

}  // namespace wownet::crypto
