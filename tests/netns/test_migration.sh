#!/usr/bin/env bash
# A VM migrates between hosts and keeps its address, its name and its TCP
# connections: a rendezvous and hosts A, B, C on an underlay, VM c behind
# host C and VM m behind host A or B, both with ISC dhclient. A migration is
# played as a hypervisor does it: m's NIC (a veth) goes away on one host and
# a fresh one with the same MAC appears on the other, attached there under
# the same VM name (`wownetctl attach vif-m --vm m`). m's kernel keeps its
# address (it is put back on the new NIC, as a migrated guest keeps it); no
# DHCP runs after the first lease (lease_time 600: no renewal in the test).
#   1. detach first (A -> B): a TCP stream c -> m and pings both ways go on;
#   2. attach first (Xen order, B -> A): attached on the new host while m
#      still runs on the old one, then detached there;
#   3. a silent VM (A -> B): m sends nothing after the move, c pings it;
#   4. c resolves m's host name to the same address after each move.
# The outage (from the attach on the new host to the first ping reply c
# gets from m, and to the first new bytes of the TCP stream) is printed for
# each case and must stay under MIGRATION_MAX_OUTAGE seconds (3: the goal is
# under 1 s, the bound allows for a loaded 2-core machine). The registry,
# the old host and host C must all name the new host as m's node.
# Measured on the shared 2-core machine (three runs): detach first, TCP
# 0.29-0.31 s and ping 0.99-1.01 s (m's own pings to c before the attach
# left its gateway neighbour entry unresolved; Linux tries again after
# 1 s); attach first 0.02-0.06 s from the switch; silent 0.25-0.33 s.
# 50 to 80 s in all.
#
# With MIGRATION_SHARED=1 (test_migration_shared.sh) the same runs on two
# rendezvous sharing one registry in etcd: host A registered at rv, host B
# at rv2, host C at both; the lease moves through whichever rendezvous the
# new host asks, and every node learns it through etcd.
#
# Needs root. Run through ctest (label netns) or with WOWNET_BIN=build/bin.
source "$(dirname "$0")/lib.sh"
BIN=${WOWNET_BIN:?set WOWNET_BIN to the directory holding wownet-hostd}
wn_require dhclient dig ping python3 awk
MAX_OUTAGE=${MIGRATION_MAX_OUTAGE:-3}
CTL() { local n=$1; shift; ip netns exec "${NODE_NS[$n]}" "$BIN/wownetctl" --socket "$WN_TMP/$n.sock" "$@"; }
now() { date +%s.%N; }

# --- the rendezvous and three hosts on an underlay ---------------------------------
wn_pki_init "migration test"
declare -A NODE_NS NODE_IP=([rv]=192.0.2.10 [rv2]=192.0.2.20 [hosta]=192.0.2.11 [hostb]=192.0.2.12
  [hostc]=192.0.2.13) NODE_ID
wn_underlay WAN
NODES="rv hosta hostb hostc"
if [[ ${MIGRATION_SHARED:-0} == 1 ]]; then
  NODES="rv rv2 hosta hostb hostc"
  wn_underlay_node ETCD_NS "$WAN" etcd 192.0.2.5
  wn_spawn etcd ip netns exec "$ETCD_NS" etcd --name wn --data-dir "$WN_TMP/etcd" \
    --listen-client-urls http://192.0.2.5:2379 --advertise-client-urls http://192.0.2.5:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster wn=http://127.0.0.1:2380 --logger zap --log-outputs "$WN_TMP/etcd-server.log"
  wn_check "etcd answers" wn_wait_for 20 "etcd" \
    ip netns exec "$ETCD_NS" env ETCDCTL_API=3 etcdctl --endpoints http://192.0.2.5:2379 endpoint health
