# NAT topology for wownet's namespace tests and benchmarks; source after
# lib.sh, with BIN set to the directory holding wownet-hostd and wownetctl.
#
#   rendezvous rv 198.51.100.10 --- core router --- site routers (NAT) --- hosts
#
# The core is one routed hop between every site and the rendezvous, so a
# punch probe with TTL 2 leaves its own site's NAT and dies at the core,
# never reaching another site's NAT. Site N's router has WAN 100.64.N.2
# (core side 100.64.N.1) and LAN 10.N.0.0/24 (router 10.N.0.1), and
# masquerades either endpoint-independently ("eim": Linux MASQUERADE keeps
# the source port) or "symmetric" (MASQUERADE --random-fully: a new random
# port for every destination).
#
# Namespace names are in NS[...] (rv, core, r<site>, hosts, and vm-<host>);
# each hostd's control socket is $WN_TMP/<host>.sock.

declare -gA NS LAN_IP HOSTD_PID
NAT_PKI=$WN_TMP/pki

# nat_ctl NODE ARGS...: wownetctl against NODE's hostd.
nat_ctl() {
  local n=$1
  shift
  ip netns exec "${NS[$n]}" "$BIN/wownetctl" --socket "$WN_TMP/$n.sock" "$@"
}

# nat_core: the core router and the rendezvous' namespace behind it.
nat_core() {
  "$BIN/wownetctl" ca init --dir "$NAT_PKI/ca" --name "nat test" >/dev/null
  wn_ns NS[core] core
  wn_no_ipv6 "${NS[core]}"
  ip netns exec "${NS[core]}" sysctl -qw net.ipv4.ip_forward=1
  nat_public rv 198.51.100 10
}

# nat_public NODE NET HOST: NODE's namespace on a link of its own off the
# core, NET.HOST/24 with the core at NET.1 (NET: the first three octets).
nat_public() {
  local n=$1 net=$2
  wn_ns "NS[$n]" "$n"
  wn_no_ipv6 "${NS[$n]}"
  wn_veth "${NS[$n]}" uplink "${NS[core]}" "to-$n"
  ip -n "${NS[$n]}" addr add "$net.$3/24" dev uplink
  ip -n "${NS[core]}" addr add "$net.1/24" dev "to-$n"
  ip -n "${NS[$n]}" route add default via "$net.1"
}

# nat_site NAME N MODE: a site router (MODE eim or symmetric).
nat_site() {
  local s=$1 n=$2 mode=$3 r
  wn_ns NS[r$s] "r$s"
  r=${NS[r$s]}
  wn_no_ipv6 "$r"
  wn_veth "$r" wan "${NS[core]}" "to-$s"
  ip -n "$r" addr add "100.64.$n.2/24" dev wan
  ip -n "${NS[core]}" addr add "100.64.$n.1/24" dev "to-$s"
  ip -n "$r" route add default via "100.64.$n.1"
  ip -n "$r" link add lan type bridge
  ip -n "$r" link set lan up
  ip -n "$r" addr add "10.$n.0.1/24" dev lan
  ip netns exec "$r" sysctl -qw net.ipv4.ip_forward=1
  if [[ $mode == symmetric ]]; then
    ip netns exec "$r" iptables -t nat -A POSTROUTING -o wan -j MASQUERADE --random-fully
  else
    ip netns exec "$r" iptables -t nat -A POSTROUTING -o wan -j MASQUERADE
  fi
}

# nat_pki NODE: a certificate for NODE.
nat_pki() {
  "$BIN/wownetctl" cert request --dir "$NAT_PKI/$1" --name "$1" >/dev/null
  "$BIN/wownetctl" ca sign --dir "$NAT_PKI/ca" --csr "$NAT_PKI/$1/node.csr" --out "$NAT_PKI/$1/node.crt" >/dev/null
}

# nat_host NAME SITE N ADDRESS: a host namespace on site SITE's LAN.
nat_host() {
  local h=$1 s=$2 n=$3
  wn_ns NS[$h] "$h"
  wn_no_ipv6 "${NS[$h]}"
  wn_veth "${NS[$h]}" uplink "${NS[r$s]}" "l-$h"
  ip -n "${NS[r$s]}" link set "l-$h" master lan
  ip -n "${NS[$h]}" addr add "$4/24" dev uplink
  ip -n "${NS[$h]}" route add default via "10.$n.0.1"
  LAN_IP[$h]=$4
}

# nat_config NODE ROLE ADDRESS:PORT LOG_LEVEL: NODE's config, as
# wn_overlay_config writes it (lines appended go into [overlay]), with the
# rendezvous list NAT_RENDEZVOUS if set (TOML strings), else rv's; NODE's
# certificate is made if missing.
nat_config() {
  [[ -f $NAT_PKI/$1/node.crt ]] || nat_pki "$1"
  wn_overlay_config "$1" "$2" "$3" "$4" "" "${NAT_RENDEZVOUS:-\"198.51.100.10:7700\"}"
}

# nat_start NODE [SECONDS]: starts NODE's hostd with its config (pid in
# HOSTD_PID[NODE]) and waits up to SECONDS (default 10) for its socket.
nat_start() {
  wn_spawn "hostd-$1" ip netns exec "${NS[$1]}" "$BIN/wownet-hostd" --config "$WN_TMP/$1.toml"
  HOSTD_PID[$1]=$WN_LAST_PID
  wn_wait_for "${2:-10}" "hostd $1" nat_ctl "$1" status
}

# nat_hostd NODE ROLE LISTEN [EXTRA_TOML [PORT]]: NODE's config (debug
# logging, 2 s keepalive, EXTRA_TOML in [overlay]) and its hostd.
nat_hostd() {
  nat_config "$1" "$2" "$3:${5:-7700}" debug
  printf 'keepalive = 2\n%s\n' "${4:-}" >>"$WN_TMP/$1.toml"
  nat_start "$1"
}

# nat_sites: the core and four sites, a and b behind endpoint-independent
# NATs, c and d behind symmetric ones.
nat_sites() {
  nat_core
  nat_site a 1 eim
  nat_site b 2 eim
  nat_site c 3 symmetric
  nat_site d 4 symmetric
}

# nat_vm HOST VM IF: a VM namespace behind HOST (veth IF), attached, with
# dhclient running on it.
nat_vm() {
  local h=$1 vm=$2 vif=$3
  wn_ns NS[$vm] "$vm"
  wn_no_ipv6 "${NS[$vm]}"
  wn_veth "${NS[$h]}" "$vif" "${NS[$vm]}" eth0
  nat_ctl "$h" attach "$vif" --vm "$vm" >/dev/null
  wn_spawn "dhclient-$vm" ip netns exec "${NS[$vm]}" dhclient -4 -d -pf "$WN_TMP/$vm.pid" -lf "$WN_TMP/$vm.leases" eth0
}

# nat_vm_ip VM: the VM's overlay address (empty if none yet).
nat_vm_ip() {
  ip -n "${NS[$1]}" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1 | grep -v '^169\.254' | head -1
}

# nat_peer HOST PEER FIELD: FIELD (path, endpoint, relay, ...) of HOST's
# established session with PEER.
nat_peer() {
  nat_ctl "$1" peers --json |
    wn_json "[p.get('$3', '') for p in d.get('peers', []) if p.get('node_name')=='$2' and p.get('established')][0]"
}

# nat_counter NODE NAME: an overlay counter from NODE's status.
nat_counter() {
  nat_ctl "$1" status --json | wn_json "int(d.get('overlay', {}).get('$2', 0))"
}
