#!/usr/bin/env bash
# packaging/libvirt/qemu-hook driven by hand as libvirt would drive it (no
# libvirt here): domain XML on stdin, "DOMAIN OP SUBOP -" as arguments. The
# domain's <interface type='ethernet'> NICs are real TAPs in the host
# namespace, held open by tests/netns/tap_pair.py as qemu would hold them and
# relayed to TAPs in a VM namespace, where a real dhclient and wownet-agent
# run.
#
# Needs root. Run through ctest (label netns) or directly with
# WOWNET_BIN=build/bin WOWNET_SOURCE=. .
source "$(dirname "$0")/lib.sh"
BIN=${WOWNET_BIN:?set WOWNET_BIN to the directory holding wownet-hostd}
SRC=${WOWNET_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}
HOOK=$SRC/packaging/libvirt/qemu-hook
wn_require dhclient python3

wn_ns H host
wn_ns VM vm
# Only what the test sends leaves the VM (no IPv6 chatter before the checks).
ip netns exec "$VM" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
wn_hostd "$H" --log-level debug

# "qemu": the overlay NIC's TAP wn-web1 and the agent channel's wnc-web1.
MAC=52:54:00:4a:10:01
wn_spawn qemu ip netns exec "$H" python3 "$SRC/tests/netns/tap_pair.py" "/run/netns/$VM" wn-web1:eth0 wnc-web1:eth1
wn_wait_for 10 "the TAPs" bash -c "ip -n $VM link show eth1 && ip -n $H link show wnc-web1"
# As libvirt sets them up: the host TAP gets the guest MAC with fe: first, up.
ip -n "$H" link set wn-web1 address fe:54:00:4a:10:01 up
ip -n "$H" link set wnc-web1 address fe:54:00:4a:10:02
ip -n "$VM" link set eth0 address "$MAC" up
ip -n "$VM" link set eth1 address 52:54:00:4a:10:02 up

# hook DOMAIN OP SUBOP < XML: runs the hook in the host namespace as libvirt would.
hook() { ip netns exec "$H" env WOWNET_SOCKET="$SOCK" WOWNETCTL="$BIN/wownetctl" sh "$HOOK" "$@" -; }
vm_field() { "${CTL[@]}" list --json | wn_json "[a.get('$2') for a in d['attachments'] if a['vm']=='$1'] or ['absent']"; }
count() { "${CTL[@]}" list --json | wn_json 'len(d["attachments"])'; }

DOMAIN_XML="<domain type='kvm' id='7'>
  <name>web1</name>
  <uuid>6f1c0e1e-0d7e-4c55-9b1d-2d1d6a4b1a01</uuid>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <source file='/var/lib/libvirt/images/web1.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='network'>
      <mac address='52:54:00:4a:10:09'/>
      <source network='default'/>
      <target dev='vnet3'/>
      <model type='virtio'/>
    </interface>
    <interface type='ethernet'>
      <mac address='$MAC'/>
      <target dev='wn-web1' managed='no'/>
      <model type='virtio'/>
      <alias name='net1'/>
      <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
    </interface>
    <interface type='ethernet'>
      <mac address='52:54:00:4a:10:02'/>
      <target dev='wnc-web1'/>
      <model type='virtio'/>
    </interface>
    <console type='pty'><target type='serial' port='0'/></console>
  </devices>
</domain>"

# --- calls that must do nothing ----------------------------------------------------
for call in "prepare begin" "start begin" "migrate begin" "restore begin" "stopped end"; do
  # shellcheck disable=SC2086
  out=$(hook web1 $call <<<"$DOMAIN_XML" 2>&1) && rc=0 || rc=$?
  wn_eq "hook '$call': exit 0, no output" "$rc:$out" "0:"
