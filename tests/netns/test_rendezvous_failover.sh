#!/usr/bin/env bash
# No single point of failure in the control plane: a 3-member etcd cluster
# (Debian's etcd-server, one member per namespace, TLS between members and
# to the rendezvous), rendezvous A and B sharing the registry in it, and
# hosts A and B that list both rendezvous. Checked:
# - each host keeps a session to both rendezvous and asks one first;
# - kill -9 of the rendezvous host A asks first: VM-to-VM pings lose
#   nothing, a new VM on host A still gets a lease (through B, timed), a
#   VM on host B reaches it (resolved through B); the killed rendezvous
#   restarts and both hosts take it back;
# - kill -9 of the etcd leader: leases are still granted, pings go on;
# - with 2 of 3 etcd members gone: no lease is granted (cleanly: the VM
#   waits), pings go on; once they are back the waiting VM gets a lease,
#   and etcd itself holds every address, MAC and name once.
#
# Needs root. Run through ctest (label netns) or with WOWNET_BIN=build/bin.
source "$(dirname "$0")/lib.sh"
BIN=${WOWNET_BIN:?set WOWNET_BIN to the directory holding wownet-hostd}
wn_require etcd etcdctl openssl dhclient busybox ping python3
CTL() { local ns=$1; shift; ip netns exec "$ns" "$BIN/wownetctl" --socket "$WN_TMP/$ns.sock" "$@"; }

PKI=$WN_TMP/pki
wn_pki "test network" rva rvb hosta hostb

wn_underlay WAN
declare -A NODE_NS NODE_IP
NODE_IP=([e1]=192.0.2.5 [e2]=192.0.2.6 [e3]=192.0.2.7 [rva]=192.0.2.10 [rvb]=192.0.2.20 [hosta]=192.0.2.11
  [hostb]=192.0.2.12)
wn_underlay_nodes "$WAN" e1 e2 e3 rva rvb hosta hostb

# --- etcd: three members, TLS for clients and peers ---------------------------------
TLS=$WN_TMP/etcd-tls
mkdir -p "$TLS"
(
  cd "$TLS"
  EC="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
  openssl req -x509 $EC -keyout ca.key -out ca.crt -days 1 -subj /CN=etcd-test-ca
  for n in e1 e2 e3 client; do
    if [[ $n == client ]]; then
      printf 'extendedKeyUsage=clientAuth\n' >$n.ext
    else
      printf 'subjectAltName=IP:%s\nextendedKeyUsage=serverAuth,clientAuth\n' "${NODE_IP[$n]}" >$n.ext
    fi
    openssl req $EC -keyout $n.key -out $n.csr -subj "/CN=$n"
    openssl x509 -req -in $n.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -extfile $n.ext -out $n.crt
  done
) >"$WN_TMP/openssl.log" 2>&1 || { cat "$WN_TMP/openssl.log" >&2; wn_fail "etcd certificates"; wn_finish; }
CLUSTER=e1=https://${NODE_IP[e1]}:2380,e2=https://${NODE_IP[e2]}:2380,e3=https://${NODE_IP[e3]}:2380
ENDPOINTS=https://${NODE_IP[e1]}:2379,https://${NODE_IP[e2]}:2379,https://${NODE_IP[e3]}:2379
declare -A ETCD_PID
start_etcd() {  # member
  local n=$1 ip=${NODE_IP[$1]}
  wn_spawn "etcd-$n" ip netns exec "${NODE_NS[$n]}" etcd --name "$n" --data-dir "$WN_TMP/etcd-$n" \
    --listen-client-urls "https://$ip:2379" --advertise-client-urls "https://$ip:2379" \
    --listen-peer-urls "https://$ip:2380" --initial-advertise-peer-urls "https://$ip:2380" \
    --initial-cluster "$CLUSTER" --initial-cluster-state new --initial-cluster-token "wn-$WN_RUN" \
    --cert-file "$TLS/$n.crt" --key-file "$TLS/$n.key" --trusted-ca-file "$TLS/ca.crt" --client-cert-auth \
    --peer-cert-file "$TLS/$n.crt" --peer-key-file "$TLS/$n.key" --peer-trusted-ca-file "$TLS/ca.crt" \
    --peer-client-cert-auth --heartbeat-interval 100 --election-timeout 1000 \
    --logger zap --log-outputs "$WN_TMP/etcd-$n-server.log"
  ETCD_PID[$n]=$WN_LAST_PID
}
stop_etcd() {  # member: kill -9, as a crash
  kill -9 "${ETCD_PID[$1]}" 2>/dev/null
  wn_stop "${ETCD_PID[$1]}"
  wn_forget "${ETCD_PID[$1]}"
}
ETCDCTL() {  # on the members that are up, from member e1's namespace (the underlay is one bridge)
  ip netns exec "${NODE_NS[e1]}" env ETCDCTL_API=3 etcdctl --endpoints "${ETCD_EPS:-$ENDPOINTS}" \
    --cacert "$TLS/ca.crt" --cert "$TLS/client.crt" --key "$TLS/client.key" --command-timeout 3s "$@"
}
for n in e1 e2 e3; do start_etcd "$n"; done
wn_check "the etcd cluster answers over TLS" wn_wait_for 30 "etcd cluster" ETCDCTL endpoint health

