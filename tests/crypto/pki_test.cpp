// pki: CA init / request / sign / revoke on disk in a fresh temporary
// directory, node IDs, and TrustStore checks (and a TLS handshake through a
// configure()d SSL_CTX) at literal times.
#include "crypto/pki.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "temp_dir.h"

namespace wownet::crypto {
namespace {

constexpr UnixTime T0 = 1'700'000'000;
constexpr UnixTime kDay = 86400;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void spit(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

int mode_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return int(st.st_mode & 07777);
}

std::vector<unsigned char> der_of(X509* cert) {
  int len = i2d_X509(cert, nullptr);
  std::vector<unsigned char> out(std::size_t(len > 0 ? len : 0));
  unsigned char* p = out.data();
  i2d_X509(cert, &p);
  return out;
}

ossl::X509Ptr from_der(const std::vector<unsigned char>& der) {
  const unsigned char* p = der.data();
  return ossl::X509Ptr(d2i_X509(nullptr, &p, long(der.size())));
}

// Replaces the first occurrence of `from` by `to` (same length) in a byte vector.
bool replace_bytes(std::vector<unsigned char>& v, const std::string& from, const std::string& to) {
  auto it = std::search(v.begin(), v.end(), from.begin(), from.end());
  if (it == v.end()) return false;
  std::copy(to.begin(), to.end(), it);
  return true;
}

class PkiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(tmp_.path().empty());
    root_ = tmp_.path();
    ca_ = root_ + "/ca";
  }

  // A CA at T0 plus node `name` signed at `when` for `days`; returns the cert path.
  std::string node(const std::string& name, UnixTime when = T0, int days = 365) {
    std::string dir = root_ + "/" + name;
    Status s = cert_request(dir, name);
    EXPECT_TRUE(s.ok) << s.error;
    s = ca_sign(ca_, dir + "/node.csr", dir + "/node.crt", days, when);
    EXPECT_TRUE(s.ok) << s.error;
    return dir + "/node.crt";
  }
  void init_ca(const std::string& dir, const std::string& name = "test CA") {
    Status s = ca_init(dir, name, 3650, T0);
    ASSERT_TRUE(s.ok) << s.error;
  }
  ossl::X509Ptr cert(const std::string& path) {
    std::string error;
    ossl::X509Ptr c = read_cert(path, error);
    EXPECT_TRUE(c) << error;
    return c;
  }
  TrustStore store(bool with_crl = true) {
    std::string error;
    auto ts = TrustStore::load(ca_ + "/ca.crt", with_crl ? ca_ + "/crl.pem" : "", error);
    EXPECT_TRUE(ts) << error;
    return std::move(*ts);
  }

  wownet::test::TempDir tmp_{"pki_test"};
  std::string root_, ca_;
};

