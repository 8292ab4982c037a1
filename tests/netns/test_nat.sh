#!/usr/bin/env bash
# Hosts behind NAT routers (namespaces masquerading with iptables), the
# rendezvous on the public side, a routed core between them (nat_sites.sh):
#   site a (endpoint-independent NAT): ha1, ha2
#   site b (endpoint-independent NAT): hb1
#   site c, site d (symmetric NATs, MASQUERADE --random-fully): hc1, hd1
# Checks:
#  - every VM gets a lease through its NAT;
#  - ha1 and ha2 (same NAT) use their local addresses;
#  - ha1 and hb1 (two NATs) connect directly by hole punching: the path says
#    direct and the relay carries none of their packets;
#  - hc1 and hd1 (symmetric NATs) go through the relay: ping and iperf3, the
#    path says relayed via the rendezvous, and the relay's capture shows
#    only sealed UDP 7700, no VM address or marked payload;
#  - the relay (rendezvous) going down does not disturb the direct path;
#  - site a's NAT forgets every mapping (conntrack flush) while a ping runs,
#    then moves every flow to new public ports: traffic recovers within
#    20 s each time, the host's rendezvous session follows, a new VM there
#    gets a lease, and once the NAT keeps ports again the path goes back
#    to direct.
# Needs root. Run through ctest (label netns) or with WOWNET_BIN=build/bin.
source "$(dirname "$0")/lib.sh"
BIN=${WOWNET_BIN:?set WOWNET_BIN to the directory holding wownet-hostd}
wn_require dhclient ping python3 iptables conntrack iperf3 tcpdump
source "$(dirname "$0")/nat_sites.sh"
RECOVERY_BOUND=20

nat_sites
nat_host ha1 a 1 10.1.0.11
nat_host ha2 a 1 10.1.0.12
nat_host hb1 b 2 10.2.0.11
nat_host hc1 c 3 10.3.0.11
nat_host hd1 d 4 10.4.0.11

nat_hostd rv rendezvous 198.51.100.10
# Behind one NAT each host listens on its own port, so that the NAT can
# keep every host's port (Linux MASQUERADE keeps it when no other flow
# holds it). Direct attempts are retried quickly here.
declare -A PORT=([ha1]=7700 [ha2]=7701 [hb1]=7700 [hc1]=7700 [hd1]=7700)
for h in ha1 ha2 hb1 hc1 hd1; do nat_hostd "$h" host "${LAN_IP[$h]}" "direct_retry = 10" "${PORT[$h]}"; done

declare -A IP
for h in ha1 ha2 hb1 hc1 hd1; do nat_vm "$h" "vm-$h" vif; done
for h in ha1 ha2 hb1 hc1 hd1; do
  wn_wait_for 40 "lease in vm-$h" wn_has_lease "${NS[vm-$h]}" || true
  IP[$h]=$(nat_vm_ip "vm-$h")
  wn_check "vm-$h behind its NAT has a lease: ${IP[$h]:-none}" [ -n "${IP[$h]}" ]
done
vm_ping() { ip netns exec "${NS[vm-$1]}" ping "${@:3}" "${IP[$2]}"; }

# --- Same NAT -------------------------------------------------------------
wn_check "behind one NAT: vm-ha1 pings vm-ha2" wn_wait_for 30 "ha1 -> ha2" vm_ping ha1 ha2 -c 1 -W 1
wn_eq "the session uses the local address" "$(nat_peer ha1 ha2 endpoint | cut -d: -f1)" 10.1.0.12
wn_eq "behind one NAT the path is direct" "$(nat_peer ha1 ha2 path)" direct

# --- Two endpoint-independent NATs: direct ---------------------------------
relayed_before=$(nat_counter rv relayed_packets)
start=$SECONDS
wn_check "across two NATs: vm-ha1 pings vm-hb1" wn_wait_for 30 "ha1 -> hb1" vm_ping ha1 hb1 -c 1 -W 1
wn_log "first ping across two NATs after $((SECONDS - start)) s"
wn_eq "ha1 reaches hb1 directly" "$(nat_peer ha1 hb1 path)" direct
wn_eq "hb1 reaches ha1 directly" "$(nat_peer hb1 ha1 path)" direct
wn_eq "ha1 sends to hb1's NAT (its public address)" "$(nat_peer ha1 hb1 endpoint | cut -d: -f1)" 100.64.2.2
wn_eq "hb1 sends to ha1's NAT" "$(nat_peer hb1 ha1 endpoint | cut -d: -f1)" 100.64.1.2
wn_check "hb1 sent punch probes" [ "$(nat_counter hb1 probes_sent)" -gt 0 ]
wn_check "20 pings vm-ha1 -> vm-hb1, no loss" vm_ping ha1 hb1 -c 20 -i 0.1 -W 1 -q
wn_eq "the relay carried none of their packets" "$(nat_counter rv relayed_packets)" "$relayed_before"

