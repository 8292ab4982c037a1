// TrustStore::examine_crl: the rules for a CRL that arrives from a
// rendezvous, from etcd or from the CA's file. Only a CRL signed by the
// network's CA is considered, an older one is told apart (taking it would
// un-revoke), garbage is refused, and examining takes nothing.
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "crypto/pki.h"

namespace wownet::crypto {
namespace {

constexpr UnixTime T0 = 1'700'000'000;
using Verdict = TrustStore::CrlExamination::Verdict;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class CrlExamineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/crl_examine_test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    ca_ = root_ + "/ca";
    ASSERT_TRUE(ca_init(ca_, "test CA", 3650, T0).ok);
    ASSERT_TRUE(cert_request(root_ + "/n", "node-n").ok);
    ASSERT_TRUE(ca_sign(ca_, root_ + "/n/node.csr", root_ + "/n/node.crt", 365, T0).ok);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  TrustStore store(bool with_crl) {
    std::string error;
    auto ts = TrustStore::load(ca_ + "/ca.crt", with_crl ? ca_ + "/crl.pem" : "", error);
    EXPECT_TRUE(ts) << error;
    return std::move(*ts);
  }
  std::string root_, ca_;
};

TEST_F(CrlExamineTest, NewerSameAndOlderByCrlNumber) {
  const std::string crl1 = slurp(ca_ + "/crl.pem");
  TrustStore none = store(false);
  auto e = none.examine_crl(crl1);
  EXPECT_EQ(e.verdict, Verdict::Newer) << e.error;  // any CRL beats none
  EXPECT_EQ(e.number, 1);

  TrustStore ts = store(true);
  e = ts.examine_crl(crl1);
  EXPECT_EQ(e.verdict, Verdict::Same);
  ASSERT_TRUE(ca_revoke(ca_, root_ + "/n/node.crt", T0 + 10).ok);
  const std::string crl2 = slurp(ca_ + "/crl.pem");
  e = ts.examine_crl(crl2);
  EXPECT_EQ(e.verdict, Verdict::Newer);
  EXPECT_EQ(e.number, 2);
  // Examining takes nothing: CRL 1 is still in force, the node not revoked.
  EXPECT_EQ(ts.crl_number(), 1);
  std::string error;
  auto node = read_cert(root_ + "/n/node.crt", error);
  ASSERT_TRUE(node) << error;
  EXPECT_TRUE(ts.check(node.get(), nullptr, T0 + 20).ok());

  ASSERT_TRUE(ts.update_crl(crl2, error)) << error;
  e = ts.examine_crl(crl1);
  EXPECT_EQ(e.verdict, Verdict::Older);
  EXPECT_EQ(e.number, 1);
  EXPECT_NE(e.error.find("older"), std::string::npos) << e.error;
  EXPECT_FALSE(ts.update_crl(crl1, error));  // update_crl follows the same rules
  EXPECT_EQ(ts.check(node.get(), nullptr, T0 + 20).result, PeerCheck::Result::Revoked);
}

TEST_F(CrlExamineTest, OnlyACrlSignedByTheNetworksCaIsConsidered) {
  TrustStore ts = store(true);
  // Another CA with the same name: a forged CRL with a high number.
  const std::string other = root_ + "/other";
  ASSERT_TRUE(ca_init(other, "test CA", 3650, T0).ok);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(ca_refresh_crl(other, T0 + i).ok);
  auto e = ts.examine_crl(slurp(other + "/crl.pem"));
  EXPECT_EQ(e.verdict, Verdict::Invalid);
  EXPECT_NE(e.error.find("not signed by the CA"), std::string::npos) << e.error;

  // The network's own CRL with one byte of its signature changed.
  ASSERT_TRUE(ca_refresh_crl(ca_, T0 + 5).ok);
  std::string pem = slurp(ca_ + "/crl.pem");
  std::string error;
  auto crl = parse_crl(pem, error);
  ASSERT_TRUE(crl) << error;
  unsigned char* der = nullptr;
  int len = i2d_X509_CRL(crl.get(), &der);
  ASSERT_GT(len, 10);
  der[len - 3] ^= 0x01;
  const unsigned char* p = der;
  ossl::X509CrlPtr tampered(d2i_X509_CRL(nullptr, &p, len));
  OPENSSL_free(der);
  ASSERT_TRUE(tampered);
  BIO* bio = BIO_new(BIO_s_mem());
  ASSERT_EQ(PEM_write_bio_X509_CRL(bio, tampered.get()), 1);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  const std::string tampered_pem(data, std::size_t(n));
  BIO_free(bio);
  EXPECT_EQ(ts.examine_crl(tampered_pem).verdict, Verdict::Invalid);
  EXPECT_EQ(ts.examine_crl(pem).verdict, Verdict::Newer);
}

TEST_F(CrlExamineTest, GarbageIsInvalidNotACrash) {
  TrustStore ts = store(true);
  const std::string crl = slurp(ca_ + "/crl.pem");
  for (const std::string& bad :
       {std::string(), std::string("junk"), std::string("\0\xff\x01", 3), crl.substr(0, crl.size() / 2),
        slurp(ca_ + "/ca.crt"), std::string("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"),
        std::string(1 << 20, 'A')}) {
    auto e = ts.examine_crl(bad);
    EXPECT_EQ(e.verdict, Verdict::Invalid) << bad.substr(0, 40);
    EXPECT_FALSE(e.error.empty());
  }
  EXPECT_EQ(ts.crl_number(), 1);
}

}  // namespace
}  // namespace wownet::crypto
