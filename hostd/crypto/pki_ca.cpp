// The CA directory: ca init / sign / revoke, node keys and CSRs, and the CRL
// that revocation re-issues (see pki.h for the files it holds).
#include "crypto/pki.h"

#include "util/file_io.h"

#include <fcntl.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <limits>
#include <vector>

#include "crypto/pki_internal.h"

namespace wownet::crypto {
namespace {

using detail::bn_hex;
using detail::common_name;
using detail::crl_number_of;
using detail::first_line;
using detail::read_file;
using detail::serial_hex;
using detail::to_pem_with;
using detail::to_unix;

constexpr UnixTime kDay = 86400;

Status fail(std::string error) { return Status{false, std::move(error)}; }

std::string errno_text() { return std::strerror(errno); }

std::string join(const std::string& dir, const char* name) { return dir + "/" + name; }

bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// Creates a new private file (mode 0600 from the start); never replaces one.
Status write_new_private(const std::string& path, const std::string& data) {
  if (std::error_code ec = util::write_file_new(path, data, 0600)) {
    if (ec == std::errc::file_exists) return fail(path + ": already exists, refusing to overwrite a key");
    return fail(path + ": cannot write: " + ec.message());
  }
  return {};
}

// Replaces `path` atomically.
Status write_atomic(const std::string& path, const std::string& data, mode_t mode) {
  if (std::error_code ec = util::write_file_atomic(path, data, mode))
    return fail(path + ": cannot write: " + ec.message());
  return {};
}

// mkdir -p, the last component private (0700) when it is created here.
Status make_dir(const std::string& dir) {
  if (dir.empty()) return fail("empty directory name");
  for (std::size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    std::string part = dir.substr(0, pos);
    if (::mkdir(part.c_str(), pos == dir.size() ? 0700 : 0755) < 0 && errno != EEXIST)
      return fail(part + ": cannot create directory: " + errno_text());
  }
  struct stat st;
  if (::stat(dir.c_str(), &st) < 0) return fail(dir + ": " + errno_text());
  if (!S_ISDIR(st.st_mode)) return fail(dir + ": not a directory");
  return {};
}

// Exclusive flock on a directory for the lifetime of the object, so that two
// `ca sign` runs never hand out the same serial.
class DirLock {
 public:
  explicit DirLock(const std::string& dir) {
    fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd_ < 0) {
      error_ = dir + ": cannot open CA directory: " + errno_text();
      return;
    }
    while (::flock(fd_, LOCK_EX) < 0) {
      if (errno == EINTR) continue;
      error_ = dir + ": cannot lock: " + errno_text();
      return;
    }
  }
  ~DirLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  const std::string& error() const { return error_; }

 private:
  int fd_ = -1;
  std::string error_;
};

bool valid_days(int days) { return days >= 1 && days <= kMaxDays; }

bool set_time(ASN1_TIME* t, UnixTime when) { return ASN1_TIME_set(t, static_cast<time_t>(when)) != nullptr; }

std::string pem(const X509_REQ* r) { return to_pem_with(const_cast<X509_REQ*>(r), PEM_write_bio_X509_REQ); }
std::string pem(const X509_CRL* c) { return to_pem_with(const_cast<X509_CRL*>(c), PEM_write_bio_X509_CRL); }
std::string pem(EVP_PKEY* key) {
  return to_pem_with(
      key, [](BIO* b, EVP_PKEY* k) { return PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr); });
}

ossl::X509NamePtr cn_name(const std::string& cn) {
  ossl::X509NamePtr name(X509_NAME_new());
  if (!name ||
      X509_NAME_add_entry_by_NID(name.get(), NID_commonName, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.data()), int(cn.size()), -1, 0) != 1)
    return nullptr;
  return name;
}

// Parses a positive hex serial ("01", "1F2E"); null if malformed.
ossl::BignumPtr parse_serial(const std::string& hex) {
  if (hex.empty() || hex.size() > 40 ||
      !std::all_of(hex.begin(), hex.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }))
    return nullptr;
  BIGNUM* bn = nullptr;
  if (BN_hex2bn(&bn, hex.c_str()) != int(hex.size())) {
    BN_free(bn);
    return nullptr;
  }
  ossl::BignumPtr out(bn);
  if (BN_is_zero(out.get()) || BN_is_negative(out.get())) return nullptr;
  return out;
}

