#!/usr/bin/env bash
# A host that relays (relay = true, not a rendezvous) carries the traffic of
# two hosts behind symmetric NATs (nat_sites.sh):
#   rendezvous rv 198.51.100.10 with relay = false;
#   relay host rl 198.51.101.20, its own link off the core, relay = true;
#   hc1 (site c) and hd1 (site d) behind MASQUERADE --random-fully.
# Checks:
#  - the rendezvous hands rl out and both hosts keep a session with it;
#  - vm-hc1 pings vm-hd1 and iperf3 runs; both sides' path says relayed
#    via rl; rl counted the relayed packets, the rendezvous relayed nothing;
#  - rl's capture shows only sealed UDP 7700: no VM address, no marked payload;
#  - a quota set by reload (relay_quota) stops the flood and rl counts the
#    datagrams it dropped over it.
# Needs root. Run through ctest (label netns) or with WOWNET_BIN=build/bin.
source "$(dirname "$0")/lib.sh"
BIN=${WOWNET_BIN:?set WOWNET_BIN to the directory holding wownet-hostd}
for tool in dhclient ping python3 iptables iperf3 tcpdump; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool (scripts/test.sh installs it)"; exit 1; }
done
source "$(dirname "$0")/nat_sites.sh"

nat_core
# rl: its own link off the core, a public address.
nat_public rl 198.51.101 20
nat_site c 3 symmetric
nat_site d 4 symmetric
nat_host hc1 c 3 10.3.0.11
nat_host hd1 d 4 10.4.0.11

nat_hostd rv rendezvous 198.51.100.10 "relay = false"
nat_hostd rl host 198.51.101.20 "relay = true"
for h in hc1 hd1; do nat_hostd "$h" host "${LAN_IP[$h]}"; done

declare -A IP
for h in hc1 hd1; do nat_vm "$h" "vm-$h" vif; done
for h in hc1 hd1; do
  wn_wait_for 40 "lease in vm-$h" bash -c "ip -n ${NS[vm-$h]} -4 -o addr show dev eth0 | grep -q 'inet 10\.'" || true
  IP[$h]=$(nat_vm_ip "vm-$h")
  wn_check "vm-$h behind its symmetric NAT has a lease: ${IP[$h]:-none}" [ -n "${IP[$h]}" ]
done
vm_ping() { ip netns exec "${NS[vm-$1]}" ping "${@:3}" "${IP[$2]}"; }
has_session() { [ -n "$(nat_peer "$1" "$2" path 2>/dev/null)" ]; }
for h in hc1 hd1; do
  wn_check "$h keeps a session with the relay host" wn_wait_for 20 "$h -> rl" has_session "$h" rl
done

# --- Two symmetric NATs: through the relay host ----------------------------
PATTERN=77616e7972656c61  # marks the relayed pings' payload
wn_spawn tcpdump-rl ip netns exec "${NS[rl]}" tcpdump -i uplink -n -U -s 0 -w "$WN_TMP/relay.pcap"
tcpdump_pid=$WN_LAST_PID
sleep 1
start=$SECONDS
wn_check "across two symmetric NATs: vm-hc1 pings vm-hd1" wn_wait_for 40 "hc1 -> hd1" vm_ping hc1 hd1 -c 1 -W 1
wn_log "first ping across two symmetric NATs after $((SECONDS - start)) s"
wn_eq "hc1 reaches hd1 through a relay" "$(nat_peer hc1 hd1 path)" relayed
wn_eq "hd1 reaches hc1 through a relay" "$(nat_peer hd1 hc1 path)" relayed
wn_eq "hc1's relay is the relay host" "$(nat_peer hc1 hd1 relay)" "rl 198.51.101.20:7700"
wn_eq "hd1's relay is the relay host" "$(nat_peer hd1 hc1 relay)" "rl 198.51.101.20:7700"
nat_ctl hc1 peers >"$WN_TMP/peers-hc1.txt"
wn_check "wownetctl peers says relayed via rl" grep -q "relayed.*(via rl " "$WN_TMP/peers-hc1.txt"
wn_check "relayed: 10 pings vm-hd1 -> vm-hc1 carrying a marked payload" vm_ping hd1 hc1 -c 10 -i 0.1 -W 1 -q -p "$PATTERN"
wn_check_iperf "relayed: iperf3 vm-hc1 -> vm-hd1" "${NS[vm-hc1]}" "${NS[vm-hd1]}" "${IP[hd1]}"
wn_check "the relay host counted relayed packets ($(nat_counter rl relayed_packets))" \
  [ "$(nat_counter rl relayed_packets)" -gt 100 ]
wn_eq "the rendezvous relayed nothing" "$(nat_counter rv relayed_packets)" 0
sleep 1
wn_stop "$tcpdump_pid"
ip netns exec "${NS[rl]}" tcpdump -n -r "$WN_TMP/relay.pcap" >"$WN_TMP/relay.txt" 2>/dev/null || true
wn_check "the relay's capture is not empty" [ -s "$WN_TMP/relay.txt" ]
other_traffic() { awk '!/ARP/ && !(/UDP/ && /\.7700[: ]/)' "$WN_TMP/relay.txt" | grep -q .; }
wn_check_not "the relay's capture has only UDP 7700" other_traffic
wn_check_not "no VM address in the clear at the relay" grep -E "${IP[hc1]//./\\.}|${IP[hd1]//./\\.}" "$WN_TMP/relay.txt"
wn_check_not "no marked payload in the clear at the relay" \
  python3 -c "import sys; sys.exit(0 if bytes.fromhex('$PATTERN') in open('$WN_TMP/relay.pcap','rb').read() else 1)"

# --- A quota: what goes over it is dropped and counted --------------------
echo "relay_quota = 1" >>"$WN_TMP/rl.toml"
wn_check "rl reloads with a quota of 1 MiB per node" nat_ctl rl reload
dropped_before=$(nat_counter rl relay_over_quota)
ip netns exec "${NS[vm-hc1]}" ping -f -c 1500 -s 1200 -W 1 -q "${IP[hd1]}" >/dev/null 2>&1 || true
dropped=$(($(nat_counter rl relay_over_quota) - dropped_before))
wn_check "the relay host dropped what went over the quota ($dropped datagrams)" [ "$dropped" -gt 100 ]
wn_check "and counts them among its drops" [ "$(nat_counter rl relay_drops)" -ge "$dropped" ]

wn_finish
