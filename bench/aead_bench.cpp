// Data-channel AEAD throughput: seals then opens batches of packets with
// DataSealer/DataOpener for about a second per (cipher, size) and prints
// plaintext Gbit/s on one core. Rates use the thread's CPU time (robust on a
// shared machine); the last column uses wall-clock time.
// Usage: aead_bench [seconds-per-case]   (default 1)
#include <time.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "crypto/data_channel.h"

namespace {

using wownet::crypto::Cipher;
using wownet::crypto::DataOpener;
using wownet::crypto::DataSealer;
using wownet::crypto::kDataOverhead;
using Clock = std::chrono::steady_clock;

struct Result {
  double seal_gbps, open_gbps, both_gbps, seal_ns, open_ns, wall_gbps;
};

// CPU time consumed by this thread, in seconds.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// Runs batches of seal-all then open-all until `seconds` of crypto time.
Result run(Cipher cipher, std::size_t size, double seconds) {
  std::array<std::uint8_t, 32> key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = std::uint8_t(0x5a ^ i);
  DataSealer sealer(cipher, key, 0x01020304);
  DataOpener opener(cipher, key, 0x01020304);
  const std::size_t batch = size >= 16384 ? 8 : 64;
  std::vector<std::uint8_t> plain(size);
  for (std::size_t i = 0; i < size; ++i) plain[i] = std::uint8_t(i * 7);
  std::vector<std::vector<std::uint8_t>> packets(batch, std::vector<std::uint8_t>(size + kDataOverhead));
  std::vector<std::uint8_t> out(size);

  double seal_s = 0, open_s = 0;
  std::uint64_t count = 0;
  const auto wall_start = Clock::now();
  while (seal_s + open_s < seconds) {
    const double t0 = thread_cpu_seconds();
    for (auto& p : packets) {
      if (sealer.seal(plain, p) != p.size()) std::abort();
    }
    const double t1 = thread_cpu_seconds();
    for (auto& p : packets) {
      if (opener.open(p, out).error != DataOpener::OpenResult::Error::None) std::abort();
    }
    const double t2 = thread_cpu_seconds();
    seal_s += t1 - t0;
    open_s += t2 - t1;
    count += batch;
  }
  const double wall_s = std::chrono::duration<double>(Clock::now() - wall_start).count();
  const double bits = double(count) * double(size) * 8;
  return {bits / seal_s / 1e9,          bits / open_s / 1e9,          bits / (seal_s + open_s) / 1e9,
          seal_s / double(count) * 1e9, open_s / double(count) * 1e9, bits / wall_s / 1e9};
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 1.0;
  std::printf("%-18s %7s %10s %10s %10s %9s %9s %10s\n", "cipher", "bytes", "seal Gb/s", "open Gb/s", "both Gb/s",
              "seal ns", "open ns", "wall Gb/s");
  for (Cipher cipher : {Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305}) {
    for (std::size_t size : {std::size_t{1400}, std::size_t{65536}}) {
      const Result r = run(cipher, size, seconds);
      std::printf("%-18s %7zu %10.2f %10.2f %10.2f %9.0f %9.0f %10.2f\n", std::string(to_string(cipher)).c_str(), size,
                  r.seal_gbps, r.open_gbps, r.both_gbps, r.seal_ns, r.open_ns, r.wall_gbps);
    }
  }
  return 0;
}
