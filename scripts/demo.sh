#!/usr/bin/env bash
# wownet demo, for a fresh Debian 12 machine as root: installs what it needs,
# builds, then plays a small site with network namespaces: an underlay
# bridge, a rendezvous node and two hosts running wownet-hostd, and one VM
# on each host running wownet-agent (dhclient in one VM, udhcpc in the
# other). It shows the VMs getting leases, finding each other by DNS name
# across hosts, ping and iperf3 over the encrypted overlay, `wownetctl
# peers` with the direct path, and that a VM cannot reach anything outside
# the overlay. Everything is removed again at the end.
#
#   WOWNET_BIN=DIR   use the binaries in DIR (skip installing and building)
#   DEMO_IPERF_SECONDS=N   length of the iperf3 run (default 3)
#
# Exits nonzero if any step the demo shows does not work.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '\033[36m$ %s\033[0m\n' "$*"; }

if [[ -z ${WOWNET_BIN:-} ]]; then
  say "installing build and demo dependencies (Debian packages; quick when present)"
  scripts/install-deps.sh
  say "building wownet-hostd, wownetctl and wownet-agent (first build: several minutes; ninja shows progress)"
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  ninja -C build wownet-hostd wownetctl wownet-agent
  BIN=$ROOT/build/bin
else
  BIN=$WOWNET_BIN
fi

WN_RUN=${DEMO_RUN:-wndemo$$}
source "$ROOT/tests/netns/lib.sh"
set +x
IPERF_SECONDS=${DEMO_IPERF_SECONDS:-3}

say "topology: underlay 192.0.2.0/24 with a rendezvous (rv) and hosts A and B; VM web on A, VM db on B"
wn_pki_init "wownet demo"
declare -A NODE_NS NODE_IP=([rv]=192.0.2.10 [a]=192.0.2.11 [b]=192.0.2.12)
wn_underlay WAN
ctl() {
  local n=$1
  shift
  show "wownetctl $*    (on ${n/rv/the rendezvous})"
  ip netns exec "${NODE_NS[$n]}" "$BIN/wownetctl" --socket "$WN_TMP/$n.sock" "$@"
}
quiet_ctl() {
  local n=$1
  shift
  ip netns exec "${NODE_NS[$n]}" "$BIN/wownetctl" --socket "$WN_TMP/$n.sock" "$@"
}
for n in rv a b; do
  wn_node_cert "$n"
  wn_underlay_node "NODE_NS[$n]" "$WAN" "$n" "${NODE_IP[$n]}"
  wn_overlay_config "$n" "$(wn_role "$n")" "${NODE_IP[$n]}" info
  wn_node_hostd "$n" "${NODE_NS[$n]}"
  echo "node $n: wownet-hostd running ($(wn_role "$n"), ${NODE_IP[$n]}:7700, certificate signed by the demo CA)"
done

# A VM: its overlay NIC (eth0, the VIF's other end) and its host-only agent
# channel (eth1), both veth pairs into its host's namespace.
declare -A VM_NS VM_HOST=([web]=a [db]=b)
for vm in web db; do
  h=${VM_HOST[$vm]}
  wn_vm "VM_NS[$vm]" "${NODE_NS[$h]}" "$vm" "vif-$vm" "ch-$vm" 1
done

say "attach each VM's interfaces on its host"
ctl a attach vif-web --vm web --agent-if ch-web >/dev/null && echo "attached web on host A"
ctl b attach vif-db --vm db --agent-if ch-db >/dev/null && echo "attached db on host B"

say "start wownet-agent in each VM (web drives dhclient, db drives udhcpc)"
declare -A CLIENT=([web]=dhclient [db]=udhcpc)
for vm in web db; do
  wn_agent "agent-$vm" "${VM_NS[$vm]}" "$vm" "${CLIENT[$vm]}" --interval 2
done
declare -A IP
for vm in web db; do
  echo "waiting for $vm's DHCP lease (granted by the rendezvous' registry through host ${VM_HOST[$vm]^^})"
  wn_wait_for 40 "lease in $vm" wn_has_lease "${VM_NS[$vm]}"
  IP[$vm]=$(wn_addr "${VM_NS[$vm]}")
  echo "$vm: ${IP[$vm]}"
