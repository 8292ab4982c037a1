#!/usr/bin/env bash
# Bulk data across the overlay, by hash: a 200 MB file of random bytes moves
# with nc between VMs on two hosts, each way, and arrives with the same
# sha256. Four pairs of hosts on one underlay (a bridge in namespace "wan",
# as in test_overlay.sh), a rendezvous, one VM behind each host:
#   direct,  UDP offloads on   ([overlay] udp_gso/udp_gro default: true)
#   direct,  UDP offloads off  (udp_gso = false, udp_gro = false)
#   relayed, UDP offloads on   (iptables in both hosts' namespaces drops UDP
#   relayed, UDP offloads off   between the two, so only the rendezvous joins them)
# Each case first checks that `wownetctl peers --json` shows the expected
# path on both hosts and that status shows the offloads as configured, and
# afterwards that the rendezvous relayed the relayed cases' bytes and none
# of the direct ones'. tcpdump on the underlay during the first transfer
# must capture nothing but UDP between overlay ports 7700 (no TCP of the
# VMs in clear, no VM address). A failed case leaves both hosts' counters
# and peers in the log.
#
# About 2 min 45 s on the 2-core machine while it was also building (load
# average over 20); each 200 MB transfer took 3-7 s. BULK_MB=20 for a
# quicker run by hand.
# Needs root. Run through ctest (label netns) or with WOWNET_BIN=build/bin.
source "$(dirname "$0")/lib.sh"
BIN=${WOWNET_BIN:?set WOWNET_BIN to the directory holding wownet-hostd}
wn_require dhclient ping python3 nc ss sha256sum tcpdump iptables timeout
BULK_MB=${BULK_MB:-200}
TRANSFER_TIMEOUT=45  # per transfer: a stall fails the case, not the whole ctest run
CTL() { local n=$1; shift; ip netns exec "${NODE_NS[$n]}" "$BIN/wownetctl" --socket "$WN_TMP/$n.sock" "$@"; }

