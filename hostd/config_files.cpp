// --check-config's look at the files and directories a config names.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "config.h"

namespace wownet {
namespace {

std::string octal_mode(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", unsigned(m & 07777));
  return buf;
}

struct Checker {
  std::vector<std::string>& errors;

  void add(const std::string& key, const std::string& path, const std::string& what) {
    errors.push_back(key + " " + path + ": " + what);
  }

  // A regular file we can read; a private one also not readable by group or others.
  bool file(const std::string& key, const std::string& path, bool is_private = false) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      add(key, path, std::strerror(errno));
      return false;
    }
    if (!S_ISREG(st.st_mode)) {
      add(key, path, "not a regular file");
      return false;
    }
    if (::access(path.c_str(), R_OK) != 0) {
      add(key, path, std::string("not readable: ") + std::strerror(errno));
      return false;
    }
    if (is_private && (st.st_mode & 077) != 0) {
      add(key, path,
          "mode " + octal_mode(st.st_mode) +
              " lets group or others read the private key; expected 0600 or stricter (chmod 600 " + path + ")");
      return false;
    }
    return true;
  }

  // A directory that exists and is writable, or can be created: its
  // nearest existing ancestor is a writable directory.
  void directory(const std::string& key, const std::string& path) {
    namespace fs = std::filesystem;
    fs::path p(path);
    std::error_code ec;
    if (fs::exists(p, ec)) {
      if (!fs::is_directory(p, ec)) return add(key, path, "not a directory");
      if (::access(path.c_str(), W_OK | X_OK) != 0)
        return add(key, path, std::string("not writable: ") + std::strerror(errno));
      return;
    }
    fs::path up = p.parent_path();
    while (!up.empty() && up != up.parent_path() && !fs::exists(up, ec)) up = up.parent_path();
    if (up.empty()) up = "/";
    if (!fs::is_directory(up, ec)) return add(key, path, "cannot be created: " + up.string() + " is not a directory");
    if (::access(up.c_str(), W_OK | X_OK) != 0)
      return add(key, path, "cannot be created: " + up.string() + ": " + std::strerror(errno));
  }
};

}  // namespace

std::vector<std::string> check_config_files(const HostdConfig& c) {
  std::vector<std::string> errors;
  Checker check{errors};
  check.directory("hostd.state_dir", c.state_dir);
  check.directory("hostd.control_socket's directory", std::filesystem::path(c.control_socket).parent_path().string());
  const OverlayConfig& o = c.overlay;
  if (!o.enabled) return errors;
  check.file("overlay.ca", o.ca);
  check.file("overlay.key", o.key, true);
  std::error_code ec;
  if (!o.csr.empty() && !o.rendezvous && !std::filesystem::exists(o.cert, ec)) {
    // Online enrollment: the certificate is written here once approved.
    check.file("overlay.csr", o.csr);
    check.directory("overlay.cert's directory", std::filesystem::path(o.cert).parent_path().string());
  } else {
    check.file("overlay.cert", o.cert);
  }
  if (!o.crl.empty()) check.file("overlay.crl", o.crl);
  if (!o.ca_dir.empty()) {
    check.directory("overlay.ca_dir", o.ca_dir);
    if (std::filesystem::is_directory(o.ca_dir, ec)) check.file("overlay.ca_dir", o.ca_dir + "/ca.key", true);
  }
  return errors;
}

}  // namespace wownet