TEST_F(PkiTest, InitRequestSignFlow) {
  init_ca(ca_);
  EXPECT_EQ(mode_of(ca_), 0700);
  EXPECT_EQ(mode_of(ca_ + "/ca.key"), 0600);
  EXPECT_EQ(slurp(ca_ + "/serial"), "01\n");
  EXPECT_EQ(slurp(ca_ + "/revoked.txt"), "");

  ossl::X509Ptr ca_cert = cert(ca_ + "/ca.crt");
  CertInfo ca_info = cert_info(ca_cert.get());
  EXPECT_EQ(ca_info.name, "test CA");
  EXPECT_EQ(ca_info.issuer, "test CA");
  EXPECT_TRUE(ca_info.is_ca);
  EXPECT_EQ(ca_info.not_before, T0 - kBackdate);
  EXPECT_EQ(ca_info.not_after, T0 + 3650 * kDay);
  EXPECT_EQ(X509_get_extension_flags(ca_cert.get()) & EXFLAG_CRITICAL, 0u);
  EXPECT_EQ(X509_get_pathlen(ca_cert.get()), 0);
  EXPECT_EQ(X509_get_key_usage(ca_cert.get()), unsigned(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  EXPECT_NE(X509_get0_subject_key_id(ca_cert.get()), nullptr);

  std::string error;
  ossl::X509CrlPtr crl = read_crl(ca_ + "/crl.pem", error);
  ASSERT_TRUE(crl) << error;
  EXPECT_LE(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl.get())), 0);  // -1: no list at all
  EXPECT_EQ(X509_CRL_verify(crl.get(), X509_get0_pubkey(ca_cert.get())), 1);

  std::string path = node("node-a", T0 + 100);
  EXPECT_EQ(mode_of(root_ + "/node-a/node.key"), 0600);
  EXPECT_EQ(mode_of(root_ + "/node-a"), 0700);
  EXPECT_EQ(slurp(ca_ + "/serial"), "02\n");
  ossl::X509Ptr c = cert(path);
  CertInfo info = cert_info(c.get());
  EXPECT_EQ(info.name, "node-a");
  EXPECT_EQ(info.issuer, "test CA");
  EXPECT_EQ(info.serial, "01");
  EXPECT_FALSE(info.is_ca);
  EXPECT_EQ(info.not_before, T0 + 100 - kBackdate);
  EXPECT_EQ(info.not_after, T0 + 100 + 365 * kDay);
  EXPECT_EQ(X509_get_key_usage(c.get()), unsigned(KU_DIGITAL_SIGNATURE));
  EXPECT_EQ(X509_get_extended_key_usage(c.get()), unsigned(XKU_SSL_SERVER | XKU_SSL_CLIENT));
  EXPECT_NE(X509_get0_authority_key_id(c.get()), nullptr);
  EXPECT_EQ(X509_verify(c.get(), X509_get0_pubkey(ca_cert.get())), 1);

  node("node-b");
  EXPECT_EQ(cert_info(cert(root_ + "/node-b/node.crt").get()).serial, "02");
  EXPECT_EQ(slurp(ca_ + "/serial"), "03\n");
}

TEST_F(PkiTest, RefusesToOverwriteKeys) {
  init_ca(ca_);
  std::string key = slurp(ca_ + "/ca.key");
  Status s = ca_init(ca_, "other", 3650, T0);
  EXPECT_FALSE(s.ok);
  EXPECT_NE(s.error.find("already exists"), std::string::npos) << s.error;
  EXPECT_EQ(slurp(ca_ + "/ca.key"), key);

  ASSERT_TRUE(cert_request(root_ + "/n", "node-a").ok);
  std::string node_key = slurp(root_ + "/n/node.key");
  s = cert_request(root_ + "/n", "node-a");
  EXPECT_FALSE(s.ok);
  EXPECT_NE(s.error.find(root_ + "/n/node.key"), std::string::npos) << s.error;
  EXPECT_EQ(slurp(root_ + "/n/node.key"), node_key);
  EXPECT_EQ(s.error.find('\n'), std::string::npos);
}

TEST_F(PkiTest, NodeIdIsStableHashOfPublicKey) {
  init_ca(ca_);
  std::string path = node("node-a");
  ossl::X509Ptr c = cert(path);
  std::string id = node_id(c.get());
  ASSERT_EQ(id.size(), 32u);
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos);

  // Independently: SHA-256 of the key file's SubjectPublicKeyInfo.
  std::string error;
  ossl::EvpPkeyPtr key = read_private_key(root_ + "/node-a/node.key", error);
  ASSERT_TRUE(key) << error;
  unsigned char* spki = nullptr;
  int len = i2d_PUBKEY(key.get(), &spki);
  ASSERT_GT(len, 0);
  unsigned char md[32];
  unsigned int md_len = 0;
  ASSERT_EQ(EVP_Digest(spki, std::size_t(len), md, &md_len, EVP_sha256(), nullptr), 1);
  OPENSSL_free(spki);
  char hex[33];
  for (int i = 0; i < 16; ++i) std::snprintf(hex + 2 * i, 3, "%02x", md[i]);
  EXPECT_EQ(id, hex);
  EXPECT_EQ(node_id_of_key(key.get()), id);

  // Same key, new certificate (new serial, later time): same ID.
  ASSERT_TRUE(ca_sign(ca_, root_ + "/node-a/node.csr", root_ + "/again.crt", 30, T0 + 999).ok);
  EXPECT_EQ(node_id(cert(root_ + "/again.crt").get()), id);
  EXPECT_EQ(node_id_from_pem(slurp(path), error), id);
  EXPECT_NE(node_id(cert(node("node-b")).get()), id);
  EXPECT_EQ(node_id(nullptr), "");
}