# --- nodes: the rendezvous and four pairs of hosts ------------------------------
# pair: "first second path offloads"
PAIRS=("ha hb direct on" "hc hd direct off" "he hf relayed on" "hg hh relayed off")
declare -A NODE_NS NODE_IP=([rv]=192.0.2.10)
NODES=(rv)
for pair in "${PAIRS[@]}"; do
  read -r x y _ <<<"$pair"
  for n in "$x" "$y"; do
    NODE_IP[$n]=192.0.2.$((10 + ${#NODES[@]}))
    NODES+=("$n")
  done
done
wn_pki_init "bulk test"
wn_underlay WAN
for n in "${NODES[@]}"; do
  wn_node_cert "$n"
  wn_underlay_node "NODE_NS[$n]" "$WAN" "$n" "${NODE_IP[$n]}"
done

for pair in "${PAIRS[@]}"; do
  read -r x y path _ <<<"$pair"
  [[ $path == relayed ]] || continue
  # No UDP between the two hosts: their only path is through the rendezvous.
  for a in "$x $y" "$y $x"; do
    read -r me other <<<"$a"
    ip netns exec "${NODE_NS[$me]}" iptables -A OUTPUT -p udp -d "${NODE_IP[$other]}" -j DROP
    ip netns exec "${NODE_NS[$me]}" iptables -A INPUT -p udp -s "${NODE_IP[$other]}" -j DROP
  done
done

declare -A OFFLOADS
for pair in "${PAIRS[@]}"; do
  read -r x y _ offloads <<<"$pair"
  OFFLOADS[$x]=$offloads
  OFFLOADS[$y]=$offloads
done
OFFLOADS[rv]=on
for n in "${NODES[@]}"; do
  wn_overlay_config "$n" "$(wn_role "$n")" "${NODE_IP[$n]}" info
  [[ ${OFFLOADS[$n]} == off ]] && printf 'udp_gso = false\nudp_gro = false\n' >>"$WN_TMP/$n.toml"
  wn_node_hostd "$n" "${NODE_NS[$n]}"
done

# --- one VM behind each host ------------------------------------------------------
declare -A VM IP
for n in "${NODES[@]:1}"; do
  wn_ns VM[$n] "vm-$n"
  wn_no_ipv6 "${VM[$n]}"
  wn_veth "${NODE_NS[$n]}" vif "${VM[$n]}" eth0
  CTL "$n" attach vif --vm "vm-$n" >/dev/null
  wn_spawn "dhclient-$n" ip netns exec "${VM[$n]}" dhclient -4 -d -pf "$WN_TMP/vm-$n.pid" -lf "$WN_TMP/vm-$n.leases" eth0
done
for n in "${NODES[@]:1}"; do
  wn_wait_for 40 "lease in vm-$n" wn_has_lease "${VM[$n]}" || true
  IP[$n]=$(ip -n "${VM[$n]}" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1 | grep -v '^169\.254' | head -1)
  wn_check "vm-$n has a lease: ${IP[$n]:-none}" [ -n "${IP[$n]}" ]
done

# --- helpers ---------------------------------------------------------------------------
counter() { CTL "$1" status --json | wn_json "int(d.get('overlay', {}).get('$2', 0))"; }
# pair_state X Y: "<X's path to Y> <Y's path to X> <X's offloads> <Y's offloads>"
# from `peers --json` and `status --json` (offloads: on, off or mixed), and
# the rendezvous' relayed_packets in RELAYED; one Python run, as starting
# Python is the slow part on a busy machine.
pair_state() {
  local state
  state=$(python3 - "$1" "$2" "$(CTL "$1" peers --json)" "$(CTL "$2" peers --json)" \
    "$(CTL "$1" status --json)" "$(CTL "$2" status --json)" "$(CTL rv status --json)" <<'PY'
import json, sys
x, y = sys.argv[1:3]
peers = [json.loads(a).get("peers", []) for a in sys.argv[3:5]]
status = [json.loads(a).get("overlay", {}) for a in sys.argv[5:8]]
def path(ps, name):
    return "".join(p.get("path", "") for p in ps if p.get("node_name") == name and p.get("established")) or "none"
def offloads(o):
    return {("1", "1"): "on", ("0", "0"): "off"}.get((str(o.get("udp_gso")), str(o.get("udp_gro"))), "mixed")
print(path(peers[0], y), path(peers[1], x), offloads(status[0]), offloads(status[1]), int(status[2].get("relayed_packets", 0)))
PY
  ) || state="error error error error 0"
  RELAYED=${state##* }
  STATE=${state% *}
}
dump_state() {  # host...: counters and peers into the log, for a failed case
  local n
  for n in "$@"; do
    wn_log "state of $n: overlay counters: $(CTL "$n" status --json |
      wn_json "' '.join(f'{k}={v}' for k, v in sorted(d.get('overlay', {}).items()))")"
    wn_log "peers of $n: $(CTL "$n" peers 2>&1 | tr '\n' ';')"
  done
  wn_log "relay: relayed_packets $(counter rv relayed_packets), relay_drops $(counter rv relay_drops)"
}
head -c "${BULK_MB}M" /dev/urandom >"$WN_TMP/blob"
BLOB_SHA=$(sha256sum <"$WN_TMP/blob" | cut -c1-64)
transfer() {  # from to: the file from from's VM to to's VM with nc; prints the received sha256
  local out=$WN_TMP/received start=$SECONDS receiver
  rm -f "$out"
  wn_spawn "nc-receiver-$2" ip netns exec "${VM[$2]}" \
    sh -c 'exec timeout "$1" nc -l 5000 >"$2" </dev/null' nc "$TRANSFER_TIMEOUT" "$out"
  receiver=$WN_LAST_PID
  wn_wait_for 5 "nc listening in vm-$2" bash -c "ip netns exec ${VM[$2]} ss -Hltn 'sport = :5000' | grep -q ." || true
  ip netns exec "${VM[$1]}" timeout "$TRANSFER_TIMEOUT" nc -N "${IP[$2]}" 5000 <"$WN_TMP/blob" >/dev/null 2>&1 || true
  wait "$receiver" || true
  wn_forget "$receiver"
  wn_log "vm-$1 -> vm-$2: $(stat -c %s "$out" 2>/dev/null || echo 0) bytes in $((SECONDS - start)) s"
  sha256sum <"$out" 2>/dev/null | cut -c1-64
  rm -f "$out"
}
# Packets of one direction of the file, at most 1500 bytes each.
MIN_RELAYED=$((BULK_MB * 1048576 / 1500))

# --- the four cases ------------------------------------------------------------------
first=1
for pair in "${PAIRS[@]}"; do
  read -r x y path offloads <<<"$pair"
  name="$path, offloads $offloads"
  wn_check "$name: vm-$x pings vm-$y" wn_wait_for 30 "vm-$x -> vm-$y" \
    ip netns exec "${VM[$x]}" ping -c 1 -W 1 "${IP[$y]}"
  pair_state "$x" "$y"
  wn_eq "$name: paths $x -> $y and $y -> $x, UDP offloads on $x and $y" "$STATE" "$path $path $offloads $offloads"
  relayed_before=$RELAYED
  if ((first)); then
    wn_spawn tcpdump ip netns exec "$WAN" tcpdump -i br0 -n -U -s 128 -w "$WN_TMP/wan.pcap" not arp
    tcpdump_pid=$WN_LAST_PID
    sleep 1
  fi
  ok=1
  sha=$(transfer "$x" "$y")
  [[ $sha == "$BLOB_SHA" ]] || ok=0
  wn_eq "$name: $BULK_MB MB vm-$x -> vm-$y arrives intact (sha256)" "$sha" "$BLOB_SHA"
  if ((first)); then
    sleep 1
    wn_stop "$tcpdump_pid"
    wn_forget "$tcpdump_pid"
    tcpdump -n -r "$WN_TMP/wan.pcap" 2>/dev/null >"$WN_TMP/wan.txt" || true
    # (UDP lengths: with GSO one captured datagram is a train of segments.)
    udp_bytes=$(awk -v from="${NODE_IP[$x]}.7700" -v to="${NODE_IP[$y]}.7700:" \
      '$3 == from && $5 == to { n += $NF } END { printf "%d", n }' "$WN_TMP/wan.txt")
    wn_check "the underlay capture saw the whole transfer ($udp_bytes bytes of UDP $x -> $y)" \
      [ "$udp_bytes" -gt "$((BULK_MB * 1048576))" ]
    wn_check_not "the underlay carries nothing but UDP between overlay ports 7700" \
      grep -vE '^[0-9:.]+ IP 192\.0\.2\.1[0-9]\.7700 > 192\.0\.2\.1[0-9]\.7700: UDP' "$WN_TMP/wan.txt"
    wn_check_not "no TCP of the VMs in clear on the underlay" grep -E 'Flags \[|\.5000[ :]' "$WN_TMP/wan.txt"
    wn_check_not "no VM address on the underlay" grep -E '(^| )10\.[0-9]+\.[0-9]+\.[0-9]+' "$WN_TMP/wan.txt"
    rm -f "$WN_TMP/wan.pcap"
    first=0
  fi
  sha=$(transfer "$y" "$x")
  [[ $sha == "$BLOB_SHA" ]] || ok=0
  wn_eq "$name: $BULK_MB MB vm-$y -> vm-$x arrives intact (sha256)" "$sha" "$BLOB_SHA"
  pair_state "$x" "$y"
  relayed=$((RELAYED - relayed_before))
  if [[ $path == relayed ]]; then
    wn_check "$name: the rendezvous relayed the file both ways ($relayed packets)" [ "$relayed" -gt "$MIN_RELAYED" ]
  else
    wn_check "$name: the rendezvous relayed none of it ($relayed packets)" [ "$relayed" -lt 1000 ]
  fi
  wn_eq "$name: paths and offloads afterwards" "$STATE" "$path $path $offloads $offloads"
  ((ok)) || dump_state "$x" "$y"
done

wn_finish
