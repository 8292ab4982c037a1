#!/usr/bin/env bash
# Hosts behind NAT routers (namespaces doing MASQUERADE). Site A has two
# hosts behind one NAT, site B one host behind another; the rendezvous is on
# the public side.
#  - hosts behind NATs register and their VMs get leases;
#  - behind the same NAT, the hosts use their local addresses;
#  - a NAT that forgets its mappings (conntrack flush): the host's session
#    with the rendezvous comes back and a new VM gets a lease within 60 s.
# Direct sessions across two NATs (hole punching) and the relay are not
# covered yet.
# Needs root. Run through ctest (label netns) or with WOWNET_BIN=build/bin.
source "$(dirname "$0")/lib.sh"
BIN=${WOWNET_BIN:?set WOWNET_BIN to the directory holding wownet-hostd}
for tool in dhclient ping python3 iptables conntrack; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool (scripts/test.sh installs it)"; exit 1; }
done
CTL() { local ns=$1; shift; ip netns exec "$ns" "$BIN/wownetctl" --socket "$WN_TMP/$ns.sock" "$@"; }
no_ipv6() { ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1; }

PKI=$WN_TMP/pki
"$BIN/wownetctl" ca init --dir "$PKI/ca" --name "nat test" >/dev/null
for n in rv ha1 ha2 hb1; do
  "$BIN/wownetctl" cert request --dir "$PKI/$n" --name "$n" >/dev/null
  "$BIN/wownetctl" ca sign --dir "$PKI/ca" --csr "$PKI/$n/node.csr" --out "$PKI/$n/node.crt" >/dev/null
done

# Public side: a bridge with the rendezvous and the two routers' WAN ends.
wn_ns WAN wan
no_ipv6 "$WAN"
ip -n "$WAN" link add br0 type bridge
ip -n "$WAN" link set br0 up
declare -A NS
wn_ns NS[rv] rv
no_ipv6 "${NS[rv]}"
wn_veth "${NS[rv]}" uplink "$WAN" u-rv
ip -n "$WAN" link set u-rv master br0
ip -n "${NS[rv]}" addr add 192.0.2.10/24 dev uplink

# Sites: a router namespace with WAN and LAN, masquerading, and its hosts.
make_site() {  # site wan-address lan-prefix
  local s=$1 r
  wn_ns NS[r$s] "r$s"
  r=${NS[r$s]}
  no_ipv6 "$r"
  wn_veth "$r" wan "$WAN" "u-r$s"
  ip -n "$WAN" link set "u-r$s" master br0
  ip -n "$r" addr add "$2/24" dev wan
  ip -n "$r" link add lan type bridge
  ip -n "$r" link set lan up
  ip -n "$r" addr add "$3.1/24" dev lan
  ip netns exec "$r" sysctl -qw net.ipv4.ip_forward=1
  ip netns exec "$r" iptables -t nat -A POSTROUTING -o wan -j MASQUERADE
}
make_site a 192.0.2.21 10.1.0
make_site b 192.0.2.22 10.2.0
declare -A LAN_IP=([ha1]=10.1.0.11 [ha2]=10.1.0.12 [hb1]=10.2.0.11) SITE=([ha1]=a [ha2]=a [hb1]=b)
for h in ha1 ha2 hb1; do
  wn_ns NS[$h] "$h"
  no_ipv6 "${NS[$h]}"
  wn_veth "${NS[$h]}" uplink "${NS[r${SITE[$h]}]}" "l-$h"
  ip -n "${NS[r${SITE[$h]}]}" link set "l-$h" master lan
  ip -n "${NS[$h]}" addr add "${LAN_IP[$h]}/24" dev uplink
  ip -n "${NS[$h]}" route add default via "${LAN_IP[$h]%.*}.1"
done

declare -A LISTEN=([rv]=192.0.2.10 [ha1]=10.1.0.11 [ha2]=10.1.0.12 [hb1]=10.2.0.11)
for n in rv ha1 ha2 hb1; do
  role=host
  [[ $n == rv ]] && role=rendezvous
  cat >"$WN_TMP/$n.toml" <<TOML
[hostd]
state_dir = "$WN_TMP/state-$n"
control_socket = "$WN_TMP/${NS[$n]}.sock"
log_level = "debug"
[overlay]
role = "$role"
listen = "${LISTEN[$n]}:7700"
rendezvous = ["192.0.2.10:7700"]
cert = "$PKI/$n/node.crt"
key = "$PKI/$n/node.key"
ca = "$PKI/ca/ca.crt"
keepalive = 2
TOML
  wn_spawn "hostd-$n" ip netns exec "${NS[$n]}" "$BIN/wownet-hostd" --config "$WN_TMP/$n.toml"
  wn_wait_for 10 "hostd $n" CTL "${NS[$n]}" status
done

declare -A VM IP
for h in ha1 ha2 hb1; do
  wn_ns VM[$h] "vm-$h"
  wn_veth "${NS[$h]}" vif "${VM[$h]}" eth0
  CTL "${NS[$h]}" attach vif --vm "vm-$h" >/dev/null
  wn_spawn "dhclient-$h" ip netns exec "${VM[$h]}" dhclient -4 -d -pf "$WN_TMP/$h.pid" -lf "$WN_TMP/$h.leases" eth0
done
for h in ha1 ha2 hb1; do
  wn_wait_for 40 "lease in vm-$h" bash -c "ip -n ${VM[$h]} -4 -o addr show dev eth0 | grep -q 'inet 10\.1[2-9]'" || true
  IP[$h]=$(ip -n "${VM[$h]}" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1 | grep '^10\.1[2-9]' | head -1)
  wn_check "vm-$h behind NAT ${SITE[$h]} has a lease: ${IP[$h]:-none}" [ -n "${IP[$h]}" ]
done

peer_endpoint() {  # host peer-name
  CTL "${NS[$1]}" peers --json |
    wn_json "[p['endpoint'] for p in d.get('peers', []) if p['node_name']=='$2' and p['established']][0]"
}
wn_check "behind one NAT: vm-ha1 pings vm-ha2" wn_wait_for 30 "ha1 -> ha2" \
  ip netns exec "${VM[ha1]}" ping -c 1 -W 1 "${IP[ha2]}"
wn_eq "the session uses the local address" "$(peer_endpoint ha1 ha2 | cut -d: -f1)" 10.1.0.12

# A NAT rebinding: site A's router forgets every mapping.
ip netns exec "${NS[ra]}" conntrack -F >/dev/null 2>&1
flushed=$SECONDS
sleep 1
wn_ns VM[ha1b] vm-ha1b
wn_veth "${NS[ha1]}" vif2 "${VM[ha1b]}" eth0
CTL "${NS[ha1]}" attach vif2 --vm vm-ha1b >/dev/null
wn_spawn dhclient-ha1b ip netns exec "${VM[ha1b]}" dhclient -4 -d -pf "$WN_TMP/ha1b.pid" -lf "$WN_TMP/ha1b.leases" eth0
wn_check "a new VM behind the rebound NAT gets a lease within 60 s of the flush" wn_wait_for 60 "ha1b lease" \
  bash -c "ip -n ${VM[ha1b]} -4 -o addr show dev eth0 | grep -q 'inet 10\.1[2-9]'"
wn_log "leased $((SECONDS - flushed)) s after the flush"

wn_finish
