// A real etcd (Debian's etcd-server) for tests: one member on 127.0.0.1,
// free ports, a temporary data directory; killed by pid and waited for
// when the object goes (and by the kernel if the test process dies first).
#pragma once

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/asio.h"

namespace wownet::testing {

class EtcdServer {
 public:
  // True if an etcd binary is installed.
  static bool available() { return ::access(binary(), X_OK) == 0; }
  static const char* binary() { return "/usr/bin/etcd"; }

  EtcdServer() {
    char tmpl[] = "/tmp/wownet-etcd-XXXXXX";
    if (::mkdtemp(tmpl)) dir_ = tmpl;
  }
  ~EtcdServer() {
    stop();
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }
  EtcdServer(const EtcdServer&) = delete;
  EtcdServer& operator=(const EtcdServer&) = delete;

  // Makes a CA, a server certificate for 127.0.0.1 (also for client use:
  // etcd 3.4's gateway presents it to etcd's own gRPC server) and a client
  // certificate (openssl(1)) in the temporary directory: ca.crt,
  // server.{crt,key}, client.{crt,key}. False if openssl fails.
  bool make_certificates() {
    const std::string d = dir_;
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    const std::string script =
        "cd " + d + " && exec >openssl.log 2>&1 && " + "openssl req -x509" + ec +
        " -keyout ca.key -out ca.crt -days 1 -subj /CN=test-ca && " +
        "printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth,clientAuth\\n' >server.ext && " +
        "printf 'extendedKeyUsage=clientAuth\\n' >client.ext && " + "for n in server client; do openssl req" + ec +
        " -keyout $n.key -out $n.csr -subj /CN=$n && " +
        "openssl x509 -req -in $n.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -extfile $n.ext " +
        "-out $n.crt || exit 1; done";
    return std::system(script.c_str()) == 0;  // sh -c
  }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  // Starts etcd with short raft timers (so that leases of 1 s work); with
  // `tls`, clients must use https and a certificate of the test CA (see
  // make_certificates). False if it cannot be started.
  bool start(bool tls = false) {
    if (dir_.empty()) return false;
    client_port_ = free_port();
    const int peer_port = free_port();
    tls_ = tls;
    const std::string client = std::string(tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(client_port_);
    const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port);
    std::vector<std::string> args = {binary(),
                                     "--name=test",
                                     "--data-dir=" + dir_ + "/data",
                                     "--listen-client-urls=" + client,
                                     "--advertise-client-urls=" + client,
                                     "--listen-peer-urls=" + peer,
                                     "--initial-advertise-peer-urls=" + peer,
                                     "--initial-cluster=test=" + peer,
                                     "--heartbeat-interval=10",
                                     "--election-timeout=100",
                                     "--logger=zap",
                                     "--log-outputs=" + dir_ + "/etcd.log"};
    if (tls) {
      for (const std::string& a : {"--cert-file=" + path("server.crt"), "--key-file=" + path("server.key"),
                                   "--trusted-ca-file=" + path("ca.crt"), std::string("--client-cert-auth")})
        args.push_back(a);
    }
    const pid_t pid = ::fork();
    if (pid < 0) return false;
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      const int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, 1);
      ::dup2(null, 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(binary(), argv.data());
      ::_exit(127);
    }
    pid_ = pid;
    return true;
  }
  // Kills etcd (SIGKILL) and waits for it.
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  std::string url() const {
    return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(client_port_);
  }
  std::string log_path() const { return dir_ + "/etcd.log"; }

 private:
  static int free_port() {
    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::address_v4::loopback(), 0});
    return a.local_endpoint().port();
  }
  std::string dir_;
  pid_t pid_ = -1;
  int client_port_ = 0;
  bool tls_ = false;
};

}  // namespace wownet::testing
