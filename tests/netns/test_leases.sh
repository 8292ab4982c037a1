#!/usr/bin/env bash
# Lease administration on a standalone host, end to end with real dhclient
# and dig: a MAC reservation and a VM-name reservation give their VMs the
# reserved addresses (and the reserved DNS name), a static name resolves
# (A and PTR), `wownetctl leases` lists reservations and static names, an
# admin's `wownetctl lease release` ends a lease at once and the release
# survives a restart of hostd; a static name added by SIGHUP resolves;
# --check-config names a bad reservation's key.
#
# Needs root. Run through ctest (label netns) or directly with
# WOWNET_BIN=build/bin.
source "$(dirname "$0")/lib.sh"
BIN=${WOWNET_BIN:?set WOWNET_BIN to the directory holding wownet-hostd}
for tool in dhclient dig jq python3; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool (scripts/install-deps.sh installs it)"; exit 1; }
done

wn_ns H host
declare -A VM MAC
for i in 1 2 3; do
  wn_ns VM[$i] "vm$i"
  wn_veth "$H" "vif$i" "${VM[$i]}" eth0
  MAC[$i]=$(ip -n "${VM[$i]}" -o link show eth0 | sed -E 's/.*link\/ether ([0-9a-f:]+).*/\1/')
done

STATE="$WN_TMP/state"
SOCK="$WN_TMP/hostd.sock"
CONF="$WN_TMP/hostd.toml"
CTL=(ip netns exec "$H" "$BIN/wownetctl" --socket "$SOCK")
write_config() {  # write_config [EXTRA]: the reservations, a static name, and EXTRA
  cat >"$CONF" <<EOF
[hostd]
log_level = "debug"
[network]
lease_time = 3600
[[dhcp.reservation]]
address = "10.128.0.50"
mac = "${MAC[1]}"
name = "fileserver"
[[dhcp.reservation]]
address = "10.128.0.60"
vm = "vm2"
[[dns.static]]
name = "printer"
address = "10.128.0.40"
${1:-}
EOF
}

# --- --check-config names a bad reservation -------------------------------------
write_config '[[dhcp.reservation]]
address = "10.128.0.50"
vm = "vm3"'
msg=$("$BIN/wownet-hostd" --check-config --config "$CONF" 2>&1 || true)
wn_check "--check-config refuses a second reservation of one address" \
  grep -q 'dhcp.reservation\[2\].address: 10.128.0.50 is reserved already by dhcp.reservation\[0\]' <<<"$msg"
write_config
wn_check "--check-config accepts the reservations" "$BIN/wownet-hostd" --check-config --config "$CONF"

start_hostd() {
  wn_spawn hostd ip netns exec "$H" "$BIN/wownet-hostd" --config "$CONF" --state-dir "$STATE" --control-socket "$SOCK"
  HOSTD=$WN_LAST_PID
  wn_wait_for 10 "hostd control socket" "${CTL[@]}" status
}
start_hostd
for i in 1 2 3; do wn_check "attach vm$i" "${CTL[@]}" attach "vif$i" --vm "vm$i"; done

dhcp() {  # dhcp VM-INDEX: one dhclient run in the VM (its own lease and pid files)
  ip netns exec "${VM[$1]}" timeout 30 dhclient -4 -1 -pf "$WN_TMP/vm$1.pid" -lf "$WN_TMP/vm$1.leases" eth0
}
addr_of() { ip -n "${VM[$1]}" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1 | head -1; }
ask() { ip netns exec "${VM[3]}" dig +time=2 +tries=2 +short "$@" @10.128.0.1; }
leases_json() { "${CTL[@]}" leases --json; }

# --- reservations over DHCP -----------------------------------------------------
for i in 1 2 3; do wn_check "vm$i gets a lease" dhcp "$i"; done
wn_eq "vm1 (reserved by MAC) has its address" "$(addr_of 1)" 10.128.0.50
wn_eq "vm2 (reserved by VM name) has its address" "$(addr_of 2)" 10.128.0.60
IP3=$(addr_of 3)
wn_check "vm3 has a pool address, not a reserved one ($IP3)" \
  bash -c "[[ '$IP3' == 10.128.* && '$IP3' != 10.128.0.50 && '$IP3' != 10.128.0.60 && '$IP3' != 10.128.0.40 ]]"

