#!/usr/bin/env bash
# wownet demo, for a fresh Debian 12 machine as root: installs what it needs,
# builds, then makes one host and two VMs as network namespaces, runs
# wownet-hostd in the host and wownet-agent in each VM, and shows the VMs
# getting leases by DHCP (dhclient in one, udhcpc in the other), finding
# each other by DNS name, pinging and running a short iperf3. Everything is
# removed again at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

scripts/install-deps.sh
echo "== building"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build wownet-hostd wownetctl wownet-agent >/dev/null
BIN=$ROOT/build/bin

WN_RUN=wndemo$$
source "$ROOT/tests/netns/lib.sh"
set +x
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '\033[36m$ %s\033[0m\n' "$*"; }

say "topology: host namespace + two VM namespaces (VIF veth + host-only agent channel each)"
wn_ns H host
for i in 1 2; do
  wn_ns "VM$i" "vm$i"
  vm="VM$i"
  wn_veth "$H" "vif$i" "${!vm}" eth0
  wn_veth "$H" "ch$i" "${!vm}" eth1
  ip -n "$H" addr add "169.254.$i.1/30" dev "ch$i"
  ip -n "${!vm}" addr add "169.254.$i.2/30" dev eth1
done
echo "host: $H   VMs: $VM1 $VM2"

SOCK=$WN_TMP/hostd.sock
ctl() {
  show "wownetctl $*"
  ip netns exec "$H" "$BIN/wownetctl" --socket "$SOCK" "$@"
}
wn_spawn hostd ip netns exec "$H" "$BIN/wownet-hostd" --state-dir "$WN_TMP/state" --control-socket "$SOCK"
wn_wait_for 10 "hostd" ip netns exec "$H" "$BIN/wownetctl" --socket "$SOCK" status

say "attach the VMs' interfaces"
ctl attach vif1 --vm web --agent-if ch1 >/dev/null && echo "attached web"
ctl attach vif2 --vm db --agent-if ch2 >/dev/null && echo "attached db"

say "start wownet-agent in each VM (web drives dhclient, db drives udhcpc)"
wn_spawn agent1 ip netns exec "$VM1" unshare --uts sh -c \
  "hostname web; exec $BIN/wownet-agent --nic eth0 --channel eth1 --interval 2 --dhcp-client dhclient --state-dir $WN_TMP/a1"
wn_spawn agent2 ip netns exec "$VM2" unshare --uts sh -c \
  "hostname db; exec $BIN/wownet-agent --nic eth0 --channel eth1 --interval 2 --dhcp-client udhcpc --state-dir $WN_TMP/a2"
for vm in "$VM1" "$VM2"; do
  wn_wait_for 30 "lease in $vm" bash -c "ip -n $vm -4 -o addr show dev eth0 | grep -q 'inet 10\.'"
done
wn_wait_for 10 "agent reports" bash -c \
  "ip netns exec $H $BIN/wownetctl --socket $SOCK list | grep -q 'db ('"
IP1=$(ip -n "$VM1" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1)
IP2=$(ip -n "$VM2" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1)

say "leases and attachments"
ctl leases
ctl list
show "ip addr / route in VM web"
ip -n "$VM1" -4 -br addr show dev eth0
ip -n "$VM1" route

say "DNS from VM web"
for q in "db.wow" "C$(IFS=. read -r _ b c d <<<"$IP2"; printf '%03d%03d%03d' "$b" "$c" "$d").wow" "-x $IP2"; do
  show "dig +short $q"
  # shellcheck disable=SC2086
  ip netns exec "$VM1" dig +short $q
done

say "ping db from web by name"
show "ping -c 3 db"
ip netns exec "$VM1" ping -c 3 -i 0.3 db.wow

say "iperf3 web -> db (3 s)"
wn_spawn iperf3 ip netns exec "$VM2" iperf3 -s -1
sleep 0.5
show "iperf3 -c $IP2 -t 3"
ip netns exec "$VM1" iperf3 -c "$IP2" -t 3 | tail -4

say "isolation: web cannot leave the overlay"
show "ping -c 2 -W 1 192.0.2.1   (outside the overlay: dropped by hostd)"
ip netns exec "$VM1" ping -c 2 -W 1 192.0.2.1 || true
ctl status | grep -E "^drops"

say "done; cleaning up"
