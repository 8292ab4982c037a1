#!/usr/bin/env bash
# Installs, from Debian 12's own packages, what wownet needs to build, test,
# demo and benchmark. Idempotent: runs apt only when something is missing.
set -euo pipefail

PACKAGES=(
  # build
  g++ cmake ninja-build ccache pkg-config clang-format
  libboost-dev libnl-3-dev libnl-route-3-dev libssl-dev libprotobuf-dev protobuf-compiler
  libgtest-dev libgmock-dev libtomlplusplus-dev libcli11-dev libspdlog-dev libsystemd-dev libsqlite3-dev
  # coverage-guided fuzzing (bench/fuzz.sh): clang 14 and its libFuzzer/sanitizer runtimes
  clang libclang-rt-14-dev
  # namespace tests, demo and benchmarks: real clients and tools
  iproute2 util-linux isc-dhcp-client busybox udhcpc dnsutils iputils-ping iperf3 tcpdump python3 procps openssl
  iptables conntrack netcat-openbsd jq
  # the metrics test: promtool checks the exposition, a real Prometheus
  # scrapes it (inside the test's namespace; the package's own service,
  # where systemd starts it, is not used)
  prometheus
  # the registry on etcd: its tests start a real etcd and check it with etcdctl
  etcd-server etcd-client
  # man pages (packaging/man, scdoc into roff) and their test (man-db, groff)
  scdoc man-db groff-base
  # the systemd units' test (systemd-analyze verify; the units are not started)
  systemd
)

if [[ $(id -u) != 0 ]]; then
  echo "install-deps: run as root (apt-get, network namespaces)" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
