#!/usr/bin/env bash
# Benchmark: VM-to-VM across two hosts, one TCP stream and 8 (iperf3 -P 8)
# and ping RTT, in one run on one machine. Each path gets the same topology,
# built anew (namespaces H1 H2 = hosts on a 1500-byte underlay link, V1 V2 =
# one VM behind each), and is measured through
#   - the kernel routing the VMs' subnets with no tunnel (the ceiling),
#   - kernel VXLAN: `ip link add type vxlan` between the hosts, each host
#     bridging its VM onto it (VM MTU 1450),
#   - tinc 1.0 in switch mode (aes-256-cbc + sha256), hosts bridging,
#   - Nebula 1.6 (AES-256-GCM; a CA and two host certificates from
#     nebula-cert, H1 the lighthouse, static_host_map both ways, the VM
#     subnets as unsafe_routes through the nebula tun, tun MTU 1440),
#   - wireguard-go, userspace WireGuard (the interface is wireguard-go's tun,
#     checked, never the kernel module; keys from `wg genkey`, set with
#     `wg set`), the VM subnets routed through it,
#   - wownet direct (a rendezvous and two hosts, DTLS + AES-256-GCM),
#   - wownet relayed: the same, with UDP between the two hosts dropped by
#     iptables in both host namespaces before hostd starts, so the only path
#     is through the rendezvous (`wownetctl peers` must say relayed on both
#     hosts, before and after the measurement).
# Each row is printed in Gbit/s and as a ratio to kernel routing; a path
# that does not come up prints "n/a: reason" and the others go on (its
# namespaces and daemons are removed, its logs kept).
# A report, not a test. Needs root; installs what it lacks from Debian
# (iperf3, tinc, nebula, wireguard-go, wireguard-tools, iptables, dhclient).
#
#   bench/cross_host.sh [BUILD_BIN_DIR]    (default build/bin)
#   BENCH_SECONDS=10 BENCH_PINGS=50 to change the run length,
#   BENCH_PATHS="routed nebula" to measure only some paths (keys as in ROWS).
WN_RUN=wnx$$
source "$(dirname "$0")/lib.sh"
shopt -s inherit_errexit
BENCH_TMP=$WN_TMP

# --- what each path needs from Debian -------------------------------------------
declare -A PACKAGE_OF=([iperf3]=iperf3 [tincd]=tinc [nebula]=nebula [nebula-cert]=nebula
  [wireguard-go]=wireguard-go [wg]=wireguard-tools [iptables]=iptables [dhclient]=isc-dhcp-client)
missing=()
for tool in "${!PACKAGE_OF[@]}"; do
  command -v "$tool" >/dev/null || missing+=("${PACKAGE_OF[$tool]}")