write_config() {  # name role
  local n=$1
  wn_overlay_config "$n" "$2" "${NODE_IP[$n]}" debug "$WN_TMP/${NODE_NS[$n]}.sock" \
    "\"${NODE_IP[rva]}:7700\", \"${NODE_IP[rvb]}:7700\""
  echo "keepalive = 2" >>"$WN_TMP/$n.toml"
  if [[ $2 == rendezvous ]]; then
    cat >>"$WN_TMP/$n.toml" <<TOML
[registry]
backend = "etcd"
endpoints = ["https://${NODE_IP[e1]}:2379", "https://${NODE_IP[e2]}:2379", "https://${NODE_IP[e3]}:2379"]
cert = "$TLS/client.crt"
key = "$TLS/client.key"
ca = "$TLS/ca.crt"
TOML
  fi
}
declare -A HOSTD
start_node() {  # name
  wn_node_hostd "$1" "${NODE_NS[$1]}" "$WN_TMP/${NODE_NS[$1]}.sock"
  HOSTD[$1]=$WN_LAST_PID
}
status_value() {  # node key: a number from `status --json`'s overlay counters
  CTL "${NODE_NS[$1]}" status --json | wn_json "d['overlay'].get('$2', 0)"
}
for n in rva rvb hosta hostb; do write_config "$n" "$(wn_role "$n")"; done
wn_check "a host config listing two rendezvous passes --check-config" \
  "$BIN/wownet-hostd" --check-config --config "$WN_TMP/hosta.toml"
for n in rva rvb hosta hostb; do start_node "$n"; done
for n in rva rvb; do
  wn_check "$n reaches the etcd cluster over TLS" wn_wait_for 15 "$n etcd" \
    bash -c "ip netns exec ${NODE_NS[$n]} $BIN/wownetctl --socket $WN_TMP/${NODE_NS[$n]}.sock status | grep -q '^registry etcd: reachable'"
done
for h in hosta hostb; do
  wn_check "$h keeps a session to both rendezvous" wn_wait_for 20 "$h rendezvous" \
    bash -c "[ \"\$(ip netns exec ${NODE_NS[$h]} $BIN/wownetctl --socket $WN_TMP/${NODE_NS[$h]}.sock status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"overlay\"][\"rendezvous_up\"])')\" = 2 ]"
done
first_rendezvous() {  # host: the name of the rendezvous it asks first
  CTL "${NODE_NS[$1]}" peers --json |
    wn_json "next((p.get('node_name') or p['node_id']) for p in d.get('peers', []) if p.get('asked_first'))"
}
FIRST=$(first_rendezvous hosta)
wn_check "wownetctl peers names the rendezvous host A asks first: ${FIRST:-none}" [ -n "$FIRST" ]
CTL "${NODE_NS[hosta]}" peers >"$WN_TMP/peers-hosta.txt"
wn_check "the peers table says so" grep -q "(rendezvous, asked first)" "$WN_TMP/peers-hosta.txt"

