#!/usr/bin/env bash
# Lease administration with the overlay: the rendezvous' registry
# allocates, so its config's reservation gives VM db (on host b) its
# address; `wownetctl leases` on a host lists its own VMs' leases and
# `--all` the network's (the host's copy of the registry's table); `lease
# release` is refused on a host and, on the rendezvous, ends web's lease
# for every node (host a unbinds it and does not assert it again), stored
# in the registry's SQLite file across a restart of the rendezvous.
#
# Needs root. Run through ctest (label netns) or with WOWNET_BIN=build/bin.
source "$(dirname "$0")/lib.sh"
BIN=${WOWNET_BIN:?set WOWNET_BIN to the directory holding wownet-hostd}
for tool in dhclient jq python3; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool (scripts/install-deps.sh installs it)"; exit 1; }
done
CTL() { local n=$1; shift; ip netns exec "${NODE_NS[$n]}" "$BIN/wownetctl" --socket "$WN_TMP/$n.sock" "$@"; }

wn_pki_init "leases test"
declare -A NODE_NS NODE_IP=([rv]=192.0.2.10 [a]=192.0.2.11 [b]=192.0.2.12) NODE_PID
wn_underlay WAN
start_node() {
  wn_spawn "hostd-$1" ip netns exec "${NODE_NS[$1]}" "$BIN/wownet-hostd" --config "$WN_TMP/$1.toml"
  NODE_PID[$1]=$WN_LAST_PID
  wn_wait_for 10 "hostd $1" CTL "$1" status
}
for n in rv a b; do
  wn_node_cert "$n"
  wn_underlay_node "NODE_NS[$n]" "$WAN" "$n" "${NODE_IP[$n]}"
  role=host
  [[ $n == rv ]] && role=rendezvous
  wn_overlay_config "$n" "$role" "${NODE_IP[$n]}" debug
done
cat >>"$WN_TMP/rv.toml" <<'TOML'
[[dhcp.reservation]]
address = "10.128.0.77"
vm = "db"
name = "database"
TOML
for n in rv a b; do start_node "$n"; done

declare -A VM_NS VM_HOST=([web]=a [db]=b) IP DHCLIENT
for vm in web db; do
  h=${VM_HOST[$vm]}
  wn_ns "VM_NS[$vm]" "$vm"
  wn_veth "${NODE_NS[$h]}" "vif-$vm" "${VM_NS[$vm]}" eth0
  wn_check "attach $vm on $h" CTL "$h" attach "vif-$vm" --vm "$vm"
  wn_spawn "dhclient-$vm" ip netns exec "${VM_NS[$vm]}" dhclient -4 -d -pf "$WN_TMP/$vm.pid" \
    -lf "$WN_TMP/$vm.leases" eth0
  DHCLIENT[$vm]=$WN_LAST_PID
done
for vm in web db; do
  wn_wait_for 40 "lease in $vm" bash -c "ip -n ${VM_NS[$vm]} -4 -o addr show dev eth0 | grep -q 'inet 10\.'" || true
  IP[$vm]=$(ip -n "${VM_NS[$vm]}" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1)
  wn_check "$vm has a lease: ${IP[$vm]:-none}" [ -n "${IP[$vm]}" ]
done
[[ -n ${IP[web]} && -n ${IP[db]} ]] || { wn_finish; exit 1; }
wn_eq "db has the address the rendezvous reserves for it" "${IP[db]}" 10.128.0.77

# lease_of NODE ADDRESS [--all]: "STATE HOST_NAME" of ADDRESS's lease in NODE's list, or "none".
lease_of() {
  CTL "$1" leases ${3:-} --json |
    jq -r --arg a "$2" '[.leases[] | select(.kind == "lease" and .address == $a)] | if length == 0 then "none"
      else (.[0] | "\(.state) \(.host_name)") end'
}
wn_eq "the rendezvous lists the reservation" \
  "$(CTL rv leases --json | jq -c '.leases[] | select(.kind == "reservation") | [.address, .vm, .host_name]')" \
  '["10.128.0.77","db","database"]'
wn_eq "db's lease has the reserved name, on the rendezvous" "$(lease_of rv 10.128.0.77 --all)" "bound database"
wn_check "and on host b" wn_wait_for 10 "b's copy" eval '[ "$(lease_of b 10.128.0.77)" = "bound database" ]'
wn_eq "leases on host a: its own VM's" "$(CTL a leases --json | jq -c '[.leases[] | .address]')" "[\"${IP[web]}\"]"
wn_eq "leases --all on host a: the network's" \
  "$(CTL a leases --all --json | jq -c '[.leases[] | select(.state == "bound") | .address] | sort')" \
  "$(printf '%s\n' "${IP[web]}" 10.128.0.77 | sort | jq -R . | jq -sc .)"
wn_check "the text of --all names the node of each lease" \
  grep -qE '^lease +10\.128\.0\.77 .* [0-9a-f]{16,}$' <<<"$(CTL a leases --all)"

# --- the admin's release -------------------------------------------------------------
wn_eq "lease release on a host is refused" "$(CTL a --json lease release "${IP[web]}" 2>/dev/null | jq -r .code)" \
  FAILED_PRECONDITION
# web stops using its address first (else host a would learn it again).
wn_stop "${DHCLIENT[web]}"
wn_forget "${DHCLIENT[web]}"
ip -n "${VM_NS[web]}" addr flush dev eth0
wn_check "lease release on the rendezvous" CTL rv lease release "${IP[web]}"
wn_check_not "the rendezvous no longer lists it as bound" grep -q '^bound' <<<"$(lease_of rv "${IP[web]}" --all)"
web_address() { CTL a list --json | jq -r '.attachments[] | select(.vm == "web") | .address'; }
wn_check "host a unbinds web" wn_wait_for 10 "web unbound" eval '[ "$(web_address)" = null ]'
wn_check "host a's copy drops the lease" wn_wait_for 40 "a's copy" eval '[ "$(lease_of a "${IP[web]}" --all)" = none ]'
wn_check "the rendezvous drops the record" wn_wait_for 10 "rv record" eval '[ "$(lease_of rv "${IP[web]}" --all)" = none ]'

# --- stored: a restarted rendezvous has it ended too, and host a, which
# asserts its VMs' leases again when the rendezvous comes back, has none ---
wn_stop "${NODE_PID[rv]}"
wn_forget "${NODE_PID[rv]}"
start_node rv
wn_check "db's lease is back in the restarted registry" wn_wait_for 20 "rv's table" \
  eval '[ "$(lease_of rv 10.128.0.77 --all)" = "bound database" ]'
wn_check "host a is back" wn_wait_for 20 "a registered" eval '[ "$(CTL rv nodes --json | jq -r ".nodes[] | select(.node_name == \"a\") | .online")" = true ]'
wn_eq "web's lease stays ended" "$(lease_of rv "${IP[web]}" --all)" none
wn_finish