ossl::EvpPkeyPtr generate_key() { return ossl::EvpPkeyPtr(EVP_EC_gen("P-256")); }

bool is_p256(const EVP_PKEY* key) {
  if (!key || !EVP_PKEY_is_a(key, "EC")) return false;
  char group[64] = {};
  if (EVP_PKEY_get_group_name(key, group, sizeof group, nullptr) != 1) return false;
  return OBJ_sn2nid(group) == NID_X9_62_prime256v1 || EC_curve_nist2nid(group) == NID_X9_62_prime256v1;
}

// Adds an extension given in openssl.cnf syntax ("critical,CA:TRUE").
bool add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ossl::X509ExtensionPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  return ext && X509_add_ext(cert, ext.get(), -1) == 1;
}

struct Ca {
  ossl::X509Ptr cert;
  ossl::EvpPkeyPtr key;
};

// Loads ca.crt and ca.key from a CA directory and checks that they belong together.
std::optional<Ca> load_ca(const std::string& dir, std::string& error) {
  Ca ca;
  ca.cert = read_cert(join(dir, "ca.crt"), error);
  if (!ca.cert) return std::nullopt;
  ca.key = read_private_key(join(dir, "ca.key"), error);
  if (!ca.key) return std::nullopt;
  if (X509_check_private_key(ca.cert.get(), ca.key.get()) != 1) {
    ERR_clear_error();
    error = join(dir, "ca.key") + ": does not match " + join(dir, "ca.crt");
    return std::nullopt;
  }
  if (X509_check_ca(ca.cert.get()) == 0) {
    error = join(dir, "ca.crt") + ": not a CA certificate";
    return std::nullopt;
  }
  return ca;
}

struct RevokedEntry {
  std::string serial;  // canonical hex (BN_bn2hex)
  UnixTime at = 0;
};

bool read_revoked(const std::string& path, std::vector<RevokedEntry>& out, std::string& error) {
  std::string text;
  if (!read_file(path, text, error)) return false;
  out.clear();
  std::size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    std::string serial = line, at;
    if (auto sp = line.find(' '); sp != std::string::npos) {
      serial = line.substr(0, sp);
      at = line.substr(sp + 1);
    }
    ossl::BignumPtr bn = parse_serial(serial);
    char* end = nullptr;
    errno = 0;
    long long when = at.empty() ? 0 : std::strtoll(at.c_str(), &end, 10);
    if (!bn || (!at.empty() && (errno != 0 || *end != '\0' || when < 0))) {
      error = path + ": line " + std::to_string(line_no) + ": expected \"SERIAL-HEX [REVOKED-AT-UNIX]\"";
      return false;
    }
    out.push_back({bn_hex(bn.get()), when});
  }
  return true;
}

std::string format_revoked(const std::vector<RevokedEntry>& entries) {
  std::string out;
  for (const auto& e : entries) out += e.serial + " " + std::to_string(e.at) + "\n";
  return out;
}

