#!/usr/bin/env bash
# Two rendezvous sharing one registry in etcd: one etcd (Debian's
# etcd-server) on the underlay, rendezvous A and B using it, host A
# registered at A and host B at B, four VMs (dhclient and udhcpc) leasing
# at the same moment. Every address and name is distinct, checked in etcd
# itself with etcdctl; a VM on host A reaches a VM on host B by address
# and by name (the node records and leases are shared, so either
# rendezvous resolves either host); wownetctl status shows the backend.
# With etcd down, traffic goes on and no lease is granted (a new VM waits);
# once it is back the VM gets a distinct address. A restarted rendezvous
# loads the shared registry.
#
# Needs root. Run through ctest (label netns) or with WOWNET_BIN=build/bin.
source "$(dirname "$0")/lib.sh"
BIN=${WOWNET_BIN:?set WOWNET_BIN to the directory holding wownet-hostd}
wn_require etcd etcdctl dhclient busybox dig ping python3
CTL() { local ns=$1; shift; ip netns exec "$ns" "$BIN/wownetctl" --socket "$WN_TMP/$ns.sock" "$@"; }

PKI=$WN_TMP/pki
wn_pki "test network" rva rvb hosta hostb

wn_underlay WAN
declare -A NODE_NS NODE_IP
NODE_IP=([etcd]=192.0.2.5 [rva]=192.0.2.10 [rvb]=192.0.2.20 [hosta]=192.0.2.11 [hostb]=192.0.2.12)
wn_underlay_nodes "$WAN" etcd rva rvb hosta hostb

# --- etcd, in its own namespace on the underlay ------------------------------------
ETCD_URL=http://192.0.2.5:2379
start_etcd() {
  wn_spawn etcd ip netns exec "${NODE_NS[etcd]}" etcd --name wn --data-dir "$WN_TMP/etcd" \
    --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
    --listen-peer-urls http://192.0.2.5:2380 --initial-advertise-peer-urls http://192.0.2.5:2380 \
    --initial-cluster wn=http://192.0.2.5:2380 --logger zap --log-outputs "$WN_TMP/etcd-server.log"
}
start_etcd
ETCD_PID=$WN_LAST_PID
ETCDCTL() { ip netns exec "${NODE_NS[etcd]}" env ETCDCTL_API=3 etcdctl --endpoints "$ETCD_URL" "$@"; }
wn_check "etcd answers" wn_wait_for 20 "etcd" ETCDCTL endpoint health

write_config() {  # name role rendezvous-address
  wn_overlay_config "$1" "$2" "${NODE_IP[$1]}" debug "$WN_TMP/${NODE_NS[$1]}.sock" "\"$3:7700\""
  echo "keepalive = 2" >>"$WN_TMP/$1.toml"
  if [[ $2 == rendezvous ]]; then
    printf '[registry]\nbackend = "etcd"\nendpoints = ["%s"]\n' "$ETCD_URL" >>"$WN_TMP/$1.toml"
  fi
}
declare -A HOSTD
start_node() {  # name
  wn_node_hostd "$1" "${NODE_NS[$1]}" "$WN_TMP/${NODE_NS[$1]}.sock"
  HOSTD[$1]=$WN_LAST_PID
}
write_config rva rendezvous "${NODE_IP[rva]}"
write_config rvb rendezvous "${NODE_IP[rvb]}"
write_config hosta host "${NODE_IP[rva]}"
write_config hostb host "${NODE_IP[rvb]}"
wn_check "a rendezvous config on etcd passes --check-config" "$BIN/wownet-hostd" --check-config --config "$WN_TMP/rva.toml"
for n in rva rvb hosta hostb; do start_node "$n"; done
for n in rva rvb; do
  wn_check "status of $n shows the registry in etcd, reachable" wn_wait_for 10 "$n etcd" \
    bash -c "ip netns exec ${NODE_NS[$n]} $BIN/wownetctl --socket $WN_TMP/${NODE_NS[$n]}.sock status | grep -q '^registry etcd: reachable at $ETCD_URL'"
