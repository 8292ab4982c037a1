#!/usr/bin/env bash
# shellcheck disable=SC2317  # the loops run through wn_spawn, which shellcheck does not follow
# Soak: 20 VMs on two hosts, each host behind its own NAT router (the
# topology of tests/netns/nat_sites.sh), a rendezvous on the public side,
# for MINUTES minutes of churn:
#  - every VM is a namespace whose veth's host end is its VIF, with a real
#    DHCP client (dhclient for odd VMs, busybox udhcpc for even ones) and a
#    10 s lease (SOAK_LEASE_TIME), so that every VM renews every 5 s;
#  - every SOAK_CHURN_EVERY s one VM is detached (`wownetctl detach`) and,
#    SOAK_DETACH_SECS later, attached again with the same VM name and MAC;
#  - the rendezvous is stopped by its pid and started again every
#    SOAK_RV_EVERY s (default 240, first after 100 s); both NATs forget
#    every mapping (conntrack -F) every SOAK_FLUSH_EVERY s (default 60,
#    first after 45 s); 0 turns either off;
#  - iperf3 rounds (SOAK_IPERF_ROUND s, throttled to SOAK_IPERF_RATE,
#    alternating direction) between a01 on host a and b01 on host b; two
#    continuous pings a02 <-> b02; a ping sweep a<i> -> b<i> every minute.
# Watched: every 2 s, whether each VM still holds the address it got first;
# every minute, RSS, open fds, lease counts, DHCP acks and log lines of each
# hostd. At the end a table per minute and a summary.
#
# Exit status non-zero if a VM lost its lease (it was found on another
# address; or, while it stayed attached, without its address; or its DHCP
# client started over with DISCOVER more often than it was detached: a
# client cut off by a detach while its renewal is due may let its own
# 10 s lease run out, which is reported apart and must end with its first
# address back), a hostd died or stopped answering, or a daemon's RSS or fds grew past
# the thresholds: RSS at the end more than max(SOAK_RSS_GROWTH_MIB MiB,
# SOAK_RSS_GROWTH_PCT %) above the one-minute sample (after warm-up), open
# fds more than SOAK_FD_GROWTH above it. The rendezvous restarts, so its
# growth is checked within its last run only.
#
# A report, not a test. Needs root. Traffic only between namespaces this
# script makes.
#
#   bench/soak.sh BUILD_BIN_DIR [MINUTES]      (default 30)
#   nice -n 5 bench/soak.sh build/bin 30 2>&1 | tee bench/results/soak-$(date +%F).txt
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(cd "${1:?usage: bench/soak.sh BUILD_BIN_DIR [MINUTES]}" && pwd)
MINUTES=${2:-30}
[[ $MINUTES =~ ^[1-9][0-9]*$ ]] || { echo "MINUTES must be a positive whole number, not '$MINUTES'" >&2; exit 2; }
CHURN_EVERY=${SOAK_CHURN_EVERY:-5}
DETACH_SECS=${SOAK_DETACH_SECS:-2}
RV_FIRST=100
RV_EVERY=${SOAK_RV_EVERY:-240}
RV_DOWN=${SOAK_RV_DOWN:-3}
FLUSH_FIRST=45
FLUSH_EVERY=${SOAK_FLUSH_EVERY:-60}
IPERF_RATE=${SOAK_IPERF_RATE:-200M}
IPERF_ROUND=${SOAK_IPERF_ROUND:-30}
LEASE_TIME=${SOAK_LEASE_TIME:-10}
export SOAK_LEASE_TIME=$LEASE_TIME
LOG_LEVEL=${SOAK_LOG_LEVEL:-info}
SEED=${SOAK_SEED:-$$}
export SOAK_RSS_GROWTH_MIB=${SOAK_RSS_GROWTH_MIB:-8} SOAK_RSS_GROWTH_PCT=${SOAK_RSS_GROWTH_PCT:-25}
export SOAK_FD_GROWTH=${SOAK_FD_GROWTH:-8}
[[ $(id -u) == 0 ]] || { echo "needs root (network namespaces)" >&2; exit 2; }
for tool in dhclient busybox ping iperf3 python3 iptables conntrack timeout; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool (scripts/install-deps.sh installs it)" >&2; exit 2; }
done
[[ -x /etc/udhcpc/default.script ]] || { echo "missing /etc/udhcpc/default.script (package udhcpc)" >&2; exit 2; }
WN_RUN=wns$$
source "$ROOT/tests/netns/lib.sh"
source "$ROOT/tests/netns/nat_sites.sh"