# --- Two symmetric NATs: through the relay ---------------------------------
PATTERN=77616e7972656c61  # marks the relayed pings' payload
wn_spawn tcpdump-rv ip netns exec "${NS[rv]}" tcpdump -i uplink -n -U -s 0 -w "$WN_TMP/relay.pcap"
tcpdump_pid=$WN_LAST_PID
sleep 1
start=$SECONDS
wn_check "across two symmetric NATs: vm-hc1 pings vm-hd1" wn_wait_for 40 "hc1 -> hd1" vm_ping hc1 hd1 -c 1 -W 1
wn_log "first ping across two symmetric NATs after $((SECONDS - start)) s"
wn_eq "hc1 reaches hd1 through the relay" "$(nat_peer hc1 hd1 path)" relayed
wn_eq "hd1 reaches hc1 through the relay" "$(nat_peer hd1 hc1 path)" relayed
wn_eq "the relay is the rendezvous" "$(nat_peer hc1 hd1 relay)" "rv 198.51.100.10:7700"
wn_check "relayed: 10 pings vm-hd1 -> vm-hc1 carrying a marked payload" vm_ping hd1 hc1 -c 10 -i 0.1 -W 1 -q -p "$PATTERN"
wn_spawn iperf-hd1 ip netns exec "${NS[vm-hd1]}" iperf3 -s -1
iperf_pid=$WN_LAST_PID
sleep 0.5
wn_check "relayed: iperf3 vm-hc1 -> vm-hd1" ip netns exec "${NS[vm-hc1]}" iperf3 -c "${IP[hd1]}" -t 2
wn_stop "$iperf_pid"
wn_check "the relay counted relayed packets" [ "$(nat_counter rv relayed_packets)" -gt 100 ]
sleep 1
wn_stop "$tcpdump_pid"
ip netns exec "${NS[rv]}" tcpdump -n -r "$WN_TMP/relay.pcap" >"$WN_TMP/relay.txt" 2>/dev/null || true
wn_check "the relay's capture is not empty" [ -s "$WN_TMP/relay.txt" ]
other_traffic() { awk '!/ARP/ && !(/UDP/ && /\.7700[: ]/)' "$WN_TMP/relay.txt" | grep -q .; }
wn_check_not "the relay's capture has only UDP 7700" other_traffic
wn_check_not "no VM address in the clear at the relay" grep -E "${IP[hc1]//./\\.}|${IP[hd1]//./\\.}" "$WN_TMP/relay.txt"
wn_check_not "no marked payload in the clear at the relay" \
  python3 -c "import sys; sys.exit(0 if bytes.fromhex('$PATTERN') in open('$WN_TMP/relay.pcap','rb').read() else 1)"

# --- Garbage at the relay ---------------------------------------------------
# Relay requests from an endpoint without a session, to unknown nodes, too
# short, or relay deliveries sent to the rendezvous: counted drops, and the
# relayed path carries on.
drops_before=$(nat_counter rv relay_drops)
ip netns exec "${NS[ha1]}" python3 - <<'PY'
import os, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rv = ("198.51.100.10", 7700)
for body in [b"\x09", b"\x09" + os.urandom(16), b"\x09" + os.urandom(16) + b"\x04" + os.urandom(40),
             b"\x0a" + os.urandom(16) + b"\x16" + os.urandom(60), b"\x08" + os.urandom(16)]:
    for _ in range(20):
        s.sendto(body, rv)
PY
sleep 0.5
wn_check "the relay counted the garbage as drops" [ "$(nat_counter rv relay_drops)" -ge $((drops_before + 80)) ]
wn_check "relayed path still works after the garbage" vm_ping hc1 hd1 -c 3 -i 0.2 -W 1 -q

