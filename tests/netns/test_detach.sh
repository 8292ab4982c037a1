#!/usr/bin/env bash
# Detaching hands the VM's TAP and bridge to a worker thread (unregistering
# network devices waits for the kernel's RCU grace periods): the links go
# away shortly after the reply, the same VIF can be attached again at once,
# a new attachment never reuses a name still being removed, and another
# VM's traffic goes on while many are detached.
#
# Needs root. Run through ctest (label netns) or with WOWNET_BIN=build/bin.
source "$(dirname "$0")/lib.sh"
BIN=${WOWNET_BIN:?set WOWNET_BIN to the directory holding wownet-hostd}
wn_require dhclient
N=12
wn_ns H host
for i in $(seq $N); do
  ip -n "$H" link add "vif$i" type veth peer name "vm$i"
  ip -n "$H" link set "vif$i" up
done
wn_ns VM0 vm0
wn_veth "$H" vif0 "$VM0" eth0
wn_hostd "$H"
ours() { ip -n "$H" -o link show | grep -cE ': wn[bt][0-9]+[:@]' || true; }

# vm0: a VM with a lease, pinging its gateway throughout.
wn_check "attach vm0" "${CTL[@]}" attach vif0 --vm vm0
wn_spawn dhclient0 ip netns exec "$VM0" dhclient -4 -d -pf "$WN_TMP/d0.pid" -lf "$WN_TMP/d0.leases" eth0
wn_wait_for 30 "lease in vm0" wn_has_lease "$VM0"

for i in $(seq $N); do "${CTL[@]}" attach "vif$i" --vm "v$i" >/dev/null; done
wn_eq "bridges and TAPs of all attachments" "$(ours)" $((2 * (N + 1)))

ip netns exec "$VM0" ping -i 0.05 -c 60 -W 1 10.128.0.1 >"$WN_TMP/ping.txt" 2>&1 &
PING=$!
for i in $(seq $N); do wn_check "detach v$i" "${CTL[@]}" detach "v$i"; done
wait "$PING" || true
wn_check "vm0's pings went on while $N VMs were detached" grep -q ' 0% packet loss' "$WN_TMP/ping.txt"
wn_check "their links are gone soon after" wn_wait_for 10 "links removed" bash -c "[ \$(ip -n $H -o link show | grep -cE ': wn[bt][0-9]+[:@]') = 2 ]"

# The same VIF back at once (a VM restarted by its hypervisor).
"${CTL[@]}" attach vif1 --vm v1 >/dev/null
wn_check "detach v1" "${CTL[@]}" detach v1
wn_check "re-attach vif1 right after its detach" "${CTL[@]}" attach vif1 --vm v1
wn_eq "vif1 is up on its new bridge" "$("${CTL[@]}" list --json | wn_json "[a['state'] for a in d['attachments'] if a['vm'] == 'v1'][0]")" up
BR=$("${CTL[@]}" list --json | wn_json "[a['bridge'] for a in d['attachments'] if a['vm'] == 'v1'][0]")
wn_check "vif1's master is that bridge" bash -c "ip -n $H -o link show dev vif1 | grep -q 'master $BR '"

# Stopping hostd finishes pending removals first; vm0's bridge stays for
# the next hostd to adopt (its TAP goes with the process).
"${CTL[@]}" detach v1 >/dev/null
wn_stop "$HOSTD"
wn_forget "$HOSTD"
wn_eq "only vm0's kept bridge left after hostd stopped" "$(ip -n "$H" -o link show | grep -cE ': wn[bt][0-9]+[:@]' || true)" 1
wn_finish
