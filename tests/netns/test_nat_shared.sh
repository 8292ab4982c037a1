#!/usr/bin/env bash
# Two rendezvous on one registry in etcd, each host behind its own NAT and
# registered at a different rendezvous (nat_sites.sh topology):
#   rv  198.51.100.10 (etcd beside it), rv2 198.51.101.20, both off the core;
#   ha1 behind site a's NAT lists only rv, hb1 behind site b's only rv2.
# Relaying is off, so only a punch opens the NATs. Checks:
#  - each rendezvous sees the other alive (presence through etcd) and
#    `wownetctl nodes` names where a node it has no session with is online;
#  - vm-ha1 reaches vm-hb1 on a direct path: rv resolves hb1 and has rv2
#    pass the punch on through etcd (and the other way round);
#  - kill -9 of rv2: its etcd lease runs out and rv no longer lists it or
#    its node, while the VMs keep talking.
# Needs root. Run through ctest (label netns) or with WOWNET_BIN=build/bin.
source "$(dirname "$0")/lib.sh"
BIN=${WOWNET_BIN:?set WOWNET_BIN to the directory holding wownet-hostd}
wn_require etcd etcdctl dhclient ping python3 iptables
source "$(dirname "$0")/nat_sites.sh"

nat_core
nat_site a 1 eim
nat_site b 2 eim
nat_host ha1 a 1 10.1.0.11
nat_host hb1 b 2 10.2.0.11
# rv2: its own link off the core.
nat_public rv2 198.51.101 20

ETCD_URL=http://198.51.100.10:2379
wn_spawn etcd ip netns exec "${NS[rv]}" etcd --name wn --data-dir "$WN_TMP/etcd" \
  --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster wn=http://127.0.0.1:2380 --logger zap --log-outputs "$WN_TMP/etcd-server.log"
ETCDCTL() { ip netns exec "${NS[rv]}" env ETCDCTL_API=3 etcdctl --endpoints "$ETCD_URL" "$@"; }
wn_check "etcd answers" wn_wait_for 20 "etcd" ETCDCTL endpoint health

REGISTRY=$(printf 'relay = false\n[registry]\nbackend = "etcd"\nendpoints = ["%s"]' "$ETCD_URL")
nat_hostd rv rendezvous 198.51.100.10 "$REGISTRY"
nat_hostd rv2 rendezvous 198.51.101.20 "$REGISTRY"
NAT_RENDEZVOUS='"198.51.100.10:7700"' nat_hostd ha1 host 10.1.0.11 "direct_retry = 10"
NAT_RENDEZVOUS='"198.51.101.20:7700"' nat_hostd hb1 host 10.2.0.11 "direct_retry = 10"

others() {  # node: names of the other rendezvous its status lists
  nat_ctl "$1" status --json | wn_json "' '.join(sorted(r.get('node_name') or r['node_id'] for r in d.get('other_rendezvous', [])))"
}
sees() { [[ $(others "$1") == "$2" ]]; }
wn_check "rv sees rv2 alive through etcd" wn_wait_for 15 "rv sees rv2" sees rv rv2
wn_check "rv2 sees rv alive through etcd" wn_wait_for 15 "rv2 sees rv" sees rv2 rv
nat_ctl rv status >"$WN_TMP/status-rv.txt"
wn_check "wownetctl status names the other rendezvous" grep -q "^other rendezvous rv2 at 198.51.101.20:7700: alive" "$WN_TMP/status-rv.txt"
node_state() {  # rendezvous node: that node's STATE column in `wownetctl nodes`
  nat_ctl "$1" nodes | awk -v n="$2" '$1 == n {print ($3 == "at" ? $3 " " $4 : $3)}'
}
state_is() { [[ $(node_state "$1" "$2") == "$3" ]]; }
wn_check "rv lists hb1 as online at rv2" wn_wait_for 15 "hb1 at rv2" state_is rv hb1 "at rv2"

declare -A IP
for h in ha1 hb1; do nat_vm "$h" "vm-$h" vif; done
for h in ha1 hb1; do
  wn_wait_for 40 "lease in vm-$h" bash -c "ip -n ${NS[vm-$h]} -4 -o addr show dev eth0 | grep -q 'inet 10\.'" || true
  IP[$h]=$(nat_vm_ip "vm-$h")
  wn_check "vm-$h has a lease through its own rendezvous: ${IP[$h]:-none}" [ -n "${IP[$h]}" ]
done

vm_ping() { ip netns exec "${NS[vm-$1]}" ping "${@:3}" "${IP[$2]}"; }
start=$SECONDS
wn_check "vm-ha1 (at rv) pings vm-hb1 (at rv2) across two NATs" wn_wait_for 30 "ha1 -> hb1" vm_ping ha1 hb1 -c 1 -W 1
wn_log "first ping after $((SECONDS - start)) s"
wn_eq "the path is direct (no relay runs)" "$(nat_peer ha1 hb1 path)" direct
wn_eq "ha1 sends to hb1's NAT" "$(nat_peer ha1 hb1 endpoint | cut -d: -f1)" 100.64.2.2
punches() { nat_ctl "$1" status --json | wn_json "int(d.get('registry', {}).get('$2', 0))"; }
wn_check "a punch went through etcd (rv sent $(punches rv etcd_punches_sent), rv2 $(punches rv2 etcd_punches_sent))" \
  [ $(($(punches rv etcd_punches_sent) + $(punches rv2 etcd_punches_sent))) -gt 0 ]
wn_check "and was passed on (rv $(punches rv etcd_punches_passed), rv2 $(punches rv2 etcd_punches_passed))" \
  [ $(($(punches rv etcd_punches_passed) + $(punches rv2 etcd_punches_passed))) -gt 0 ]
wn_check "vm-hb1 pings vm-ha1, 10 of 10" vm_ping hb1 ha1 -c 10 -i 0.1 -W 1 -q

# --- rv2 dies: its lease runs out, and with it its presence ------------------
kill -9 "${HOSTD_PID[rv2]}"
wn_stop "${HOSTD_PID[rv2]}"
wn_forget "${HOSTD_PID[rv2]}"
start=$SECONDS
wn_check "rv no longer lists rv2 once its etcd lease runs out" wn_wait_for 20 "rv2 gone" sees rv ""
wn_log "rv2 gone from rv's view after $((SECONDS - start)) s"
wn_check "nor hb1 as online at rv2" state_is rv hb1 offline
wn_check "vm-ha1 still pings vm-hb1" vm_ping ha1 hb1 -c 5 -i 0.2 -W 1 -q
wn_check "hostd rv still running" kill -0 "${HOSTD_PID[rv]}"
wn_finish
