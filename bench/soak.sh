#!/usr/bin/env bash
# shellcheck disable=SC2317  # the loops run through wn_spawn, which shellcheck does not follow
# Soak: 20 VMs on two hosts, each host behind its own NAT router (the
# topology of tests/netns/nat_sites.sh), a rendezvous on the public side,
# for MINUTES minutes of churn:
#  - every VM is a namespace whose veth's host end is its VIF, with a real
#    DHCP client (dhclient for odd VMs, busybox udhcpc for even ones) and a
#    10 s lease (SOAK_LEASE_TIME), so that every VM renews every 5 s;
#  - every SOAK_CHURN_EVERY s one VM is detached (`wownetctl detach`) and,
#    SOAK_DETACH_SECS later, attached again with the same VM name and MAC;
#  - the rendezvous is stopped by its pid and started again every
#    SOAK_RV_EVERY s (default 240, first after 100 s); both NATs forget
#    every mapping (conntrack -F) every SOAK_FLUSH_EVERY s (default 60,
#    first after 45 s); 0 turns either off;
#  - iperf3 rounds (SOAK_IPERF_ROUND s, throttled to SOAK_IPERF_RATE,
#    alternating direction) between a01 on host a and b01 on host b; two
#    continuous pings a02 <-> b02; a ping sweep a<i> -> b<i> every minute.
# Watched: every 2 s, whether each VM still holds the address it got first;
# every minute, RSS, open fds, lease counts, DHCP acks and log lines of each
# hostd. At the end a table per minute and a summary.
#
# Exit status non-zero if a VM lost its lease (it was found on another
# address; or, while it stayed attached, without its address; or its DHCP
# client started over with DISCOVER more often than it was detached: a
# client cut off by a detach while its renewal is due may let its own
# 10 s lease run out, which is reported apart and must end with its first
# address back), a hostd died or stopped answering, or a daemon's RSS or fds grew past
# the thresholds: RSS at the end more than max(SOAK_RSS_GROWTH_MIB MiB,
# SOAK_RSS_GROWTH_PCT %) above the one-minute sample (after warm-up), open
# fds more than SOAK_FD_GROWTH above it. The rendezvous restarts, so its
# growth is checked within its last run only.
#
# A report, not a test. Needs root. Traffic only between namespaces this
# script makes.
#
#   bench/soak.sh BUILD_BIN_DIR [MINUTES]      (default 30)
#   nice -n 5 bench/soak.sh build/bin 30 2>&1 | tee bench/results/soak-$(date +%F).txt
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(cd "${1:?usage: bench/soak.sh BUILD_BIN_DIR [MINUTES]}" && pwd)
MINUTES=${2:-30}
[[ $MINUTES =~ ^[1-9][0-9]*$ ]] || { echo "MINUTES must be a positive whole number, not '$MINUTES'" >&2; exit 2; }
CHURN_EVERY=${SOAK_CHURN_EVERY:-5}
DETACH_SECS=${SOAK_DETACH_SECS:-2}
RV_FIRST=100
RV_EVERY=${SOAK_RV_EVERY:-240}
RV_DOWN=${SOAK_RV_DOWN:-3}
FLUSH_FIRST=45
FLUSH_EVERY=${SOAK_FLUSH_EVERY:-60}
IPERF_RATE=${SOAK_IPERF_RATE:-200M}
IPERF_ROUND=${SOAK_IPERF_ROUND:-30}
LEASE_TIME=${SOAK_LEASE_TIME:-10}
export SOAK_LEASE_TIME=$LEASE_TIME
LOG_LEVEL=${SOAK_LOG_LEVEL:-info}
SEED=${SOAK_SEED:-$$}
export SOAK_RSS_GROWTH_MIB=${SOAK_RSS_GROWTH_MIB:-8} SOAK_RSS_GROWTH_PCT=${SOAK_RSS_GROWTH_PCT:-25}
export SOAK_FD_GROWTH=${SOAK_FD_GROWTH:-8}
[[ $(id -u) == 0 ]] || { echo "needs root (network namespaces)" >&2; exit 2; }
for tool in dhclient busybox ping iperf3 python3 iptables conntrack timeout; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool (scripts/install-deps.sh installs it)" >&2; exit 2; }
done
[[ -x /etc/udhcpc/default.script ]] || { echo "missing /etc/udhcpc/default.script (package udhcpc)" >&2; exit 2; }
WN_RUN=wns$$
source "$ROOT/tests/netns/lib.sh"
source "$ROOT/tests/netns/nat_sites.sh"

echo "wownet soak: $MINUTES min, 20 VMs on 2 hosts behind 2 NATs + rendezvous; $(nproc) cores, kernel $(uname -r)"
echo "wownet $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'); lease $LEASE_TIME s, churn every" \
  "$CHURN_EVERY s (detached $DETACH_SECS s), rendezvous restart every $RV_EVERY s, conntrack flush every" \
  "$FLUSH_EVERY s, iperf3 -b $IPERF_RATE in ${IPERF_ROUND}s rounds, log level $LOG_LEVEL, seed $SEED"

