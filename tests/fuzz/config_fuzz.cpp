// load_config on any file content. The bytes go into a memfd and are read
// through /proc/self/fd/N, so load_config runs unchanged and nothing
// touches the disk. A config it accepts must hold together: the gateway
// inside the network, a valid log level, rendezvous nodes with ports.
#include <sys/mman.h>
#include <unistd.h>

#include <string>
#include <string_view>

#include "config.h"
#include "fuzz_target.h"

using namespace wownet;

WOWNET_FUZZ_TARGET(config)(const std::uint8_t* data, std::size_t size) {
  static const int fd = [] {
    const int f = ::memfd_create("wownet-fuzz-config", 0);
    if (f < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    return f;
  }();
  static const std::string path = "/proc/self/fd/" + std::to_string(fd);
  WOWNET_FUZZ_CHECK(::ftruncate(fd, 0) == 0);
  for (std::size_t done = 0; done < size;) {
    const ssize_t n = ::pwrite(fd, data + done, size - done, off_t(done));
    WOWNET_FUZZ_CHECK(n > 0);
    done += std::size_t(n);
  }
  std::string error;
  const auto cfg = load_config(path, error);
  if (!cfg) {
    WOWNET_FUZZ_CHECK(!error.empty());
    return;
  }
  WOWNET_FUZZ_CHECK(cfg->network.network.is_host(cfg->network.gateway));
  WOWNET_FUZZ_CHECK(is_valid_log_level(cfg->log_level));
  for (const ConfigEndpoint& e : cfg->overlay.rendezvous_nodes) WOWNET_FUZZ_CHECK(e.port != 0);
  // The endpoint syntax on its own, as the command line uses it.
  (void)parse_endpoint(std::string_view(reinterpret_cast<const char*>(data), size));
}
