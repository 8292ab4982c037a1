# Shared start of the namespace benchmarks (single_host.sh, cross_host.sh,
# nat.sh). Source it with WN_RUN set: it sets `set -euo pipefail`, ROOT (the
# source tree), BIN (the benchmark's first argument, default build/bin),
# SECS (BENCH_SECONDS, default 8) and PINGS (BENCH_PINGS, default 40), and
# sources tests/netns/lib.sh (namespaces, daemons, cleanup).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${1:-$ROOT/build/bin}
SECS=${BENCH_SECONDS:-8}
PINGS=${BENCH_PINGS:-40}
source "$ROOT/tests/netns/lib.sh"

# bench_iperf CLIENT_NS SERVER_NS SERVER_IP STREAMS: bits/s received in
# one iperf3 run of SECS seconds with STREAMS streams (status 1 if it fails).
bench_iperf() {
  wn_spawn "iperf-$2-$4" ip netns exec "$2" iperf3 -s -1
  local pid=$WN_LAST_PID bps
  sleep 0.5
  if ! bps=$(ip netns exec "$1" iperf3 -c "$3" -t "$SECS" -P "$4" -J |
    wn_json 'd["end"]["sum_received"]["bits_per_second"]' 2>/dev/null); then
    wn_stop "$pid"
    return 1
  fi
  wn_stop "$pid"
  echo "$bps"
}

# bench_rtt CLIENT_NS IP: the average RTT in ms of PINGS pings, 50 ms apart.
bench_rtt() {
  ip netns exec "$1" ping -c "$PINGS" -i 0.05 -q "$2" | sed -nE 's|.*= [0-9.]+/([0-9.]+)/.*|\1|p'
}
