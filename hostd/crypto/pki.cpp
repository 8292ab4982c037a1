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
#include <ctime>
#include <limits>
#include <vector>

namespace wownet::crypto {
namespace {

constexpr std::size_t kMaxFileSize = 1 << 20;
constexpr UnixTime kDay = 86400;

Status fail(std::string error) { return Status{false, std::move(error)}; }

std::string errno_text() { return std::strerror(errno); }

std::string join(const std::string& dir, const char* name) { return dir + "/" + name; }

bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

bool read_file(const std::string& path, std::string& out, std::string& error) {
  return util::read_file(path, out, error, kMaxFileSize);
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

UnixTime to_unix(const ASN1_TIME* t) {
  struct tm tm {};
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<UnixTime>(::timegm(&tm));
}

ossl::BioPtr mem_bio(const std::string& s) { return ossl::BioPtr(BIO_new_mem_buf(s.data(), int(s.size()))); }

template <class T, class Write>
std::string to_pem_with(T* obj, Write write) {
  ossl::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || write(bio.get(), obj) != 1) return {};
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, std::size_t(len));
}

std::string pem(const X509_REQ* r) { return to_pem_with(const_cast<X509_REQ*>(r), PEM_write_bio_X509_REQ); }
std::string pem(const X509_CRL* c) { return to_pem_with(const_cast<X509_CRL*>(c), PEM_write_bio_X509_CRL); }
std::string pem(EVP_PKEY* key) {
  return to_pem_with(
      key, [](BIO* b, EVP_PKEY* k) { return PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr); });
}

// The subject's single CN as UTF-8; empty if absent, repeated or containing NUL.
std::string common_name(const X509_NAME* name) {
  if (!name) return {};
  int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (idx < 0 || X509_NAME_get_index_by_NID(name, NID_commonName, idx) >= 0) return {};
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
  unsigned char* utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, data);
  if (len < 0) return {};
  std::string out(reinterpret_cast<char*>(utf8), std::size_t(len));
  OPENSSL_free(utf8);
  if (out.find('\0') != std::string::npos) return {};
  return out;
}

std::string one_line_name(const X509_NAME* name) {
  ossl::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_ONELINE) < 0) return {};
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, std::size_t(len));
}

ossl::X509NamePtr cn_name(const std::string& cn) {
  ossl::X509NamePtr name(X509_NAME_new());
  if (!name ||
      X509_NAME_add_entry_by_NID(name.get(), NID_commonName, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.data()), int(cn.size()), -1, 0) != 1)
    return nullptr;
  return name;
}

std::string bn_hex(const BIGNUM* bn) {
  char* hex = BN_bn2hex(bn);
  if (!hex) return {};
  std::string out(hex);
  OPENSSL_free(hex);
  return out;
}

