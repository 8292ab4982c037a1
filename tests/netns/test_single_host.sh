#!/usr/bin/env bash
# Single-host wownet, end to end: one host namespace running wownet-hostd,
# three VM namespaces (each with a VIF veth and a host-only agent channel),
# real dhclient and udhcpc driven by wownet-agent, real dig, ping, iperf3.
# Also an "underlay" namespace standing for the host's physical network.
#
# Needs root. Run through ctest (label netns) or directly with
# WOWNET_BIN=build/bin.
source "$(dirname "$0")/lib.sh"
BIN=${WOWNET_BIN:?set WOWNET_BIN to the directory holding wownet-hostd}
wn_require dhclient busybox dig ping iperf3 python3

wn_ns H host
wn_ns U underlay
declare -A VM CLIENT NAME
CLIENT=([1]=dhclient [2]=udhcpc [3]=dhclient)
NAME=([1]=alpha [2]=bravo [3]=charlie)
for i in 1 2 3; do
  wn_vm "VM[$i]" "$H" "vm$i" "vif$i" "ch$i" "$i"
done
# VM 4 is configured statically (no DHCP, no agent).
wn_ns VM4 vm4
wn_veth "$H" vif4 "$VM4" eth0
# The host's own uplink, which VMs must never reach.
wn_uplink "$H" "$U"
ip -n "$H" link set lo up

wn_hostd "$H" --log-level debug

# --- control socket hygiene ----------------------------------------------------
wn_eq "control socket is root-only" "$(stat -c %a "$SOCK")" 600
ip netns exec "$H" python3 -c '
import os, socket, struct, time
path = os.environ.get("SOCK") or "'"$SOCK"'"
def send(data, read=True):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(3)
    for _ in range(50):
        try:
            s.connect(path)
            break
        except BlockingIOError:  # backlog full: hostd is catching up
            time.sleep(0.05)
    s.sendall(data)
    try:
        return s.recv(4096) if read else b""
    except socket.timeout:
        return b""
    finally:
        s.close()
send(struct.pack(">I", 0x7fffffff))               # absurd length
send(struct.pack(">I", 8) + os.urandom(8))        # garbage protobuf
send(b"\x00\x00", read=False)                     # truncated header, then hang up
for _ in range(50):                               # connection churn
    send(b"", read=False)
'
wn_check "hostd survives garbage on its control socket" "${CTL[@]}" status
# A stray device of ours with no attachment, as left by an earlier life.
ip -n "$H" link add wnb99 type bridge

# --- attachment errors -------------------------------------------------------
wn_check_not "attach of a missing interface fails" "${CTL[@]}" attach nosuchif
msg=$("${CTL[@]}" attach nosuchif 2>&1 || true)
wn_eq "the failure names the interface" "$msg" "wownetctl: no interface named nosuchif"
wn_check_not "attach of loopback fails (not Ethernet)" "${CTL[@]}" attach lo

for i in 1 2 3; do
  wn_check "attach vm$i" "${CTL[@]}" attach "vif$i" --vm "vm$i" --agent-if "ch$i"
done
wn_check "attach vm4 (static, no agent)" "${CTL[@]}" attach vif4 --vm vm4
wn_check_not "attaching vif1 twice fails" "${CTL[@]}" attach vif1 --vm again
wn_check_not "attaching a bridge of ours fails" "${CTL[@]}" attach wnb1

# --- agents drive the real DHCP clients --------------------------------------
for i in 1 2 3; do
  wn_agent "agent$i" "${VM[$i]}" "${NAME[$i]}" "${CLIENT[$i]}"
  AGENT[$i]=$WN_LAST_PID
done

addr_of() { wn_addr "${VM[$1]}"; }
for i in 1 2 3; do
  wn_wait_for 30 "lease in vm$i" wn_has_lease "${VM[$i]}" || true
  IP[$i]=$(addr_of "$i")
  wn_check "vm$i (${CLIENT[$i]}) has an overlay address: ${IP[$i]:-none}" [ -n "${IP[$i]}" ]
done
wn_check "the three addresses are distinct" \
  test "$(printf '%s\n' "${IP[1]}" "${IP[2]}" "${IP[3]}" | sort -u | wc -l)" = 3
for i in 1 2; do
  wn_eq "vm$i prefix" "$(ip -n "${VM[$i]}" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f2)" 9
  wn_eq "vm$i default router" "$(ip -n "${VM[$i]}" route show default | awk '{print $3}')" 10.128.0.1
  wn_eq "vm$i DNS server" "$(awk '/^nameserver/{print $2; exit}' "/etc/netns/${VM[$i]}/resolv.conf")" 10.128.0.1
  wn_eq "vm$i MTU" "$(ip -n "${VM[$i]}" -o link show eth0 | sed -E 's/.* mtu ([0-9]+).*/\1/')" 1400
