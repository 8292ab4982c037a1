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
for tool in etcd etcdctl dhclient busybox dig ping python3; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool (scripts/install-deps.sh installs it)"; exit 1; }
done
CTL() { local ns=$1; shift; ip netns exec "$ns" "$BIN/wownetctl" --socket "$WN_TMP/$ns.sock" "$@"; }

PKI=$WN_TMP/pki
wn_pki_init "test network"
for n in rva rvb hosta hostb; do wn_node_cert "$n"; done

wn_underlay WAN
declare -A NODE_NS NODE_IP
NODE_IP=([etcd]=192.0.2.5 [rva]=192.0.2.10 [rvb]=192.0.2.20 [hosta]=192.0.2.11 [hostb]=192.0.2.12)
for n in etcd rva rvb hosta hostb; do wn_underlay_node "NODE_NS[$n]" "$WAN" "$n" "${NODE_IP[$n]}"; done

# --- etcd, in its own namespace on the underlay ------------------------------------
ETCD_URL=http://192.0.2.5:2379
wn_spawn etcd ip netns exec "${NODE_NS[etcd]}" etcd --name wn --data-dir "$WN_TMP/etcd" \
  --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
  --listen-peer-urls http://192.0.2.5:2380 --initial-advertise-peer-urls http://192.0.2.5:2380 \
  --initial-cluster wn=http://192.0.2.5:2380 --logger zap --log-outputs "$WN_TMP/etcd-server.log"
ETCD_PID=$WN_LAST_PID
ETCDCTL() { ip netns exec "${NODE_NS[etcd]}" env ETCDCTL_API=3 etcdctl --endpoints "$ETCD_URL" "$@"; }
wn_check "etcd answers" wn_wait_for 20 "etcd" ETCDCTL endpoint health

write_config() {  # name role rendezvous-address
  local n=$1 role=$2
  cat >"$WN_TMP/$n.toml" <<TOML
[hostd]
state_dir = "$WN_TMP/state-$n"
control_socket = "$WN_TMP/${NODE_NS[$n]}.sock"
log_level = "debug"
[overlay]
role = "$role"
listen = "${NODE_IP[$n]}:7700"
rendezvous = ["$3:7700"]
cert = "$PKI/$n/node.crt"
key = "$PKI/$n/node.key"
ca = "$PKI/ca/ca.crt"
keepalive = 2
TOML
  if [[ $role == rendezvous ]]; then
    printf '[registry]\nbackend = "etcd"\nendpoints = ["%s"]\n' "$ETCD_URL" >>"$WN_TMP/$n.toml"
  fi
}
declare -A HOSTD
start_node() {  # name
  wn_spawn "hostd-$1" ip netns exec "${NODE_NS[$1]}" "$BIN/wownet-hostd" --config "$WN_TMP/$1.toml"
  HOSTD[$1]=$WN_LAST_PID
  wn_wait_for 10 "hostd $1" CTL "${NODE_NS[$1]}" status
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
  wn_ns VM[$v] "$v"
  wn_veth "$h" "vif-$v" "${VM[$v]}" eth0
  wn_veth "$h" "ch-$v" "${VM[$v]}" eth1
  ip -n "$h" addr add "169.254.$i.1/30" dev "ch-$v"
  ip -n "${VM[$v]}" addr add "169.254.$i.2/30" dev eth1
  wn_check "attach $v on ${VM_HOST[$v]}" CTL "$h" attach "vif-$v" --vm "$v" --agent-if "ch-$v"
  mkdir -p "$WN_TMP/agent-$v"
done
# Every DHCP client starts at the same moment.
for v in a1 a2 b1 b2; do
  wn_spawn "agent-$v" ip netns exec "${VM[$v]}" unshare --uts sh -c \
    "hostname vm-$v; exec $BIN/wownet-agent --nic eth0 --channel eth1 --interval 1 \
      --dhcp-client ${VM_CLIENT[$v]} --state-dir $WN_TMP/agent-$v --log-level debug"
done
addr_of() { ip -n "${VM[$1]}" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1 | head -1; }
declare -A IP
for v in a1 a2 b1 b2; do
  wn_wait_for 40 "lease in $v" bash -c "ip -n ${VM[$v]} -4 -o addr show dev eth0 | grep -q 'inet 10\.'" || true
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
wn_ns VM[c1] c1
h=${NODE_NS[hosta]}
wn_veth "$h" vif-c1 "${VM[c1]}" eth0
wn_veth "$h" ch-c1 "${VM[c1]}" eth1
ip -n "$h" addr add 169.254.9.1/30 dev ch-c1
ip -n "${VM[c1]}" addr add 169.254.9.2/30 dev eth1
wn_check "attach c1 on hosta" CTL "$h" attach vif-c1 --vm c1 --agent-if ch-c1
mkdir -p "$WN_TMP/agent-c1"
wn_spawn agent-c1 ip netns exec "${VM[c1]}" unshare --uts sh -c \
  "hostname vm-c1; exec $BIN/wownet-agent --nic eth0 --channel eth1 --interval 1 \
    --dhcp-client udhcpc --state-dir $WN_TMP/agent-c1 --log-level debug"
sleep 6
wn_check_not "c1 gets no lease while etcd is down" bash -c "ip -n ${VM[c1]} -4 -o addr show dev eth0 | grep -q 'inet 10\.'"
wn_spawn etcd ip netns exec "${NODE_NS[etcd]}" etcd --name wn --data-dir "$WN_TMP/etcd" \
  --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
  --listen-peer-urls http://192.0.2.5:2380 --initial-advertise-peer-urls http://192.0.2.5:2380 \
  --initial-cluster wn=http://192.0.2.5:2380 --logger zap --log-outputs "$WN_TMP/etcd-server.log"
wn_check "etcd answers again" wn_wait_for 20 "etcd" ETCDCTL endpoint health
wn_wait_for 60 "lease in c1" bash -c "ip -n ${VM[c1]} -4 -o addr show dev eth0 | grep -q 'inet 10\.'" || true
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
