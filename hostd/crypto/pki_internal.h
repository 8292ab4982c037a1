// Helpers shared by the files of the PKI (pki.cpp: reading certificates and
// node IDs; pki_ca.cpp: the CA directory; pki_trust_store.cpp: TrustStore).
// Not for use outside hostd/crypto.
#pragma once

#include <string>

#include "core/types.h"
#include "crypto/ossl.h"

namespace wownet::crypto::detail {

// Reads a whole file of at most 1 MiB; false and `error` (naming it) on failure.
bool read_file(const std::string& path, std::string& out, std::string& error);

// An ASN1_TIME as UnixTime; 0 if it is null or unreadable.
UnixTime to_unix(const ASN1_TIME* t);

// PEM text of `obj` written by `write` (a PEM_write_bio_* function); empty on failure.
template <class T, class Write>
std::string to_pem_with(T* obj, Write write) {
  ossl::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || write(bio.get(), obj) != 1) return {};
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, std::size_t(len));
}

// The subject's single CN as UTF-8; empty if absent, repeated or containing NUL.
std::string common_name(const X509_NAME* name);

// Uppercase hex of a certificate serial, as in the serial file; empty on failure.
std::string bn_hex(const BIGNUM* bn);
std::string serial_hex(const ASN1_INTEGER* serial);

// The first line of `s` (for quoting untrusted names in one-line errors).
std::string first_line(std::string s);

// The CRL number extension of a CRL; -1 if missing or out of range.
long crl_number_of(const X509_CRL* crl);

}  // namespace wownet::crypto::detail
