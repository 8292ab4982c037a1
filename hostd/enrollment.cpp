#include "enrollment.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "crypto/pki.h"
#include "util/file_io.h"

namespace wownet {
namespace {

namespace fs = std::filesystem;

bool read_text(const std::string& path, std::string& out) {
  std::string ignored;
  return util::read_file(path, out, ignored);
}

bool write_text(const std::string& path, const std::string& text) { return !util::write_file_atomic(path, text, 0600); }

bool valid_id(const std::string& id) {
  return id.size() == 32 && id.find_first_not_of("0123456789abcdef") == std::string::npos;
}

}  // namespace

EnrollmentDesk::EnrollmentDesk(std::string state_dir, std::string ca_dir)
    : dir_(std::move(state_dir) + "/enroll"), ca_dir_(std::move(ca_dir)) {}

bool EnrollmentDesk::prepare(std::string& error) {
  std::error_code ec;
  for (const char* sub : {"pending", "issued", "denied"}) {
    fs::create_directories(dir_ + "/" + sub, ec);
    if (ec) {
      error = dir_ + "/" + sub + ": " + ec.message();
      return false;
    }
  }
  if (::access((ca_dir_ + "/ca.key").c_str(), R_OK) != 0) {
    error = ca_dir_ + "/ca.key: cannot read the CA key (overlay.ca_dir must be a wownetctl ca init directory)";
    return false;
  }
  return true;
}

overlay::EnrollReply EnrollmentDesk::on_request(UnixTime now, const overlay::EnrollRequest& request,
                                                const std::string& from) {
  overlay::EnrollReply reply;
  auto refuse = [&](const std::string& why) {
    reply.set_status(overlay::EnrollReply::REFUSED);
    reply.set_message(why);
    return reply;
  };
  if (request.csr_pem().size() > 4096) return refuse("CSR too large");
  crypto::ossl::BioPtr bio(BIO_new_mem_buf(request.csr_pem().data(), int(request.csr_pem().size())));
  crypto::ossl::X509ReqPtr csr(bio ? PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!csr) return refuse("not a PEM certificate request");
  EVP_PKEY* key = X509_REQ_get0_pubkey(csr.get());
  if (!key || X509_REQ_verify(csr.get(), key) != 1) return refuse("the CSR's signature does not verify");
  std::string id = crypto::node_id_of_key(key);
  reply.set_request_id(id);
  if (std::string cert; read_text(dir_ + "/issued/" + id + ".crt", cert)) {
    reply.set_status(overlay::EnrollReply::APPROVED);
    reply.set_cert_pem(cert);
    return reply;
  }
  if (fs::exists(dir_ + "/denied/" + id)) {
    reply.set_status(overlay::EnrollReply::DENIED);
    reply.set_message("an admin denied this request");
    return reply;
  }
  std::string pending = dir_ + "/pending/" + id;
  if (!fs::exists(pending + ".csr")) {
    // Requests nobody decided within a day expire, so a flood of CSRs
    // cannot lock real hosts out for good.
    std::size_t count = 0;
    for (const Entry& e : list()) {
      if (now - e.submitted > kPendingLifetime) {
        ::unlink((dir_ + "/pending/" + e.id + ".csr").c_str());
        ::unlink((dir_ + "/pending/" + e.id + ".from").c_str());
      } else {
        ++count;
      }
    }
    if (count >= kMaxPending) return refuse("too many requests are waiting for an admin");
    // Check the name before an admin ever sees it.
    std::string name_error;
    std::string tmp = pending + ".check";
    if (!write_text(tmp, request.csr_pem())) return refuse("cannot store the request");
    auto parsed = crypto::read_csr(tmp, name_error);
    ::unlink(tmp.c_str());
    if (!parsed) return refuse(name_error);
    if (!write_text(pending + ".from", from + " " + std::to_string(now) + "\n") ||
        !write_text(pending + ".csr", request.csr_pem()))
      return refuse("cannot store the request");
  }
  reply.set_status(overlay::EnrollReply::PENDING);
  reply.set_message("waiting for an admin: wownetctl ca approve " + id);
  return reply;
}

std::vector<EnrollmentDesk::Entry> EnrollmentDesk::list() const {
  std::vector<Entry> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_ + "/pending", ec)) {
    if (e.path().extension() != ".csr") continue;
    Entry entry;
    entry.id = e.path().stem().string();
    entry.state = "pending";
    std::string from, err;
    if (read_text(dir_ + "/pending/" + entry.id + ".from", from)) {
      std::istringstream in(from);
      in >> entry.from >> entry.submitted;
    }
    if (auto csr = crypto::read_csr(e.path().string(), err)) {
      X509_NAME* subject = X509_REQ_get_subject_name(csr.get());
      char cn[256] = {};
      if (subject) X509_NAME_get_text_by_NID(subject, NID_commonName, cn, sizeof cn);
      entry.name = cn;
    }
    out.push_back(entry);
  }
  return out;
}

std::string EnrollmentDesk::decide(UnixTime now, const std::string& id, bool approve, int days) {
  if (!valid_id(id)) return "expected a request ID of 32 hex digits (wownetctl ca pending)";
  std::string pending = dir_ + "/pending/" + id;
  if (!fs::exists(pending + ".csr")) return "no pending request " + id;
  if (approve) {
    crypto::Status st = crypto::ca_sign(ca_dir_, pending + ".csr", dir_ + "/issued/" + id + ".crt", days, now);
    if (!st.ok) return st.error;
  } else if (!write_text(dir_ + "/denied/" + id, std::to_string(now) + "\n")) {
    return "cannot record the decision in " + dir_ + "/denied";
  }
  ::unlink((pending + ".csr").c_str());
  ::unlink((pending + ".from").c_str());
  return {};
}

}  // namespace wownet