# --- The relay goes down --------------------------------------------------
path_is() { [ "$(nat_peer "$1" "$2" path)" = "$3" ]; }
wn_stop "${HOSTD_PID[rv]}"
wn_check "relay down: 30 pings vm-ha1 -> vm-hb1, no loss" vm_ping ha1 hb1 -c 30 -i 0.2 -W 1 -q
wn_eq "the path stays direct" "$(nat_peer ha1 hb1 path)" direct
nat_hostd rv rendezvous 198.51.100.10
rendezvous_up() { [ "$(nat_counter "$1" rendezvous_up)" = 1 ]; }
wn_check "the rendezvous is back for ha1" wn_wait_for 30 "ha1 registered" rendezvous_up ha1

# --- NAT rebinding while a ping runs ---------------------------------------
ping_during() {  # name from-host to-host
  wn_spawn "ping-$1" ip netns exec "${NS[vm-$2]}" ping -D -i 0.2 -W 1 "${IP[$3]}"
  PING_PID=$WN_LAST_PID
  PING_LOG=$WN_TMP/ping-$1.log
  sleep 2
}
reply_times() {  # log time: seconds from time to each reply after it
  sed -nE 's/^\[([0-9.]+)\] [0-9]+ bytes from.*/\1/p' "$1" | awk -v t="$2" '$1 + 0 > t + 0 { printf "%.1f\n", $1 - t }'
}
replied_after() { reply_times "$1" "$2" | awk '$1 > 0.5 { found = 1 } END { exit !found }'; }

# Site a's NAT forgets every mapping.
ping_during flush ha1 hb1
flushed=$(date +%s.%N)
ip netns exec "${NS[ra]}" conntrack -F >/dev/null 2>&1
wn_check "site a's NAT forgets its mappings: ping vm-ha1 -> vm-hb1 recovers within $RECOVERY_BOUND s" \
  wn_wait_for "$RECOVERY_BOUND" "replies after the flush" replied_after "$PING_LOG" "$flushed"
wn_log "first reply $(reply_times "$PING_LOG" "$flushed" | head -1) s after the flush; path $(nat_peer ha1 hb1 path)"
wn_stop "$PING_PID" INT

# Site a's NAT moves every flow to a new public port (as after a reboot or
# a new uplink), per destination: the direct session cannot follow; the
# hosts find each other again through the rendezvous.
ping_during rebind ha1 hb1
ip netns exec "${NS[ra]}" iptables -t nat -I POSTROUTING 1 -o wan -p udp -j MASQUERADE --to-ports 20000-29999
flushed=$(date +%s.%N)
ip netns exec "${NS[ra]}" conntrack -F >/dev/null 2>&1
wn_check "site a's NAT moves to new ports: ping vm-ha1 -> vm-hb1 recovers within $RECOVERY_BOUND s" \
  wn_wait_for "$RECOVERY_BOUND" "replies after the rebinding" replied_after "$PING_LOG" "$flushed"
wn_log "first reply $(reply_times "$PING_LOG" "$flushed" | awk '$1 > 0.5' | head -1) s after the rebinding; \
path $(nat_peer ha1 hb1 path)"
wn_stop "$PING_PID" INT
rv_port() { nat_peer rv ha1 endpoint | grep -qE ':2[0-9]{4}$'; }
wn_check "the rendezvous follows ha1 to its new port" wn_wait_for 10 "rv sees ha1's new port" rv_port
nat_vm ha1 vm-ha1b vif2
wn_check "a new VM behind the rebound NAT gets a lease" wn_wait_for 40 "vm-ha1b lease" \
  wn_has_lease "${NS[vm-ha1b]}"

# The NAT keeps ports again: the path returns to direct by itself.
ip netns exec "${NS[ra]}" iptables -t nat -D POSTROUTING 1
ip netns exec "${NS[ra]}" conntrack -F >/dev/null 2>&1
wn_check "ha1 and hb1 move back to a direct path within 60 s" wn_wait_for 60 "direct again" path_is ha1 hb1 direct
wn_check "vm-ha1 pings vm-hb1" vm_ping ha1 hb1 -c 3 -i 0.2 -W 1 -q

wn_finish