// Builds and signs a CRL listing `entries`.
ossl::X509CrlPtr build_crl(const Ca& ca, const std::vector<RevokedEntry>& entries, long number, UnixTime now,
                           std::string& error) {
  ossl::X509CrlPtr crl(X509_CRL_new());
  ossl::Asn1TimePtr last(ASN1_TIME_new()), next(ASN1_TIME_new());
  ossl::Asn1IntegerPtr num(ASN1_INTEGER_new());
  bool ok = crl && last && next && num && X509_CRL_set_version(crl.get(), X509_CRL_VERSION_2) == 1 &&
            X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca.cert.get())) == 1 &&
            set_time(last.get(), now - kBackdate) && set_time(next.get(), now + kCrlDays * kDay) &&
            X509_CRL_set1_lastUpdate(crl.get(), last.get()) == 1 &&
            X509_CRL_set1_nextUpdate(crl.get(), next.get()) == 1 && ASN1_INTEGER_set(num.get(), number) == 1 &&
            X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, num.get(), 0, 0) == 1;
  if (ok) {
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, ca.cert.get(), nullptr, nullptr, crl.get(), 0);
    ossl::X509ExtensionPtr akid(X509V3_EXT_conf_nid(nullptr, &ctx, NID_authority_key_identifier, "keyid:always"));
    ok = akid && X509_CRL_add_ext(crl.get(), akid.get(), -1) == 1;
  }
  for (std::size_t i = 0; ok && i < entries.size(); ++i) {
    ossl::X509RevokedPtr rev(X509_REVOKED_new());
    ossl::BignumPtr bn = parse_serial(entries[i].serial);
    ossl::Asn1IntegerPtr serial(bn ? BN_to_ASN1_INTEGER(bn.get(), nullptr) : nullptr);
    ossl::Asn1TimePtr at(ASN1_TIME_new());
    ok = rev && serial && at && set_time(at.get(), entries[i].at) &&
         X509_REVOKED_set_serialNumber(rev.get(), serial.get()) == 1 &&
         X509_REVOKED_set_revocationDate(rev.get(), at.get()) == 1 && X509_CRL_add0_revoked(crl.get(), rev.get()) == 1;
    if (ok) rev.release();  // now owned by the CRL
  }
  ok = ok && X509_CRL_sort(crl.get()) == 1 && X509_CRL_sign(crl.get(), ca.key.get(), EVP_sha256()) > 0;
  if (!ok) {
    error = "cannot build CRL: " + ossl::openssl_error();
    return nullptr;
  }
  return crl;
}

// Re-issues crl.pem from revoked.txt, first adding `serial` (if non-empty) revoked at `now`.
Status reissue_crl(const std::string& dir, const Ca& ca, const std::string& serial, UnixTime now) {
  std::string error;
  std::vector<RevokedEntry> entries;
  std::string revoked_path = join(dir, "revoked.txt"), crl_path = join(dir, "crl.pem");
  if (!read_revoked(revoked_path, entries, error)) return fail(error);
  ossl::X509CrlPtr old = read_crl(crl_path, error);
  if (!old) return fail(error);
  long number = crl_number_of(old.get());
  if (number < 0 || number == std::numeric_limits<long>::max()) return fail(crl_path + ": no usable CRL number");
  bool added = false;
  if (!serial.empty() &&
      std::none_of(entries.begin(), entries.end(), [&](const RevokedEntry& e) { return e.serial == serial; })) {
    entries.push_back({serial, now});
    added = true;
  }
  ossl::X509CrlPtr crl = build_crl(ca, entries, number + 1, now, error);
  if (!crl) return fail(crl_path + ": " + error);
  // revoked.txt first: if crl.pem then fails, running revoke again repairs it.
  if (added) {
    if (Status s = write_atomic(revoked_path, format_revoked(entries), 0644); !s.ok) return s;
  }
  return write_atomic(crl_path, pem(crl.get()), 0644);
}

}  // namespace