done

# --- agent reports -------------------------------------------------------------
wn_check "agent reports reach hostd with host names" wn_wait_for 15 "agent host names" bash -c \
  "${CTL[*]} list --json | python3 -c 'import json,sys; d=json.load(sys.stdin); \
   names=sorted(a[\"agent\"][\"host_name\"] for a in d[\"attachments\"] if a[\"agent\"]); \
   sys.exit(0 if names==[\"alpha\",\"bravo\",\"charlie\"] else 1)'"
# The agent channel is a VM-facing device of the host's own stack: hostd
# takes IPv6 and ARP off it, so a VM finds no link-local address and gets
# no ARP answer for the host's address there (reports still arrive).
wn_eq "no IPv6 address on the host's end of vm1's agent channel" \
  "$(ip -n "$H" -6 -o addr show dev ch1 | wc -l)" 0
wn_check "ARP off on the host's end of vm1's agent channel" bash -c "ip -n $H -o link show dev ch1 | grep -q NOARP"
wn_check_not "vm1 cannot reach the host's address on its agent channel" \
  ip netns exec "${VM[1]}" ping -c 2 -W 1 169.254.1.1
age=$("${CTL[@]}" list --json | wn_json 'max(a["agent"]["age_seconds"] for a in d["attachments"] if a["agent"])')
wn_check "last agent reports are fresh (max age ${age}s)" [ "$age" -le 5 ]

# --- DNS -----------------------------------------------------------------------
auto() { IFS=. read -r _ b c d <<<"$1"; printf 'C%03d%03d%03d' "$b" "$c" "$d"; }
dig1() { ip netns exec "${VM[1]}" dig +time=2 +tries=2 +short "$@"; }
wn_eq "dig auto name of vm2" "$(dig1 "$(auto "${IP[2]}").wow")" "${IP[2]}"
wn_eq "dig auto name of vm3, upper/lower case mixed" "$(dig1 "$(auto "${IP[3]}" | tr C c).WoW")" "${IP[3]}"
wn_eq "dig host name of vm2 (from DHCP/agent)" "$(dig1 bravo.wow)" "${IP[2]}"
wn_eq "dig host name of vm3 via search domain" "$(ip netns exec "${VM[1]}" dig +short +search charlie)" "${IP[3]}"
wn_eq "dig PTR of vm2" "$(dig1 -x "${IP[2]}")" "bravo.wow."
wn_eq "dig gateway" "$(dig1 gateway.wow)" "10.128.0.1"
wn_check "unknown name in the domain is NXDOMAIN" bash -c \
  "ip netns exec ${VM[1]} dig +time=2 nosuchvm.wow | grep -q 'status: NXDOMAIN'"
wn_check "other domains are REFUSED" bash -c \
  "ip netns exec ${VM[1]} dig +time=2 example.com | grep -q 'status: REFUSED'"

# --- traffic between VMs -------------------------------------------------------
wn_check "vm1 pings vm2" ip netns exec "${VM[1]}" ping -c 3 -i 0.2 -W 2 "${IP[2]}"
wn_check "vm2 pings vm3" ip netns exec "${VM[2]}" ping -c 3 -i 0.2 -W 2 "${IP[3]}"
wn_check "vm1 pings the gateway" ip netns exec "${VM[1]}" ping -c 2 -i 0.2 -W 2 10.128.0.1
wn_check "vm3 pings vm1 by name" ip netns exec "${VM[3]}" ping -c 2 -i 0.2 -W 2 alpha.wow
wn_check_iperf "iperf3 vm1 -> vm2 moves data" "${VM[1]}" "${VM[2]}" "${IP[2]}"

# --- a statically configured VM is learned from its traffic ------------------
ip -n "$VM4" addr add 10.128.0.77/9 dev eth0
ip -n "$VM4" route add default via 10.128.0.1
wn_check "static vm4 reaches vm1" wn_wait_for 10 "vm4 -> vm1" ip netns exec "$VM4" ping -c 1 -W 1 "${IP[1]}"
origin=$("${CTL[@]}" leases --json | wn_json '[l["origin"] for l in d["leases"] if l["address"]=="10.128.0.77"]')
wn_eq "vm4's address is registered as a learned lease" "$origin" "['learned']"
wn_eq "vm4's automatic name resolves" "$(dig1 C128000077.wow)" "10.128.0.77"
offer=$(ip netns exec "${VM[2]}" busybox udhcpc -i eth0 -n -q -s /bin/true -r 10.128.0.77 -t 3 2>&1 | grep -o 'lease of [0-9.]*' || true)
wn_check "DHCP does not hand vm4's address to another VM ($offer)" [ "$offer" != "lease of 10.128.0.77" ]

