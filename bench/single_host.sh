#!/usr/bin/env bash
# Benchmark: VM-to-VM TCP throughput (one iperf3 stream) and ping RTT on one
# host, through wownet-hostd and through a plain kernel bridge joining two
# other VMs, in the same run and on the same machine. A report, not a test.
#
#   bench/single_host.sh [BUILD_BIN_DIR]     (default build/bin; needs root)
#   BENCH_SECONDS=10 BENCH_PINGS=50 to change the run length.
WN_RUN=wnbench$$
source "$(dirname "$0")/lib.sh"

# iperf3 + ping between two namespaces; prints "Gbit/s rtt_ms".
measure() {
  local client=$1 server=$2 dst=$3 bps rtt
  ip netns exec "$client" ping -c 3 -i 0.2 -W 1 "$dst" >/dev/null  # warm ARP and caches
  bps=$(bench_iperf "$client" "$server" "$dst" 1)
  rtt=$(bench_rtt "$client" "$dst")
  python3 -c "print(f'{$bps/1e9:.2f} $rtt')"
}

# --- through wownet-hostd ---
wn_ns H host
wn_ns A vma
wn_ns B vmb
wn_veth "$H" vif1 "$A" eth0
wn_veth "$H" vif2 "$B" eth0
SOCK=$WN_TMP/hostd.sock
wn_spawn hostd ip netns exec "$H" "$BIN/wownet-hostd" --state-dir "$WN_TMP/state" --control-socket "$SOCK" --log-level warn
wn_wait_for 10 hostd ip netns exec "$H" "$BIN/wownetctl" --socket "$SOCK" status
ip netns exec "$H" "$BIN/wownetctl" --socket "$SOCK" attach vif1 --vm a >/dev/null
ip netns exec "$H" "$BIN/wownetctl" --socket "$SOCK" attach vif2 --vm b >/dev/null
for ns in "$A" "$B"; do
  ip netns exec "$ns" dhclient -4 -1 -pf "$WN_TMP/$ns.pid" -lf "$WN_TMP/$ns.leases" eth0 >/dev/null 2>&1
  [[ -f $WN_TMP/$ns.pid ]] && WN_PIDS+=("$(cat "$WN_TMP/$ns.pid")")
done
IPB=$(ip -n "$B" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1)
read -r WN_GBPS WN_RTT < <(measure "$A" "$B" "$IPB")

# --- plain kernel bridge (the ceiling on this topology) ---
wn_ns K khost
wn_ns C vmc
wn_ns D vmd
wn_veth "$K" vif1 "$C" eth0
wn_veth "$K" vif2 "$D" eth0
ip -n "$K" link add br0 type bridge
ip -n "$K" link set vif1 master br0
ip -n "$K" link set vif2 master br0
ip -n "$K" link set br0 up
ip -n "$C" addr add 10.99.0.1/24 dev eth0
ip -n "$D" addr add 10.99.0.2/24 dev eth0
read -r BR_GBPS BR_RTT < <(measure "$C" "$D" 10.99.0.2)

python3 - "$WN_GBPS" "$WN_RTT" "$BR_GBPS" "$BR_RTT" "$SECS" <<'PY'
import sys
wg, wr, bg, br, secs = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
print(f"single host, VM -> VM, one TCP stream ({secs} s), ping RTT average")
print(f"{'path':<28}{'Gbit/s':>10}{'RTT ms':>10}")
print(f"{'wownet-hostd':<28}{wg:>10.2f}{wr:>10.3f}")
print(f"{'kernel bridge (ceiling)':<28}{bg:>10.2f}{br:>10.3f}")
print(f"{'wownet / bridge':<28}{wg / bg:>10.2f}{wr / br:>10.2f}")
PY
