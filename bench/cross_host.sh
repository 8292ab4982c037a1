#!/usr/bin/env bash
# Benchmark: VM-to-VM across two hosts, one TCP stream and 8 (iperf3) and ping
# RTT, in one run on one machine, through
#   - wownet (a rendezvous and two hosts, DTLS + AES-256-GCM data channel),
#   - the kernel routing the same topology with no tunnel (the ceiling),
#   - tinc 1.0 in switch mode (aes-256-cbc + sha256), the peer to beat.
# A report, not a test. Needs root; installs tinc from Debian if missing.
#
#   bench/cross_host.sh [BUILD_BIN_DIR]    (default build/bin)
#   BENCH_SECONDS=10 BENCH_PINGS=50 to change the run length.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$ROOT/build/bin}
SECS=${BENCH_SECONDS:-8}
PINGS=${BENCH_PINGS:-40}
if ! command -v tincd >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q tinc >/dev/null
fi
WN_RUN=wnx$$
source "$ROOT/tests/netns/lib.sh"

iperf() {  # client-ns server-ns server-ip streams -> bits/s
  wn_spawn "iperf-$2" ip netns exec "$2" iperf3 -s -1
  local pid=$WN_LAST_PID
  sleep 0.5
  ip netns exec "$1" iperf3 -c "$3" -t "$SECS" -P "$4" -J | wn_json 'd["end"]["sum_received"]["bits_per_second"]'
  wn_stop "$pid"
}
measure() {  # client-ns server-ns server-ip -> "Gbit/s rtt_ms Gbit/s-with-8-streams"
  ip netns exec "$1" ping -c 3 -i 0.2 -W 2 "$3" >/dev/null
  local bps bps8 rtt
  bps=$(iperf "$1" "$2" "$3" 1)
  bps8=$(iperf "$1" "$2" "$3" 8)
  rtt=$(ip netns exec "$1" ping -c "$PINGS" -i 0.05 -q "$3" | sed -nE 's|.*= [0-9.]+/([0-9.]+)/.*|\1|p')
  python3 -c "print(f'{$bps/1e9:.2f} $rtt {$bps8/1e9:.2f}')"
}
no_ipv6() { ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1; }

# Two hosts on an underlay link, one VM behind each: namespaces H1 H2 V1 V2.
topology() {  # prefix
  wn_ns "H1" "$1-h1"
  wn_ns "H2" "$1-h2"
  wn_ns "V1" "$1-v1"
  wn_ns "V2" "$1-v2"
  for ns in "$H1" "$H2" "$V1" "$V2"; do no_ipv6 "$ns"; done
  wn_veth "$H1" wan "$H2" wan
  ip -n "$H1" addr add 192.0.2.1/24 dev wan
  ip -n "$H2" addr add 192.0.2.2/24 dev wan
  wn_veth "$H1" vif "$V1" eth0
  wn_veth "$H2" vif "$V2" eth0
}

# --- kernel routing (ceiling) ---
topology route
ip -n "$V1" addr add 10.1.0.2/24 dev eth0
ip -n "$V1" route add default via 10.1.0.1
ip -n "$H1" addr add 10.1.0.1/24 dev vif
ip -n "$V2" addr add 10.2.0.2/24 dev eth0
ip -n "$V2" route add default via 10.2.0.1
ip -n "$H2" addr add 10.2.0.1/24 dev vif
ip -n "$H1" route add 10.2.0.0/24 via 192.0.2.2
ip -n "$H2" route add 10.1.0.0/24 via 192.0.2.1
ip netns exec "$H1" sysctl -qw net.ipv4.ip_forward=1
ip netns exec "$H2" sysctl -qw net.ipv4.ip_forward=1
read -r ROUTE_GBPS ROUTE_RTT ROUTE_P8 < <(measure "$V1" "$V2" 10.2.0.2)

# --- tinc 1.0, switch mode ---
topology tinc
for i in 1 2; do
  d=$WN_TMP/tinc$i
  mkdir -p "$d/hosts"
  other=$((3 - i))
  cat >"$d/tinc.conf" <<CONF
Name = node$i
Mode = switch
Interface = tinc$i
AddressFamily = ipv4
ConnectTo = node$other
CONF
  printf 'Address = 192.0.2.%s\nPort = 655\nCipher = aes-256-cbc\nDigest = sha256\n' "$i" >"$d/hosts/node$i"
  tincd -c "$d" -K 2048 </dev/null >/dev/null 2>&1
done
cp "$WN_TMP/tinc1/hosts/node1" "$WN_TMP/tinc2/hosts/"
cp "$WN_TMP/tinc2/hosts/node2" "$WN_TMP/tinc1/hosts/"
for i in 1 2; do
  h="H$i"
  wn_spawn "tinc$i" ip netns exec "${!h}" tincd -c "$WN_TMP/tinc$i" -D --pidfile="$WN_TMP/tinc$i.pid"
  wn_wait_for 10 "tinc$i device" ip -n "${!h}" link show "tinc$i"
  ip -n "${!h}" link add br0 type bridge
  ip -n "${!h}" link set "tinc$i" master br0
  ip -n "${!h}" link set vif master br0
  ip -n "${!h}" link set "tinc$i" up
  ip -n "${!h}" link set br0 up