# --- VMs ------------------------------------------------------------------------
declare -A VM IP
VM_INDEX=0
add_vm() {  # vm host dhcp-client: attached, its agent started
  local v=$1 h=${NODE_NS[$2]}
  VM_INDEX=$((VM_INDEX + 1))
  wn_vm "VM[$v]" "$h" "$v" "vif-$v" "ch-$v" "$VM_INDEX"
  wn_check "attach $v on $2" CTL "$h" attach "vif-$v" --vm "$v" --agent-if "ch-$v"
  wn_agent "agent-$v" "${VM[$v]}" "vm-$v" "$3"
}
leased() { wn_has_lease "${VM[$1]}"; }
declare -A LEASED_AT
wait_lease() {  # vm seconds: IP[vm] and LEASED_AT[vm] set, true if it got one
  wn_wait_for "$2" "lease in $1" leased "$1" || true
  LEASED_AT[$1]=$(date +%s.%N)
  IP[$1]=$(wn_addr "${VM[$1]}")
  [ -n "${IP[$1]}" ]
}
add_vm a1 hosta dhclient
add_vm b1 hostb udhcpc
for v in a1 b1; do wn_check "$v has a lease" wait_lease "$v" 40; done
wn_check "a1 pings b1" wn_wait_for 20 "a1 -> b1" ip netns exec "${VM[a1]}" ping -c 1 -W 1 "${IP[b1]}"

# --- kill -9 the rendezvous host A asks first -------------------------------------
KILLED=$FIRST
wn_spawn ping-rv ip netns exec "${VM[a1]}" ping -i 0.1 -W 1 "${IP[b1]}"
PING=$WN_LAST_PID
sleep 1
KILLED_AT=$(date +%s.%N)
kill -9 "${HOSTD[$KILLED]}"
wn_stop "${HOSTD[$KILLED]}"
wn_forget "${HOSTD[$KILLED]}"
add_vm a2 hosta udhcpc
wn_check "a new VM on host A gets a lease with rendezvous $KILLED dead" wait_lease a2 40
LEASE_S=$(awk -v a="$KILLED_AT" -v b="${LEASED_AT[a2]}" 'BEGIN {printf "%.1f", b - a}')
wn_log "a2's lease came ${LEASE_S} s after the kill (attach, agent start and DHCP included)"
wn_check "a2 leased within 10 s of the kill (${LEASE_S} s)" awk -v s="$LEASE_S" 'BEGIN {exit !(s <= 10)}'
wn_check "b1 (host B) reaches a2, resolved without $KILLED" \
  wn_wait_for 15 "b1 -> a2" ip netns exec "${VM[b1]}" ping -c 1 -W 1 "${IP[a2]}"
sleep 2
wn_stop "$PING" INT
wn_forget "$PING"
SENT=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' "$WN_TMP/ping-rv.log")
RECEIVED=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$WN_TMP/ping-rv.log")
wn_check "a1 -> b1 lost nothing while $KILLED died (${RECEIVED:-?} of ${SENT:-?})" \
  test "${SENT:-0}" -gt 20 -a "${RECEIVED:-0}" -ge "$((${SENT:-1} - 1))"
wn_check "host A counted a failover" test "$(status_value hosta registry_failovers)" -ge 1
start_node "$KILLED"
for h in hosta hostb; do
  wn_check "$h takes the restarted $KILLED back" wn_wait_for 40 "$h rendezvous" \
    bash -c "[ \"\$(ip netns exec ${NODE_NS[$h]} $BIN/wownetctl --socket $WN_TMP/${NODE_NS[$h]}.sock status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"overlay\"][\"rendezvous_up\"])')\" = 2 ]"
done

