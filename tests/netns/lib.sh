# Shared helpers for wownet's namespace tests, the demo and the benchmarks.
# Source it; it sets `set -euo pipefail` and an EXIT trap that cleans up
# everything created through these helpers, on every exit path.
#
# Rules kept here: namespace names are unique per run (they carry $$), every
# daemon is stopped by its pid and waited for before its namespace goes, and
# a namespace in which a DHCP client runs gets its own resolv.conf so the
# machine's /etc/resolv.conf is never touched.

set -euo pipefail

WN_RUN=${WN_RUN:-wn$$}
WN_TMP=$(mktemp -d "/tmp/${WN_RUN}.XXXX")
WN_NAMESPACES=()
WN_PIDS=()
WN_FAILED=0
WN_CHECKS=0

wn_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

wn_cleanup() {
  local rc=$?
  set +e
  # Daemons first, by pid, and wait for them.
  local pid
  for ((i = ${#WN_PIDS[@]} - 1; i >= 0; i--)); do
    pid=${WN_PIDS[i]}
    kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${WN_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  # Anything still running inside our namespaces was started by this run.
  local ns
  for ns in "${WN_NAMESPACES[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
  done
  sleep 0.2
  for ns in "${WN_NAMESPACES[@]}"; do
    ip netns del "$ns" 2>/dev/null
    rm -rf "/etc/netns/$ns"
  done
  if [[ ${WN_KEEP_TMP:-0} == 1 || $rc != 0 ]]; then
    wn_log "logs kept in $WN_TMP"
  else
    rm -rf "$WN_TMP"
  fi
  exit $rc
}
trap wn_cleanup EXIT
trap 'exit 130' INT TERM

# wn_ns VAR NAME: creates namespace $WN_RUN-NAME (with lo up and its own
# resolv.conf) and stores its full name in VAR. (No $(...): the bookkeeping
# must happen in this shell.)
wn_ns() {
  local -n out_=$1
  local ns="${WN_RUN}-$2"
  ip netns add "$ns"
  WN_NAMESPACES+=("$ns")
  mkdir -p "/etc/netns/$ns"
  echo "nameserver 127.0.0.1" >"/etc/netns/$ns/resolv.conf"
  ip -n "$ns" link set lo up
  out_=$ns
}

# wn_veth NS1 IF1 NS2 IF2: a veth pair between two namespaces, both ends up.
wn_veth() {
  ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
  ip -n "$1" link set "$2" up
  ip -n "$3" link set "$4" up
}

# wn_spawn NAME CMD...: runs CMD in the background, logs to $WN_TMP/NAME.log,
# remembers the pid for cleanup and leaves it in WN_LAST_PID.
wn_spawn() {
  local name=$1
  shift
  # The log exists when this returns (the child opens it only once it
  # runs): a caller that reads it at once must not find it missing.
  : >>"$WN_TMP/$name.log"
  "$@" >>"$WN_TMP/$name.log" 2>&1 &
  WN_LAST_PID=$!
  WN_PIDS+=("$WN_LAST_PID")
}

# wn_stop PID [SIGNAL]: stops one daemon and waits for it.
wn_stop() {
  local pid=$1 sig=${2:-TERM}
  kill "-$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  wait "$pid" 2>/dev/null || true
}

# wn_forget PID: drops a pid that is known to have ended (wn_stop, wait)
# from the cleanup list, so that a long run that restarts daemons never
# signals a later process that happens to get the same number.
wn_forget() {
  local pid=$1 i
  for i in "${!WN_PIDS[@]}"; do
    if [[ ${WN_PIDS[i]} == "$pid" ]]; then unset 'WN_PIDS[i]'; fi
  done
  WN_PIDS=("${WN_PIDS[@]}")
}

# wn_wait_for SECONDS DESCRIPTION CMD...: retries CMD every 0.2 s.
wn_wait_for() {
  local secs=$1 what=$2
  shift 2
  local end=$((SECONDS + secs))
  while ((SECONDS < end)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  wn_log "timed out after ${secs}s waiting for: $what"
  return 1
}

# Assertions: each counts; failures are reported and make the test fail at
# the end (wn_finish) without stopping the remaining checks.
wn_pass() { WN_CHECKS=$((WN_CHECKS + 1)); wn_log "ok   - $*"; }
wn_fail() { WN_CHECKS=$((WN_CHECKS + 1)); WN_FAILED=$((WN_FAILED + 1)); wn_log "FAIL - $*"; }
# The checked command's own output goes to $WN_TMP/checks.log.
wn_check() {
  local what=$1
  shift
  echo "### $what: $*" >>"$WN_TMP/checks.log"
  if "$@" >>"$WN_TMP/checks.log" 2>&1; then wn_pass "$what"; else wn_fail "$what"; fi
}
wn_check_not() {
  local what=$1
  shift
  echo "### (expected to fail) $what: $*" >>"$WN_TMP/checks.log"
  if "$@" >>"$WN_TMP/checks.log" 2>&1; then wn_fail "$what"; else wn_pass "$what"; fi
}
wn_eq() {
  if [[ "$2" == "$3" ]]; then wn_pass "$1 ($2)"; else wn_fail "$1: expected '$3', got '$2'"; fi
}
wn_finish() {
  local passed=$((WN_CHECKS - WN_FAILED))
  echo "$passed passed, $WN_FAILED failed"
  [[ $WN_FAILED == 0 ]]
}

# wn_require TOOL...: exits (1) naming the first TOOL that is not installed.
wn_require() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool (scripts/install-deps.sh installs it)"; exit 1; }
  done
}

# wn_json FILTER: reads JSON on stdin and prints the Python expression
# FILTER applied to it as `d` (no jq dependency).
wn_json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# --- an overlay: a CA, node certificates, an underlay bridge -----------------

# wn_pki_init NAME [CA]: a CA called NAME in $WN_TMP/pki/CA (default "ca";
# wownetctl from $BIN).
wn_pki_init() { "$BIN/wownetctl" ca init --dir "$WN_TMP/pki/${2:-ca}" --name "$1" --days 30 >/dev/null; }

# wn_node_cert NODE [CA]: a key and a certificate signed by CA (default the
# network's, "ca") in $WN_TMP/pki/NODE.
wn_node_cert() {
  "$BIN/wownetctl" cert request --dir "$WN_TMP/pki/$1" --name "$1" >/dev/null
  "$BIN/wownetctl" ca sign --dir "$WN_TMP/pki/${2:-ca}" --csr "$WN_TMP/pki/$1/node.csr" \
    --out "$WN_TMP/pki/$1/node.crt" --days 10 >/dev/null
}

# wn_pki NAME NODE...: wn_pki_init NAME, then wn_node_cert for each NODE.
wn_pki() {
  wn_pki_init "$1"
  shift
  local n
  for n in "$@"; do wn_node_cert "$n"; done
}

# wn_overlay_config NODE ROLE ADDRESS LOG_LEVEL [SOCKET [RENDEZVOUS [TABLES]]]:
# $WN_TMP/NODE.toml for an overlay node (ROLE host or rendezvous) listening
# on ADDRESS (ADDRESS:7700 if it names no port), with the rendezvous list
# RENDEZVOUS (TOML strings; default "192.0.2.10:7700"), the certificate of
# wn_node_cert NODE and the control socket SOCKET (default
# $WN_TMP/NODE.sock). TABLES (TOML text) stands before the [overlay] table;
# lines appended to the file go into [overlay].
wn_overlay_config() {
  local rendezvous=${6:-'"192.0.2.10:7700"'}
  cat >"$WN_TMP/$1.toml" <<TOML
[hostd]
state_dir = "$WN_TMP/state-$1"
control_socket = "${5:-$WN_TMP/$1.sock}"
log_level = "$4"
${7:-}
[overlay]
role = "$2"
listen = "$3$([[ $3 == *:* ]] || echo :7700)"
rendezvous = [$rendezvous]
cert = "$WN_TMP/pki/$1/node.crt"
key = "$WN_TMP/pki/$1/node.key"
ca = "$WN_TMP/pki/ca/ca.crt"
TOML
}

# wn_role NODE: the role of an overlay node by the naming used here:
# "rendezvous" for rv, rv2, ..., "host" for any other.
wn_role() { if [[ $1 == rv* ]]; then echo rendezvous; else echo host; fi; }

# wn_node_hostd NODE NS [SOCKET]: wownet-hostd in NS with the config
# $WN_TMP/NODE.toml (log hostd-NODE.log, pid in WN_LAST_PID); returns once it
# answers on SOCKET (default $WN_TMP/NODE.sock, as wn_overlay_config's).
wn_node_hostd() {
  wn_spawn "hostd-$1" ip netns exec "$2" "$BIN/wownet-hostd" --config "$WN_TMP/$1.toml"
  wn_wait_for 10 "hostd $1" ip netns exec "$2" "$BIN/wownetctl" --socket "${3:-$WN_TMP/$1.sock}" status
}

# wn_check_iperf WHAT CLIENT_NS SERVER_NS SERVER_IP: a 2 s iperf3 run from
# CLIENT_NS to a server in SERVER_NS; passes (rate in the check's name) if
# it moved more than 1 Mbit/s.
wn_check_iperf() {
  local what=$1 bps server
  wn_spawn iperf3-server ip netns exec "$3" iperf3 -s -1
  server=$WN_LAST_PID
  sleep 0.5
  if ip netns exec "$2" iperf3 -c "$4" -t 2 -J >"$WN_TMP/iperf.json" 2>&1; then
    bps=$(wn_json 'int(d["end"]["sum_received"]["bits_per_second"])' <"$WN_TMP/iperf.json")
    wn_check "$what ($((bps / 1000000)) Mbit/s)" [ "$bps" -gt 1000000 ]
  else
    wn_fail "$what"
  fi
  wn_stop "$server"
}

# wn_no_ipv6 NS: the namespace speaks IPv4 only.
wn_no_ipv6() { ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1; }

# wn_underlay VAR: namespace "wan" with bridge br0 (192.0.2.1/24), IPv4 only;
# its name goes to VAR.
wn_underlay() {
  wn_ns "$1" wan
  local -n wan_=$1
  wn_no_ipv6 "$wan_"
  ip -n "$wan_" link add br0 type bridge
  ip -n "$wan_" link set br0 up
  ip -n "$wan_" addr add 192.0.2.1/24 dev br0
}

# wn_underlay_nodes WAN NODE...: wn_underlay_node for each NODE, its
# namespace's name to NODE_NS[NODE] and its address from NODE_IP[NODE]
# (both associative arrays of the caller).
wn_underlay_nodes() {
  local wan=$1 n
  shift
  for n in "$@"; do wn_underlay_node "NODE_NS[$n]" "$wan" "$n" "${NODE_IP[$n]}"; done
}

# wn_underlay_node VAR WAN NODE ADDRESS: namespace NODE on the underlay
# bridge of WAN through its device "uplink" with ADDRESS/24; name to VAR.
wn_underlay_node() {
  wn_ns "$1" "$3"
  local -n node_=$1
  wn_no_ipv6 "$node_"
  wn_veth "$node_" uplink "$2" "u-$3"
  ip -n "$2" link set "u-$3" master br0
  ip -n "$node_" addr add "$4/24" dev uplink
}

# --- a host running VMs ---------------------------------------------------------

# wn_hostd NS [HOSTD_ARGS...]: wownet-hostd in NS (log hostd.log) with its
# state in $STATE and its control socket at $SOCK (by default
# $WN_TMP/state and $WN_TMP/hostd.sock); CTL becomes the wownetctl command
# for it and HOSTD its pid. Returns once it answers on its socket.
wn_hostd() {
  local ns=$1
  shift
  STATE=${STATE:-$WN_TMP/state}
  SOCK=${SOCK:-$WN_TMP/hostd.sock}
  CTL=(ip netns exec "$ns" "$BIN/wownetctl" --socket "$SOCK")
  wn_spawn hostd ip netns exec "$ns" "$BIN/wownet-hostd" --state-dir "$STATE" --control-socket "$SOCK" "$@"
  HOSTD=$WN_LAST_PID
  wn_wait_for 10 "hostd control socket" "${CTL[@]}" status
}

# wn_uplink HOST_NS NS: the host's own uplink (192.0.2.1/24), a veth to eth0
# (192.0.2.2/24) in NS standing for its physical network.
wn_uplink() {
  wn_veth "$1" uplink "$2" eth0
  ip -n "$1" addr add 192.0.2.1/24 dev uplink
  ip -n "$2" addr add 192.0.2.2/24 dev eth0
}

# wn_vm VAR HOST_NS NAME VIF CHANNEL N: namespace NAME for a VM (name to
# VAR) whose overlay NIC eth0 is the peer of VIF in HOST_NS and whose
# host-only agent channel eth1 (169.254.N.2/30) is the peer of CHANNEL
# (169.254.N.1/30) there.
wn_vm() {
  wn_ns "$1" "$3"
  local -n vm_=$1
  wn_veth "$2" "$4" "$vm_" eth0
  wn_veth "$2" "$5" "$vm_" eth1
  ip -n "$2" addr add "169.254.$6.1/30" dev "$5"
  ip -n "$vm_" addr add "169.254.$6.2/30" dev eth1
}

# wn_agent NAME VM_NS HOST_NAME CLIENT [AGENT_ARGS...]: wownet-agent in
# VM_NS, under HOST_NAME (in its own UTS namespace), driving the DHCP
# client CLIENT on eth0 and reporting over eth1, its state in $WN_TMP/NAME
# and its log in NAME.log; AGENT_ARGS default to reports every second and
# debug logging. Its pid is left in WN_LAST_PID.
wn_agent() {
  local name=$1 ns=$2 host=$3 client=$4
  shift 4
  (($#)) || set -- --interval 1 --log-level debug
  mkdir -p "$WN_TMP/$name"
  wn_spawn "$name" ip netns exec "$ns" unshare --uts sh -c \
    "hostname $host; exec $BIN/wownet-agent --nic eth0 --channel eth1 --dhcp-client $client --state-dir $WN_TMP/$name $*"
}

# wn_has_lease NS: eth0 in NS has an overlay (10.x) address.
wn_has_lease() { ip -n "$1" -4 -o addr show dev eth0 | grep 'inet 10\.' >/dev/null; }

# wn_addr NS: the first IPv4 address of eth0 in NS, without its prefix.
wn_addr() { ip -n "$1" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1 | head -1; }
