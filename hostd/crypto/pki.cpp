// Certificates, CSRs, CRLs and keys read from PEM, node IDs and certificate
// descriptions. The CA directory is in pki_ca.cpp, TrustStore in
// pki_trust_store.cpp.
#include "crypto/pki.h"

#include "util/file_io.h"

#include <openssl/pem.h>

#include <algorithm>
#include <ctime>

#include "crypto/pki_internal.h"

namespace wownet::crypto {
namespace detail {
namespace {

constexpr std::size_t kMaxFileSize = 1 << 20;

}  // namespace

bool read_file(const std::string& path, std::string& out, std::string& error) {
  return util::read_file(path, out, error, kMaxFileSize);
}

UnixTime to_unix(const ASN1_TIME* t) {
  struct tm tm {};
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<UnixTime>(::timegm(&tm));
}

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

std::string first_line(std::string s) {
  auto nl = s.find_first_of("\r\n");
  if (nl != std::string::npos) s.resize(nl);
  return s;
}

long crl_number_of(const X509_CRL* crl) {
  ossl::Asn1IntegerPtr num(static_cast<ASN1_INTEGER*>(X509_CRL_get_ext_d2i(crl, NID_crl_number, nullptr, nullptr)));
  if (!num) return -1;
  long n = ASN1_INTEGER_get(num.get());
  ERR_clear_error();
  return n < 0 ? -1 : n;
}

}  // namespace detail

namespace {

using detail::common_name;
using detail::serial_hex;
using detail::to_pem_with;
using detail::to_unix;

ossl::BioPtr mem_bio(const std::string& s) { return ossl::BioPtr(BIO_new_mem_buf(s.data(), int(s.size()))); }

std::string one_line_name(const X509_NAME* name) {
  ossl::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_ONELINE) < 0) return {};
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, std::size_t(len));
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
  if (!detail::read_file(path, text, error)) return nullptr;
  return parse_pem<Ptr, T>(text, reader, what, path, error);
}

EVP_PKEY* read_key_no_password(BIO* bio, EVP_PKEY** out, pem_password_cb*, void*) {
  // An empty password callback: an encrypted key fails instead of prompting.
  return PEM_read_bio_PrivateKey(
      bio, out, [](char*, int, int, void*) { return 0; }, nullptr);
}

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

}  // namespace wownet::crypto