done
if ((${#missing[@]})); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  wn_log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"$BENCH_TMP/apt.log" 2>&1; then
    apt-get update -q >>"$BENCH_TMP/apt.log" 2>&1 || true
    for p in "${missing[@]}"; do  # one by one: every path whose package installs is measured
      apt-get install -y -q --no-install-recommends "$p" >>"$BENCH_TMP/apt.log" 2>&1 || wn_log "could not install $p"
    done
  fi
fi
command -v iperf3 >/dev/null || { echo "iperf3 is missing and could not be installed" >&2; exit 1; }

# --- one path = one subshell ------------------------------------------------------
# bench_path KEY FUNCTION: runs FUNCTION in a subshell with namespaces,
# daemons and logs of its own (lib.sh's cleanup runs when it ends, however
# it ends). FUNCTION leaves "Gbit/s Gbit/s-8-streams rtt_ms" in
# $RESULT/KEY, or "n/a: reason" (na); a command failing on the way makes
# the row "n/a: <command> failed".
RESULT=$BENCH_TMP/results
mkdir -p "$RESULT"
na() {
  [[ -s $RESULT/$KEY ]] || echo "n/a: $*" >"$RESULT/$KEY"
  exit 1
}
need() {  # TOOL...: n/a unless installed
  local t
  for t in "$@"; do command -v "$t" >/dev/null || na "$t not installed (Debian package ${PACKAGE_OF[$t]})"; done
}
bench_path() {
  KEY=$1
  wn_log "== $KEY"
  # Not `( ... ) || true`: that would switch set -e off inside.
  set +e
  (
    WN_TMP=$BENCH_TMP/$KEY
    mkdir -p "$WN_TMP"
    WN_NAMESPACES=()
    WN_PIDS=()
    WN_KEEP_TMP=0
    trap wn_cleanup EXIT
    trap 'exit 130' INT TERM
    set -E
    trap '[[ -s $RESULT/$KEY ]] || echo "n/a: \`$BASH_COMMAND\` failed (line $LINENO)" >"$RESULT/$KEY"' ERR
    set -e
    "$2"
  )
  set -e
  [[ -s $RESULT/$KEY ]] || echo "n/a: no result" >"$RESULT/$KEY"
  if [[ $(cat "$RESULT/$KEY") == n/a* ]]; then
    WN_KEEP_TMP=1
    wn_log "$KEY: $(cat "$RESULT/$KEY") (logs in $BENCH_TMP/$KEY)"
  fi
}

measure() {  # client-ns server-ns server-ip: the result of this path
  ip netns exec "$1" ping -c 3 -i 0.2 -W 2 "$3" >/dev/null || na "no ping from VM to VM"
  local bps bps8 rtt
  bps=$(bench_iperf "$1" "$2" "$3" 1) || na "iperf3, one stream, failed"
  bps8=$(bench_iperf "$1" "$2" "$3" 8) || na "iperf3, 8 streams, failed"
  rtt=$(bench_rtt "$1" "$3")
  [[ -n $rtt ]] || na "no ping RTT"
  python3 -c "print(f'{$bps/1e9:.2f} {$bps8/1e9:.2f} $rtt')" >"$RESULT/$KEY"
}

# Two hosts on an underlay link, one VM behind each: namespaces H1 H2 V1 V2.
topology() {  # prefix
  wn_ns "H1" "$1-h1"
  wn_ns "H2" "$1-h2"
  wn_ns "V1" "$1-v1"
  wn_ns "V2" "$1-v2"
  for ns in "$H1" "$H2" "$V1" "$V2"; do wn_no_ipv6 "$ns"; done
  wn_veth "$H1" wan "$H2" wan
  ip -n "$H1" addr add 192.0.2.1/24 dev wan
  ip -n "$H2" addr add 192.0.2.2/24 dev wan
  wn_veth "$H1" vif "$V1" eth0
  wn_veth "$H2" vif "$V2" eth0
}
# VM i in 10.i.0.0/24 behind host i (10.i.0.1), which forwards.
routed_vms() {
  local i v h
  for i in 1 2; do
    v="V$i" h="H$i"
    ip -n "${!v}" addr add "10.$i.0.2/24" dev eth0
    ip -n "${!v}" route add default via "10.$i.0.1"
    ip -n "${!h}" addr add "10.$i.0.1/24" dev vif
    ip netns exec "${!h}" sysctl -qw net.ipv4.ip_forward=1
  done
}
# Host i bridges its VM onto DEV (br0); the VMs share 10.3.0.0/24.
bridged_vms() {  # dev1 dev2
  local i v h dev
  for i in 1 2; do
    v="V$i" h="H$i" dev=${!i}
    ip -n "${!h}" link add br0 type bridge
    ip -n "${!h}" link set "$dev" master br0
    ip -n "${!h}" link set vif master br0
    ip -n "${!h}" link set "$dev" up
    ip -n "${!h}" link set br0 up
    ip -n "${!v}" addr add "10.3.0.$i/24" dev eth0
  done
}

path_routed() {
  topology route
  routed_vms
  ip -n "$H1" route add 10.2.0.0/24 via 192.0.2.2
  ip -n "$H2" route add 10.1.0.0/24 via 192.0.2.1
  measure "$V1" "$V2" 10.2.0.2
}

path_vxlan() {
  topology vxlan
  local i h
  for i in 1 2; do
    h="H$i"
    ip -n "${!h}" link add vx0 type vxlan id 42 local "192.0.2.$i" remote "192.0.2.$((3 - i))" dstport 4789 dev wan
  done
  bridged_vms vx0 vx0
  # VXLAN over IPv4 takes 50 bytes of the underlay's 1500.
  for v in "$V1" "$V2"; do ip -n "$v" link set eth0 mtu 1450; done
  wn_wait_for 10 "vxlan path" ip netns exec "$V1" ping -c 1 -W 1 10.3.0.2 || na "no ping across VXLAN"
  measure "$V1" "$V2" 10.3.0.2
}

path_tinc() {
  need tincd
  topology tinc
  local i d other h
  for i in 1 2; do
    d=$WN_TMP/tinc$i
    mkdir -p "$d/hosts"
    other=$((3 - i))
    cat >"$d/tinc.conf" <<CONF
Name = node$i
Mode = switch
Interface = tinc$i
AddressFamily = ipv4
ConnectTo = node$other
CONF
    printf 'Address = 192.0.2.%s\nPort = 655\nCipher = aes-256-cbc\nDigest = sha256\n' "$i" >"$d/hosts/node$i"
    tincd -c "$d" -K 2048 </dev/null >/dev/null 2>&1
  done
  cp "$WN_TMP/tinc1/hosts/node1" "$WN_TMP/tinc2/hosts/"
  cp "$WN_TMP/tinc2/hosts/node2" "$WN_TMP/tinc1/hosts/"
  for i in 1 2; do
    h="H$i"
    wn_spawn "tinc$i" ip netns exec "${!h}" tincd -c "$WN_TMP/tinc$i" -D --pidfile="$WN_TMP/tinc$i.pid"
    wn_wait_for 10 "tinc$i device" ip -n "${!h}" link show "tinc$i" || na "tincd $i made no device"
  done
  bridged_vms tinc1 tinc2
  wn_wait_for 20 "tinc path" ip netns exec "$V1" ping -c 1 -W 1 10.3.0.2 || na "no ping through tinc within 20 s"
  measure "$V1" "$V2" 10.3.0.2
}

path_nebula() {
  need nebula nebula-cert
  topology nebula
  routed_vms
  local d=$WN_TMP/pki i h lighthouse
  mkdir -p "$d"
  nebula-cert ca -name "wownet bench" -duration 24h -out-crt "$d/ca.crt" -out-key "$d/ca.key" >/dev/null
  for i in 1 2; do
    nebula-cert sign -ca-crt "$d/ca.crt" -ca-key "$d/ca.key" -name "host$i" -ip "10.5.0.$i/24" \
      -subnets "10.$i.0.0/24" -out-crt "$d/host$i.crt" -out-key "$d/host$i.key" >/dev/null
  done
  for i in 1 2; do
    h="H$i"
    lighthouse='am_lighthouse: true'
    [[ $i == 2 ]] && lighthouse=$'am_lighthouse: false\n  hosts: ["10.5.0.1"]'
    cat >"$WN_TMP/nebula$i.yml" <<YAML
pki:
  ca: $d/ca.crt
  cert: $d/host$i.crt
  key: $d/host$i.key
static_host_map:
  "10.5.0.1": ["192.0.2.1:4242"]
  "10.5.0.2": ["192.0.2.2:4242"]
lighthouse:
  $lighthouse
listen:
  host: 192.0.2.$i
  port: 4242
punchy:
  punch: false
tun:
  dev: nebula$i
  mtu: 1440
  unsafe_routes:
    - route: 10.$((3 - i)).0.0/24
      via: 10.5.0.$((3 - i))
logging:
  level: warning
firewall:
  outbound:
    - port: any
      proto: any
      host: any
  inbound:
    - port: any
      proto: any
      host: any
YAML
    wn_spawn "nebula$i" ip netns exec "${!h}" nebula -config "$WN_TMP/nebula$i.yml"
    wn_wait_for 10 "nebula$i device" ip -n "${!h}" link show "nebula$i" || na "nebula $i made no device"
  done
  wn_wait_for 20 "nebula path" ip netns exec "$V1" ping -c 1 -W 1 10.2.0.2 || na "no ping through nebula within 20 s"
  measure "$V1" "$V2" 10.2.0.2
}

path_wireguard_go() {
  need wireguard-go wg
  topology wggo
  routed_vms
  local i h dev other
  # Interface names are global for wg's userspace sockets (/run/wireguard).
  for i in 1 2; do
    h="H$i" dev="wg$i-$$"
    (umask 077 && wg genkey >"$WN_TMP/key$i")
    wg pubkey <"$WN_TMP/key$i" >"$WN_TMP/pub$i"
    wn_spawn "wireguard-go$i" ip netns exec "${!h}" env WG_PROCESS_FOREGROUND=1 wireguard-go "$dev"
    wn_wait_for 10 "wireguard-go $dev" test -S "/run/wireguard/$dev.sock" || na "wireguard-go made no $dev"
    # The device must be wireguard-go's tun, never the kernel's wireguard.
    ip -d -n "${!h}" link show "$dev" | grep -qw tun || na "$dev is not a tun device: $(ip -d -n "${!h}" link show "$dev" | sed -n 3p)"
  done
  for i in 1 2; do
    h="H$i" dev="wg$i-$$" other=$((3 - i))
    ip netns exec "${!h}" wg set "$dev" private-key "$WN_TMP/key$i" listen-port 51820 \
      peer "$(cat "$WN_TMP/pub$other")" endpoint "192.0.2.$other:51820" allowed-ips "10.6.0.$other/32,10.$other.0.0/24"
    ip -n "${!h}" addr add "10.6.0.$i/24" dev "$dev"
    ip -n "${!h}" link set "$dev" up
    ip -n "${!h}" route add "10.$other.0.0/24" dev "$dev"
  done
  wn_wait_for 20 "wireguard-go path" ip netns exec "$V1" ping -c 1 -W 1 10.2.0.2 || na "no ping through wireguard-go within 20 s"
  measure "$V1" "$V2" 10.2.0.2
}

# wownet: a rendezvous on the underlay (bridged through H1), two hosts.
wownet_path() {  # direct|relayed
  local mode=$1 n role
  [[ -x $BIN/wownet-hostd ]] || na "no $BIN/wownet-hostd (build first)"
  need dhclient
  topology "wn$mode"
  wn_ns RV "wn$mode-rv"
  wn_no_ipv6 "$RV"
  wn_veth "$RV" wan "$H1" wanr
  ip -n "$H1" link add br0 type bridge
  ip -n "$H1" link set wan master br0
  ip -n "$H1" link set wanr master br0
  ip -n "$H1" addr del 192.0.2.1/24 dev wan
  ip -n "$H1" addr add 192.0.2.1/24 dev br0
  ip -n "$H1" link set br0 up
  ip -n "$RV" addr add 192.0.2.10/24 dev wan
  if [[ $mode == relayed ]]; then
    need iptables
    # No UDP between the hosts themselves: only the rendezvous connects them.
    ip netns exec "$H1" iptables -A OUTPUT -p udp -d 192.0.2.2 -j DROP
    ip netns exec "$H1" iptables -A INPUT -p udp -s 192.0.2.2 -j DROP
    ip netns exec "$H2" iptables -A OUTPUT -p udp -d 192.0.2.1 -j DROP
    ip netns exec "$H2" iptables -A INPUT -p udp -s 192.0.2.1 -j DROP
  fi
  wn_pki_init bench
  for n in rv h1 h2; do wn_node_cert "$n"; done
  declare -A addr=([rv]=192.0.2.10 [h1]=192.0.2.1 [h2]=192.0.2.2) ns=([rv]=$RV [h1]=$H1 [h2]=$H2)
  for n in rv h1 h2; do
    wn_overlay_config "$n" "$(wn_role "$n")" "${addr[$n]}" warn
    wn_node_hostd "$n" "${ns[$n]}" || na "hostd $n did not start"
  done
  for n in h1 h2; do
    ip netns exec "${ns[$n]}" "$BIN/wownetctl" --socket "$WN_TMP/$n.sock" attach vif --vm "vm-$n" >/dev/null
  done
  local v ip2
  for v in "$V1" "$V2"; do
    wn_spawn "dhclient-$v" ip netns exec "$v" dhclient -4 -d -pf "$WN_TMP/$v.pid" -lf "$WN_TMP/$v.leases" eth0
  done
  for v in "$V1" "$V2"; do
    wn_wait_for 30 "lease in $v" wn_has_lease "$v" || na "no lease in $v"
  done
  ip2=$(ip -n "$V2" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1)
  wn_wait_for 30 "wownet path" ip netns exec "$V1" ping -c 1 -W 1 "$ip2" || na "no ping through wownet within 30 s"
  paths() {
    local h other
    for h in h1 h2; do
      other=h$((3 - ${h#h}))
      ip netns exec "${ns[$h]}" "$BIN/wownetctl" --socket "$WN_TMP/$h.sock" peers --json |
        wn_json "''.join(p.get('path', '') for p in d.get('peers', []) if p.get('node_name') == '$other' and p.get('established'))"
    done | paste -sd' '
  }
  [[ $(paths) == "$mode $mode" ]] || na "the path between the hosts is '$(paths)', not $mode"
  measure "$V1" "$V2" "$ip2"
  [[ $(paths) == "$mode $mode" ]] || na "the path between the hosts became '$(paths)' while measuring"
}
path_wownet_direct() { wownet_path direct; }
path_wownet_relayed() { wownet_path relayed; }

ROWS=(
  "routed|kernel routing, no tunnel"
  "vxlan|kernel VXLAN, bridged"
  "tinc|tinc 1.0 switch, aes-256-cbc+sha256"
  "nebula|Nebula 1.6, AES-256-GCM"
  "wireguard_go|wireguard-go, ChaCha20-Poly1305"
  "wownet_direct|wownet direct, AES-256-GCM"
  "wownet_relayed|wownet relayed via rendezvous"
)
if [[ -n ${BENCH_PATHS:-} ]]; then
  chosen=()
  for row in "${ROWS[@]}"; do [[ " $BENCH_PATHS " == *" ${row%%|*} "* ]] && chosen+=("$row"); done
  ROWS=("${chosen[@]}")
fi
for row in "${ROWS[@]}"; do bench_path "${row%%|*}" "path_${row%%|*}"; done

python3 - "$RESULT" "$SECS" "${ROWS[@]}" <<'PY'
import sys
rows = [a.split("|", 1) for a in sys.argv[3:]]
res = {}
for key, _ in rows:
    text = open(f"{sys.argv[1]}/{key}").read().strip()
    res[key] = text if text.startswith("n/a") else [float(x) for x in text.split()]
base = res.get("routed")
base = base if isinstance(base, list) else None
def ratio(v, b):
    return f"{v / b:.2f}" if b else "-"
print(f"two hosts, VM -> VM, TCP ({sys.argv[2]} s each) in Gbit/s, ping RTT average in ms; x = ratio to kernel routing")
print(f"{'path':<38}{'1 stream':>9}{'x':>6}{'8 streams':>11}{'x':>6}{'RTT ms':>9}{'x':>7}")
for key, label in rows:
    r = res[key]
    if isinstance(r, str):
        print(f"{label:<38}  {r}")
        continue
    g, g8, rtt = r
    b = base or [0, 0, 0]
    print(f"{label:<38}{g:>9.2f}{ratio(g, b[0]):>6}{g8:>11.2f}{ratio(g8, b[1]):>6}{rtt:>9.3f}{ratio(rtt, b[2]):>7}")
w, t = res.get("wownet_direct"), res.get("tinc")
if isinstance(w, list) and isinstance(t, list):
    print(f"{'wownet direct / tinc':<38}{w[0] / t[0]:>9.2f}{'':>6}{w[1] / t[1]:>11.2f}{'':>6}{w[2] / t[2]:>9.2f}")
PY