done
# Both hosts registered, each at its own rendezvous.
for h in hosta hostb; do
  wn_check "$h registered" wn_wait_for 15 "$h registered" grep -q "registered; the rendezvous sees us" "$WN_TMP/hostd-$h.log"
done

# --- four VMs leasing at once: a1, a2 on host A; b1, b2 on host B --------------------
declare -A VM VM_HOST VM_CLIENT
VM_HOST=([a1]=hosta [a2]=hosta [b1]=hostb [b2]=hostb)
VM_CLIENT=([a1]=dhclient [a2]=udhcpc [b1]=udhcpc [b2]=dhclient)
i=0
for v in a1 a2 b1 b2; do
  i=$((i + 1))
  h=${NODE_NS[${VM_HOST[$v]}]}
  wn_vm "VM[$v]" "$h" "$v" "vif-$v" "ch-$v" "$i"
  wn_check "attach $v on ${VM_HOST[$v]}" CTL "$h" attach "vif-$v" --vm "$v" --agent-if "ch-$v"
done
# Every DHCP client starts at the same moment.
for v in a1 a2 b1 b2; do
  wn_agent "agent-$v" "${VM[$v]}" "vm-$v" "${VM_CLIENT[$v]}"
done
addr_of() { wn_addr "${VM[$1]}"; }
declare -A IP
for v in a1 a2 b1 b2; do
  wn_wait_for 40 "lease in $v" wn_has_lease "${VM[$v]}" || true
  IP[$v]=$(addr_of "$v")
  wn_check "$v (${VM_CLIENT[$v]} on ${VM_HOST[$v]}) has a lease: ${IP[$v]:-none}" [ -n "${IP[$v]}" ]
done
wn_eq "the four addresses are distinct" "$(printf '%s\n' "${IP[@]}" | sort -u | wc -l)" 4

# --- etcd itself: one lease per VM, distinct addresses, names and MACs -------------
wn_check "every host name reached etcd" wn_wait_for 20 "names in etcd" \
  bash -c "[ \"\$(ip netns exec ${NODE_NS[etcd]} env ETCDCTL_API=3 etcdctl --endpoints $ETCD_URL get --prefix /wownet/name/ --keys-only | grep -c .)\" = 4 ]"
ETCDCTL get --prefix /wownet/ -w json >"$WN_TMP/etcd-dump.json"
python3 - "$WN_TMP/etcd-dump.json" "${IP[a1]} ${IP[a2]} ${IP[b1]} ${IP[b2]}" >"$WN_TMP/etcd-check.txt" 2>&1 <<'PY'
import base64, json, sys
kvs = json.load(open(sys.argv[1])).get("kvs", [])
want = set(sys.argv[2].split())
leases, names, macs = {}, {}, {}
for kv in kvs:
    k = base64.b64decode(kv["key"]).decode()
    v = base64.b64decode(kv.get("value", "")).decode()
    if k.startswith("/wownet/lease/"):
        l = json.loads(v)
        if l.get("state") == "bound": leases[k[14:]] = l
    elif k.startswith("/wownet/name/"):
        names[k[13:]] = json.loads(v)["address"]
    elif k.startswith("/wownet/mac/"):
        macs[k[12:]] = json.loads(v)["address"]
ok = True
def check(what, cond):
    global ok
    print(("ok   " if cond else "FAIL ") + what)
    ok &= bool(cond)
check(f"bound leases in etcd are the VMs' addresses: {sorted(leases)}", set(leases) == want)
vm_names = [l.get("host_name") for l in leases.values()]
check(f"host names distinct: {vm_names}", len(set(vm_names)) == len(vm_names) == 4)
check(f"name index: {names}", all(names.get(l["host_name"]) == a for a, l in leases.items()))
check(f"MAC index: {macs}", all(macs.get(l["mac"]) == a for a, l in leases.items()) and len(set(macs.values())) == len(macs))
nodes = {l["node_id"] for l in leases.values()}
check(f"leases held by both hosts: {len(nodes)} nodes", len(nodes) == 2)
sys.exit(0 if ok else 1)
PY
rc=$?
cat "$WN_TMP/etcd-check.txt" >&2
if [[ $rc == 0 ]]; then wn_pass "etcdctl: addresses, names and MACs distinct and indexed"; else wn_fail "etcdctl check"; fi