# --- names: the reserved one and the static one ---------------------------------
wn_eq "the reserved name resolves" "$(ask fileserver.wow A)" 10.128.0.50
wn_eq "the static name resolves" "$(ask printer.wow A)" 10.128.0.40
wn_eq "the static address has the static PTR" "$(ask -x 10.128.0.40)" printer.wow.

# --- leases lists reservations and static names ---------------------------------
j=$(leases_json)
wn_eq "two reservations, one static name, three leases" \
  "$(jq -c '[.leases[] | .kind] | group_by(.) | map({(.[0]): length}) | add' <<<"$j")" \
  '{"lease":3,"reservation":2,"static":1}'
wn_eq "vm1's lease carries the reserved name" \
  "$(jq -r '.leases[] | select(.kind == "lease" and .address == "10.128.0.50") | .host_name' <<<"$j")" fileserver
wn_eq "the VM reservation" \
  "$(jq -c '.leases[] | select(.kind == "reservation" and .address == "10.128.0.60") | [.vm, .mac, .state, .origin]' <<<"$j")" \
  '["vm2",null,"reserved","config"]'
wn_eq "the static name" \
  "$(jq -c '.leases[] | select(.kind == "static") | [.address, .host_name, .expiry_unix]' <<<"$j")" \
  '["10.128.0.40","printer",null]'
text=$("${CTL[@]}" leases)
wn_check "the text output shows the static name" grep -qE '^static +10\.128\.0\.40 ' <<<"$text"
wn_check "the text output shows the MAC reservation" grep -qE "^reservation +10\.128\.0\.50 +${MAC[1]} " <<<"$text"
wn_eq "--all on a standalone host lists the same" "$("${CTL[@]}" leases --all --json | jq -c '.leases | length')" 6

# --- the admin ends vm3's lease ----------------------------------------------------
# vm3 stops using the address first (else hostd would learn it again from
# its traffic, as it does for any VM configured by hand).
kill "$(cat "$WN_TMP/vm3.pid")" 2>/dev/null || true
ip -n "${VM[3]}" addr flush dev eth0
wn_check "lease release $IP3" "${CTL[@]}" lease release "$IP3"
wn_eq "the lease is gone from leases" \
  "$(leases_json | jq -r --arg a "$IP3" '[.leases[] | select(.address == $a)] | length')" 0
wn_eq "vm3's attachment holds no address" \
  "$("${CTL[@]}" list --json | jq -r '.attachments[] | select(.vm == "vm3") | .address')" null
msg=$("${CTL[@]}" lease release "$IP3" 2>&1 || true)
wn_eq "releasing it again: no such lease" "$msg" "wownetctl: no lease of $IP3"
wn_eq "a release of a non-address is refused, in JSON too" \
  "$("${CTL[@]}" --json lease release nonsense | jq -r .code)" INVALID_ARGUMENT

# --- persisted across a restart ---------------------------------------------------
wn_stop "$HOSTD"
wn_forget "$HOSTD"
start_hostd
j=$(leases_json)
wn_eq "after a restart the released lease stays gone" \
  "$(jq -r --arg a "$IP3" '[.leases[] | select(.address == $a)] | length' <<<"$j")" 0
wn_eq "after a restart vm1's reserved lease is there" \
  "$(jq -r '.leases[] | select(.kind == "lease" and .address == "10.128.0.50") | .state' <<<"$j")" bound
wn_check "vm3 gets a new lease" dhcp 3
IP3=$(addr_of 3)
wn_check "vm3's new address is leased (${IP3:-none})" bash -c \
  "${CTL[*]} leases --json | jq -e --arg a '$IP3' '.leases[] | select(.kind == \"lease\" and .address == \$a)'"

# --- a static name added by SIGHUP ------------------------------------------------
write_config '[[dns.static]]
name = "nas"
address = "10.128.0.41"'
kill -HUP "$HOSTD"
wn_check "a static name added by a reload resolves" wn_wait_for 10 "nas.wow" bash -c \
  "[ \"\$(ip netns exec ${VM[3]} dig +time=1 +tries=1 +short nas.wow @10.128.0.1)\" = 10.128.0.41 ]"

wn_finish