done
wn_eq "nothing attached before 'started'" "$(count)" 0
# Without wownetctl (package removed, the hook left as a conffile): nothing.
for call in "started begin" "reconnect begin" "stopped end" "release end"; do
  # shellcheck disable=SC2086
  out=$(ip netns exec "$H" env WOWNETCTL="$WN_TMP/no-wownetctl" sh "$HOOK" web1 $call - <<<"$DOMAIN_XML" 2>&1) && rc=0 || rc=$?
  wn_eq "no wownetctl: '$call' exits 0 silently" "$rc:$out" "0:"
done
# A domain without wownet NICs never reaches wownetctl (a failing one here).
plain=$(sed "s/wn-web1/vnet7/; s/wnc-web1/vnet8/" <<<"$DOMAIN_XML")
wn_check "a domain without wn- NICs: started exits 0 without asking hostd" \
  ip netns exec "$H" env WOWNETCTL=/bin/false sh "$HOOK" other started begin - <<<"$plain"

# --- started: attach with the MAC and the agent channel -------------------------------
wn_check "hook 'started begin' attaches web1" hook web1 started begin <<<"$DOMAIN_XML"
wn_eq "attachment's VIF is the TAP wn-web1" "$(vm_field web1 vif)" "['wn-web1']"
wn_eq "its MAC is the domain's, known before any frame" "$(vm_field web1 mac)" "['$MAC']"
wn_eq "its agent channel is wnc-web1" "$(vm_field web1 agent_ifname)" "['wnc-web1']"
wn_eq "its state" "$(vm_field web1 state)" "['up']"
wn_eq "the channel TAP was brought up" "$(ip -n "$H" -o link show wnc-web1 | grep -c '[<,]UP[,>]')" 1
wn_check "reconnect begin (libvirtd restarted) keeps the attachment" hook web1 reconnect begin <<<"$DOMAIN_XML"
wn_eq "still one attachment" "$(count)" 1
wn_eq "the agent channel's host end has no IPv6 address" "$(ip -n "$H" -6 -o addr show dev wnc-web1)" ""
wn_eq "and IPv6 is off on it" "$(ip netns exec "$H" cat /proc/sys/net/ipv6/conf/wnc-web1/disable_ipv6)" 1
# hostd restores its attachments from its state file (after a host reboot
# the TAPs come back with the same names): started again must keep it.
out=$(hook web1 started begin <<<"$DOMAIN_XML" 2>&1) && rc=0 || rc=$?
wn_eq "started again for an attached domain (restored state): exit 0" "$rc:$out" "0:"
wn_eq "still one attachment, the same" "$(count):$(vm_field web1 vif):$(vm_field web1 agent_ifname)" "1:['wn-web1']:['wnc-web1']"
# The VM attached with another VIF, or without its agent channel: replaced.
ip -n "$H" link add wn-old type veth peer name wn-old-p
"${CTL[@]}" detach web1 >/dev/null
"${CTL[@]}" attach wn-old --vm web1 --mac "$MAC" >/dev/null
wn_check "started for a VM attached under another VIF exits 0" hook web1 started begin <<<"$DOMAIN_XML"
wn_eq "it is re-attached with wn-web1 and its channel" \
  "$(count):$(vm_field web1 vif):$(vm_field web1 agent_ifname)" "1:['wn-web1']:['wnc-web1']"
wn_check "wn-old is no longer a bridge port" bash -c "! ip -n $H -o link show wn-old | grep -q master"
"${CTL[@]}" detach web1 >/dev/null
"${CTL[@]}" attach wn-web1 --vm web1 --mac "$MAC" >/dev/null
wn_check "started for the VM attached without its agent channel exits 0" hook web1 started begin <<<"$DOMAIN_XML"
wn_eq "it is re-attached with the channel" "$(count):$(vm_field web1 vif):$(vm_field web1 agent_ifname)" \
  "1:['wn-web1']:['wnc-web1']"
"${CTL[@]}" detach web1 >/dev/null
"${CTL[@]}" attach wn-web1 --vm web1 --mac 52:54:00:4a:10:0f --agent-if wnc-web1 >/dev/null
wn_check "started for the VM attached with another MAC exits 0" hook web1 started begin <<<"$DOMAIN_XML"
wn_eq "it is re-attached with the domain's MAC" "$(count):$(vm_field web1 mac)" "1:['$MAC']"
wn_eq "its state" "$(vm_field web1 state)" "['up']"

