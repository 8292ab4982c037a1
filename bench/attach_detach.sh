#!/usr/bin/env bash
# Attach and detach latency as an admin (or a hypervisor hook) sees it:
# one hostd in a namespace, N veth VIFs attached one after another, then
# detached one after another, each through `wownetctl`. The baseline is
# `wownetctl list` (the same process start and control round trip with no
# link work), measured in the same run. Prints ms per call and the cost
# above the baseline, for RUNS runs.
#
#   WOWNET_BIN=build/bin [N=50] [RUNS=3] bench/attach_detach.sh
# Needs root.
source "$(dirname "$0")/../tests/netns/lib.sh"
BIN=${WOWNET_BIN:?set WOWNET_BIN to the directory holding wownet-hostd}
N=${N:-50}
RUNS=${RUNS:-3}
echo "nproc $(nproc), kernel $(uname -r), N=$N"
for run in $(seq "$RUNS"); do
  wn_ns H "host$run"
  for i in $(seq "$N"); do
    ip -n "$H" link add "vif$i" type veth peer name "vm$i"
    ip -n "$H" link set "vif$i" up
  done
  sock=$WN_TMP/s$run.sock
  wn_spawn "hostd$run" ip netns exec "$H" "$BIN/wownet-hostd" --state-dir "$WN_TMP/state$run" --control-socket "$sock"
  pid=$WN_LAST_PID
  wn_wait_for 10 hostd ip netns exec "$H" "$BIN/wownetctl" --socket "$sock" status
  ctl() { ip netns exec "$H" "$BIN/wownetctl" --socket "$sock" "$@" >/dev/null; }
  t0=$(date +%s.%N)
  for i in $(seq "$N"); do ctl list; done
  t1=$(date +%s.%N)
  for i in $(seq "$N"); do ctl attach "vif$i" --vm "v$i"; done
  t2=$(date +%s.%N)
  for i in $(seq "$N"); do ctl detach "v$i"; done
  t3=$(date +%s.%N)
  python3 - "$N" "$t0" "$t1" "$t2" "$t3" <<'PY'
import sys
n = int(sys.argv[1]); t0, t1, t2, t3 = map(float, sys.argv[2:])
base, att, det = (t1 - t0) / n * 1e3, (t2 - t1) / n * 1e3, (t3 - t2) / n * 1e3
print(f"baseline (list) {base:.1f} ms; attach {att:.1f} ms (+{att - base:.1f}); "
      f"detach {det:.1f} ms (+{det - base:.1f}); detach/attach above baseline {(det - base) / max(att - base, 0.1):.2f}")
PY
  wn_stop "$pid"
  wn_forget "$pid"
done
