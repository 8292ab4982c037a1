#include "ca_commands.h"

#include <cstdio>
#include <ctime>
#include <memory>
#include <string>

#include "cli_output.h"
#include "crypto/pki.h"
#include "json_print.h"

namespace wownet {
namespace {

namespace crypto = wownet::crypto;

struct Options {
  std::string dir, name = "wownet CA", csr, out, cert, file;
  int ca_days = crypto::kDefaultCaDays;
  int cert_days = crypto::kDefaultCertDays;
  const bool* json = nullptr;  // wownetctl's --json, read once parsing is done
};

// The only wall-clock read of the crypto code.
UnixTime wall_clock() { return static_cast<UnixTime>(std::time(nullptr)); }

// Prints the error (one line, or JSON) and records failure; true if `s` is ok.
bool report(const Options& o, const crypto::Status& s, int& exit_code) {
  if (s.ok) return true;
  print_error(*o.json, s.error);
  exit_code = 1;
  return false;
}

// Reads a certificate or fails with one line; null on failure.
crypto::ossl::X509Ptr load_cert(const Options& o, const std::string& path, int& exit_code) {
  std::string error;
  crypto::ossl::X509Ptr cert = crypto::read_cert(path, error);
  if (!cert) report(o, {false, error}, exit_code);
  return cert;
}

// "CRL number N, K revoked, next update T" for the CA's current crl.pem.
std::string crl_summary(const std::string& dir) {
  std::string error;
  crypto::ossl::X509CrlPtr crl = crypto::read_crl(dir + "/crl.pem", error);
  if (!crl) return error;
  crypto::ossl::Asn1IntegerPtr num(
      static_cast<ASN1_INTEGER*>(X509_CRL_get_ext_d2i(crl.get(), NID_crl_number, nullptr, nullptr)));
  int revoked = sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl.get()));
  struct tm tm {};
  std::string next = "?";
  if (ASN1_TIME_to_tm(X509_CRL_get0_nextUpdate(crl.get()), &tm) == 1)
    next = crypto::format_time(static_cast<UnixTime>(::timegm(&tm)));
  return "CRL number " + std::to_string(num ? ASN1_INTEGER_get(num.get()) : -1) + ", " +
         std::to_string(revoked < 0 ? 0 : revoked) + " revoked, next update " + next;
}

void ca_init(const Options& o, int& exit_code) {
  if (!report(o, crypto::ca_init(o.dir, o.name, o.ca_days, wall_clock()), exit_code)) return;
  crypto::ossl::X509Ptr cert = load_cert(o, o.dir + "/ca.crt", exit_code);
  if (!cert) return;
  crypto::CertInfo info = crypto::cert_info(cert.get());
  print_message(*o.json,
                "created CA '" + info.name + "' in " + o.dir + ", valid until " + crypto::format_time(info.not_after));
}

void cert_request(const Options& o, int& exit_code) {
  if (!report(o, crypto::cert_request(o.dir, o.name), exit_code)) return;
  std::string error;
  crypto::ossl::EvpPkeyPtr key = crypto::read_private_key(o.dir + "/node.key", error);
  print_message(*o.json, "wrote " + o.dir + "/node.key and " + o.dir + "/node.csr for node " + o.name + " (node id " +
                             (key ? crypto::node_id_of_key(key.get()) : "?") + ")");
}

void ca_sign(const Options& o, int& exit_code) {
  if (!report(o, crypto::ca_sign(o.dir, o.csr, o.out, o.cert_days, wall_clock()), exit_code)) return;
  crypto::ossl::X509Ptr cert = load_cert(o, o.out, exit_code);
  if (!cert) return;
  crypto::CertInfo info = crypto::cert_info(cert.get());
  print_message(*o.json, "issued " + o.out + ": node " + info.name + ", node id " + info.node_id + ", serial " +
                             info.serial + ", valid until " + crypto::format_time(info.not_after));
}

void ca_revoke(const Options& o, int& exit_code) {
  if (!report(o, crypto::ca_revoke(o.dir, o.cert, wall_clock()), exit_code)) return;
  crypto::ossl::X509Ptr cert = load_cert(o, o.cert, exit_code);
  if (!cert) return;
  crypto::CertInfo info = crypto::cert_info(cert.get());
  print_message(*o.json, "revoked serial " + info.serial + " (node " + info.name + "); " + o.dir +
                             "/crl.pem: " + crl_summary(o.dir));
}

