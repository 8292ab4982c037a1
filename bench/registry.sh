#!/usr/bin/env bash
# Lease allocation through one rendezvous' registry, on SQLite and on etcd,
# with 1, 10 and 100 requesting hosts: leases per second (full OFFER + BIND
# exchanges), exchange latency p50/p99, failures, store writes per reply
# (the group commit at work), resolve latency; then 100,000 leases: RSS and
# the time a restarted registry takes to load them.
#
# The registry is hostd's own code (bench/registry_load.cpp drives
# registry::Registry with a real SQLite file, or SharedRegistry over
# io::EtcdClient to a real etcd-server on loopback); the hosts are
# simulated in-process, each with all its VMs asking at once. Each backend
# runs twice per line: per-request (the code before: a SQLite transaction,
# or an etcd txn, per request) and batched (one transaction, or shared
# txns, per turn of the loop).
#
# A report, not a test. Needs etcd (Debian's etcd-server, installed by
# scripts/install-deps.sh). Traffic only on loopback.
#
#   bench/registry.sh BUILD_BIN_DIR [VMS]     (default 5000)
#   bench/registry.sh build/bin | tee bench/results/registry-$(date +%F).txt
set -euo pipefail
BIN=$(cd "${1:?usage: bench/registry.sh BUILD_BIN_DIR [VMS]}" && pwd)
VMS=${2:-5000}
PRELOAD=${REGISTRY_PRELOAD:-100000}
LOAD=$BIN/registry_load
[[ -x $LOAD ]] || { echo "missing $LOAD (ninja -C build registry_load)" >&2; exit 2; }
command -v etcd >/dev/null || { echo "missing etcd (scripts/install-deps.sh installs it)" >&2; exit 2; }

TMP=$(mktemp -d /tmp/wn-registry-bench.XXXXXX)
ETCD_PID=
cleanup() {
  if [[ -n $ETCD_PID ]]; then
    kill "$ETCD_PID" 2>/dev/null || true
    wait "$ETCD_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

echo "# registry benchmark, $(date -u '+%F %T') UTC"
echo "# nproc $(nproc), kernel $(uname -r), $(sqlite3 --version 2>/dev/null | cut -d' ' -f1 | sed 's/^/sqlite /')" \
  "$(etcd --version 2>/dev/null | head -1)"
echo "# state on $(df -P "$TMP" | awk 'NR == 2 {print $1}') ($(stat -f -c %T "$TMP"))"
echo "# $VMS VMs at once, spread over H hosts (each host: all its VMs in flight)"

run() {  # label args...
  local label=$1
  shift
  printf '%-28s ' "$label"
  "$LOAD" "$@" 2>"$TMP/err" || { echo "FAILED: $(tail -3 "$TMP/err" | tr '\n' ' ')"; return 0; }
}

depth_for() { echo $(((VMS + $1 - 1) / $1)); }

echo
echo "## SQLite"
for h in 1 10 100; do
  d=$(depth_for "$h")
  run "sqlite per-request h=$h" --backend sqlite --db "$TMP/pr-$h.db" --hosts "$h" --depth "$d" --vms "$VMS" --no-group
  run "sqlite batched h=$h" --backend sqlite --db "$TMP/g-$h.db" --hosts "$h" --depth "$d" --vms "$VMS"
done

# etcd on loopback, ports of its own.
PORT=$((23000 + RANDOM % 2000))
ETCD_URL=http://127.0.0.1:$PORT
etcd --name wnbench --data-dir "$TMP/etcd" --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
  --listen-peer-urls "http://127.0.0.1:$((PORT + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((PORT + 1))" \
  --initial-cluster "wnbench=http://127.0.0.1:$((PORT + 1))" --quota-backend-bytes $((4 << 30)) \
  --logger zap --log-outputs "$TMP/etcd.log" >/dev/null 2>&1 &
ETCD_PID=$!
for _ in $(seq 100); do
  ETCDCTL_API=3 etcdctl --endpoints "$ETCD_URL" endpoint health >/dev/null 2>&1 && break
  sleep 0.2
done

echo
echo "## etcd (one member, loopback)"
for h in 1 10 100; do
  d=$(depth_for "$h")
  run "etcd per-request h=$h" --backend etcd --etcd "$ETCD_URL" --prefix "/pr-$h/" --hosts "$h" --depth "$d" \
    --vms "$VMS" --no-group
  run "etcd batched h=$h" --backend etcd --etcd "$ETCD_URL" --prefix "/b-$h/" --hosts "$h" --depth "$d" --vms "$VMS"
done

echo
echo "## $PRELOAD leases: time for a restarted registry to load them (open_ms) and RSS holding them"
echo "## (rss_opened_kib; rss_start_kib is the process before opening), then $((VMS / 5)) more VMs on top"
"$LOAD" --backend sqlite --db "$TMP/big.db" --preload "$PRELOAD" --vms 0 --resolves 0 >/dev/null 2>"$TMP/err" ||
  echo "sqlite preload failed: $(tail -3 "$TMP/err")"
run "sqlite $PRELOAD restart" --backend sqlite --db "$TMP/big.db" --hosts 10 --depth $((VMS / 50)) --vms $((VMS / 5))
echo "    registry.db: $(du -h "$TMP/big.db" | cut -f1)"
"$LOAD" --backend etcd --etcd "$ETCD_URL" --prefix /big/ --preload "$PRELOAD" --vms 0 --resolves 0 >/dev/null \
  2>"$TMP/err" || echo "etcd preload failed: $(tail -3 "$TMP/err")"
run "etcd $PRELOAD restart" --backend etcd --etcd "$ETCD_URL" --prefix /big/ --hosts 10 --depth $((VMS / 50)) \
  --vms $((VMS / 5))