echo "wownet soak: $MINUTES min, 20 VMs on 2 hosts behind 2 NATs + rendezvous; $(nproc) cores, kernel $(uname -r)"
echo "wownet $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'); lease $LEASE_TIME s, churn every" \
  "$CHURN_EVERY s (detached $DETACH_SECS s), rendezvous restart every $RV_EVERY s, conntrack flush every" \
  "$FLUSH_EVERY s, iperf3 -b $IPERF_RATE in ${IPERF_ROUND}s rounds, log level $LOG_LEVEL, seed $SEED"

# soak_hostd NODE ROLE LISTEN: NODE's config (nat_config's, with the
# soak's lease time and log level and the default keepalive) and its hostd.
soak_hostd() {
  nat_config "$1" "$2" "$3:7700" "$LOG_LEVEL"
  printf '[network]\nlease_time = %s\n' "$LEASE_TIME" >>"$WN_TMP/$1.toml"
  # A new hostd waits up to 30 s for a predecessor holding its state dir.
  nat_start "$1" 40
}

# alive PID: running, not a zombie.
alive() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]]
}

# --- topology ----------------------------------------------------------------
nat_core
nat_site a 1 eim
nat_site b 2 eim
nat_host ha a 1 10.1.0.11
nat_host hb b 2 10.2.0.11
soak_hostd rv rendezvous 198.51.100.10
soak_hostd ha host 10.1.0.11
soak_hostd hb host 10.2.0.11