std::string serial_hex(const ASN1_INTEGER* serial) {
  ossl::BignumPtr bn(ASN1_INTEGER_to_BN(serial, nullptr));
  return bn ? bn_hex(bn.get()) : std::string();
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

std::string first_line(std::string s) {
  auto nl = s.find_first_of("\r\n");
  if (nl != std::string::npos) s.resize(nl);
  return s;
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

// The CRL number extension of a CRL; -1 if missing or out of range.
long crl_number_of(const X509_CRL* crl) {
  ossl::Asn1IntegerPtr num(static_cast<ASN1_INTEGER*>(X509_CRL_get_ext_d2i(crl, NID_crl_number, nullptr, nullptr)));
  if (!num) return -1;
  long n = ASN1_INTEGER_get(num.get());
  ERR_clear_error();
  return n < 0 ? -1 : n;
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

template <class T>
using PemReader = T* (*)(BIO*, T**, pem_password_cb*, void*);

template <class Ptr, class T>
Ptr parse_pem(const std::string& text, PemReader<T> reader, const char* what, const std::string& origin,
              std::string& error) {
  ERR_clear_error();
  ossl::BioPtr bio = mem_bio(text);
  Ptr obj(bio ? reader(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!obj) {
    error = origin + ": not a PEM " + what + " (" + ossl::openssl_error() + ")";
    return nullptr;
  }
  ERR_clear_error();
  return obj;
}

template <class Ptr, class T>
Ptr read_pem(const std::string& path, PemReader<T> reader, const char* what, std::string& error) {
  std::string text;
  if (!read_file(path, text, error)) return nullptr;
  return parse_pem<Ptr, T>(text, reader, what, path, error);
}

EVP_PKEY* read_key_no_password(BIO* bio, EVP_PKEY** out, pem_password_cb*, void*) {
  // An empty password callback: an encrypted key fails instead of prompting.
  return PEM_read_bio_PrivateKey(
      bio, out, [](char*, int, int, void*) { return 0; }, nullptr);
}

}  // namespace

bool valid_node_name(std::string_view name) {
  return !name.empty() && name.size() <= 63 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

ossl::X509Ptr read_cert(const std::string& path, std::string& error) {
  return read_pem<ossl::X509Ptr, X509>(path, PEM_read_bio_X509, "certificate", error);
}
ossl::X509ReqPtr read_csr(const std::string& path, std::string& error) {
  return read_pem<ossl::X509ReqPtr, X509_REQ>(path, PEM_read_bio_X509_REQ, "certificate request", error);
}
ossl::X509CrlPtr read_crl(const std::string& path, std::string& error) {
  return read_pem<ossl::X509CrlPtr, X509_CRL>(path, PEM_read_bio_X509_CRL, "CRL", error);
}
ossl::EvpPkeyPtr read_private_key(const std::string& path, std::string& error) {
  return read_pem<ossl::EvpPkeyPtr, EVP_PKEY>(path, read_key_no_password, "private key", error);
}
ossl::X509Ptr parse_cert(const std::string& pem_text, std::string& error) {
  return parse_pem<ossl::X509Ptr, X509>(pem_text, PEM_read_bio_X509, "certificate", "input", error);
}
ossl::X509CrlPtr parse_crl(const std::string& pem_text, std::string& error) {
  return parse_pem<ossl::X509CrlPtr, X509_CRL>(pem_text, PEM_read_bio_X509_CRL, "CRL", "input", error);
}

std::string cert_to_pem(const X509* cert) {
  return cert ? to_pem_with(const_cast<X509*>(cert), PEM_write_bio_X509) : std::string();
}

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

namespace {

// Lowercase hex of the first 16 bytes of SHA-256 over a DER SubjectPublicKeyInfo.
std::string spki_id(unsigned char* der, int len) {
  if (len <= 0) return {};
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  int ok = EVP_Digest(der, std::size_t(len), md, &md_len, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  if (ok != 1 || md_len < 16) return {};
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 16; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

}  // namespace

std::string node_id(const X509* cert) {
  const X509_PUBKEY* pub = cert ? X509_get_X509_PUBKEY(cert) : nullptr;
  unsigned char* der = nullptr;
  int len = pub ? i2d_X509_PUBKEY(pub, &der) : -1;
  return spki_id(der, len);
}

std::string node_id_of_key(const EVP_PKEY* key) {
  unsigned char* der = nullptr;
  int len = key ? i2d_PUBKEY(key, &der) : -1;
  return spki_id(der, len);
}

std::string node_id_from_pem(const std::string& pem_text, std::string& error) {
  ossl::X509Ptr cert = parse_cert(pem_text, error);
  if (!cert) return {};
  std::string id = node_id(cert.get());
  if (id.empty()) error = "certificate has no usable public key";
  return id;
}

std::string format_time(UnixTime t) {
  time_t tt = static_cast<time_t>(t);
  struct tm tm {};
  char buf[32];
  if (!::gmtime_r(&tt, &tm) || std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) return std::to_string(t);
  return buf;
}

CertInfo cert_info(const X509* cert) {
  CertInfo info;
  if (!cert) return info;
  info.name = common_name(X509_get_subject_name(cert));
  info.issuer = common_name(X509_get_issuer_name(cert));
  if (info.issuer.empty()) info.issuer = one_line_name(X509_get_issuer_name(cert));
  info.node_id = node_id(cert);
  info.serial = serial_hex(X509_get0_serialNumber(cert));
  info.not_before = to_unix(X509_get0_notBefore(cert));
  info.not_after = to_unix(X509_get0_notAfter(cert));
  info.is_ca = X509_check_ca(const_cast<X509*>(cert)) != 0;
  return info;
}

const char* to_string(PeerCheck::Result r) {
  switch (r) {
    case PeerCheck::Result::Ok: return "ok";
    case PeerCheck::Result::Expired: return "expired";
    case PeerCheck::Result::NotYetValid: return "not-yet-valid";
    case PeerCheck::Result::Revoked: return "revoked";
    case PeerCheck::Result::UnknownCa: return "unknown-ca";
    case PeerCheck::Result::Invalid: return "invalid";
  }
  return "invalid";
}

std::optional<TrustStore> TrustStore::load(const std::string& ca_cert_pem_file, const std::string& crl_pem_file,
                                           std::string& error) {
  TrustStore ts;
  ts.ca_ = read_cert(ca_cert_pem_file, error);
  if (!ts.ca_) return std::nullopt;
  if (X509_check_ca(ts.ca_.get()) == 0 || X509_self_signed(ts.ca_.get(), 1) != 1) {
    ERR_clear_error();
    error = ca_cert_pem_file + ": not a self-signed CA certificate";
    return std::nullopt;
  }
  ts.store_.reset(X509_STORE_new());
  // Depth 0: the peer must be issued directly by the CA (which has pathlen:0 anyway).
  if (!ts.store_ || X509_STORE_add_cert(ts.store_.get(), ts.ca_.get()) != 1) {
    error = ca_cert_pem_file + ": cannot build trust store: " + ossl::openssl_error();
    return std::nullopt;
  }
  X509_VERIFY_PARAM_set_depth(X509_STORE_get0_param(ts.store_.get()), 0);
  if (!crl_pem_file.empty()) {
    std::string text;
    if (!read_file(crl_pem_file, text, error)) return std::nullopt;
    if (!ts.update_crl(text, error)) {
      error = crl_pem_file + ": " + error;
      return std::nullopt;
    }
  }
  return ts;
}

bool TrustStore::update_crl(const std::string& crl_pem, std::string& error) {
  ossl::X509CrlPtr crl = parse_crl(crl_pem, error);
  if (!crl) return false;
  if (X509_NAME_cmp(X509_CRL_get_issuer(crl.get()), X509_get_subject_name(ca_.get())) != 0 ||
      X509_CRL_verify(crl.get(), X509_get0_pubkey(ca_.get())) != 1) {
    ERR_clear_error();
    error = "CRL is not signed by the CA";
    return false;
  }
  long number = crl_number_of(crl.get());
  if (number < 0) {
    error = "CRL has no CRL number";
    return false;
  }
  if (number < crl_number_) {
    error = "CRL number " + std::to_string(number) + " is older than the current " + std::to_string(crl_number_);
    return false;
  }
  // Add the new CRL, then drop every other one: a concurrent check never
  // sees the store without a CRL.
  if (X509_STORE_add_crl(store_.get(), crl.get()) != 1) {
    error = "cannot add CRL: " + ossl::openssl_error();
    return false;
  }
  if (X509_STORE_lock(store_.get()) == 1) {
    STACK_OF(X509_OBJECT)* objs = X509_STORE_get0_objects(store_.get());
    for (int i = sk_X509_OBJECT_num(objs) - 1; i >= 0; --i) {
      X509_OBJECT* obj = sk_X509_OBJECT_value(objs, i);
      X509_CRL* old = X509_OBJECT_get0_X509_CRL(obj);
      if (old && X509_CRL_match(old, crl.get()) != 0) {
        sk_X509_OBJECT_delete(objs, i);
        X509_OBJECT_free(obj);
      }
    }
    X509_STORE_unlock(store_.get());
  }
  X509_STORE_set_flags(store_.get(), X509_V_FLAG_CRL_CHECK);
  crl_number_ = number;
  return true;
}

PeerCheck TrustStore::check(X509* peer, STACK_OF(X509) * chain_or_null, UnixTime now) const {
  using R = PeerCheck::Result;
  PeerCheck out;
  if (!peer) {
    out.detail = "no certificate";
    return out;
  }
  out.node_id = node_id(peer);
  out.node_name = common_name(X509_get_subject_name(peer));
  ossl::X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store_.get(), peer, chain_or_null) != 1) {
    out.detail = "cannot set up verification: " + ossl::openssl_error();
    return out;
  }
  X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx.get()), static_cast<time_t>(now));
  int rc = X509_verify_cert(ctx.get());
  int err = X509_STORE_CTX_get_error(ctx.get());
  if (rc != 1) {
    int depth = X509_STORE_CTX_get_error_depth(ctx.get());
    switch (err) {
      case X509_V_ERR_CERT_HAS_EXPIRED: out.result = R::Expired; break;
      case X509_V_ERR_CERT_NOT_YET_VALID: out.result = R::NotYetValid; break;
      case X509_V_ERR_CERT_REVOKED: out.result = R::Revoked; break;
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
      case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
      case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
      case X509_V_ERR_CERT_SIGNATURE_FAILURE:
      case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      case X509_V_ERR_CERT_UNTRUSTED:
      case X509_V_ERR_AKID_SKID_MISMATCH: out.result = R::UnknownCa; break;
      default: out.result = R::Invalid; break;
    }
    out.detail = err == X509_V_OK ? ossl::openssl_error() : X509_verify_cert_error_string(err);
    if (depth > 0) out.detail += " (CA certificate)";
    if (out.result == R::Expired && depth == 0)
      out.detail += " (notAfter " + format_time(to_unix(X509_get0_notAfter(peer))) + ")";
    if (out.result == R::NotYetValid && depth == 0)
      out.detail += " (notBefore " + format_time(to_unix(X509_get0_notBefore(peer))) + ")";
    ERR_clear_error();
    return out;
  }
  ERR_clear_error();
  if (X509_check_ca(peer) != 0) {
    out.detail = "peer certificate is a CA certificate";
    return out;
  }
  if (!valid_node_name(out.node_name)) {
    out.detail = "subject CN '" + first_line(out.node_name) + "' is not a valid node name";
    return out;
  }
  if (out.node_id.empty()) {
    out.detail = "certificate has no usable public key";
    return out;
  }
  out.result = R::Ok;
  return out;
}

void TrustStore::configure(SSL_CTX* ctx) const {
  SSL_CTX_set1_cert_store(ctx, store_.get());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
}

void TrustStore::set_verify_time(SSL* ssl, UnixTime now) {
  X509_VERIFY_PARAM_set_time(SSL_get0_param(ssl), static_cast<time_t>(now));
}

}  // namespace wownet::crypto