done
wn_wait_for 15 "agent reports" bash -c \
  "ip netns exec ${NODE_NS[b]} $BIN/wownetctl --socket $WN_TMP/b.sock list | grep -q 'db ('"

say "leases (the network's registry, on the rendezvous) and attachments (on each host)"
ctl rv leases --all
ctl a list
ctl b list

say "DNS from web: db runs on another host"
echo "waiting for db's name to reach host A"
wn_wait_for 20 "db.wow from web" bash -c "[ -n \"\$(ip netns exec ${VM_NS[web]} dig +time=1 +tries=1 +short db.wow)\" ]"
for q in "db.wow" "-x ${IP[db]}"; do
  show "dig +short $q    (in web)"
  # shellcheck disable=SC2086
  ip netns exec "${VM_NS[web]}" dig +short $q
done

say "ping db from web by name, across the encrypted overlay"
show "ping -c 3 db.wow    (in web)"
ip netns exec "${VM_NS[web]}" ping -c 3 -i 0.3 db.wow

say "the hosts' peers: A and B talk directly (no relay) after the rendezvous introduced them"
echo "waiting for the direct path"
wn_wait_for 20 "direct path A -> B" bash -c \
  "ip netns exec ${NODE_NS[a]} $BIN/wownetctl --socket $WN_TMP/a.sock peers | grep -q direct"
ctl a peers

say "iperf3 web -> db ($IPERF_SECONDS s, encrypted, host A -> host B)"
wn_spawn iperf3 ip netns exec "${VM_NS[db]}" iperf3 -s -1
sleep 0.5
show "iperf3 -c ${IP[db]} -t $IPERF_SECONDS    (in web)"
ip netns exec "${VM_NS[web]}" iperf3 -c "${IP[db]}" -t "$IPERF_SECONDS" | tail -4

say "isolation: web cannot reach anything outside the overlay"
show "ping -c 2 -W 1 192.0.2.12    (host B's underlay address, from web)"
if ip netns exec "${VM_NS[web]}" ping -c 2 -W 1 192.0.2.12; then
  echo "FAILED: a VM reached the underlay" >&2
  exit 1
fi
echo "no reply: host A dropped web's packets to the underlay"
show "wownetctl status    (on host A; its drop counters, nonzero ones explained)"
drops=$(quiet_ctl a status | sed -n 's/^drops: //p')
declare -A WHY=(
  [outside_overlay]="to an address outside the overlay: the pings to the underlay just sent"
  [ethertype]="neither IPv4 nor ARP: the IPv6 router and neighbour solicitations a guest sends at boot"
  [spoofed_mac]="a source MAC the VM does not hold"
  [spoofed_ip]="a source address not leased to the VM"
  [gateway_service]="to the gateway, but not DHCP, DNS or ping"
  [no_route]="to an overlay address no VM holds"
  [not_for_gateway]="unicast to a MAC other than the gateway's"
  [host_originated]="sent by the host's own side of the VIF (e.g. its IPv6 solicitations)"
  [awaiting_registry]="from an address the registry had not granted yet (while a lease was on its way)"
  [dhcp_server_message]="DHCP server traffic from a VM"
  [rate_limited]="DHCP messages beyond the per-second limit"
  [malformed]="frames that do not parse"
  [fragment]="later fragments of a dropped datagram"
  [unknown_attachment]="frames for an interface hostd no longer serves"
)
outside=0
for kv in $drops; do
  k=${kv%%=*} v=${kv#*=}
  [[ $v == 0 ]] && continue
  [[ $k == outside_overlay ]] && outside=$v
  printf '  %-20s %6s  %s\n' "$k" "$v" "${WHY[$k]:-}"
done
if ((outside < 2)); then
  echo "FAILED: host A did not count web's pings to the underlay as outside_overlay" >&2
  exit 1
fi
echo "Nothing a VM sends leaves its host except sealed overlay traffic to other wownet nodes."

say "done; cleaning up"