fi
for n in $NODES; do
  wn_node_cert "$n"
  wn_underlay_node "NODE_NS[$n]" "$WAN" "$n" "${NODE_IP[$n]}"
  role=$(wn_role "$n")
  wn_overlay_config "$n" "$role" "${NODE_IP[$n]}" debug
  if [[ ${MIGRATION_SHARED:-0} == 1 ]]; then
    case $n in
      hostb) sed -i 's|^rendezvous = .*|rendezvous = ["192.0.2.20:7700"]|' "$WN_TMP/$n.toml" ;;
      hostc) sed -i 's|^rendezvous = .*|rendezvous = ["192.0.2.10:7700", "192.0.2.20:7700"]|' "$WN_TMP/$n.toml" ;;
    esac
  fi
  printf 'keepalive = 2\n[network]\nlease_time = 600\n' >>"$WN_TMP/$n.toml"
  if [[ ${MIGRATION_SHARED:-0} == 1 && $role == rendezvous ]]; then
    printf '[registry]\nbackend = "etcd"\nendpoints = ["http://192.0.2.5:2379"]\n' >>"$WN_TMP/$n.toml"
  fi
  wn_node_hostd "$n" "${NODE_NS[$n]}"
  NODE_ID[$n]=$(CTL "$n" status --json | wn_json 'd["node_id"]')
done

# --- VMs: c on host C, m on host A ----------------------------------------------------
wn_ns VM_C c
wn_ns VM_M m
wn_veth "${NODE_NS[hostc]}" vif-c "$VM_C" eth0
wn_veth "${NODE_NS[hosta]}" vif-m "$VM_M" eth0
wn_check "attach c on host C" CTL hostc attach vif-c --vm c
wn_check "attach m on host A" CTL hosta attach vif-m --vm m
echo 'send host-name "mig-m";' >"$WN_TMP/m.dhclient.conf"
echo 'send host-name "mig-c";' >"$WN_TMP/c.dhclient.conf"
declare -A DHCLIENT IP
for v in c m; do
  ns_var=VM_${v^^}
  wn_spawn "dhclient-$v" ip netns exec "${!ns_var}" dhclient -4 -d -cf "$WN_TMP/$v.dhclient.conf" \
    -pf "$WN_TMP/$v.pid" -lf "$WN_TMP/$v.leases" eth0
  DHCLIENT[$v]=$WN_LAST_PID
done
addr_of() { ip -n "$1" -4 -o addr show dev eth0 | awk '{print $4}' | head -1; }
for v in c m; do
  ns_var=VM_${v^^}
  wn_wait_for 40 "lease in $v" wn_has_lease "${!ns_var}" || true
  IP[$v]=$(addr_of "${!ns_var}" | cut -d/ -f1)
  wn_check "$v has a lease: ${IP[$v]:-none}" [ -n "${IP[$v]}" ]
