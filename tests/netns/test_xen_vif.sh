#!/usr/bin/env bash
# packaging/xen/vif-wownet driven by hand as libxl would drive it, without
# Xen: the test puts stub xenstore-read/-write/-list (a directory tree) first
# on PATH, and veth pairs play the domains' vifs. Covers the overlay vif, the
# agent channel vif (bridge=wownet-agent) in either order, hotplug-status and
# hotplug-error, HVM emulated NICs, and detach.
#
# Needs root. Run through ctest (label netns) or directly with
# WOWNET_BIN=build/bin WOWNET_SOURCE=. .
source "$(dirname "$0")/lib.sh"
BIN=${WOWNET_BIN:?set WOWNET_BIN to the directory holding wownet-hostd}
SRC=${WOWNET_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}
SCRIPT=$SRC/packaging/xen/vif-wownet
wn_require dhclient python3

# --- xenstore stubs: node PATH is the directory $XS/PATH, its value in .v ---------
XS=$WN_TMP/xenstore
STUBS=$WN_TMP/stubs
mkdir -p "$XS" "$STUBS"
cat >"$STUBS/xenstore-read" <<STUB
#!/bin/bash
# stub: xenstore-read PATH
f="$XS/\${1#/}/.v"
[ -f "\$f" ] || { echo "xenstore-read: couldn't read path \$1" >&2; exit 1; }
cat "\$f"; echo
STUB
cat >"$STUBS/xenstore-write" <<STUB
#!/bin/bash
# stub: xenstore-write PATH VALUE [PATH VALUE]...
while [ \$# -ge 2 ]; do
  mkdir -p "$XS/\${1#/}" && printf '%s' "\$2" >"$XS/\${1#/}/.v"
  shift 2
done
STUB
cat >"$STUBS/xenstore-list" <<STUB
#!/bin/bash
# stub: xenstore-list PATH
[ -d "$XS/\${1#/}" ] || { echo "xenstore-list: couldn't list path \$1" >&2; exit 1; }
ls "$XS/\${1#/}"
STUB
chmod +x "$STUBS"/*
xs_write() { "$STUBS/xenstore-write" "$@"; }
xs_read() { "$STUBS/xenstore-read" "$1" 2>/dev/null || true; }

wn_ns H host
wn_hostd "$H" --log-level debug

# vif DEV ARGS...: runs the script as libxl would for vif DEV of backend
# path backend/vif/D/N (from DEV = vifD.N), in the host namespace.
vif() {
  local dev=$1 d n
  shift
  d=${dev#vif}
  n=${d#*.}
  d=${d%%.*}
  n=${n%%-*}
  ip netns exec "$H" env PATH="$STUBS:$PATH" vif="$dev" XENBUS_PATH="backend/vif/$d/$n" \
    WOWNETCTL="${VIF_CTL:-$BIN/wownetctl}" WOWNET_SOCKET="${VIF_SOCKET:-$SOCK}" WOWNET_AGENT_WAIT="${VIF_WAIT:-10}" \
    bash "$SCRIPT" "$@"
}
# domain D NAME: its xenstore nodes, overlay vif D.0, agent channel vif D.1.
domain() {
  xs_write "/local/domain/$1/name" "$2"
  xs_write "backend/vif/$1/0/frontend-id" "$1" "backend/vif/$1/0/mac" "00:16:3e:00:0$1:00"
  xs_write "backend/vif/$1/1/frontend-id" "$1" "backend/vif/$1/1/bridge" wownet-agent
}
vm_field() { "${CTL[@]}" list --json | wn_json "[a.get('$2') for a in d['attachments'] if a['vm']=='$1'] or ['absent']"; }
count() { "${CTL[@]}" list --json | wn_json 'len(d["attachments"])'; }
is_up() { ip -n "$H" -o link show "$1" | grep -q '[<,]UP[,>]'; }

wn_check "no real xenstore tools are used" bash -c "PATH=$STUBS:\$PATH; [ \"\$(command -v xenstore-read)\" = $STUBS/xenstore-read ]"

# --- domain 5: the agent channel's vif comes online first ----------------------------
wn_ns VM5 vm5
domain 5 web1
wn_veth "$H" vif5.0 "$VM5" eth0
ip link add vif5.1 netns "$H" type veth peer name eth1 netns "$VM5"
ip -n "$VM5" link set eth1 up
wn_check "online of the agent channel vif5.1 succeeds" vif vif5.1 online type_if=vif
wn_eq "vif5.1 hotplug-status" "$(xs_read backend/vif/5/1/hotplug-status)" connected
wn_check "vif5.1 was brought up" is_up vif5.1
no_ipv6() { ip netns exec "$H" cat "/proc/sys/net/ipv6/conf/$1/disable_ipv6"; }
wn_eq "IPv6 is off on vif5.1 (dotted name)" "$(no_ipv6 vif5.1)" 1
wn_eq "vif5.1 has no IPv6 address" "$(ip -n "$H" -6 -o addr show dev vif5.1)" ""
wn_eq "the agent channel alone attaches nothing" "$(count)" 0
wn_check "online of the overlay vif5.0 succeeds" vif vif5.0 online type_if=vif
wn_eq "vif5.0 hotplug-status" "$(xs_read backend/vif/5/0/hotplug-status)" connected
wn_eq "vm web1's VIF" "$(vm_field web1 vif)" "['vif5.0']"
wn_eq "vm web1's agent channel" "$(vm_field web1 agent_ifname)" "['vif5.1']"

mkdir -p "$WN_TMP/agent5"
wn_spawn agent5 ip netns exec "$VM5" "$BIN/wownet-agent" --nic eth0 --channel eth1 --interval 1 \
  --dhcp-client dhclient --state-dir "$WN_TMP/agent5" --log-level debug
wn_wait_for 30 "lease in vm5" wn_has_lease "$VM5" || true
IP5=$(ip -n "$VM5" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1 | head -1)
wn_check "web1 got an overlay address by DHCP: ${IP5:-none}" [ -n "$IP5" ]
wn_check "web1's agent reports arrive over vif5.1" wn_wait_for 15 "agent report" bash -c \
  "${CTL[*]} list --json | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d[\"attachments\"][0][\"agent\"] else 1)'"

# --- domain 6: the overlay vif first, its agent channel appears a second later -------
wn_ns VM6 vm6
domain 6 "db 2--incoming"
wn_veth "$H" vif6.0 "$VM6" eth0
(sleep 1 && ip link add vif6.1 netns "$H" type veth peer name eth1 netns "$VM6") &
LATE=$!
wn_check "online of vif6.0 waits for its agent channel vif6.1" vif vif6.0 online type_if=vif
wait "$LATE"
wn_eq "vm name from 'db 2--incoming' (migration suffix dropped)" "$(vm_field db-2 agent_ifname)" "['vif6.1']"
wn_check "vif6.1 was brought up" is_up vif6.1
wn_eq "IPv6 is off on vif6.1" "$(no_ipv6 vif6.1)" 1
wn_check "online of vif6.1 afterwards succeeds" vif vif6.1 online type_if=vif
wn_eq "two attachments" "$(count)" 2

# --- failures ------------------------------------------------------------------------
wn_ns VM7 vm7
domain 7 lonely
wn_veth "$H" vif7.0 "$VM7" eth0
VIF_WAIT=1 vif vif7.0 online type_if=vif 2>/dev/null && rc=0 || rc=$?
wn_eq "an agent channel that never appears fails the online" "$rc" 1
wn_eq "vif7.0 hotplug-status" "$(xs_read backend/vif/7/0/hotplug-status)" error
wn_check "hotplug-error says why ($(xs_read backend/vif/7/0/hotplug-error))" \
  bash -c "grep -q 'agent channel vif7.1 did not appear within 1s' <<<'$(xs_read backend/vif/7/0/hotplug-error)'"
xs_write backend/vif/7/2/bridge wownet-agent
ip link add vif7.1 netns "$H" type veth peer name eth1 netns "$VM7"
ip link add vif7.2 netns "$H" type veth peer name eth2 netns "$VM7"
vif vif7.0 online type_if=vif 2>/dev/null && rc=0 || rc=$?
wn_check "two agent channel vifs: refused with a reason" \
  bash -c "[ $rc = 1 ] && grep -q 'more than one vif with bridge=wownet-agent' <<<'$(xs_read backend/vif/7/0/hotplug-error)'"
"$STUBS/xenstore-write" backend/vif/7/2/bridge ""
VIF_SOCKET=$WN_TMP/nosuch.sock vif vif7.0 online type_if=vif 2>/dev/null && rc=0 || rc=$?
wn_check "hostd unreachable: online fails with wownetctl's reason" \
  bash -c "[ $rc = 1 ] && grep -q 'cannot connect to wownet-hostd' <<<'$(xs_read backend/vif/7/0/hotplug-error)'"
wn_check "an HVM guest's emulated NIC (type_if=tap) is left alone" vif vif7.0-emu add type_if=tap
wn_eq "still two attachments" "$(count)" 2
wn_check "with both vifs in place, vif7.0 attaches" vif vif7.0 online type_if=vif
wn_eq "vm lonely's agent channel" "$(vm_field lonely agent_ifname)" "['vif7.1']"

# Without wownetctl (package removed, script left as a conffile).
VIF_CTL=$WN_TMP/no-wownetctl vif vif7.0 online type_if=vif 2>/dev/null && rc=0 || rc=$?
wn_check "no wownetctl: online fails (exit $rc), hotplug-error says so" \
  bash -c "[ $rc = 1 ] && grep -q 'no-wownetctl is not installed' <<<'$(xs_read backend/vif/7/0/hotplug-error)'"
out=$(VIF_CTL=$WN_TMP/no-wownetctl vif vif7.0 offline type_if=vif 2>&1) && rc=0 || rc=$?
wn_eq "no wownetctl: offline exits 0 silently" "$rc:$out" "0:"
wn_eq "and leaves lonely attached" "$(vm_field lonely vif)" "['vif7.0']"

# --- stale attachments (hostd was down at offline, or restored them) -------------------
wn_ns VM8 vm8
domain 8 fresh
wn_veth "$H" vif8.0 "$VM8" eth0
ip link add vif8.1 netns "$H" type veth peer name eth1 netns "$VM8"
"${CTL[@]}" attach vif8.0 --vm ghost >/dev/null
wn_check "online of a vif that is another VM's VIF in hostd succeeds" vif vif8.0 online type_if=vif
wn_eq "vm fresh has vif8.0, ghost is gone" "$(vm_field fresh vif):$(vm_field ghost vif)" "['vif8.0']:['absent']"
n=$(count)
wn_check "online again with hostd's attachment of the same VM and vif (restored) succeeds" \
  vif vif8.0 online type_if=vif
wn_eq "still vm fresh on vif8.0 with its channel, no new attachment" \
  "$(count):$(vm_field fresh vif):$(vm_field fresh agent_ifname)" "$n:['vif8.0']:['vif8.1']"

# --- offline -------------------------------------------------------------------------
wn_check "offline of the agent channel vif5.1 succeeds" vif vif5.1 offline type_if=vif
wn_eq "and leaves web1 attached" "$(vm_field web1 vif)" "['vif5.0']"
wn_check "offline of vif5.0 succeeds" vif vif5.0 offline type_if=vif
wn_eq "web1 is detached" "$(vm_field web1 vif)" "['absent']"
wn_check "offline of a vif hostd does not know still succeeds" vif vif5.0 offline type_if=vif
wn_check "the VIF is no longer a bridge port" bash -c "! ip -n $H -o link show vif5.0 | grep -q master"

wn_finish