TEST_F(PkiTest, TrustStoreAcceptsValidPeer) {
  init_ca(ca_);
  ossl::X509Ptr c = cert(node("node-a"));
  TrustStore ts = store();
  EXPECT_EQ(ts.crl_number(), 1);
  PeerCheck r = ts.check(c.get(), nullptr, T0 + 1000);
  EXPECT_EQ(r.result, PeerCheck::Result::Ok) << r.detail;
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.node_name, "node-a");
  EXPECT_EQ(r.node_id, node_id(c.get()));
  EXPECT_STREQ(to_string(r.result), "ok");

  // Also without a CRL, and with a (useless) chain containing the CA.
  TrustStore plain = store(false);
  EXPECT_EQ(plain.crl_number(), -1);
  EXPECT_TRUE(plain.check(c.get(), nullptr, T0 + 1000).ok());
  ossl::X509StackPtr chain(sk_X509_new_null());
  ASSERT_EQ(sk_X509_push(chain.get(), X509_dup(const_cast<X509*>(ts.ca_cert()))), 1);
  EXPECT_TRUE(ts.check(c.get(), chain.get(), T0 + 1000).ok());
}

TEST_F(PkiTest, TrustStoreTimes) {
  init_ca(ca_);
  ossl::X509Ptr short_lived = cert(node("node-a", T0, 10));
  ossl::X509Ptr future = cert(node("node-b", T0 + 10 * kDay, 365));
  TrustStore ts = store();

  PeerCheck r = ts.check(short_lived.get(), nullptr, T0 + 11 * kDay);
  EXPECT_EQ(r.result, PeerCheck::Result::Expired) << r.detail;
  EXPECT_EQ(r.node_name, "node-a");
  EXPECT_TRUE(ts.check(short_lived.get(), nullptr, T0 + 10 * kDay - 1).ok());
  EXPECT_TRUE(ts.check(short_lived.get(), nullptr, T0 - kBackdate + 1).ok());  // backdated notBefore

  r = ts.check(future.get(), nullptr, T0 + kDay);
  EXPECT_EQ(r.result, PeerCheck::Result::NotYetValid) << r.detail;
  EXPECT_TRUE(ts.check(future.get(), nullptr, T0 + 10 * kDay).ok());

  // Past the CRL's nextUpdate (T0 + 30 days) every peer fails until a fresh CRL arrives.
  r = ts.check(future.get(), nullptr, T0 + 31 * kDay);
  EXPECT_EQ(r.result, PeerCheck::Result::Invalid) << r.detail;
  EXPECT_NE(r.detail.find("CRL"), std::string::npos) << r.detail;
  ASSERT_TRUE(ca_refresh_crl(ca_, T0 + 30 * kDay).ok);
  std::string error;
  ASSERT_TRUE(ts.update_crl(slurp(ca_ + "/crl.pem"), error)) << error;
  EXPECT_EQ(ts.crl_number(), 2);
  EXPECT_TRUE(ts.check(future.get(), nullptr, T0 + 31 * kDay).ok());
  // Without a CRL only the certificate's own dates matter.
  EXPECT_EQ(store(false).check(future.get(), nullptr, T0 + 400 * kDay).result, PeerCheck::Result::Expired);
}