# --- VMs: a01..a10 on host a, b01..b10 on host b ------------------------------
declare -A VM_HOST VM_CLIENT VM_MAC FIRST_IP
VMS=()
for s in a b; do
  for i in $(seq -w 1 10); do
    vm=$s$i
    VMS+=("$vm")
    VM_HOST[$vm]=h$s
    VM_MAC[$vm]=$(printf '02:57:4e:00:%02x:%02x' "$([[ $s == a ]] && echo 1 || echo 2)" "$((10#$i))")
    if ((10#$i % 2)); then VM_CLIENT[$vm]=dhclient; else VM_CLIENT[$vm]=udhcpc; fi
  done
done
# Untouched by the churn: the iperf3 pair and the ping pair.
CHURNABLE=()
for vm in "${VMS[@]}"; do [[ $vm == [ab]0[12] ]] || CHURNABLE+=("$vm"); done

vm_ip() {
  ip -n "${NS[vm-$1]}" -4 -o addr show dev eth0 2>/dev/null | awk '{print $4}' | cut -d/ -f1 |
    grep -v '^169\.254' | head -1 || true
}
for vm in "${VMS[@]}"; do
  h=${VM_HOST[$vm]}
  wn_ns "NS[vm-$vm]" "vm-$vm"
  wn_no_ipv6 "${NS[vm-$vm]}"
  wn_veth "${NS[$h]}" "vif-$vm" "${NS[vm-$vm]}" eth0
  ip -n "${NS[vm-$vm]}" link set eth0 down
  ip -n "${NS[vm-$vm]}" link set eth0 address "${VM_MAC[$vm]}"
  ip -n "${NS[vm-$vm]}" link set eth0 up
  nat_ctl "$h" attach "vif-$vm" --vm "$vm" >/dev/null
  if [[ ${VM_CLIENT[$vm]} == dhclient ]]; then
    printf 'send host-name "%s";\nrequest subnet-mask, broadcast-address, routers, domain-name,\n  domain-name-servers, host-name, interface-mtu;\n' \
      "$vm" >"$WN_TMP/dhclient-$vm.conf"
    wn_spawn "client-$vm" ip netns exec "${NS[vm-$vm]}" dhclient -4 -d -cf "$WN_TMP/dhclient-$vm.conf" \
      -pf "$WN_TMP/dhclient-$vm.pid" -lf "$WN_TMP/dhclient-$vm.leases" eth0
  else
    wn_spawn "client-$vm" ip netns exec "${NS[vm-$vm]}" busybox udhcpc -f -i eth0 -s /etc/udhcpc/default.script \
      -x "hostname:$vm" -p "$WN_TMP/udhcpc-$vm.pid"
  fi
done
for vm in "${VMS[@]}"; do
  wn_wait_for 60 "lease in $vm" wn_has_lease "${NS[vm-$vm]}" || true
  FIRST_IP[$vm]=$(vm_ip "$vm")
  [[ -n ${FIRST_IP[$vm]} ]] || { wn_log "no lease in $vm at the start: $(tail -3 "$WN_TMP/client-$vm.log")"; exit 1; }
done
if [[ $(printf '%s\n' "${FIRST_IP[@]}" | sort -u | wc -l) != "${#VMS[@]}" ]]; then
  wn_log "two VMs share an address at the start"
  exit 1
fi
wn_log "20 VMs leased: a01 ${FIRST_IP[a01]} ... b10 ${FIRST_IP[b10]}"
{
  for vm in "${VMS[@]}"; do
    h=${VM_HOST[$vm]}
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$vm" "${NS[vm-$vm]}" "$h" "${NS[$h]}" "${VM_MAC[$vm]}" \
      "${VM_CLIENT[$vm]}" "${FIRST_IP[$vm]}"
  done
} >"$WN_TMP/vms.tsv"
for n in rv ha hb; do printf '%s\t%s\t%s\t%s\n' "$n" "${NS[$n]}" "$WN_TMP/$n.sock" "$WN_TMP/hostd-$n.log"; done \
  >"$WN_TMP/daemons.tsv"
wn_check "vm-a01 pings vm-b01 across both NATs" wn_wait_for 30 "a01 -> b01" \
  ip netns exec "${NS[vm-a01]}" ping -c 1 -W 1 "${FIRST_IP[b01]}"

# --- background activity (subshells; each ends by itself at DEADLINE) -------
START=$EPOCHSECONDS
DEADLINE=$((START + MINUTES * 60))
STOP=$WN_TMP/stop
running() { ((EPOCHSECONDS < DEADLINE)) && [[ ! -e $STOP ]]; }

churn_loop() {  # one line per operation: epoch vm detach|attach rc message
  set +e
  RANDOM=$SEED
  local vm h out rc
  while running && ((EPOCHSECONDS + CHURN_EVERY + DETACH_SECS + 5 < DEADLINE)); do
    sleep "$CHURN_EVERY"
    vm=${CHURNABLE[RANDOM % ${#CHURNABLE[@]}]}
    h=${VM_HOST[$vm]}
    touch "$WN_TMP/detached-$vm"
    out=$(nat_ctl "$h" detach "$vm" 2>&1)
    rc=$?
    echo "$(date +%s.%N) $vm detach $rc ${out//$'\n'/ }"
    sleep "$DETACH_SECS"
    for _ in 1 2 3 4 5; do
      out=$(nat_ctl "$h" attach "vif-$vm" --vm "$vm" 2>&1)
      rc=$?
      echo "$(date +%s.%N) $vm attach $rc ${out//$'\n'/ }"
      ((rc == 0)) && break
      sleep 1
    done
    rm -f "$WN_TMP/detached-$vm"
  done
}

watch_loop() {  # one line per VM not holding its first address: epoch vm first now
  set +e
  local vm now
  while running; do
    for vm in "${VMS[@]}"; do
      now=$(vm_ip "$vm")
      [[ $now == "${FIRST_IP[$vm]}" ]] || echo "$(date +%s.%N) $vm ${FIRST_IP[$vm]} ${now:-none}"
    done
    sleep 2
  done
}

iperf_loop() {  # one line per round: start end rc json
  set +e
  local n=0 t t0 srv rc rev
  while running; do
    t=$((DEADLINE - EPOCHSECONDS - 3))
    ((t > IPERF_ROUND)) && t=$IPERF_ROUND
    ((t >= 5)) || break
    n=$((n + 1))
    rev=()
    ((n % 2)) || rev=(-R)
    ip netns exec "${NS[vm-b01]}" iperf3 -s -1 -p 5201 >"$WN_TMP/iperf-server-$n.log" 2>&1 &
    srv=$!
    sleep 0.5
    t0=$(date +%s.%N)
    timeout $((t + 20)) ip netns exec "${NS[vm-a01]}" iperf3 -c "${FIRST_IP[b01]}" -p 5201 -t "$t" \
      -b "$IPERF_RATE" --connect-timeout 5000 -J "${rev[@]}" >"$WN_TMP/iperf-$n.json" 2>"$WN_TMP/iperf-$n.err"
    rc=$?
    echo "$t0 $(date +%s.%N) $rc $WN_TMP/iperf-$n.json"
    grep -q '"error"' "$WN_TMP/iperf-$n.json" && sleep 2
    for _ in 1 2 3 4 5; do kill -0 "$srv" 2>/dev/null || break; sleep 0.5; done
    kill "$srv" 2>/dev/null
    wait "$srv" 2>/dev/null
  done
}

LOOPS=()
wn_spawn churn churn_loop
LOOPS+=("$WN_LAST_PID")
wn_spawn watch watch_loop
LOOPS+=("$WN_LAST_PID")
wn_spawn iperf iperf_loop
LOOPS+=("$WN_LAST_PID")
PINGS=()
wn_spawn ping-a02 ip netns exec "${NS[vm-a02]}" ping -D -i 0.5 "${FIRST_IP[b02]}"
PINGS+=("$WN_LAST_PID")
wn_spawn ping-b02 ip netns exec "${NS[vm-b02]}" ping -D -i 0.5 "${FIRST_IP[a02]}"
PINGS+=("$WN_LAST_PID")

# --- per-minute samples and the final report (bench/soak_report.py) ------------
export SOAK_IPERF_RATE_SHOWN=$IPERF_RATE
sample() {
  python3 "$ROOT/bench/soak_report.py" sample "$WN_TMP" "$BIN" "$1" rv="${HOSTD_PID[rv]}" ha="${HOSTD_PID[ha]}" hb="${HOSTD_PID[hb]}"
}

# rv_restart: the rendezvous stopped by its pid (its exit status recorded)
# and, SOAK_RV_DOWN s later, started again on the same state dir.
rv_restart() {
  local old=${HOSTD_PID[rv]} rc
  kill -TERM "$old" 2>/dev/null || true
  for _ in $(seq 100); do alive "$old" || break; sleep 0.1; done
  if alive "$old"; then
    echo "rendezvous (pid $old) still running 10 s after SIGTERM" >>"$WN_TMP/died.log"
    kill -KILL "$old"
  fi
  rc=0
  wait "$old" || rc=$?
  wn_forget "$old"
  ((rc == 0)) || echo "rendezvous (pid $old) exited with status $rc on SIGTERM" >>"$WN_TMP/died.log"
  sleep "$RV_DOWN"
  if ! soak_hostd rv rendezvous 198.51.100.10; then
    echo "rendezvous did not come back (pid ${HOSTD_PID[rv]})" >>"$WN_TMP/died.log"
    return 1
  fi
  echo "$(date +%s.%N) $old ${HOSTD_PID[rv]}" >>"$WN_TMP/rv-restarts.log"
  wn_log "rendezvous restarted (pid $old -> ${HOSTD_PID[rv]})"
}

flush_nats() {
  ip netns exec "${NS[ra]}" conntrack -F >/dev/null 2>&1 || true
  ip netns exec "${NS[rb]}" conntrack -F >/dev/null 2>&1 || true
  date +%s.%N >>"$WN_TMP/flushes.log"
}

# --- the soak ----------------------------------------------------------------------
wn_log "soaking for $MINUTES min (until $(date -d "@$DEADLINE" +%H:%M:%S)); work dir $WN_TMP"
sample 0 || wn_log "sample 0 failed"
minute=0
next_sample=$((START + 60))
next_flush=$((START + FLUSH_FIRST))
next_rv=$((START + RV_FIRST))
while ((minute < MINUTES)); do
  sleep 1
  dead=""
  for n in rv ha hb; do alive "${HOSTD_PID[$n]}" || dead+=" $n"; done
  if [[ -n $dead ]]; then
    for n in $dead; do
      echo "hostd $n (pid ${HOSTD_PID[$n]}) died at $(date +%H:%M:%S); tail of its log: $(tail -3 "$WN_TMP/hostd-$n.log" | tr '\n' '|')" \
        >>"$WN_TMP/died.log"
    done
    wn_log "hostd died:$dead; ending the soak early"
    sample $((minute + 1)) || true
    break
  fi
  now=$EPOCHSECONDS
  if ((FLUSH_EVERY > 0 && now >= next_flush)); then
    ((now < DEADLINE - 5)) && flush_nats
    next_flush=$((next_flush + FLUSH_EVERY))
  fi
  if ((RV_EVERY > 0 && now >= next_rv)); then
    if ((now < DEADLINE - 30)) && ! rv_restart; then
      wn_log "the rendezvous did not come back; ending the soak early"
      break
    fi
    next_rv=$((next_rv + RV_EVERY))
  fi
  if ((EPOCHSECONDS >= next_sample)); then
    minute=$((minute + 1))
    sample "$minute" || wn_log "sample $minute failed"
    next_sample=$((next_sample + 60))
  fi
done

# --- wind down and report -------------------------------------------------------------
touch "$STOP"
for pid in "${LOOPS[@]}"; do
  for _ in $(seq $((IPERF_ROUND * 10 + 300))); do alive "$pid" || break; sleep 0.1; done
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  wn_forget "$pid"
done
for pid in "${PINGS[@]}"; do
  wn_stop "$pid" INT
  wn_forget "$pid"
done
rc=0
python3 "$ROOT/bench/soak_report.py" report "$WN_TMP" "$BIN" || rc=$?
exit $rc