void ca_crl(const Options& o, int& exit_code) {
  if (!report(o, crypto::ca_refresh_crl(o.dir, wall_clock()), exit_code)) return;
  print_message(*o.json, "re-issued " + o.dir + "/crl.pem: " + crl_summary(o.dir));
}

void cert_show(const Options& o, int& exit_code) {
  crypto::ossl::X509Ptr cert = load_cert(o, o.file, exit_code);
  if (!cert) return;
  crypto::CertInfo i = crypto::cert_info(cert.get());
  std::string nb = crypto::format_time(i.not_before), na = crypto::format_time(i.not_after);
  if (*o.json) {
    using json::quote;
    std::printf(
        "{\"name\": %s, \"node_id\": %s, \"serial\": %s, \"not_before\": %s, \"not_after\": %s, "
        "\"not_before_unix\": %lld, \"not_after_unix\": %lld, \"issuer\": %s, \"is_ca\": %s}\n",
        quote(i.name).c_str(), quote(i.node_id).c_str(), quote(i.serial).c_str(), quote(nb).c_str(), quote(na).c_str(),
        static_cast<long long>(i.not_before), static_cast<long long>(i.not_after), quote(i.issuer).c_str(),
        i.is_ca ? "true" : "false");
    return;
  }
  std::printf("name:     %s%s\nnode id:  %s\nserial:   %s\nvalid:    %s .. %s\nissuer:   %s\n", i.name.c_str(),
              i.is_ca ? " (CA)" : "", i.node_id.c_str(), i.serial.c_str(), nb.c_str(), na.c_str(), i.issuer.c_str());
}

}  // namespace

void add_ca_commands(CLI::App& app, int& exit_code, const bool& json) {
  auto o = std::make_shared<Options>();
  o->json = &json;
  auto bind = [o, &exit_code](void (*fn)(const Options&, int&)) { return [o, &exit_code, fn] { fn(*o, exit_code); }; };
  const auto days = CLI::Range(1, crypto::kMaxDays);

  auto* ca = app.add_subcommand("ca", "offline certificate authority of the network (files only)");
  ca->require_subcommand(1);
  auto* init = ca->add_subcommand("init", "create a CA: ca.key, ca.crt, serial, crl.pem, revoked.txt");
  init->add_option("--dir", o->dir, "new CA directory (created 0700)")->required();
  init->add_option("--name", o->name, "CA name (certificate CN)")->capture_default_str();
  init->add_option("--days", o->ca_days, "validity in days")->capture_default_str()->check(days);
  init->callback(bind(ca_init));

  auto* sign = ca->add_subcommand("sign", "issue a node certificate for a CSR");
  sign->add_option("--dir", o->dir, "CA directory")->required();
  sign->add_option("--csr", o->csr, "node's certificate request (node.csr)")->required();
  sign->add_option("--out", o->out, "certificate file to write")->required();
  sign->add_option("--days", o->cert_days, "validity in days")->capture_default_str()->check(days);
  sign->callback(bind(ca_sign));

  auto* revoke = ca->add_subcommand("revoke", "revoke a node certificate and re-issue crl.pem");
  revoke->add_option("--dir", o->dir, "CA directory")->required();
  revoke->add_option("--cert", o->cert, "certificate to revoke")->required();
  revoke->callback(bind(ca_revoke));

  auto* crl = ca->add_subcommand("crl", "re-issue crl.pem (next CRL number, fresh nextUpdate)");
  crl->add_option("--dir", o->dir, "CA directory")->required();
  crl->callback(bind(ca_crl));

  auto* cert = app.add_subcommand("cert", "node key, certificate request and certificate files");
  cert->require_subcommand(1);
  auto* request = cert->add_subcommand("request", "create node.key (0600) and node.csr");
  request->add_option("--dir", o->dir, "node directory (created 0700)")->required();
  request->add_option("--name", o->name, "node name: 1-63 of a-z, 0-9, -")->required();
  request->callback(bind(cert_request));

  auto* show = cert->add_subcommand("show", "print a certificate's name, node id, serial, validity, issuer");
  show->add_option("FILE", o->file, "PEM certificate")->required();
  show->callback(bind(cert_show));
}

bool ca_command_parsed(const CLI::App& app) {
  for (const CLI::App* sub : app.get_subcommands())
    if (sub->get_name() == "ca" || sub->get_name() == "cert") return true;
  return false;
}

}  // namespace wownet