TEST_F(PkiTest, RevokeAndUpdateCrl) {
  init_ca(ca_);
  std::string path_a = node("node-a");
  ossl::X509Ptr a = cert(path_a);
  ossl::X509Ptr b = cert(node("node-b"));
  TrustStore ts = store();
  std::string crl1 = slurp(ca_ + "/crl.pem");

  Status s = ca_revoke(ca_, path_a, T0 + 500);
  ASSERT_TRUE(s.ok) << s.error;
  EXPECT_EQ(slurp(ca_ + "/revoked.txt"), "01 " + std::to_string(T0 + 500) + "\n");
  EXPECT_TRUE(ts.check(a.get(), nullptr, T0 + 600).ok());  // old CRL still loaded
  std::string error;
  ASSERT_TRUE(ts.update_crl(slurp(ca_ + "/crl.pem"), error)) << error;
  EXPECT_EQ(ts.crl_number(), 2);
  PeerCheck r = ts.check(a.get(), nullptr, T0 + 600);
  EXPECT_EQ(r.result, PeerCheck::Result::Revoked) << r.detail;
  EXPECT_EQ(r.node_name, "node-a");
  EXPECT_TRUE(ts.check(b.get(), nullptr, T0 + 600).ok());
  EXPECT_EQ(store().check(a.get(), nullptr, T0 + 600).result, PeerCheck::Result::Revoked);

  // An older CRL is refused (no rollback); the same one again is fine.
  EXPECT_FALSE(ts.update_crl(crl1, error));
  EXPECT_NE(error.find("older"), std::string::npos) << error;
  EXPECT_EQ(ts.check(a.get(), nullptr, T0 + 600).result, PeerCheck::Result::Revoked);
  EXPECT_TRUE(ts.update_crl(slurp(ca_ + "/crl.pem"), error)) << error;
  EXPECT_EQ(ts.check(a.get(), nullptr, T0 + 600).result, PeerCheck::Result::Revoked);

  // Revoking again keeps one entry (and its date) and issues CRL number 3.
  ASSERT_TRUE(ca_revoke(ca_, path_a, T0 + 900).ok);
  EXPECT_EQ(slurp(ca_ + "/revoked.txt"), "01 " + std::to_string(T0 + 500) + "\n");
  ossl::X509CrlPtr crl = read_crl(ca_ + "/crl.pem", error);
  ASSERT_TRUE(crl);
  EXPECT_EQ(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl.get())), 1);
  ASSERT_TRUE(ts.update_crl(slurp(ca_ + "/crl.pem"), error)) << error;
  EXPECT_EQ(ts.crl_number(), 3);

  ASSERT_TRUE(ca_revoke(ca_, root_ + "/node-b/node.crt", T0 + 1000).ok);
  ASSERT_TRUE(ts.update_crl(slurp(ca_ + "/crl.pem"), error)) << error;
  EXPECT_EQ(ts.check(b.get(), nullptr, T0 + 1100).result, PeerCheck::Result::Revoked);
  EXPECT_EQ(ts.check(a.get(), nullptr, T0 + 1100).result, PeerCheck::Result::Revoked);

  // The CA certificate itself cannot be revoked this way.
  EXPECT_FALSE(ca_revoke(ca_, ca_ + "/ca.crt", T0).ok);
}

TEST_F(PkiTest, OtherCaIsUnknown) {
  init_ca(ca_);
  std::string same_name = root_ + "/ca2", other_name = root_ + "/ca3";
  init_ca(same_name, "test CA");
  init_ca(other_name, "another CA");
  ASSERT_TRUE(cert_request(root_ + "/x", "node-x").ok);
  ASSERT_TRUE(ca_sign(same_name, root_ + "/x/node.csr", root_ + "/x/same.crt", 30, T0).ok);
  ASSERT_TRUE(ca_sign(other_name, root_ + "/x/node.csr", root_ + "/x/other.crt", 30, T0).ok);
  TrustStore ts = store();
  for (const char* f : {"/x/same.crt", "/x/other.crt"}) {
    ossl::X509Ptr c = cert(root_ + f);
    PeerCheck r = ts.check(c.get(), nullptr, T0 + 100);
    EXPECT_EQ(r.result, PeerCheck::Result::UnknownCa) << f << ": " << r.detail;
    EXPECT_EQ(r.node_name, "node-x");
    EXPECT_TRUE(store(false).check(c.get(), nullptr, T0 + 100).result == PeerCheck::Result::UnknownCa);
  }
  // Not revocable by, and CRLs not accepted from, the wrong CA.
  Status s = ca_revoke(ca_, root_ + "/x/same.crt", T0);
  EXPECT_FALSE(s.ok);
  EXPECT_NE(s.error.find("not issued"), std::string::npos) << s.error;
  std::string error;
  EXPECT_FALSE(ts.update_crl(slurp(same_name + "/crl.pem"), error));
  EXPECT_FALSE(TrustStore::load(ca_ + "/ca.crt", other_name + "/crl.pem", error));
  EXPECT_NE(error.find(other_name + "/crl.pem"), std::string::npos) << error;
}

