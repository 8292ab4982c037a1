// TrustStore: the CA certificate and CRL that peers' certificates are
// checked against.
#include "crypto/pki.h"

#include <string>

#include "crypto/pki_internal.h"

namespace wownet::crypto {
namespace {

using detail::common_name;
using detail::crl_number_of;
using detail::first_line;
using detail::read_file;
using detail::to_unix;

}  // namespace

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

namespace {

// Parses `crl_pem` and checks it against the CA and the current CRL
// number; the parsed CRL goes to `crl` unless the verdict is Invalid.
TrustStore::CrlExamination examine(const X509* ca, long current, const std::string& crl_pem, ossl::X509CrlPtr& crl) {
  using V = TrustStore::CrlExamination::Verdict;
  TrustStore::CrlExamination e;
  ossl::X509CrlPtr parsed = parse_crl(crl_pem, e.error);
  if (!parsed) return e;
  if (X509_NAME_cmp(X509_CRL_get_issuer(parsed.get()), X509_get_subject_name(ca)) != 0 ||
      X509_CRL_verify(parsed.get(), X509_get0_pubkey(ca)) != 1) {
    ERR_clear_error();
    e.error = "CRL is not signed by the CA";
    return e;
  }
  e.number = crl_number_of(parsed.get());
  if (e.number < 0) {
    e.error = "CRL has no CRL number";
    return e;
  }
  crl = std::move(parsed);
  if (e.number < current) {
    e.verdict = V::Older;
    e.error = "CRL number " + std::to_string(e.number) + " is older than the current " + std::to_string(current);
  } else {
    e.verdict = e.number == current ? V::Same : V::Newer;
  }
  return e;
}

}  // namespace

TrustStore::CrlExamination TrustStore::examine_crl(const std::string& crl_pem) const {
  ossl::X509CrlPtr crl;
  return examine(ca_.get(), crl_number_, crl_pem, crl);
}

bool TrustStore::update_crl(const std::string& crl_pem, std::string& error) {
  ossl::X509CrlPtr crl;
  const CrlExamination e = examine(ca_.get(), crl_number_, crl_pem, crl);
  if (e.verdict == CrlExamination::Verdict::Invalid || e.verdict == CrlExamination::Verdict::Older) {
    error = e.error;
    return false;
  }
  const long number = e.number;
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