# soak_hostd NODE ROLE LISTEN: NODE's config (nat_hostd's, with the soak's
# lease time, log level and the default keepalive) and its hostd.
soak_hostd() {
  local n=$1 role=$2 listen=$3
  [[ -f $NAT_PKI/$n/node.crt ]] || nat_pki "$n"
  cat >"$WN_TMP/$n.toml" <<TOML
[hostd]
state_dir = "$WN_TMP/state-$n"
control_socket = "$WN_TMP/$n.sock"
log_level = "$LOG_LEVEL"
[network]
lease_time = $LEASE_TIME
[overlay]
role = "$role"
listen = "$listen:7700"
rendezvous = ["198.51.100.10:7700"]
cert = "$NAT_PKI/$n/node.crt"
key = "$NAT_PKI/$n/node.key"
ca = "$NAT_PKI/ca/ca.crt"
TOML
  wn_spawn "hostd-$n" ip netns exec "${NS[$n]}" "$BIN/wownet-hostd" --config "$WN_TMP/$n.toml"
  HOSTD_PID[$n]=$WN_LAST_PID
  # A new hostd waits up to 30 s for a predecessor holding its state dir.
  wn_wait_for 40 "hostd $n" nat_ctl "$n" status
}

# alive PID: running, not a zombie.
alive() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]]
}

# --- topology ----------------------------------------------------------------
nat_core
nat_site a 1 eim
nat_site b 2 eim
nat_host ha a 1 10.1.0.11
nat_host hb b 2 10.2.0.11
soak_hostd rv rendezvous 198.51.100.10
soak_hostd ha host 10.1.0.11
soak_hostd hb host 10.2.0.11