TEST_F(PkiTest, TamperedCertificateIsRejected) {
  init_ca(ca_);
  ossl::X509Ptr c = cert(node("node-a"));
  TrustStore ts = store();
  std::vector<unsigned char> der = der_of(c.get());

  std::vector<unsigned char> renamed = der;
  ASSERT_TRUE(replace_bytes(renamed, "node-a", "node-b"));
  ossl::X509Ptr t1 = from_der(renamed);
  ASSERT_TRUE(t1);
  PeerCheck r = ts.check(t1.get(), nullptr, T0 + 100);
  EXPECT_TRUE(r.result == PeerCheck::Result::UnknownCa || r.result == PeerCheck::Result::Invalid) << r.detail;

  std::vector<unsigned char> bad_sig = der;
  bad_sig.back() ^= 0x01;
  ossl::X509Ptr t2 = from_der(bad_sig);
  ASSERT_TRUE(t2);
  r = ts.check(t2.get(), nullptr, T0 + 100);
  EXPECT_TRUE(r.result == PeerCheck::Result::UnknownCa || r.result == PeerCheck::Result::Invalid) << r.detail;

  // The CA's own certificate is no node certificate.
  r = ts.check(const_cast<X509*>(ts.ca_cert()), nullptr, T0 + 100);
  EXPECT_EQ(r.result, PeerCheck::Result::Invalid) << r.detail;
  EXPECT_EQ(ts.check(nullptr, nullptr, T0).result, PeerCheck::Result::Invalid);
}

TEST_F(PkiTest, GarbageInputIsAnErrorNotACrash) {
  init_ca(ca_);
  std::string junk = root_ + "/junk.pem";
  spit(junk, "-----BEGIN CERTIFICATE-----\nnot base64 at all!!\n-----END CERTIFICATE-----\n");
  std::string error;
  EXPECT_FALSE(read_cert(junk, error));
  EXPECT_NE(error.find(junk), std::string::npos) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  EXPECT_FALSE(read_cert(root_ + "/missing.pem", error));
  EXPECT_NE(error.find("No such file"), std::string::npos) << error;
  EXPECT_FALSE(read_csr(junk, error));
  EXPECT_FALSE(read_crl(junk, error));
  EXPECT_FALSE(read_private_key(junk, error));
  EXPECT_FALSE(parse_cert("", error));
  EXPECT_FALSE(parse_crl(std::string("\0\xff garbage", 10), error));
  EXPECT_EQ(node_id_from_pem("garbage", error), "");
  EXPECT_FALSE(error.empty());

  EXPECT_FALSE(TrustStore::load(junk, "", error));
  EXPECT_FALSE(TrustStore::load(ca_ + "/ca.crt", junk, error));
  EXPECT_FALSE(TrustStore::load(ca_ + "/ca.crt", root_ + "/missing.pem", error));
  TrustStore ts = store();
  EXPECT_FALSE(ts.update_crl("junk", error));
  EXPECT_FALSE(ts.update_crl(slurp(ca_ + "/ca.crt"), error));
  EXPECT_EQ(ts.crl_number(), 1);

  Status s = ca_sign(ca_, junk, root_ + "/out.crt", 30, T0);
  EXPECT_FALSE(s.ok);
  EXPECT_NE(s.error.find(junk), std::string::npos) << s.error;
  s = ca_sign(ca_, root_ + "/missing.csr", root_ + "/out.crt", 30, T0);
  EXPECT_FALSE(s.ok);
  EXPECT_NE(s.error.find("missing.csr"), std::string::npos) << s.error;
  EXPECT_FALSE(ca_revoke(ca_, junk, T0).ok);
  EXPECT_FALSE(ca_sign(root_ + "/no-ca", junk, root_ + "/out.crt", 30, T0).ok);
  EXPECT_FALSE(std::filesystem::exists(root_ + "/out.crt"));

  spit(ca_ + "/serial", "zz\n");
  ASSERT_TRUE(cert_request(root_ + "/n", "node-a").ok);
  s = ca_sign(ca_, root_ + "/n/node.csr", root_ + "/out.crt", 30, T0);
  EXPECT_FALSE(s.ok);
  EXPECT_NE(s.error.find("serial"), std::string::npos) << s.error;
  spit(ca_ + "/revoked.txt", "nonsense here\n");
  s = ca_refresh_crl(ca_, T0);
  EXPECT_FALSE(s.ok);
  EXPECT_NE(s.error.find("revoked.txt: line 1"), std::string::npos) << s.error;
}

