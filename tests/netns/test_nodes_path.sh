#!/usr/bin/env bash
# `wownetctl nodes` on a rendezvous lists every node with its state,
# endpoints and lease count; `wownetctl path TARGET` on a host says which
# way traffic to a VM (by name, host name or address) or a node goes:
# local, none (no session yet), direct or relayed. A rendezvous and hosts
# A and B on an underlay, VM web on A and VM db on B under dhclient.
#
# Needs root. Run through ctest (label netns) or with WOWNET_BIN=build/bin.
source "$(dirname "$0")/lib.sh"
BIN=${WOWNET_BIN:?set WOWNET_BIN to the directory holding wownet-hostd}
wn_require dhclient ping python3
CTL() { local n=$1; shift; ip netns exec "${NODE_NS[$n]}" "$BIN/wownetctl" --socket "$WN_TMP/$n.sock" "$@"; }

wn_pki_init "nodes test"
declare -A NODE_NS NODE_IP=([rv]=192.0.2.10 [a]=192.0.2.11 [b]=192.0.2.12) NODE_PID
wn_underlay WAN
for n in rv a b; do
  wn_node_cert "$n"
  wn_underlay_node "NODE_NS[$n]" "$WAN" "$n" "${NODE_IP[$n]}"
  wn_overlay_config "$n" "$(wn_role "$n")" "${NODE_IP[$n]}" info
  wn_node_hostd "$n" "${NODE_NS[$n]}"
  NODE_PID[$n]=$WN_LAST_PID
done

declare -A VM_NS VM_HOST=([web]=a [db]=b) IP
for vm in web db; do
  h=${VM_HOST[$vm]}
  wn_ns "VM_NS[$vm]" "$vm"
  wn_veth "${NODE_NS[$h]}" "vif-$vm" "${VM_NS[$vm]}" eth0
  wn_check "attach $vm on $h" CTL "$h" attach "vif-$vm" --vm "$vm"
  echo "send host-name \"$vm-host\";" >"$WN_TMP/$vm.conf"
  wn_spawn "dhclient-$vm" ip netns exec "${VM_NS[$vm]}" dhclient -4 -d -cf "$WN_TMP/$vm.conf" \
    -pf "$WN_TMP/$vm.pid" -lf "$WN_TMP/$vm.leases" eth0
done
for vm in web db; do
  wn_wait_for 40 "lease in $vm" wn_has_lease "${VM_NS[$vm]}" || true
  IP[$vm]=$(wn_addr "${VM_NS[$vm]}")
  wn_check "$vm has a lease: ${IP[$vm]:-none}" [ -n "${IP[$vm]}" ]
done
[[ -n ${IP[web]} && -n ${IP[db]} ]] || { wn_finish; exit 1; }

# --- nodes ------------------------------------------------------------------------
node_field() { CTL rv nodes --json | wn_json "next((str(n['$2']) for n in d['nodes'] if n['node_name'] == '$1'), 'missing')"; }
wn_eq "rendezvous lists host a online" "$(node_field a online)" True
wn_eq "rendezvous lists host b online" "$(node_field b online)" True
wn_eq "a's reflexive endpoint" "$(node_field a reflexive)" "192.0.2.11:7700"
wn_eq "a holds one lease" "$(node_field a active_leases)" 1
wn_eq "b holds one lease" "$(node_field b active_leases)" 1
wn_check "text output lists b" bash -c "ip netns exec ${NODE_NS[rv]} $BIN/wownetctl --socket $WN_TMP/rv.sock nodes | grep -E '^b +[0-9a-f]+ +online'"
wn_check_not "nodes on a host is refused" CTL a nodes
wn_eq "refusal as JSON" "$(CTL a nodes --json 2>/dev/null | wn_json 'd["code"]')" FAILED_PRECONDITION

# --- path -------------------------------------------------------------------------
path_field() { CTL a path "$1" --json | wn_json "str(d.get('$2'))"; }
wn_eq "web is local on a" "$(path_field web path)" local
wn_eq "db before any traffic: no session" "$(path_field db path)" none
wn_check "web pings db" ip netns exec "${VM_NS[web]}" ping -c 2 -W 2 "${IP[db]}"
wn_wait_for 10 "direct path" bash -c "[ \"\$(ip netns exec ${NODE_NS[a]} $BIN/wownetctl --socket $WN_TMP/a.sock path db --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"path\"])')\" = direct ]" || true
wn_eq "db by VM name: direct" "$(path_field db path)" direct
wn_eq "db is on node b" "$(path_field db node_name)" b
wn_eq "db's address" "$(path_field db address)" "${IP[db]}"
wn_eq "db by host name: direct" "$(path_field db-host.wow path)" direct
wn_eq "db by address: VM db" "$(path_field "${IP[db]}" vm)" db
wn_eq "node b by name: direct" "$(path_field b path)" direct
wn_eq "the session's endpoint" "$(CTL a path db --json | wn_json 'd["peer"]["endpoint"]')" "192.0.2.12:7700"
wn_check "text output" bash -c "ip netns exec ${NODE_NS[a]} $BIN/wownetctl --socket $WN_TMP/a.sock path db | grep -q '^path direct, endpoint 192.0.2.12:7700'"
wn_check_not "unknown address refused" CTL a path 10.200.0.1
wn_eq "unknown name: NOT_FOUND" "$(CTL a path nosuchvm --json 2>/dev/null | wn_json 'd["code"]')" NOT_FOUND

# --- a node goes away -----------------------------------------------------------------
wn_stop "${NODE_PID[b]}"
wn_forget "${NODE_PID[b]}"
wn_check "b shows offline on the rendezvous" wn_wait_for 10 "b offline" \
  bash -c "[ \"\$(ip netns exec ${NODE_NS[rv]} $BIN/wownetctl --socket $WN_TMP/rv.sock nodes --json | python3 -c 'import json,sys; print([n[\"online\"] for n in json.load(sys.stdin)[\"nodes\"] if n[\"node_name\"] == \"b\"][0])')\" = False ]"
wn_eq "b keeps its lease while offline" "$(node_field b active_leases)" 1
wn_finish