# --- kill -9 the etcd leader ------------------------------------------------------
LEADER=$(ETCDCTL endpoint status -w json | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s["Status"]["header"]["member_id"] == s["Status"]["leader"]:
        print(s["Endpoint"])')
LEADER_NAME=
for n in e1 e2 e3; do [[ $LEADER == "https://${NODE_IP[$n]}:2379" ]] && LEADER_NAME=$n; done
wn_check "etcd names a leader: ${LEADER_NAME:-none}" [ -n "$LEADER_NAME" ]
stop_etcd "$LEADER_NAME"
LIVE=()
for n in e1 e2 e3; do [[ $n != "$LEADER_NAME" ]] && LIVE+=("$n"); done
ETCD_EPS=https://${NODE_IP[${LIVE[0]}]}:2379,https://${NODE_IP[${LIVE[1]}]}:2379
add_vm a3 hostb dhclient
wn_check "a new VM gets a lease with the etcd leader dead" wait_lease a3 40
wn_check "a1 still pings b1" ip netns exec "${VM[a1]}" ping -c 3 -i 0.2 -W 1 "${IP[b1]}"

# --- 2 of 3 etcd members gone: no lease, traffic goes on; back: leased, distinct ------
stop_etcd "${LIVE[0]}"
ETCD_EPS=https://${NODE_IP[${LIVE[1]}]}:2379
add_vm a4 hosta udhcpc
sleep 8
wn_check_not "a4 gets no lease without an etcd quorum" leased a4
wn_check "a1 still pings b1 without an etcd quorum" ip netns exec "${VM[a1]}" ping -c 3 -i 0.2 -W 1 "${IP[b1]}"
start_etcd "$LEADER_NAME"
start_etcd "${LIVE[0]}"
ETCD_EPS=
wn_check "the etcd cluster is whole again" wn_wait_for 30 "etcd cluster" ETCDCTL endpoint health
wn_check "a4 gets a lease once the quorum is back" wait_lease a4 60
wn_eq "the five addresses are distinct" "$(printf '%s\n' "${IP[@]}" | sort -u | wc -l)" 5

cat >"$WN_TMP/etcd-check.py" <<'PY'
import base64, json, sys
kvs = json.load(open(sys.argv[1])).get("kvs", [])
leases, macs, names = {}, {}, {}
for kv in kvs:
    key = base64.b64decode(kv["key"]).decode()
    value = json.loads(base64.b64decode(kv["value"]))
    if key.startswith("/wownet/lease/") and value.get("state") == "bound":
        leases[key.rsplit("/", 1)[1]] = value
    elif key.startswith("/wownet/mac/"):
        macs[key.rsplit("/", 1)[1]] = value.get("address")
    elif key.startswith("/wownet/name/"):
        names[key.rsplit("/", 1)[1]] = value.get("address")
want = set(sys.argv[2].split())
ok = True
def check(what, cond):
    global ok
    print(("ok   " if cond else "FAIL ") + what)
    ok &= bool(cond)
check(f"bound leases in etcd are the VMs' addresses: {sorted(leases)}", want <= set(leases))
vm_macs = [l["mac"] for a, l in leases.items() if a in want]
check("one MAC per address", len(set(vm_macs)) == len(vm_macs) == len(want))
check(f"MAC index: {macs}", all(macs.get(l["mac"]) == a for a, l in leases.items()))
vm_names = [l["host_name"] for a, l in leases.items() if a in want]
check(f"host names distinct: {vm_names}", len(set(vm_names)) == len(vm_names))
sys.exit(0 if ok else 1)
PY
# Taken again for a few seconds before the check fails: once, right after
# the quorum came back, a dump lacked the newest lease (a4's).
etcd_check() {
  ETCDCTL get /wownet/ --prefix -w json >"$WN_TMP/etcd-dump.json" &&
    python3 "$WN_TMP/etcd-check.py" "$WN_TMP/etcd-dump.json" "${IP[*]}" >"$WN_TMP/etcd-check.txt" 2>&1
}
rc=0
wn_wait_for 10 "etcd holds every lease" etcd_check || rc=1
cat "$WN_TMP/etcd-check.txt" >&2
if [[ $rc == 0 ]]; then wn_pass "etcdctl: every address, MAC and name once"; else wn_fail "etcdctl check"; fi

for n in rva rvb hosta hostb; do
  wn_check "hostd $n still running" kill -0 "${HOSTD[$n]}"
done
wn_finish