# The first frame with another source MAC is already a spoofed one.
dropped() { "${CTL[@]}" list --json | wn_json "d['attachments'][0]['counters']['drops'].get('$1', 0)"; }
ip netns exec "$VM" python3 -c '
import socket
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
src = bytes.fromhex("525400999999")
arp = bytes.fromhex("0001080006040001") + src + bytes([10, 128, 0, 99]) + bytes(6) + bytes([10, 128, 0, 1])
for _ in range(3):
    s.send(b"\xff" * 6 + src + b"\x08\x06" + arp)
'
wn_wait_for 5 "spoofed_mac drops" bash -c "[ \$(${CTL[*]} list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"attachments\"][0][\"counters\"][\"drops\"].get(\"spoofed_mac\", 0))') -ge 3 ]" || true
wn_check "frames from another MAC are dropped as spoofed_mac ($(dropped spoofed_mac))" [ "$(dropped spoofed_mac)" -ge 3 ]
wn_eq "the MAC stays the domain's" "$(vm_field web1 mac)" "['$MAC']"

# --- the VM gets a lease through qemu's TAP, and its agent reports --------------------
wn_spawn dhclient ip netns exec "$VM" dhclient -d -v -4 -lf "$WN_TMP/dhclient.leases" -pf "$WN_TMP/dhclient.pid" eth0
DHCLIENT=$WN_LAST_PID
wn_wait_for 30 "lease in the VM" wn_has_lease "$VM" || true
IP=$(ip -n "$VM" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1 | head -1)
wn_check "the VM got an overlay address by DHCP: ${IP:-none}" [ -n "$IP" ]
wn_eq "hostd shows that address for web1" "$(vm_field web1 address)" "['$IP']"
wn_check "the VM pings its gateway" ip netns exec "$VM" ping -c 2 -i 0.2 -W 2 10.128.0.1
wn_stop "$DHCLIENT"
wn_forget "$DHCLIENT"
mkdir -p "$WN_TMP/agent"
wn_spawn agent ip netns exec "$VM" "$BIN/wownet-agent" --nic eth0 --channel eth1 --interval 1 \
  --dhcp-client none --state-dir "$WN_TMP/agent" --log-level debug
AGENT=$WN_LAST_PID
wn_check "the agent reports over wnc-web1" wn_wait_for 15 "agent report" bash -c \
  "${CTL[*]} list --json | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d[\"attachments\"][0][\"agent\"] else 1)'"
wn_stop "$AGENT"
wn_forget "$AGENT"

# --- stopped / release: detach -----------------------------------------------------
wn_check "hook 'stopped end' exits 0" hook web1 stopped end <<<"$DOMAIN_XML"
wn_eq "web1 is detached" "$(count)" 0
wn_check "hook 'release end' after it exits 0 (nothing left)" hook web1 release end <<<"$DOMAIN_XML"
wn_check "the TAP is no longer a bridge port" bash -c "! ip -n $H -o link show wn-web1 | grep -q master"

# --- other XML layouts, names and failures ------------------------------------------------
one_line=$(tr -d '\n' <<<"$DOMAIN_XML" | tr "'" '"' | sed 's/<target dev="wn-web1" managed="no"\/>/<target  managed = "no" dev = "wn-web1" \/>/')
wn_check "one-line XML, double quotes, spaced attributes: attaches" hook web1 started begin <<<"$one_line"
wn_eq "with the MAC" "$(vm_field web1 mac)" "['$MAC']"
hook web1 stopped end <<<"$one_line"
# web1's lease keeps its MAC for web1: another domain cannot take it over.
out=$(hook web2 started begin <<<"$DOMAIN_XML" 2>&1) && rc=0 || rc=$?
wn_check "another domain with web1's leased MAC is refused (exit $rc)" \
  bash -c "[ $rc = 1 ] && grep -q 'MAC $MAC belongs to another VM' <<<'$out'"