# --- across rendezvous: a VM of host A reaches a VM of host B -----------------------
wn_check "a1 (host A, rendezvous A) pings b1 (host B, rendezvous B)" wn_wait_for 20 "a1 -> b1" \
  ip netns exec "${VM[a1]}" ping -c 1 -W 1 "${IP[b1]}"
wn_check "b2 pings a2" wn_wait_for 20 "b2 -> a2" ip netns exec "${VM[b2]}" ping -c 1 -W 1 "${IP[a2]}"
wn_check "a1 resolves vm-b2 by name" wn_wait_for 15 "vm-b2 name" \
  bash -c "[ \"\$(ip netns exec ${VM[a1]} dig +time=1 +tries=1 +short vm-b2.wow)\" = '${IP[b2]}' ]"

# --- etcd down: traffic goes on, no lease is granted; back: granted, distinct --------
ETCD_SPAWNED=$ETCD_PID
wn_stop "$ETCD_SPAWNED"
wn_forget "$ETCD_SPAWNED"
wn_check "rendezvous A sees etcd unreachable" wn_wait_for 10 "rva unreachable" \
  bash -c "ip netns exec ${NODE_NS[rva]} $BIN/wownetctl --socket $WN_TMP/${NODE_NS[rva]}.sock status | grep -q '^registry etcd: \(unreachable\|loading\)'"
wn_check "a1 still pings b1 with etcd down" ip netns exec "${VM[a1]}" ping -c 3 -i 0.2 -W 1 "${IP[b1]}"
v=c1
VM_HOST[c1]=hosta
h=${NODE_NS[hosta]}
wn_vm "VM[c1]" "$h" c1 vif-c1 ch-c1 9
wn_check "attach c1 on hosta" CTL "$h" attach vif-c1 --vm c1 --agent-if ch-c1
wn_agent agent-c1 "${VM[c1]}" vm-c1 udhcpc
sleep 6
wn_check_not "c1 gets no lease while etcd is down" wn_has_lease "${VM[c1]}"
start_etcd
wn_check "etcd answers again" wn_wait_for 20 "etcd" ETCDCTL endpoint health
wn_wait_for 60 "lease in c1" wn_has_lease "${VM[c1]}" || true
IP[c1]=$(addr_of c1)
wn_check "c1 has a lease once etcd is back: ${IP[c1]:-none}" [ -n "${IP[c1]}" ]
wn_eq "the five addresses are distinct" "$(printf '%s\n' "${IP[@]}" | sort -u | wc -l)" 5
wn_check "etcd holds c1's lease" bash -c "ip netns exec ${NODE_NS[etcd]} env ETCDCTL_API=3 etcdctl --endpoints $ETCD_URL get /wownet/lease/${IP[c1]:-none} --print-value-only | grep -q '\"host_name\":\"vm-c1\"'"
grep -c "etcd unreachable" "$WN_TMP/hostd-rva.log" >"$WN_TMP/unreachable-lines" || true
wn_check "one log line for the outage, not a flood" test "$(cat "$WN_TMP/unreachable-lines")" -le 2

# --- the same address is never handed out twice: a restarted rendezvous loads etcd --
wn_stop "${HOSTD[rvb]}"
wn_forget "${HOSTD[rvb]}"
start_node rvb
wn_check "restarted rendezvous B loads the shared registry" wn_wait_for 10 "rvb leases" \
  bash -c "[ \"\$(ip netns exec ${NODE_NS[rvb]} $BIN/wownetctl --socket $WN_TMP/${NODE_NS[rvb]}.sock leases --all --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(1 for l in d.get(\"leases\", []) if l.get(\"state\") == \"bound\"))')\" -ge 4 ]"

for n in rva rvb hosta hostb; do
  wn_check "hostd $n still running" kill -0 "${HOSTD[$n]}"
done
wn_finish
