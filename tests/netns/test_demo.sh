#!/usr/bin/env bash
# The README's demo (scripts/demo.sh) runs as shipped on the built binaries
# and shows what it says: leases on both hosts, db's name resolved on host
# A, pings across the overlay, the direct path in `wownetctl peers`,
# iperf3 moving data, the isolation drops explained, and it cleans up every
# namespace it made.
#
# Needs root. Run through ctest (label netns) or with WOWNET_BIN=build/bin.
source "$(dirname "$0")/lib.sh"
BIN=${WOWNET_BIN:?set WOWNET_BIN to the directory holding wownet-hostd}
SRC=${WOWNET_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}

raw=$WN_TMP/demo.raw
out=$WN_TMP/demo.out
rc=0
DEMO_RUN=$WN_RUN-demo WOWNET_BIN=$BIN DEMO_IPERF_SECONDS=1 bash "$SRC/scripts/demo.sh" >"$raw" 2>&1 || rc=$?
sed 's/\x1b\[[0-9;]*m//g' "$raw" >"$out"
wn_eq "demo exits 0" "$rc" 0
wn_eq "both VMs got leases" "$(grep -cE '^(web|db): 10\.' "$out")" 2
wn_eq "the rendezvous lists both leases" "$(grep -A4 'wownetctl leases' "$out" | grep -c ' bound ')" 2
wn_check "db.wow resolves on host A" bash -c "grep -A1 'dig +short db.wow' $out | tail -1 | grep -qE '^10\.'"
wn_check "ping across hosts: no loss" grep -q '3 packets transmitted, 3 received' "$out"
wn_check "peers shows the direct path to host B" bash -c "grep -E '^b +' $out | grep -q direct"
wn_check "iperf3 moved data" bash -c "grep receiver $out | grep -qE '[0-9.]+ [KMG]bits/sec'"
wn_check "outside_overlay drops explained" grep -qE '^  outside_overlay +[0-9]+  to an address outside' "$out"
wn_eq "no demo namespace left" "$(ip netns list | grep -c "^$WN_RUN-demo" || true)" 0
if ((WN_FAILED)); then tail -60 "$out" >&2; fi
wn_finish