other_mac=$(sed "s/$MAC/52:54:00:4a:10:07/" <<<"$DOMAIN_XML")
wn_check "domain name 'web 1/x' is attached as VM web-1-x" hook 'web 1/x' started begin <<<"$other_mac"
wn_eq "VM name" "$("${CTL[@]}" list --json | wn_json '[a["vm"] for a in d["attachments"]]')" "['web-1-x']"
hook 'web 1/x' release end <<<"$other_mac"
wn_eq "release end detaches too" "$(count)" 0

two=$(sed "s#<target dev='vnet3'/>#<target dev='wn-second'/>#; s#type='network'#type='ethernet'#" <<<"$DOMAIN_XML")
out=$(hook web1 started begin <<<"$two" 2>&1) && rc=0 || rc=$?
wn_eq "two wn- NICs: refused" "$rc:$out" "1:wownet: more than one wn- interface; hostd takes one overlay NIC per VM"
out=$(ip netns exec "$H" env WOWNET_SOCKET="$WN_TMP/nosuch.sock" WOWNETCTL="$BIN/wownetctl" \
  sh "$HOOK" web1 started begin - <<<"$DOMAIN_XML" 2>&1) && rc=0 || rc=$?
wn_check "hostd unreachable: started fails (exit $rc) with wownetctl's reason" \
  bash -c "[ $rc = 1 ] && grep -q 'cannot connect to wownet-hostd' <<<'$out'"
# libvirt kills a running domain whose reconnect hook fails: never fail it.
out=$(ip netns exec "$H" env WOWNET_SOCKET="$WN_TMP/nosuch.sock" WOWNETCTL="$BIN/wownetctl" \
  sh "$HOOK" web1 reconnect begin - <<<"$DOMAIN_XML" 2>&1) && rc=0 || rc=$?
wn_check "hostd not running: reconnect exits 0 (exit $rc), says why on stderr" \
  bash -c "[ $rc = 0 ] && grep -q 'cannot connect to wownet-hostd' <<<'$out'"
badmac=$(sed "s/$MAC/01:00:5e:00:00:01/" <<<"$DOMAIN_XML")
out=$(hook web1 reconnect begin <<<"$badmac" 2>&1) && rc=0 || rc=$?
wn_check "hostd refuses: reconnect exits 0 (exit $rc), says why" \
  bash -c "[ $rc = 0 ] && grep -q 'MAC must be a unicast address' <<<'$out'"
out=$(hook web1 reconnect begin <<<"$two" 2>&1) && rc=0 || rc=$?
wn_eq "two wn- NICs: reconnect exits 0, says why" "$rc:$out" "0:wownet: more than one wn- interface; hostd takes one overlay NIC per VM"
out=$(hook web1 started begin <<<"$badmac" 2>&1) && rc=0 || rc=$?
wn_check "a multicast MAC is refused (exit $rc)" bash -c "[ $rc = 1 ] && grep -q 'MAC must be a unicast address' <<<'$out'"
wn_eq "nothing attached after the failures" "$(count)" 0

# --- wownetctl attach --mac directly -------------------------------------------------------
wn_check_not "attach --mac with a malformed MAC fails" "${CTL[@]}" attach wn-web1 --mac 52:54:00:zz:00:01
wn_check "attach --mac" "${CTL[@]}" attach wn-web1 --vm web1 --mac "$MAC"
ip -n "$H" link add wn-other type veth peer name wn-other-p
msg=$("${CTL[@]}" attach wn-other --vm other --mac "$MAC" 2>&1 || true)
wn_eq "another VM with the same MAC is refused" "$msg" "wownetctl: MAC $MAC belongs to another VM"
ip -n "$H" link add wn-tun type tuntap mode tun 2>/dev/null || ip -n "$H" tuntap add dev wn-tun mode tun
wn_check_not "a TUN (no Ethernet) is refused" "${CTL[@]}" attach wn-tun --vm tunvm
wn_eq "one attachment left" "$(count)" 1

wn_finish
