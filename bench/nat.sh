#!/usr/bin/env bash
# Benchmark: hosts behind NATs (the topology of tests/netns/test_nat.sh:
# a rendezvous, a routed core, endpoint-independent NATs at sites a and b,
# symmetric NATs at sites c and d).
#  - Time from `wownetctl attach` of a new VM on a new host behind NAT b to
#    its first ping answered by a VM behind NAT a (DHCP through the
#    rendezvous, hole punching, handshake), over BENCH_RUNS runs; median.
#  - One TCP stream (iperf3) and ping RTT VM to VM on a direct path across
#    two NATs and on a relayed path across two symmetric NATs, same run.
# A report, not a test. Needs root.
#
#   bench/nat.sh [BUILD_BIN_DIR]    (default build/bin)
#   BENCH_RUNS=5 BENCH_SECONDS=8 BENCH_PINGS=40 to change the run.
WN_RUN=wnn$$
source "$(dirname "$0")/lib.sh"
RUNS=${BENCH_RUNS:-5}
source "$ROOT/tests/netns/nat_sites.sh"

nat_sites
nat_host ha1 a 1 10.1.0.11
nat_host hc1 c 3 10.3.0.11
nat_host hd1 d 4 10.4.0.11
nat_hostd rv rendezvous 198.51.100.10
for h in ha1 hc1 hd1; do nat_hostd "$h" host "${LAN_IP[$h]}"; done
declare -A IP
for h in ha1 hc1 hd1; do nat_vm "$h" "vm-$h" vif; done
for h in ha1 hc1 hd1; do
  wn_wait_for 40 "lease in vm-$h" wn_has_lease "${NS[vm-$h]}"
  IP[$h]=$(nat_vm_ip "vm-$h")
done

# Attach to first ping: each run a new host at site b (so no session to
# ha1 exists yet), registered first; the clock starts at attach.
now() { date +%s.%N; }
times=()
for i in $(seq "$RUNS"); do
  h=hb$i
  nat_host "$h" b 2 "10.2.0.$((10 + i))"
  nat_hostd "$h" host "${LAN_IP[$h]}"
  wn_wait_for 20 "$h registered" bash -c "[ \"\$(ip netns exec ${NS[$h]} $BIN/wownetctl --socket $WN_TMP/$h.sock \
    status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"overlay\"].get(\"rendezvous_up\", 0))')\" = 1 ]"
  t0=$(now)
  nat_vm "$h" "vm-$h" vif
  wn_wait_for 30 "lease in vm-$h" wn_has_lease "${NS[vm-$h]}"
  t_lease=$(now)
  first=$(ip netns exec "${NS[vm-$h]}" ping -D -i 0.05 -W 1 -w 20 -c 1 "${IP[ha1]}" |
    sed -nE 's/^\[([0-9.]+)\] [0-9]+ bytes from.*/\1/p' | head -1)
  path=$(nat_peer "$h" ha1 path)
  python3 -c "print(f'run $i: lease {$t_lease - $t0:.2f} s, first ping {$first - $t0:.2f} s after attach ($path)')"
  times+=("$(python3 -c "print($first - $t0)")")
  wn_stop "${HOSTD_PID[$h]}"
done
median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR] = $1} END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
printf 'attach -> first ping across two NATs: median %.2f s over %d runs\n' "$median" "$RUNS"

measure() {  # client-vm server-vm server-ip -> "Gbit/s rtt_ms"
  local bps rtt
  ip netns exec "${NS[$1]}" ping -c 3 -i 0.2 -W 2 "$3" >/dev/null
  bps=$(bench_iperf "${NS[$1]}" "${NS[$2]}" "$3" 1)
  rtt=$(bench_rtt "${NS[$1]}" "$3")
  python3 -c "print(f'{$bps/1e9:.2f} Gbit/s, RTT {$rtt} ms')"
}
# A host at site b that stays, for the direct path.
nat_host hb0 b 2 10.2.0.10
nat_hostd hb0 host 10.2.0.10
nat_vm hb0 vm-hb0 vif
wn_wait_for 40 "lease in vm-hb0" wn_has_lease "${NS[vm-hb0]}"
IP[hb0]=$(nat_vm_ip vm-hb0)
direct=$(measure vm-ha1 vm-hb0 "${IP[hb0]}")
echo "direct across two NATs ($(nat_peer ha1 hb0 path)):     $direct"
relayed=$(measure vm-hc1 vm-hd1 "${IP[hd1]}")
echo "relayed across two symmetric NATs ($(nat_peer hc1 hd1 path)): $relayed"