done
[[ -n ${IP[m]} && -n ${IP[c]} ]] || { wn_finish; exit 1; }
M_CIDR=$(addr_of "$VM_M")
M_MAC=$(ip -n "$VM_M" -o link show dev eth0 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
GATEWAY=$(ip -n "$VM_M" -4 route show default | awk '{print $3; exit}')
# m's DHCP client stops here (without releasing: SIGTERM): whatever moves
# the lease from now on is the attach, never a DHCP exchange.
wn_stop "${DHCLIENT[m]}"
wn_forget "${DHCLIENT[m]}"
wn_check "c reaches m on host A" wn_wait_for 20 "c -> m" ip netns exec "$VM_C" ping -c 1 -W 1 "${IP[m]}"
wn_check "c resolves m's host name" wn_wait_for 15 "mig-m.wow" \
  bash -c "[ \"\$(ip netns exec $VM_C dig +time=1 +tries=1 +short @$GATEWAY mig-m.wow)\" = '${IP[m]}' ]"

# --- helpers for the moves ---------------------------------------------------------------
# lease_field NODE FIELD: FIELD of m's lease in NODE's table (`leases --json`).
lease_field() {
  CTL "$1" leases --all --json | wn_json "next((str(l.get('$2')) for l in d['leases'] if l['address'] == '${IP[m]}'), 'none')"
}
# lease_node NODE: the node that NODE's table names for m's address.
lease_node() { lease_field "$1" node; }
# m_nic_on HOST [NAME]: a fresh veth pair with m's MAC, its host end vif-m
# in HOST's namespace (up), its VM end NAME (default eth0) in m (down).
m_nic_on() {
  ip link add "${2:-eth0}" netns "$VM_M" address "$M_MAC" type veth peer name vif-m netns "${NODE_NS[$1]}"
  ip -n "${NODE_NS[$1]}" link set vif-m up
}
# m_nic_up [NAME]: m's new NIC takes the old one's place, with m's address.
m_nic_up() {
  [[ ${1:-eth0} == eth0 ]] || ip -n "$VM_M" link set "$1" name eth0
  ip -n "$VM_M" link set eth0 up
  ip -n "$VM_M" addr add "$M_CIDR" dev eth0
  ip -n "$VM_M" route add default via "$GATEWAY"
}
# start_pings CASE [both]: c pings m (and m pings c with "both") every 50 ms, with time stamps.
start_pings() {
  wn_spawn "ping-$1" ip netns exec "$VM_C" ping -D -i 0.05 -W 1 "${IP[m]}"
  PING_C=$WN_LAST_PID
  PING_M=
  if [[ ${2:-} == both ]]; then
    wn_spawn "ping-m-$1" ip netns exec "$VM_M" ping -D -i 0.05 -W 1 "${IP[c]}"
    PING_M=$WN_LAST_PID
  fi
}
stop_pings() {
  for pid in $PING_C $PING_M; do
    wn_stop "$pid" INT
    wn_forget "$pid"
  done
}
# first_reply_after LOG T: the time stamp of the first reply in a `ping -D` log after T.
first_reply_after() {
  awk -v t="$2" '/bytes from/ { ts = substr($1, 2, length($1) - 2); if (ts + 0 > t + 0) { print ts; exit } }' "$1"
}
# first_progress_after LOG T: the first time the TCP stream's byte count grew after T.
first_progress_after() {
  awk -v t="$2" '$1 + 0 <= t + 0 { base = $2 } $1 + 0 > t + 0 && $2 > base { print $1; exit }' "$1"
}
# outage CASE WHAT LOG T FUNC: waits up to 15 s for FUNC's event after T, prints
# and checks the delay, and records it for the summary.
declare -A OUTAGE
outage() {
  local case=$1 what=$2 log=$3 t=$4 fn=$5 at=""
  local end=$((SECONDS + 15))
  while ((SECONDS < end)); do
    at=$($fn "$log" "$t")
    [[ -n $at ]] && break
    sleep 0.2
  done
  if [[ -z $at ]]; then
    wn_fail "$case: $what resumes within 15 s of the attach on the new host"
    OUTAGE[$case $what]=none
    return
  fi
  local secs
  secs=$(awk -v a="$at" -v t="$t" 'BEGIN { printf "%.3f", a - t }')
  OUTAGE[$case $what]=$secs
  wn_check "$case: $what resumes ${secs} s after the attach on the new host (bound ${MAX_OUTAGE} s)" \
    awk -v s="$secs" -v m="$MAX_OUTAGE" 'BEGIN { exit !(s < m) }'
}
# moved_to CASE HOST OLD: the registry, the old host and host C name HOST
# as m's node, with m's address; c still resolves m's name to it.
lease_node_is() { [[ $(lease_node "$1") == "$2" ]]; }
moved_to() {
  local case=$1 host=$2 old=$3
  wn_check "$case: the registry moved m's lease (${IP[m]}) to $host" \
    wn_wait_for 5 "registry lease on $host" lease_node_is rv "${NODE_ID[$host]}"
  wn_eq "$case: host C's copy names $host" "$(lease_node hostc)" "${NODE_ID[$host]}"
  wn_eq "$case: the old host's copy names $host" "$(lease_node "$old")" "${NODE_ID[$host]}"
  wn_eq "$case: m's lease is still a DHCP lease" "$(lease_field rv origin)" dhcp
  wn_eq "$case: m's address is unchanged" "$(addr_of "$VM_M")" "$M_CIDR"
  wn_eq "$case: c resolves m's host name to the same address" \
    "$(ip netns exec "$VM_C" dig +time=2 +tries=2 +short "@$GATEWAY" mig-m.wow)" "${IP[m]}"
}

# --- 1. detach first, A -> B, with a TCP stream c -> m and pings both ways -------------
wn_spawn tcp-receiver ip netns exec "$VM_M" python3 "$WOWNET_SOURCE/tests/netns/tcp_progress.py" receive 5601 \
  "$WN_TMP/tcp.log"
RECEIVER=$WN_LAST_PID
sleep 0.5
wn_spawn tcp-sender ip netns exec "$VM_C" python3 "$WOWNET_SOURCE/tests/netns/tcp_progress.py" send "${IP[m]}:5601" 2000
SENDER=$WN_LAST_PID
start_pings detach-first both
wn_check "the TCP stream c -> m moves data before the move" wn_wait_for 10 "tcp progress" \
  awk '$2 > 1000000 { found = 1 } END { exit !found }' "$WN_TMP/tcp.log"
wn_check "detach-first: m detached from host A" CTL hosta detach m
ip -n "$VM_M" link del eth0
m_nic_on hostb
m_nic_up
T=$(now)
wn_check "detach-first: m attached on host B" CTL hostb attach vif-m --vm m
outage detach-first "ping" "$WN_TMP/ping-detach-first.log" "$T" first_reply_after
outage detach-first "TCP" "$WN_TMP/tcp.log" "$T" first_progress_after
moved_to detach-first hostb hosta
sleep 2
stop_pings
wn_check "detach-first: m's pings reach c again" [ -n "$(first_reply_after "$WN_TMP/ping-m-detach-first.log" "$T")" ]
bytes_before=$(tail -1 "$WN_TMP/tcp.log" | awk '{print $2}')
sleep 1
wn_check "detach-first: the TCP stream keeps moving data" \
  awk -v b="$bytes_before" '$2 > b + 100000 { found = 1 } END { exit !found }' "$WN_TMP/tcp.log"
wn_stop "$SENDER"
wn_forget "$SENDER"
wn_check "detach-first: the TCP connection ends cleanly (it survived the move)" wn_wait_for 10 "tcp close" \
  grep -q closed "$WN_TMP/tcp.log"
wn_stop "$RECEIVER"
wn_forget "$RECEIVER"

# --- 2. attach first (Xen order), B -> A: m runs on B until it is switched -----------------
start_pings attach-first both
sleep 1
m_nic_on hosta eth1
T=$(now)
wn_check "attach-first: m attached on host A while it runs on host B" CTL hosta attach vif-m --vm m
# A live migration copies memory while the VM runs on: a second here.
sleep 1
T_ON_OLD=$(now)
wn_check "attach-first: m detached from host B" CTL hostb detach m
ip -n "$VM_M" link del eth0
m_nic_up eth1
T_SWITCH=$(now)
outage attach-first "ping" "$WN_TMP/ping-attach-first.log" "$T_SWITCH" first_reply_after
moved_to attach-first hosta hostb
sleep 1
stop_pings
# Was m, still on host B, reachable between the attach on A and the switch?
replies_on_old=$(awk -v a="$T" -v b="$T_ON_OLD" \
  '/bytes from/ { ts = substr($1, 2, length($1) - 2); if (ts > a + 0.3 && ts < b) n++ } END { print n + 0 }' \
  "$WN_TMP/ping-attach-first.log")
sent_on_old=$(awk -v a="$T" -v b="$T_ON_OLD" 'BEGIN { printf "%d", (b - a - 0.3) / 0.05 }')
# It is, since m talks: host B asks for the lease back on m's next frame
# (a lease moved to A at its attach bounces back within a frame or two).
wn_check "attach-first: c's pings reach m on host B while it is attached on both ($replies_on_old of ~$sent_on_old)" \
  [ "$replies_on_old" -ge $((sent_on_old / 2)) ]

# --- 3. a silent VM, A -> B: m sends nothing after the move -------------------------------
wn_check "silent: m detached from host A" CTL hosta detach m
ip -n "$VM_M" link del eth0
m_nic_on hostb
m_nic_up
# Nothing of m's may reach host B before c's pings: no ARP of its own.
ip -n "$VM_M" neigh replace "$GATEWAY" lladdr 02:77:6e:00:00:01 dev eth0 nud permanent
ip -n "$VM_M" neigh replace "${IP[c]}" lladdr 02:77:6e:00:00:01 dev eth0 nud permanent
T=$(now)
wn_check "silent: m attached on host B" CTL hostb attach vif-m --vm m
start_pings silent
outage silent "ping" "$WN_TMP/ping-silent.log" "$T" first_reply_after
moved_to silent hostb hosta
stop_pings

echo "migration outages (s, from the attach on the new host; attach-first from the switch):"
for k in "detach-first ping" "detach-first TCP" "attach-first ping" "silent ping"; do
  printf '  %-20s %s\n' "$k" "${OUTAGE[$k]:-none}"
done
wn_finish