TEST_F(PkiTest, BrokenCsrSignatureIsRefused) {
  init_ca(ca_);
  ASSERT_TRUE(cert_request(root_ + "/n", "node-a").ok);
  std::string error;
  ossl::X509ReqPtr req = read_csr(root_ + "/n/node.csr", error);
  ASSERT_TRUE(req) << error;
  int len = i2d_X509_REQ(req.get(), nullptr);
  std::vector<unsigned char> der(static_cast<std::size_t>(len));
  unsigned char* p = der.data();
  i2d_X509_REQ(req.get(), &p);
  ASSERT_TRUE(replace_bytes(der, "node-a", "node-z"));  // signed contents changed
  const unsigned char* q = der.data();
  ossl::X509ReqPtr bad(d2i_X509_REQ(nullptr, &q, long(der.size())));
  ASSERT_TRUE(bad);
  ossl::BioPtr bio(BIO_new(BIO_s_mem()));
  ASSERT_EQ(PEM_write_bio_X509_REQ(bio.get(), bad.get()), 1);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  spit(root_ + "/bad.csr", std::string(data, std::size_t(n)));

  Status s = ca_sign(ca_, root_ + "/bad.csr", root_ + "/bad.crt", 30, T0);
  EXPECT_FALSE(s.ok);
  EXPECT_NE(s.error.find("signature"), std::string::npos) << s.error;
  EXPECT_FALSE(std::filesystem::exists(root_ + "/bad.crt"));
  EXPECT_EQ(slurp(ca_ + "/serial"), "01\n");
}

// Builds a CSR for `cn` with a fresh key of `curve`.
void write_csr(const std::string& path, const std::string& cn, const char* curve) {
  ossl::EvpPkeyPtr key(EVP_EC_gen(curve));
  ossl::X509ReqPtr req(X509_REQ_new());
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_REQ_set_pubkey(req.get(), key.get());
  X509_REQ_sign(req.get(), key.get(), EVP_sha256());
  ossl::BioPtr bio(BIO_new_file(path.c_str(), "w"));
  PEM_write_bio_X509_REQ(bio.get(), req.get());
}

TEST_F(PkiTest, NodeNames) {
  for (const char* bad : {"", "Node", "node_a", "node.a", "a b", "n\xc3\xa4", "node/../x"}) {
    Status s = cert_request(root_ + "/bad", bad);
    EXPECT_FALSE(s.ok) << bad;
    EXPECT_NE(s.error.find("node name"), std::string::npos) << s.error;
  }
  EXPECT_FALSE(cert_request(root_ + "/bad", std::string(64, 'a')).ok);
  EXPECT_FALSE(std::filesystem::exists(root_ + "/bad"));
  EXPECT_TRUE(valid_node_name(std::string(63, 'a')));
  EXPECT_TRUE(valid_node_name("0-a-"));
  EXPECT_TRUE(cert_request(root_ + "/ok", "node-7").ok);

  // A hand-made CSR with a bad CN, or a key that is not P-256, is refused by ca_sign.
  init_ca(ca_);
  write_csr(root_ + "/upper.csr", "Node A", "P-256");
  Status s = ca_sign(ca_, root_ + "/upper.csr", root_ + "/upper.crt", 30, T0);
  EXPECT_FALSE(s.ok);
  EXPECT_NE(s.error.find("not a valid node name"), std::string::npos) << s.error;
  write_csr(root_ + "/p384.csr", "node-a", "P-384");
  s = ca_sign(ca_, root_ + "/p384.csr", root_ + "/p384.crt", 30, T0);
  EXPECT_FALSE(s.ok);
  EXPECT_NE(s.error.find("P-256"), std::string::npos) << s.error;
  write_csr(root_ + "/fine.csr", "node-a", "P-256");
  EXPECT_TRUE(ca_sign(ca_, root_ + "/fine.csr", root_ + "/fine.crt", 30, T0).ok);
}