Status ca_init(const std::string& dir, const std::string& name, int days, UnixTime now) {
  if (name.empty() || name.size() > 64 ||
      std::any_of(name.begin(), name.end(), [](char c) { return (unsigned char)c < 0x20 || c == 0x7f; }))
    return fail("CA name must be 1 to 64 printable characters");
  if (!valid_days(days)) return fail("days must be between 1 and " + std::to_string(kMaxDays));
  if (Status s = make_dir(dir); !s.ok) return s;
  for (const char* f : {"ca.key", "ca.crt", "serial", "crl.pem", "revoked.txt"})
    if (exists(join(dir, f))) return fail(join(dir, f) + ": already exists, refusing to overwrite a CA");

  Ca ca;
  ca.key = generate_key();
  ca.cert.reset(X509_new());
  ossl::X509NamePtr subject = cn_name(name);
  unsigned char rnd[8];
  bool ok = ca.key && ca.cert && subject && RAND_bytes(rnd, sizeof rnd) == 1;
  if (ok) {
    rnd[0] &= 0x7f;  // a positive serial of 63 random bits
    rnd[0] |= 0x01;  // and never zero
    ossl::BignumPtr serial(BN_bin2bn(rnd, sizeof rnd, nullptr));
    X509* c = ca.cert.get();
    ok = serial && BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(c)) &&
         X509_set_version(c, X509_VERSION_3) == 1 && X509_set_subject_name(c, subject.get()) == 1 &&
         X509_set_issuer_name(c, subject.get()) == 1 && set_time(X509_getm_notBefore(c), now - kBackdate) &&
         set_time(X509_getm_notAfter(c), now + days * kDay) && X509_set_pubkey(c, ca.key.get()) == 1 &&
         add_ext(c, c, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") &&
         add_ext(c, c, NID_key_usage, "critical,keyCertSign,cRLSign") &&
         add_ext(c, c, NID_subject_key_identifier, "hash") && X509_sign(c, ca.key.get(), EVP_sha256()) > 0;
  }
  if (!ok) return fail(dir + ": cannot create CA certificate: " + ossl::openssl_error());
  std::string error;
  ossl::X509CrlPtr crl = build_crl(ca, {}, 1, now, error);
  if (!crl) return fail(join(dir, "crl.pem") + ": " + error);
  std::string key_pem = pem(ca.key.get());
  if (key_pem.empty()) return fail(join(dir, "ca.key") + ": cannot encode key: " + ossl::openssl_error());

  if (Status s = write_new_private(join(dir, "ca.key"), key_pem); !s.ok) return s;
  if (Status s = write_atomic(join(dir, "ca.crt"), cert_to_pem(ca.cert.get()), 0644); !s.ok) return s;
  if (Status s = write_atomic(join(dir, "serial"), "01\n", 0644); !s.ok) return s;
  if (Status s = write_atomic(join(dir, "revoked.txt"), "", 0644); !s.ok) return s;
  return write_atomic(join(dir, "crl.pem"), pem(crl.get()), 0644);
}

Status cert_request(const std::string& dir, const std::string& node_name) {
  if (!valid_node_name(node_name))
    return fail("invalid node name '" + node_name + "': use 1 to 63 characters from a-z, 0-9 and -");
  if (Status s = make_dir(dir); !s.ok) return s;
  std::string key_path = join(dir, "node.key"), csr_path = join(dir, "node.csr");
  if (exists(key_path)) return fail(key_path + ": already exists, refusing to overwrite a key");

  ossl::EvpPkeyPtr key = generate_key();
  ossl::X509ReqPtr req(X509_REQ_new());
  ossl::X509NamePtr subject = cn_name(node_name);
  bool ok = key && req && subject && X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) == 1 &&
            X509_REQ_set_subject_name(req.get(), subject.get()) == 1 &&
            X509_REQ_set_pubkey(req.get(), key.get()) == 1 && X509_REQ_sign(req.get(), key.get(), EVP_sha256()) > 0;
  std::string key_pem = ok ? pem(key.get()) : std::string();
  std::string csr_pem = ok ? pem(req.get()) : std::string();
  if (key_pem.empty() || csr_pem.empty()) return fail(csr_path + ": cannot create request: " + ossl::openssl_error());
  if (Status s = write_new_private(key_path, key_pem); !s.ok) return s;
  return write_atomic(csr_path, csr_pem, 0644);
}