done
ip -n "$V1" addr add 10.3.0.1/24 dev eth0
ip -n "$V2" addr add 10.3.0.2/24 dev eth0
wn_wait_for 20 "tinc path" ip netns exec "$V1" ping -c 1 -W 1 10.3.0.2
read -r TINC_GBPS TINC_RTT TINC_P8 < <(measure "$V1" "$V2" 10.3.0.2)

# --- wownet: a rendezvous on the underlay, two hosts ---
topology wownet
wn_ns RV wownet-rv
no_ipv6 "$RV"
wn_veth "$RV" wan "$H1" wanr
ip -n "$H1" link add br0 type bridge
ip -n "$H1" link set wan master br0
ip -n "$H1" link set wanr master br0
ip -n "$H1" addr del 192.0.2.1/24 dev wan
ip -n "$H1" addr add 192.0.2.1/24 dev br0
ip -n "$H1" link set br0 up
ip -n "$RV" addr add 192.0.2.10/24 dev wan
PKI=$WN_TMP/pki
"$BIN/wownetctl" ca init --dir "$PKI/ca" --name bench >/dev/null
for n in rv h1 h2; do
  "$BIN/wownetctl" cert request --dir "$PKI/$n" --name "$n" >/dev/null
  "$BIN/wownetctl" ca sign --dir "$PKI/ca" --csr "$PKI/$n/node.csr" --out "$PKI/$n/node.crt" >/dev/null
done
declare -A ADDR=([rv]=192.0.2.10 [h1]=192.0.2.1 [h2]=192.0.2.2) NS=([rv]=$RV [h1]=$H1 [h2]=$H2)
for n in rv h1 h2; do
  role=host
  [[ $n == rv ]] && role=rendezvous
  cat >"$WN_TMP/$n.toml" <<TOML
[hostd]
state_dir = "$WN_TMP/state-$n"
control_socket = "$WN_TMP/$n.sock"
log_level = "warn"
[overlay]
role = "$role"
listen = "${ADDR[$n]}:7700"
rendezvous = ["192.0.2.10:7700"]
cert = "$PKI/$n/node.crt"
key = "$PKI/$n/node.key"
ca = "$PKI/ca/ca.crt"
TOML
  wn_spawn "hostd-$n" ip netns exec "${NS[$n]}" "$BIN/wownet-hostd" --config "$WN_TMP/$n.toml"
  wn_wait_for 10 "hostd $n" ip netns exec "${NS[$n]}" "$BIN/wownetctl" --socket "$WN_TMP/$n.sock" status
done
for n in h1 h2; do
  ip netns exec "${NS[$n]}" "$BIN/wownetctl" --socket "$WN_TMP/$n.sock" attach vif --vm "vm-$n" >/dev/null
done
for v in "$V1" "$V2"; do
  ip netns exec "$v" dhclient -4 -1 -pf "$WN_TMP/$v.pid" -lf "$WN_TMP/$v.leases" eth0 >/dev/null 2>&1
  [[ -f $WN_TMP/$v.pid ]] && WN_PIDS+=("$(cat "$WN_TMP/$v.pid")")
done
IP2=$(ip -n "$V2" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1)
wn_wait_for 20 "wownet path" ip netns exec "$V1" ping -c 1 -W 1 "$IP2"
read -r WN_GBPS WN_RTT WN_P8 < <(measure "$V1" "$V2" "$IP2")

python3 - "$ROUTE_GBPS" "$ROUTE_RTT" "$ROUTE_P8" "$TINC_GBPS" "$TINC_RTT" "$TINC_P8" "$WN_GBPS" "$WN_RTT" "$WN_P8" "$SECS" <<'PY'
import sys
rg, rr, r8, tg, tr, t8, wg, wr, w8 = map(float, sys.argv[1:10])
print(f"two hosts, VM -> VM, TCP ({sys.argv[10]} s each), ping RTT average")
print(f"{'path':<34}{'1 stream':>10}{'8 streams':>11}{'RTT ms':>9}")
print(f"{'kernel routing, no tunnel (ceiling)':<34}{rg:>10.2f}{r8:>11.2f}{rr:>9.3f}")
print(f"{'tinc 1.0 switch, aes-256-cbc+sha256':<34}{tg:>10.2f}{t8:>11.2f}{tr:>9.3f}")
print(f"{'wownet, AES-256-GCM':<34}{wg:>10.2f}{w8:>11.2f}{wr:>9.3f}")
print(f"{'wownet / tinc':<34}{wg / tg:>10.2f}{w8 / t8:>11.2f}{wr / tr:>9.2f}")
print(f"{'wownet / ceiling':<34}{wg / rg:>10.2f}{w8 / r8:>11.2f}{wr / rr:>9.2f}")
PY