# --- VMs: a01..a10 on host a, b01..b10 on host b ------------------------------
declare -A VM_HOST VM_CLIENT VM_MAC FIRST_IP
VMS=()
for s in a b; do
  for i in $(seq -w 1 10); do
    vm=$s$i
    VMS+=("$vm")
    VM_HOST[$vm]=h$s
    VM_MAC[$vm]=$(printf '02:57:4e:00:%02x:%02x' "$([[ $s == a ]] && echo 1 || echo 2)" "$((10#$i))")
    if ((10#$i % 2)); then VM_CLIENT[$vm]=dhclient; else VM_CLIENT[$vm]=udhcpc; fi
  done
done
# Untouched by the churn: the iperf3 pair and the ping pair.
CHURNABLE=()
for vm in "${VMS[@]}"; do [[ $vm == [ab]0[12] ]] || CHURNABLE+=("$vm"); done

vm_ip() {
  ip -n "${NS[vm-$1]}" -4 -o addr show dev eth0 2>/dev/null | awk '{print $4}' | cut -d/ -f1 |
    grep -v '^169\.254' | head -1 || true
}
for vm in "${VMS[@]}"; do
  h=${VM_HOST[$vm]}
  wn_ns "NS[vm-$vm]" "vm-$vm"
  nat_no_ipv6 "${NS[vm-$vm]}"
  wn_veth "${NS[$h]}" "vif-$vm" "${NS[vm-$vm]}" eth0
  ip -n "${NS[vm-$vm]}" link set eth0 down
  ip -n "${NS[vm-$vm]}" link set eth0 address "${VM_MAC[$vm]}"
  ip -n "${NS[vm-$vm]}" link set eth0 up
  nat_ctl "$h" attach "vif-$vm" --vm "$vm" >/dev/null
  if [[ ${VM_CLIENT[$vm]} == dhclient ]]; then
    printf 'send host-name "%s";\nrequest subnet-mask, broadcast-address, routers, domain-name,\n  domain-name-servers, host-name, interface-mtu;\n' \
      "$vm" >"$WN_TMP/dhclient-$vm.conf"
    wn_spawn "client-$vm" ip netns exec "${NS[vm-$vm]}" dhclient -4 -d -cf "$WN_TMP/dhclient-$vm.conf" \
      -pf "$WN_TMP/dhclient-$vm.pid" -lf "$WN_TMP/dhclient-$vm.leases" eth0
  else
    wn_spawn "client-$vm" ip netns exec "${NS[vm-$vm]}" busybox udhcpc -f -i eth0 -s /etc/udhcpc/default.script \
      -x "hostname:$vm" -p "$WN_TMP/udhcpc-$vm.pid"
  fi
done
for vm in "${VMS[@]}"; do
  wn_wait_for 60 "lease in $vm" bash -c "ip -n ${NS[vm-$vm]} -4 -o addr show dev eth0 | grep -q 'inet 10\.'" || true
  FIRST_IP[$vm]=$(vm_ip "$vm")
  [[ -n ${FIRST_IP[$vm]} ]] || { wn_log "no lease in $vm at the start: $(tail -3 "$WN_TMP/client-$vm.log")"; exit 1; }
done
if [[ $(printf '%s\n' "${FIRST_IP[@]}" | sort -u | wc -l) != "${#VMS[@]}" ]]; then
  wn_log "two VMs share an address at the start"
  exit 1
fi
wn_log "20 VMs leased: a01 ${FIRST_IP[a01]} ... b10 ${FIRST_IP[b10]}"
{
  for vm in "${VMS[@]}"; do
    h=${VM_HOST[$vm]}
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$vm" "${NS[vm-$vm]}" "$h" "${NS[$h]}" "${VM_MAC[$vm]}" \
      "${VM_CLIENT[$vm]}" "${FIRST_IP[$vm]}"
  done
} >"$WN_TMP/vms.tsv"
for n in rv ha hb; do printf '%s\t%s\t%s\t%s\n' "$n" "${NS[$n]}" "$WN_TMP/$n.sock" "$WN_TMP/hostd-$n.log"; done \
  >"$WN_TMP/daemons.tsv"
wn_check "vm-a01 pings vm-b01 across both NATs" wn_wait_for 30 "a01 -> b01" \
  ip netns exec "${NS[vm-a01]}" ping -c 1 -W 1 "${FIRST_IP[b01]}"

# --- background activity (subshells; each ends by itself at DEADLINE) -------
START=$EPOCHSECONDS
DEADLINE=$((START + MINUTES * 60))
STOP=$WN_TMP/stop
running() { ((EPOCHSECONDS < DEADLINE)) && [[ ! -e $STOP ]]; }

churn_loop() {  # one line per operation: epoch vm detach|attach rc message
  set +e
  RANDOM=$SEED
  local vm h out rc
  while running && ((EPOCHSECONDS + CHURN_EVERY + DETACH_SECS + 5 < DEADLINE)); do
    sleep "$CHURN_EVERY"
    vm=${CHURNABLE[RANDOM % ${#CHURNABLE[@]}]}
    h=${VM_HOST[$vm]}
    touch "$WN_TMP/detached-$vm"
    out=$(nat_ctl "$h" detach "$vm" 2>&1)
    rc=$?
    echo "$(date +%s.%N) $vm detach $rc ${out//$'\n'/ }"
    sleep "$DETACH_SECS"
    for _ in 1 2 3 4 5; do
      out=$(nat_ctl "$h" attach "vif-$vm" --vm "$vm" 2>&1)
      rc=$?
      echo "$(date +%s.%N) $vm attach $rc ${out//$'\n'/ }"
      ((rc == 0)) && break
      sleep 1
    done
    rm -f "$WN_TMP/detached-$vm"
  done
}

watch_loop() {  # one line per VM not holding its first address: epoch vm first now
  set +e
  local vm now
  while running; do
    for vm in "${VMS[@]}"; do
      now=$(vm_ip "$vm")
      [[ $now == "${FIRST_IP[$vm]}" ]] || echo "$(date +%s.%N) $vm ${FIRST_IP[$vm]} ${now:-none}"
    done
    sleep 2
  done
}

iperf_loop() {  # one line per round: start end rc json
  set +e
  local n=0 t t0 srv rc rev
  while running; do
    t=$((DEADLINE - EPOCHSECONDS - 3))
    ((t > IPERF_ROUND)) && t=$IPERF_ROUND
    ((t >= 5)) || break
    n=$((n + 1))
    rev=()
    ((n % 2)) || rev=(-R)
    ip netns exec "${NS[vm-b01]}" iperf3 -s -1 -p 5201 >"$WN_TMP/iperf-server-$n.log" 2>&1 &
    srv=$!
    sleep 0.5
    t0=$(date +%s.%N)
    timeout $((t + 20)) ip netns exec "${NS[vm-a01]}" iperf3 -c "${FIRST_IP[b01]}" -p 5201 -t "$t" \
      -b "$IPERF_RATE" --connect-timeout 5000 -J "${rev[@]}" >"$WN_TMP/iperf-$n.json" 2>"$WN_TMP/iperf-$n.err"
    rc=$?
    echo "$t0 $(date +%s.%N) $rc $WN_TMP/iperf-$n.json"
    grep -q '"error"' "$WN_TMP/iperf-$n.json" && sleep 2
    for _ in 1 2 3 4 5; do kill -0 "$srv" 2>/dev/null || break; sleep 0.5; done
    kill "$srv" 2>/dev/null
    wait "$srv" 2>/dev/null
  done
}

LOOPS=()
wn_spawn churn churn_loop
LOOPS+=("$WN_LAST_PID")
wn_spawn watch watch_loop
LOOPS+=("$WN_LAST_PID")
wn_spawn iperf iperf_loop
LOOPS+=("$WN_LAST_PID")
PINGS=()
wn_spawn ping-a02 ip netns exec "${NS[vm-a02]}" ping -D -i 0.5 "${FIRST_IP[b02]}"
PINGS+=("$WN_LAST_PID")
wn_spawn ping-b02 ip netns exec "${NS[vm-b02]}" ping -D -i 0.5 "${FIRST_IP[a02]}"
PINGS+=("$WN_LAST_PID")

# --- per-minute samples and the final report (Python) --------------------------
cat >"$WN_TMP/soak.py" <<'PY'
import collections, json, os, re, subprocess, sys, time

TMP, BIN = sys.argv[2], sys.argv[3]
VMS = [l.rstrip("\n").split("\t") for l in open(f"{TMP}/vms.tsv")]  # vm ns host hostns mac client ip
DAEMONS = [l.rstrip("\n").split("\t") for l in open(f"{TMP}/daemons.tsv")]  # name ns sock log
FIRST = {v[0]: v[6] for v in VMS}
NSOF = {v[0]: v[1] for v in VMS}


def run(args, timeout=8):
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout
    except subprocess.TimeoutExpired:
        return -1, ""


def ctl(ns, sock, *args):
    rc, out = run(["ip", "netns", "exec", ns, f"{BIN}/wownetctl", "--socket", sock, *args, "--json"])
    if rc != 0:
        return None
    try:
        return json.loads(out)
    except ValueError:
        return None


def lines_in(path):
    try:
        with open(path, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return 0


def vm_ip(vm):
    rc, out = run(["ip", "-n", NSOF[vm], "-4", "-o", "addr", "show", "dev", "eth0"])
    for line in out.splitlines():
        a = line.split()[3].split("/")[0]
        if not a.startswith("169.254."):
            return a
    return ""


def read_events(name):
    try:
        return [l.split() for l in open(f"{TMP}/{name}.log") if re.match(r"^\d+\.\d+(\s|$)", l)]
    except OSError:
        return []


def sample(minute, pids):
    s = {"t": time.time(), "minute": minute, "daemons": {}, "vms": {}}
    for name, ns, sock, log in DAEMONS:
        pid = pids[name]
        d = {"pid": pid, "alive": False, "rss_kib": None, "fds": None, "log_lines": lines_in(log)}
        try:
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
            m = re.search(r"^VmRSS:\s+(\d+) kB", open(f"/proc/{pid}/status").read(), re.M)
            d["rss_kib"] = int(m.group(1)) if m else None
            d["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
            d["alive"] = state != "Z"
        except (OSError, IndexError):
            pass
        st = ctl(ns, sock, "status")
        le = ctl(ns, sock, "leases", "--all")
        d["ctl_ok"] = st is not None and le is not None
        if st:
            d["active"] = int(st.get("active_leases", 0))
            d["attachments"] = int(st.get("attachments", 0))
            d["dhcp"] = {k: int(v) for k, v in st.get("dhcp", {}).items()}
            d["overlay"] = {k: int(v) for k, v in st.get("overlay", {}).items()}
            d["drops"] = {k: int(v) for k, v in st.get("drops", {}).items()}
        if le:
            ls = le.get("leases", [])
            d["leases"] = len(ls)
            d["lease_states"] = dict(collections.Counter(l.get("state", "") for l in ls))
        if name != "rv":
            at = ctl(ns, sock, "list")
            if at:
                d["bound"] = {a["vm"]: a.get("address", "") for a in at.get("attachments", [])}
            pe = ctl(ns, sock, "peers")
            if pe:
                d["paths"] = {p.get("node_name", ""): p.get("path", "") for p in pe.get("peers", []) if p.get("established")}
        s["daemons"][name] = d
    for v in VMS:
        s["vms"][v[0]] = vm_ip(v[0])
    # Ping sweep a<i> -> b<i>, skipping pairs with a VM detached by the churn.
    procs = []
    for v in VMS:
        a = v[0]
        if not a.startswith("a"):
            continue
        b = "b" + a[1:]
        if any(os.path.exists(f"{TMP}/detached-{x}") for x in (a, b)):
            continue
        procs.append(subprocess.Popen(["ip", "netns", "exec", NSOF[a], "ping", "-c", "2", "-i", "0.3", "-W", "2", FIRST[b]],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    s["sweep"] = [sum(p.wait() == 0 for p in procs), len(procs)]
    with open(f"{TMP}/samples.jsonl", "a") as f:
        f.write(json.dumps(s) + "\n")
    held = sum(s["vms"][vm] == FIRST[vm] for vm in FIRST)
    lost = len({e[1] for e in read_events("watch")})
    churn = sum(1 for e in read_events("churn") if e[2] == "attach" and e[3] == "0")
    dd = s["daemons"]
    mib = lambda n: f"{dd[n]['rss_kib'] / 1024:.1f}" if dd[n]["rss_kib"] else "dead"
    print(f"[{time.strftime('%H:%M:%S')}] minute {minute}: RSS MiB rv {mib('rv')} ha {mib('ha')} hb {mib('hb')}, "
          f"fds {'/'.join(str(dd[n]['fds']) for n in ('rv', 'ha', 'hb'))}, "
          f"active leases {dd['ha'].get('active', '?')}+{dd['hb'].get('active', '?')}, "
          f"VMs on their first address {held}/{len(FIRST)}, leases lost {lost}, re-attaches {churn}, "
          f"sweep {s['sweep'][0]}/{s['sweep'][1]}", file=sys.stderr, flush=True)


def report():
    samples = [json.loads(l) for l in open(f"{TMP}/samples.jsonl")]
    names = [d[0] for d in DAEMONS]
    churn = read_events("churn")
    watch = read_events("watch")
    rv_restarts = read_events("rv-restarts")
    flushes = read_events("flushes")
    died = [l.strip() for l in open(f"{TMP}/died.log")] if os.path.exists(f"{TMP}/died.log") else []
    # iperf3 rounds: per-second intervals for the per-minute column.
    rounds, iv = [], []
    for r in read_events("iperf"):
        t0, t1, rc, path = float(r[0]), float(r[1]), int(r[2]), r[3]
        try:
            j = json.load(open(path))
        except (OSError, ValueError):
            j = {}
        end = j.get("end", {})
        recv = end.get("sum_received", {}).get("bytes", 0)
        secs = end.get("sum_received", {}).get("seconds", 0)
        retr = end.get("sum_sent", {}).get("retransmits", 0)
        rounds.append({"t0": t0, "rc": rc, "bytes": recv, "secs": secs, "retr": retr, "error": j.get("error", ""),
                       "reverse": j.get("start", {}).get("test_start", {}).get("reverse", 0)})
        ts = j.get("start", {}).get("timestamp", {}).get("timesecs", t0)
        for i in j.get("intervals", []):
            iv.append((ts + i["sum"]["end"], i["sum"]["bytes"]))
    # Continuous pings: reply timestamps.
    replies = {}
    for p in ("ping-a02", "ping-b02"):
        ts = []
        try:
            for l in open(f"{TMP}/{p}.log"):
                m = re.match(r"^\[(\d+\.\d+)\] \d+ bytes from", l)
                if m:
                    ts.append(float(m.group(1)))
        except OSError:
            pass
        replies[p] = ts

    def between(ts, a, b):
        return sum(1 for t in ts if a < t <= b)

    def mib(k):
        return f"{k / 1024:.1f}" if k else "-"

    print()
    print("per minute: RSS MiB, open fds, leases in the table and active ones, DHCP acks in the minute (hosts), log")
    print("lines in the minute, of each hostd (rv: the rendezvous, its registry); VMs on their first address; re-attaches")
    print("ok/failed; ping sweep a<i> -> b<i> answered/tried; replies of the two continuous pings a02 <-> b02 (240")
    print("expected); iperf3 Mbit/s a01 <-> b01; events: R = rendezvous restarted, F = both NATs flushed")
    hdr = f"{'min':>3} | {'rv rss':>6} {'fd':>3} {'lease':>5} {'act':>3} {'log':>4} |"
    for h in ("ha", "hb"):
        hdr += f" {h + ' rss':>6} {'fd':>3} {'lease':>5} {'act':>3} {'acks':>4} {'log':>4} |"
    hdr += f" {'held':>5} {'churn':>5} {'sweep':>5} {'ping':>4} {'iperf':>5} ev"
    print(hdr)
    print("-" * len(hdr))
    for k, s in enumerate(samples):
        prev = samples[k - 1] if k else None
        a, b = (prev["t"] if prev else s["t"] - 60), s["t"]
        d = s["daemons"]

        def dl(n):
            return d[n]["log_lines"] - prev["daemons"][n]["log_lines"] if prev else d[n]["log_lines"]

        row = (f"{s['minute']:>3} | {mib(d['rv']['rss_kib']):>6} {d['rv']['fds'] or '-':>3} {d['rv'].get('leases', '?'):>5}"
               f" {d['rv'].get('active', '?'):>3} {dl('rv'):>4} |")
        for h in ("ha", "hb"):
            acks = d[h].get("dhcp", {}).get("acks", 0) - (prev["daemons"][h].get("dhcp", {}).get("acks", 0) if prev else 0)
            row += (f" {mib(d[h]['rss_kib']):>6} {d[h]['fds'] or '-':>3} {d[h].get('leases', '?'):>5}"
                    f" {d[h].get('active', '?'):>3} {acks:>4} {dl(h):>4} |")
        held = sum(s["vms"][vm] == FIRST[vm] for vm in FIRST)
        ok = sum(1 for e in churn if e[2] == "attach" and e[3] == "0" and a < float(e[0]) <= b)
        bad = sum(1 for e in churn if e[3] != "0" and a < float(e[0]) <= b)
        png = sum(between(replies[p], a, b) for p in replies)
        mbit = sum(by for t, by in iv if a < t <= b) * 8 / 60 / 1e6
        ev = "R" * sum(1 for e in rv_restarts if a < float(e[0]) <= b) + "F" * sum(1 for e in flushes if a < float(e[0]) <= b)
        row += (f" {held:>2}/{len(FIRST):<2} {ok:>2}/{bad:<2} {s['sweep'][0]:>2}/{s['sweep'][1]:<2}"
                f" {png if prev else '-':>4} {mbit if prev else 0:>5.0f} {ev}")
        print(row)

    print()
    print("summary")
    failures = []
    base = samples[1] if len(samples) > 1 else samples[0]
    print(f"{'hostd':<6} {'RSS MiB start':>13} {'@1min':>6} {'end':>6} {'max':>6} {'KiB/min':>8} | "
          f"{'fds start':>9} {'@1min':>5} {'end':>4} {'max':>4} | {'log lines/min max':>17} {'mean':>6}")
    g_mib, g_pct, g_fd = float(os.environ["SOAK_RSS_GROWTH_MIB"]), float(os.environ["SOAK_RSS_GROWTH_PCT"]), int(os.environ["SOAK_FD_GROWTH"])
    for n in names:
        rss = [s["daemons"][n]["rss_kib"] for s in samples]
        fds = [s["daemons"][n]["fds"] for s in samples]
        logs = [s["daemons"][n]["log_lines"] for s in samples]
        per_min = [logs[i] - logs[i - 1] for i in range(1, len(logs))] or [logs[0]]
        # Growth within the daemon's last run (the rendezvous restarts).
        pid_end = samples[-1]["daemons"][n]["pid"]
        run = [s for s in samples[1:] if s["daemons"][n]["pid"] == pid_end] or samples[-1:]
        b0 = run[0]["daemons"][n]
        e0 = samples[-1]["daemons"][n]
        xs = [(s["t"] - run[0]["t"]) / 60 for s in run]
        ys = [s["daemons"][n]["rss_kib"] or 0 for s in run]
        slope = 0.0
        if len(run) >= 3:
            mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
            den = sum((x - mx) ** 2 for x in xs)
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0
        print(f"{n:<6} {mib(rss[0]):>13} {mib(base['daemons'][n]['rss_kib']):>6} {mib(rss[-1]):>6} "
              f"{mib(max(r or 0 for r in rss)):>6} {slope:>8.0f} | {fds[0] or '-':>9} {base['daemons'][n]['fds'] or '-':>5} "
              f"{fds[-1] or '-':>4} {max(f or 0 for f in fds):>4} | {max(per_min):>17} {sum(per_min) / len(per_min):>6.0f}")
        if not e0["alive"]:
            failures.append(f"hostd {n} is not running at the end")
        elif b0["rss_kib"] and e0["rss_kib"]:
            grow = (e0["rss_kib"] - b0["rss_kib"]) / 1024
            if grow > max(g_mib, b0["rss_kib"] / 1024 * g_pct / 100):
                failures.append(f"hostd {n}: RSS grew {grow:.1f} MiB since minute {run[0]['minute']} "
                                f"(threshold max({g_mib:g} MiB, {g_pct:g} %))")
            if e0["fds"] - b0["fds"] > g_fd:
                failures.append(f"hostd {n}: open fds grew from {b0['fds']} to {e0['fds']} (threshold +{g_fd})")
        if not samples[-1]["daemons"][n].get("ctl_ok"):
            failures.append(f"hostd {n} did not answer wownetctl at the end")
    print(f"RSS growth thresholds: end vs. the minute-1 sample (or the first sample of the daemon's last run):"
          f" at most max({g_mib:g} MiB, {g_pct:g} %); fds at most +{g_fd}. KiB/min: least-squares RSS slope.")
    for d in died:
        failures.append(f"hostd died: {d}")
    bad_ctl = sum(1 for s in samples for n in names if not s["daemons"][n].get("ctl_ok"))
    if bad_ctl:
        print(f"wownetctl calls that failed or timed out in samples: {bad_ctl}")

    # DHCP clients that had to start over (DISCOVER after their first lease:
    # their lease ran out or was refused), whether or not a 2-s check saw it.
    again = {}
    for v in VMS:
        seen, n = False, 0
        try:
            for l in open(f"{TMP}/client-{v[0]}.log", errors="replace"):
                if "bound to" in l or "obtained from" in l:
                    seen = True
                elif seen and ("DHCPDISCOVER" in l or "broadcasting discover" in l):
                    n += 1
        except OSError:
            pass
        if n:
            again[v[0]] = n
    # A lease is lost when a VM ends up on another address, when a VM that
    # stayed attached is found without its address or had to start over,
    # or when a VM starts over more often than it was detached. A VM
    # detached while its renewal was due may let its own lease run out (the
    # client is cut off from every server; a 10 s lease leaves dhclient one
    # retry) and starts over with DISCOVER: that is the client's doing, and
    # it must get its first address back, which the checks see.
    detaches = collections.defaultdict(list)
    for e in churn:
        if e[2] == "detach":
            detaches[e[1]].append(float(e[0]))
    window = int(os.environ.get("SOAK_LEASE_TIME", "10")) + 10

    def after_detach(vm, t):
        return any(0 <= t - d <= window for d in detaches[vm])

    moved = [e for e in watch if e[3] != "none"]
    unexplained = [e for e in watch if e[3] == "none" and not after_detach(e[1], float(e[0]))]
    restarts = [e for e in watch if e[3] == "none" and after_detach(e[1], float(e[0]))]
    too_many = {vm: n for vm, n in again.items() if n > len(detaches[vm])}
    lost_vms = sorted({e[1] for e in moved + unexplained} | set(too_many))
    print(f"leases lost: {len(lost_vms)} VMs ({len(moved)} checks found a VM on another address, "
          f"{len(unexplained)} found a VM that stayed attached without one"
          + (f"; more DISCOVERs than detaches: {', '.join(f'{k} {v}x' for k, v in sorted(too_many.items()))}" if too_many else "")
          + ")")
    print(f"DHCP clients that started over after a detach (own lease ran out while cut off, same address back): "
          f"{len({e[1] for e in restarts})} VMs in {len(restarts)} checks; DISCOVER after the first lease: "
          + (", ".join(f"{k} {v}x ({len(detaches[k])} detaches)" for k, v in sorted(again.items())) if again else "none"))
    for vm in lost_vms:
        ev = [e for e in moved + unexplained if e[1] == vm]
        if not ev:
            continue
        print(f"  {vm}: first {FIRST[vm]}, seen {', '.join(sorted({e[3] for e in ev}))} from "
              f"{time.strftime('%H:%M:%S', time.localtime(float(ev[0][0])))} to "
              f"{time.strftime('%H:%M:%S', time.localtime(float(ev[-1][0])))} ({len(ev)} checks)")
    end_off = [vm for vm in FIRST if samples[-1]["vms"][vm] != FIRST[vm]]
    if lost_vms:
        failures.append(f"leases lost: {len(lost_vms)} VMs ({', '.join(lost_vms)})")
    if end_off:
        failures.append(f"VMs not on their first address at the end: {', '.join(end_off)}")
    for h in ("ha", "hb"):
        dh0 = samples[0]["daemons"][h].get("dhcp", {})
        dh1 = samples[-1]["daemons"][h].get("dhcp", {})
        delta = {k: dh1.get(k, 0) - dh0.get(k, 0) for k in ("discovers", "requests", "acks", "naks", "releases")}
        bound = samples[-1]["daemons"][h].get("bound", {})
        mism = [vm for vm, ip in bound.items() if ip and FIRST.get(vm) != ip]
        print(f"DHCP on {h} during the run: " + ", ".join(f"{k} {v}" for k, v in delta.items()) +
              f"; lease table {samples[0]['daemons'][h].get('leases')} -> {samples[-1]['daemons'][h].get('leases')}"
              f" {samples[-1]['daemons'][h].get('lease_states', {})}")
        if mism:
            print(f"  attachments on {h} bound to another address than the VM's first: {', '.join(mism)}")
    ok = sum(1 for e in churn if e[2] == "attach" and e[3] == "0")
    bad = [e for e in churn if e[3] != "0"]
    cycles = sum(1 for e in churn if e[2] == "detach")
    print(f"churn: {cycles} detach/attach cycles, {ok} re-attaches ok, {len(bad)} failed wownetctl calls")
    for e in bad[:5]:
        print("  " + " ".join(e[1:]))
    print(f"rendezvous restarts: {len(rv_restarts)}; NAT conntrack flushes: {len(flushes)} (each on both NATs)")
    sw = [s["sweep"] for s in samples]
    print(f"ping sweep a<i> -> b<i> (2 pings each, attached VMs): {sum(x[0] for x in sw)}/{sum(x[1] for x in sw)} pairs answered")
    t_end = samples[-1]["t"]
    outages = []
    for p, ts in replies.items():
        if not ts:
            print(f"{p}: no replies")
            continue
        span = t_end - ts[0]
        gaps = [b - a for a, b in zip(ts, ts[1:])]
        worst = max(gaps) if gaps else 0
        at = ts[gaps.index(worst)] if gaps else ts[0]
        print(f"{p} (every 0.5 s): {len(ts)} replies in {span:.0f} s ({100 * len(ts) / (span * 2):.1f} %), longest gap "
              f"{worst:.1f} s at {time.strftime('%H:%M:%S', time.localtime(at))}")
        outages.extend((a, b - a) for a, b in zip(ts, ts[1:]) if b - a > 5)
    # Outages (> 5 s without a reply) and the last event before each.
    events = [(float(e[0]), "rendezvous restart") for e in rv_restarts] + [(float(e[0]), "NAT flush") for e in flushes]
    merged = []
    for a, g in sorted(outages):
        if merged and a <= merged[-1][0] + merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], a + g - merged[-1][0]))
        else:
            merged.append((a, g))
    if merged:
        print(f"cross-host ping outages over 5 s (either direction): {len(merged)}, longest {max(g for _, g in merged):.0f} s")
    for a, g in merged:
        before = [(t, what) for t, what in events if t <= a + 2]
        cause = (f" (last event before it: {before[-1][1]} at {time.strftime('%H:%M:%S', time.localtime(before[-1][0]))})"
                 if before else "")
        print(f"  {time.strftime('%H:%M:%S', time.localtime(a))} for {g:.0f} s{cause}")
    okr = [r for r in rounds if r["rc"] == 0 and r["bytes"]]
    tot = sum(r["bytes"] for r in rounds)
    secs = sum(r["secs"] for r in okr)
    print(f"iperf3 a01 <-> b01 (-b {os.environ.get('SOAK_IPERF_RATE_SHOWN', '')}): {len(rounds)} rounds, {len(okr)} ok, "
          f"{tot / 1e9:.2f} GB received, {tot * 8 / secs / 1e6 if secs else 0:.0f} Mbit/s mean over ok rounds, "
          f"{sum(r['retr'] for r in rounds)} retransmits")
    failed = collections.defaultdict(list)
    for r in rounds:
        if r["rc"] != 0 or not r["bytes"]:
            failed[r["error"] or f"no result (exit status {r['rc']})"].append(time.strftime('%H:%M:%S', time.localtime(r['t0'])))
    for err, at in failed.items():
        print(f"  {len(at)} failed rounds: {err} (from {at[0]} to {at[-1]})")

    # What each hostd logged, by level, and its most frequent warnings.
    for name, ns, sock, log in DAEMONS:
        levels, msgs, downs = collections.Counter(), collections.Counter(), collections.Counter()
        try:
            for l in open(log, errors="replace"):
                m = re.match(r"^\S+ (trace|debug|info|warning|error|critical) (.*)", l)
                if not m:
                    levels["other"] += 1
                    continue
                levels[m.group(1)] += 1
                if " down: " in m.group(2):
                    downs[re.sub(r" [0-9a-f]{32} ", " ", re.sub(r"\d+ ms", "# ms", m.group(2)))] += 1
                if m.group(1) in ("warning", "error", "critical"):
                    msgs[re.sub(r"[0-9a-f]{8,}|\d+", "#", m.group(2))[:150]] += 1
        except OSError:
            pass
        print(f"hostd {name} log: " + ", ".join(f"{k} {v}" for k, v in levels.most_common()))
        for m, c in msgs.most_common(4) + downs.most_common(4):
            print(f"  {c:>6} x {m}")

    print()
    if failures:
        for f in failures:
            print("FAIL - " + f)
        return 1
    print("PASS - no lease lost, no hostd died, RSS and fds within the thresholds")
    return 0


if sys.argv[1] == "sample":
    sample(int(sys.argv[4]), dict(a.split("=") for a in sys.argv[5:]))
else:
    sys.exit(report())
PY
export SOAK_IPERF_RATE_SHOWN=$IPERF_RATE
sample() {
  python3 "$WN_TMP/soak.py" sample "$WN_TMP" "$BIN" "$1" rv="${HOSTD_PID[rv]}" ha="${HOSTD_PID[ha]}" hb="${HOSTD_PID[hb]}"
}

# rv_restart: the rendezvous stopped by its pid (its exit status recorded)
# and, SOAK_RV_DOWN s later, started again on the same state dir.
rv_restart() {
  local old=${HOSTD_PID[rv]} rc
  kill -TERM "$old" 2>/dev/null || true
  for _ in $(seq 100); do alive "$old" || break; sleep 0.1; done
  if alive "$old"; then
    echo "rendezvous (pid $old) still running 10 s after SIGTERM" >>"$WN_TMP/died.log"
    kill -KILL "$old"
  fi
  rc=0
  wait "$old" || rc=$?
  wn_forget "$old"
  ((rc == 0)) || echo "rendezvous (pid $old) exited with status $rc on SIGTERM" >>"$WN_TMP/died.log"
  sleep "$RV_DOWN"
  if ! soak_hostd rv rendezvous 198.51.100.10; then
    echo "rendezvous did not come back (pid ${HOSTD_PID[rv]})" >>"$WN_TMP/died.log"
    return 1
  fi
  echo "$(date +%s.%N) $old ${HOSTD_PID[rv]}" >>"$WN_TMP/rv-restarts.log"
  wn_log "rendezvous restarted (pid $old -> ${HOSTD_PID[rv]})"
}

flush_nats() {
  ip netns exec "${NS[ra]}" conntrack -F >/dev/null 2>&1 || true
  ip netns exec "${NS[rb]}" conntrack -F >/dev/null 2>&1 || true
  date +%s.%N >>"$WN_TMP/flushes.log"
}

# --- the soak ----------------------------------------------------------------------
wn_log "soaking for $MINUTES min (until $(date -d "@$DEADLINE" +%H:%M:%S)); work dir $WN_TMP"
sample 0 || wn_log "sample 0 failed"
minute=0
next_sample=$((START + 60))
next_flush=$((START + FLUSH_FIRST))
next_rv=$((START + RV_FIRST))
while ((minute < MINUTES)); do
  sleep 1
  dead=""
  for n in rv ha hb; do alive "${HOSTD_PID[$n]}" || dead+=" $n"; done
  if [[ -n $dead ]]; then
    for n in $dead; do
      echo "hostd $n (pid ${HOSTD_PID[$n]}) died at $(date +%H:%M:%S); tail of its log: $(tail -3 "$WN_TMP/hostd-$n.log" | tr '\n' '|')" \
        >>"$WN_TMP/died.log"
    done
    wn_log "hostd died:$dead; ending the soak early"
    sample $((minute + 1)) || true
    break
  fi
  now=$EPOCHSECONDS
  if ((FLUSH_EVERY > 0 && now >= next_flush)); then
    ((now < DEADLINE - 5)) && flush_nats
    next_flush=$((next_flush + FLUSH_EVERY))
  fi
  if ((RV_EVERY > 0 && now >= next_rv)); then
    if ((now < DEADLINE - 30)) && ! rv_restart; then
      wn_log "the rendezvous did not come back; ending the soak early"
      break
    fi
    next_rv=$((next_rv + RV_EVERY))
  fi
  if ((EPOCHSECONDS >= next_sample)); then
    minute=$((minute + 1))
    sample "$minute" || wn_log "sample $minute failed"
    next_sample=$((next_sample + 60))
  fi
done

# --- wind down and report -------------------------------------------------------------
touch "$STOP"
for pid in "${LOOPS[@]}"; do
  for _ in $(seq $((IPERF_ROUND * 10 + 300))); do alive "$pid" || break; sleep 0.1; done
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  wn_forget "$pid"
done
for pid in "${PINGS[@]}"; do
  wn_stop "$pid" INT
  wn_forget "$pid"
done
rc=0
python3 "$WN_TMP/soak.py" report "$WN_TMP" "$BIN" || rc=$?
exit $rc