Status ca_sign(const std::string& ca_dir, const std::string& csr_file, const std::string& out_file, int days,
               UnixTime now) {
  if (!valid_days(days)) return fail("days must be between 1 and " + std::to_string(kMaxDays));
  DirLock lock(ca_dir);
  if (!lock.error().empty()) return fail(lock.error());
  std::string error;
  std::optional<Ca> ca = load_ca(ca_dir, error);
  if (!ca) return fail(error);

  ossl::X509ReqPtr req = read_csr(csr_file, error);
  if (!req) return fail(error);
  EVP_PKEY* pub = X509_REQ_get0_pubkey(req.get());
  if (!pub || X509_REQ_verify(req.get(), pub) != 1) {
    ERR_clear_error();
    return fail(csr_file + ": request signature does not verify");
  }
  if (!is_p256(pub)) return fail(csr_file + ": key is not EC P-256");
  std::string name = common_name(X509_REQ_get_subject_name(req.get()));
  if (!valid_node_name(name))
    return fail(csr_file + ": subject CN '" + first_line(name) + "' is not a valid node name");

  UnixTime not_after = now + days * kDay;
  UnixTime ca_not_after = to_unix(X509_get0_notAfter(ca->cert.get()));
  if (ca_not_after <= now) return fail(join(ca_dir, "ca.crt") + ": CA certificate has expired");
  if (not_after > ca_not_after)
    return fail("certificate would outlive the CA certificate (expires " + format_time(ca_not_after) +
                "); use fewer days");

  std::string serial_path = join(ca_dir, "serial"), serial_text;
  if (!read_file(serial_path, serial_text, error)) return fail(error);
  while (!serial_text.empty() && std::isspace(static_cast<unsigned char>(serial_text.back()))) serial_text.pop_back();
  ossl::BignumPtr serial = parse_serial(serial_text);
  ossl::BignumPtr next(serial ? BN_dup(serial.get()) : nullptr);
  if (!serial || !next || BN_add_word(next.get(), 1) != 1) return fail(serial_path + ": not a positive hex serial");

  ossl::X509Ptr cert(X509_new());
  ossl::X509NamePtr subject = cn_name(name);
  X509* c = cert.get();
  bool ok = c && subject && BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(c)) &&
            X509_set_version(c, X509_VERSION_3) == 1 && X509_set_subject_name(c, subject.get()) == 1 &&
            X509_set_issuer_name(c, X509_get_subject_name(ca->cert.get())) == 1 &&
            set_time(X509_getm_notBefore(c), now - kBackdate) && set_time(X509_getm_notAfter(c), not_after) &&
            X509_set_pubkey(c, pub) == 1 && add_ext(c, ca->cert.get(), NID_basic_constraints, "critical,CA:FALSE") &&
            add_ext(c, ca->cert.get(), NID_key_usage, "critical,digitalSignature") &&
            add_ext(c, ca->cert.get(), NID_ext_key_usage, "serverAuth,clientAuth") &&
            add_ext(c, ca->cert.get(), NID_subject_key_identifier, "hash") &&
            add_ext(c, ca->cert.get(), NID_authority_key_identifier, "keyid:always") &&
            X509_sign(c, ca->key.get(), EVP_sha256()) > 0;
  std::string cert_pem = ok ? cert_to_pem(c) : std::string();
  if (cert_pem.empty()) return fail(out_file + ": cannot issue certificate: " + ossl::openssl_error());
  // Consume the serial before writing the certificate: a serial is never issued twice.
  if (Status s = write_atomic(serial_path, bn_hex(next.get()) + "\n", 0644); !s.ok) return s;
  return write_atomic(out_file, cert_pem, 0644);
}

Status ca_revoke(const std::string& ca_dir, const std::string& cert_file, UnixTime now) {
  DirLock lock(ca_dir);
  if (!lock.error().empty()) return fail(lock.error());
  std::string error;
  std::optional<Ca> ca = load_ca(ca_dir, error);
  if (!ca) return fail(error);
  ossl::X509Ptr cert = read_cert(cert_file, error);
  if (!cert) return fail(error);
  if (X509_NAME_cmp(X509_get_issuer_name(cert.get()), X509_get_subject_name(ca->cert.get())) != 0 ||
      X509_verify(cert.get(), X509_get0_pubkey(ca->cert.get())) != 1) {
    ERR_clear_error();
    return fail(cert_file + ": not issued by the CA in " + ca_dir);
  }
  if (X509_check_ca(cert.get()) != 0) return fail(cert_file + ": is a CA certificate, not a node certificate");
  std::string serial = serial_hex(X509_get0_serialNumber(cert.get()));
  if (serial.empty()) return fail(cert_file + ": unusable serial number");
  return reissue_crl(ca_dir, *ca, serial, now);
}

Status ca_refresh_crl(const std::string& ca_dir, UnixTime now) {
  DirLock lock(ca_dir);
  if (!lock.error().empty()) return fail(lock.error());
  std::string error;
  std::optional<Ca> ca = load_ca(ca_dir, error);
  if (!ca) return fail(error);
  return reissue_crl(ca_dir, *ca, {}, now);
}

}  // namespace wownet::crypto