# --- policing ------------------------------------------------------------------
dropped() { "${CTL[@]}" list --json | wn_json "[a for a in d['attachments'] if a['vm']=='$1'][0]['counters']['drops'].get('$2', 0)"; }
before=$(dropped vm3 spoofed_ip)
ip -n "${VM[3]}" addr add 10.128.0.200/9 dev eth0
wn_check_not "vm3 gets nothing through from a foreign address" \
  ip netns exec "${VM[3]}" ping -c 3 -i 0.2 -W 1 -I 10.128.0.200 "${IP[1]}"
wn_check_not "vm3 cannot use vm1's address either" bash -c \
  "ip -n ${VM[3]} addr add ${IP[1]}/32 dev eth0 2>/dev/null; ip netns exec ${VM[3]} ping -c 2 -i 0.2 -W 1 -I ${IP[1]} ${IP[2]}"
ip -n "${VM[3]}" addr del 10.128.0.200/9 dev eth0
ip -n "${VM[3]}" addr del "${IP[1]}/32" dev eth0 2>/dev/null || true
after=$(dropped vm3 spoofed_ip)
wn_check "spoofed_ip drops of vm3 rose ($before -> $after)" [ "$after" -gt "$before" ]
wn_check "vm3 still reaches vm1 from its own address" ip netns exec "${VM[3]}" ping -c 2 -i 0.2 -W 2 "${IP[1]}"

before=$(dropped vm1 outside_overlay)
wn_check_not "vm1 cannot reach the host's uplink address" ip netns exec "${VM[1]}" ping -c 2 -i 0.2 -W 1 192.0.2.1
wn_check_not "vm1 cannot reach the underlay" ip netns exec "${VM[1]}" ping -c 2 -i 0.2 -W 1 192.0.2.2
after=$(dropped vm1 outside_overlay)
wn_check "outside_overlay drops of vm1 rose ($before -> $after)" [ "$after" -gt "$before" ]
# Straight at the bridge, bypassing hostd's gateway: the host's stack must not answer.
BRMAC=$(ip -n "$H" -o link show wnb1 | sed -E 's/.*link\/ether ([0-9a-f:]+).*/\1/')
ip -n "${VM[1]}" route add 192.0.2.1/32 dev eth0
ip -n "${VM[1]}" neigh replace 192.0.2.1 lladdr "$BRMAC" dev eth0
wn_check_not "vm1 cannot reach the host through its bridge's MAC" \
  ip netns exec "${VM[1]}" ping -c 2 -i 0.2 -W 1 192.0.2.1
ip -n "${VM[1]}" route del 192.0.2.1/32 dev eth0

# An agent report from anywhere but a VM's channel is ignored.
ignored_before=$("${CTL[@]}" status --json | wn_json 'int(d["agent_reports_ignored"])')
ip netns exec "$U" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"WNA1" + b"\x12\x04evil", ("192.0.2.1", 6570))'
wn_check "forged agent report from the underlay is counted as ignored" wn_wait_for 5 "ignored report" bash -c \
  "[ \$(${CTL[*]} status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"agent_reports_ignored\"])') -gt $ignored_before ]"
wn_check_not "and its host name is not in DNS" test -n "$(dig1 evil.wow)"

# --- garbage frames ------------------------------------------------------------
ip netns exec "${VM[1]}" ping -c 30 -i 0.1 -W 1 "${IP[2]}" >"$WN_TMP/ping-during-garbage.txt" 2>&1 &
PING_PID=$!
ip netns exec "${VM[3]}" python3 -c '
import os, random, socket
random.seed(7)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
gw = bytes.fromhex("02776e000001")
mine = bytes.fromhex(open("/sys/class/net/eth0/address").read().strip().replace(":", ""))
for i in range(3000):
    kind = i % 4
    if kind == 0:   # pure noise
        f = os.urandom(random.randint(1, 1514))
    elif kind == 1: # valid Ethernet, random IPv4/ARP/UDP-ish bodies
        f = gw + mine + random.choice([b"\x08\x00", b"\x08\x06", b"\x86\xdd", b"\x81\x00"]) + os.urandom(random.randint(0, 200))
    elif kind == 2: # plausible IPv4 header with broken lengths
        f = gw + mine + b"\x08\x00" + bytes([0x45 + random.randint(0, 10), 0]) + os.urandom(random.randint(0, 60))
    else:           # broadcast garbage DHCP-ish frames
        f = b"\xff" * 6 + mine + b"\x08\x00" + os.urandom(random.randint(20, 400))
    if len(f) < 14:
        f = f + bytes(14 - len(f))
    try:
        s.send(f)
    except OSError:
        pass