TEST_F(PkiTest, ArgumentChecks) {
  EXPECT_FALSE(ca_init(ca_, "", 3650, T0).ok);
  EXPECT_FALSE(ca_init(ca_, "bad\nname", 3650, T0).ok);
  EXPECT_FALSE(ca_init(ca_, "x", 0, T0).ok);
  EXPECT_FALSE(ca_init(ca_, "x", kMaxDays + 1, T0).ok);
  ASSERT_TRUE(ca_init(ca_, "x", 100, T0).ok);
  ASSERT_TRUE(cert_request(root_ + "/n", "node-a").ok);
  EXPECT_FALSE(ca_sign(ca_, root_ + "/n/node.csr", root_ + "/n.crt", 0, T0).ok);
  Status s = ca_sign(ca_, root_ + "/n/node.csr", root_ + "/n.crt", 101, T0);
  EXPECT_FALSE(s.ok);
  EXPECT_NE(s.error.find("outlive"), std::string::npos) << s.error;
  EXPECT_FALSE(ca_sign(ca_, root_ + "/n/node.csr", root_ + "/n.crt", 1, T0 + 100 * kDay).ok);  // CA expired
  EXPECT_TRUE(ca_sign(ca_, root_ + "/n/node.csr", root_ + "/n.crt", 100, T0).ok);
}

// Drives a TLS handshake between two SSL objects over a BIO pair; true if both finish.
bool handshake(SSL* client, SSL* server) {
  BIO *c_bio = nullptr, *s_bio = nullptr;
  if (BIO_new_bio_pair(&c_bio, 0, &s_bio, 0) != 1) return false;
  SSL_set_bio(client, c_bio, c_bio);
  SSL_set_bio(server, s_bio, s_bio);
  SSL_set_connect_state(client);
  SSL_set_accept_state(server);
  bool c_done = false, s_done = false;
  for (int i = 0; i < 20 && !(c_done && s_done); ++i) {
    if (!c_done) {
      int rc = SSL_do_handshake(client);
      if (rc == 1)
        c_done = true;
      else if (SSL_get_error(client, rc) != SSL_ERROR_WANT_READ)
        return false;
    }
    if (!s_done) {
      int rc = SSL_do_handshake(server);
      if (rc == 1)
        s_done = true;
      else if (SSL_get_error(server, rc) != SSL_ERROR_WANT_READ)
        return false;
    }
  }
  return c_done && s_done;
}

TEST_F(PkiTest, ConfiguredSslContextFollowsCrlUpdates) {
  init_ca(ca_);
  node("node-a");
  node("node-b");
  TrustStore ts = store();
  auto make_ctx = [&](const std::string& name, bool server) {
    ossl::SslCtxPtr ctx(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()));
    EXPECT_EQ(SSL_CTX_use_certificate_file(ctx.get(), (root_ + "/" + name + "/node.crt").c_str(), SSL_FILETYPE_PEM), 1);
    EXPECT_EQ(SSL_CTX_use_PrivateKey_file(ctx.get(), (root_ + "/" + name + "/node.key").c_str(), SSL_FILETYPE_PEM), 1);
    ts.configure(ctx.get());
    return ctx;
  };
  ossl::SslCtxPtr client_ctx = make_ctx("node-a", false), server_ctx = make_ctx("node-b", true);
  auto connect = [&](UnixTime now) {
    ossl::SslPtr c(SSL_new(client_ctx.get())), s(SSL_new(server_ctx.get()));
    TrustStore::set_verify_time(c.get(), now);
    TrustStore::set_verify_time(s.get(), now);
    bool ok = handshake(c.get(), s.get());
    if (ok) {
      X509* peer = SSL_get0_peer_certificate(s.get());
      EXPECT_EQ(ts.check(peer, SSL_get_peer_cert_chain(s.get()), now).node_name, "node-a");
    }
    ERR_clear_error();
    return ok;
  };
  EXPECT_TRUE(connect(T0 + 100));
  EXPECT_FALSE(connect(T0 + 400 * kDay));  // expired (set_verify_time is honoured)

  ASSERT_TRUE(ca_revoke(ca_, root_ + "/node-a/node.crt", T0 + 200).ok);
  std::string error;
  ASSERT_TRUE(ts.update_crl(slurp(ca_ + "/crl.pem"), error)) << error;
  EXPECT_FALSE(connect(T0 + 300));  // the server now refuses the revoked client
}

}  // namespace
}  // namespace wownet::crypto