'
wait "$PING_PID" || true
received=$(sed -nE 's/.* ([0-9]+) received.*/\1/p' "$WN_TMP/ping-during-garbage.txt")
wn_check "vm1 -> vm2 traffic unharmed by vm3's garbage (${received:-0}/30 replies)" [ "${received:-0}" -ge 28 ]
wn_check "hostd survived the garbage" kill -0 "$HOSTD"
malformed=$(dropped vm3 malformed)
wn_check "garbage was counted as malformed drops ($malformed)" [ "$malformed" -gt 100 ]

# --- kill -9 and restart -------------------------------------------------------
wn_stop "$HOSTD" KILL
wn_check "TAPs vanish with the killed hostd" bash -c "! ip -n $H link show wnt1 >/dev/null 2>&1"
wn_hostd "$H" --log-level debug
wn_check "attachments come back after kill -9" wn_wait_for 10 "3 attachments up" bash -c \
  "${CTL[*]} list --json | python3 -c 'import json,sys; d=json.load(sys.stdin); \
   sys.exit(0 if [a[\"state\"] for a in d[\"attachments\"]]==[\"up\"]*4 else 1)'"
for i in 1 2 3; do
  wn_eq "vm$i keeps its address across the restart" "$(addr_of "$i")" "${IP[$i]}"
done
wn_check_not "a stray bridge of ours without attachment is removed at start" ip -n "$H" link show wnb99
wn_check "traffic resumes: vm1 pings vm2" wn_wait_for 10 "ping after restart" \
  ip netns exec "${VM[1]}" ping -c 1 -W 1 "${IP[2]}"
wn_check "DNS still answers after restart" test "$(dig1 bravo.wow)" = "${IP[2]}"
leased=$("${CTL[@]}" leases --json | wn_json 'sorted(l["address"] for l in d["leases"] if l["state"]=="bound")')
wn_eq "lease table survived" "$leased" "$(python3 -c "print(sorted(['${IP[1]}','${IP[2]}','${IP[3]}','10.128.0.77']))")"
# A VM reboot: dhclient starts over (INIT-REBOOT / DISCOVER) and gets the same address.
wn_stop "${AGENT[1]}"
ip -n "${VM[1]}" addr flush dev eth0
wn_agent agent1b "${VM[1]}" alpha dhclient
wn_check "rebooted vm1 gets a lease again" wn_wait_for 30 "vm1 lease after reboot" wn_has_lease "${VM[1]}"
wn_eq "rebooted vm1 gets its old address back" "$(addr_of 1)" "${IP[1]}"

# --- the hypervisor replaces a VIF (VM restarted) -------------------------------
# A restarted VM keeps the MAC from its configuration; its VIF is new.
VM2_MAC=$(ip -n "${VM[2]}" -o link show eth0 | sed -E 's/.*link\/ether ([0-9a-f:]+).*/\1/')
ip -n "$H" link del vif2
ip link add vif2 netns "$H" type veth peer name eth0 netns "${VM[2]}"
ip -n "${VM[2]}" link set eth0 address "$VM2_MAC"
ip -n "$H" link set vif2 up
ip -n "${VM[2]}" link set eth0 up
wn_check "a replaced VIF is put back on its bridge" wn_wait_for 10 "vif2 on wnb2" bash -c \
  "ip -n $H -o link show vif2 | grep -q 'master wnb2'"
wn_check "the restarted vm2 gets a lease again through its agent" wn_wait_for 40 "vm2 lease again" \
  wn_has_lease "${VM[2]}"
wn_eq "and it is the same address" "$(addr_of 2)" "${IP[2]}"
wn_check "vm1 reaches the restarted vm2" wn_wait_for 10 "vm1 -> vm2" ip netns exec "${VM[1]}" ping -c 1 -W 1 "${IP[2]}"

# --- detach --------------------------------------------------------------------
wn_check "detach vm3" "${CTL[@]}" detach vm3
wn_check "vif3 is free again (when the detach is answered)" bash -c "! ip -n $H -o link show vif3 | grep -q master"
# The TAP and the bridge go on hostd's worker thread, just after.
wn_check "no bridge or TAP of vm3 is left" wn_wait_for 5 "wnb3 and wnt3 gone" \
  bash -c "! ip -n $H link show wnb3 2>/dev/null && ! ip -n $H link show wnt3 2>/dev/null"
wn_check_not "detach of an unknown VM fails" "${CTL[@]}" detach vm3
wn_eq "three attachments remain" "$("${CTL[@]}" list --json | wn_json 'len(d["attachments"])')" 3

wn_finish
