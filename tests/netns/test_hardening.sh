#!/usr/bin/env bash
# hostd under attack, from inside its VMs and from the underlay: each check
# here stands for a fault that was once found and fixed.
#  - the agent port is flooded with invalid UTF-8 from the underlay and from
#    a VM's agent channel: counted drops, no log flood;
#  - a VIF with MTU 65535: the TAP gets its maximum (65521), `list` shows
#    it, and large frames pass;
#  - the TAP is deleted under hostd: one log line, the attachment comes
#    back by itself and traffic resumes;
#  - an interface already in use (as VIF or agent channel) cannot be
#    attached again in any role; agent-reported addresses are claims;
#  - SIGHUP and SIGUSR1 do not end hostd; a new hostd started while the old
#    one still runs waits for it and takes over.
#
# Needs root. Run through ctest (label netns) or directly with
# WOWNET_BIN=build/bin.
source "$(dirname "$0")/lib.sh"
BIN=${WOWNET_BIN:?set WOWNET_BIN to the directory holding wownet-hostd}

wn_ns H host
wn_ns U underlay
declare -A VM
for i in 1 2; do
  wn_vm "VM[$i]" "$H" "vm$i" "vif$i" "ch$i" "$i"
done
wn_ns VM3 vm3
wn_veth "$H" vif3 "$VM3" eth0
wn_uplink "$H" "$U"
# vm1's link takes the largest frames a veth can; vm2's jumbo frames.
ip -n "$H" link set vif1 mtu 65535
ip -n "${VM[1]}" link set eth0 mtu 65535
ip -n "$H" link set vif2 mtu 9000
ip -n "${VM[2]}" link set eth0 mtu 9000
# Statically configured VMs: hostd learns their addresses from traffic.
for i in 1 2; do
  ip -n "${VM[$i]}" addr add "10.128.0.5$i/9" dev eth0
done

STATE="$WN_TMP/state"
SOCK="$WN_TMP/hostd.sock"
CONF="$WN_TMP/hostd.toml"
printf '[hostd]\nlog_level = "info"\n' >"$CONF"
CTL=(ip netns exec "$H" "$BIN/wownetctl" --socket "$SOCK")
LOG="$WN_TMP/hostd.log"
start_hostd() {  # start_hostd LOGNAME
  wn_spawn "$1" ip netns exec "$H" "$BIN/wownet-hostd" --config "$CONF" --state-dir "$STATE" --control-socket "$SOCK"
  HOSTD=$WN_LAST_PID
}
lines() { wc -l <"$1"; }
status_key() { "${CTL[@]}" status --json | wn_json "int(d.get('engine', {}).get('$1', -1))"; }
start_hostd hostd
wn_wait_for 10 "hostd control socket" "${CTL[@]}" status

wn_check "attach vm1" "${CTL[@]}" attach vif1 --vm vm1 --agent-if ch1
wn_check "attach vm2" "${CTL[@]}" attach vif2 --vm vm2 --agent-if ch2

# --- one interface, one role ----------------------------------------------------
wn_check_not "vm1's agent channel cannot become another VM's VIF" "${CTL[@]}" attach ch1 --vm intruder
wn_check_not "vm2's VIF cannot become another VM's agent channel" "${CTL[@]}" attach vif3 --vm vm3 --agent-if vif2
wn_check_not "vm1's agent channel cannot serve another VM too" "${CTL[@]}" attach vif3 --vm vm3 --agent-if ch1
msg=$("${CTL[@]}" attach vif3 --vm vm3 --agent-if ch1 2>&1 || true)
wn_eq "the refusal says why" "$msg" "wownetctl: ch1 is already the agent channel of vm vm1"
wn_check "vif3 can still be attached on its own" "${CTL[@]}" attach vif3 --vm vm3

# --- MTU of a VIF beyond the TAP's maximum ------------------------------------
mtu1=$("${CTL[@]}" list --json | wn_json '[a.get("mtu", 0) for a in d["attachments"] if a["vm"] == "vm1"][0]')
wn_eq "vm1's TAP has the TAP maximum as MTU (list)" "$mtu1" 65521
wn_eq "and so it is on the device" "$(ip -n "$H" -o link show wnt1 | sed -E "s/.* mtu ([0-9]+) .*/\1/")" 65521
wn_check "the clamp is logged" grep -q "wnt1: MTU 65521, its maximum" "$LOG"
mtu2=$("${CTL[@]}" list --json | wn_json '[a.get("mtu", 0) for a in d["attachments"] if a["vm"] == "vm2"][0]')
wn_eq "vm2's TAP follows its VIF" "$mtu2" 9000
wn_check "list shows an MTU column" bash -c "${CTL[*]} list | head -1 | grep -q MTU"
for i in 1 2; do
  ip -n "${VM[$i]}" route add default via 10.128.0.1 2>/dev/null || true
  ip netns exec "${VM[$i]}" ping -c 1 -W 2 10.128.0.1 >/dev/null 2>&1 || true
done
wn_check "vm1 pings vm2 with 8000-byte packets" wn_wait_for 10 "large ping" \
  ip netns exec "${VM[1]}" ping -c 1 -W 1 -s 8000 10.128.0.52

# --- agent reports: claims, and floods ----------------------------------------
# As wownet-agent sends them: broadcast on the channel NIC (the host's end
# answers no ARP, so a unicast to its address never leaves the VM).
send_report() {  # send_report VM-INDEX COUNT PAYLOAD-PYTHON-EXPR
  ip netns exec "${VM[$1]}" python3 -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'eth1')
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
for _ in range($2):
    s.sendto(b'WNA1' + $3, ('255.255.255.255', 6570))"
}
# host_name "claimer", address 10.128.0.99 (not vm1's)
send_report 1 1 "b'\x12\x07claimer\x22\x0b10.128.0.99'"
wn_check "vm1's agent report arrives" wn_wait_for 5 "agent report" bash -c \
  "${CTL[*]} list --json | grep -q claimed_address"
agent=$("${CTL[@]}" list --json | wn_json '[a.get("agent", {}) for a in d["attachments"] if a["vm"] == "vm1"][0]')
wn_check "the agent's address is shown as a claim ($agent)" \
  python3 -c "import ast,sys; a=ast.literal_eval(sys.argv[1]); sys.exit(0 if a.get('claimed_address')=='10.128.0.99' and 'address' not in a else 1)" "$agent"
addr1=$("${CTL[@]}" list --json | wn_json '[a.get("address", "") for a in d["attachments"] if a["vm"] == "vm1"][0]')
wn_eq "vm1's verified address is the one hostd learned" "$addr1" 10.128.0.51

before=$(lines "$LOG")
ignored0=$("${CTL[@]}" status --json | wn_json 'int(d.get("agent_reports_ignored", 0))')
# Invalid UTF-8 in host_name, 20000 times from the physical network ...
ip netns exec "$U" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(20000):
    s.sendto(b"WNA1\x12\x02\xff\xfe", ("192.0.2.1", 6570))'
# ... and 3000 times from vm2's own agent channel.
send_report 2 3000 "b'\x12\x02\xff\xfe'"
sleep 1
wn_check "hostd survived the flood" kill -0 "$HOSTD"
added=$(($(lines "$LOG") - before))
wn_check "no log flood: $added lines for 23000 bad reports" [ "$added" -le 10 ]
ignored=$("${CTL[@]}" status --json | wn_json 'int(d.get("agent_reports_ignored", 0))')
wn_check "underlay reports counted as ignored ($((ignored - ignored0)))" [ $((ignored - ignored0)) -ge 5000 ]
# 5 reports a second pass the gate; the rest are refused unparsed (the
# kernel may also drop some of the burst in the socket buffer).
wn_check "vm2's flood is rate-limited before parsing ($(status_key agent_reports_limited))" \
  [ "$(status_key agent_reports_limited)" -ge 1500 ]
utf8=$(status_key agent_reports_bad_utf8)
wn_check "vm2's invalid UTF-8 is a counted drop, and only what passed the gate was parsed ($utf8)" \
  [ "$utf8" -ge 1 -a "$utf8" -le 100 ]
wn_check_not "and no invalid host name reached DNS or the list" bash -c "${CTL[*]} list --json | grep -q '\\\\ufffd'"

# --- the TAP deleted under hostd ---------------------------------------------------
before=$(lines "$LOG")
ip -n "$H" link del wnt1
sleep 3
added=$(($(lines "$LOG") - before))
wn_check "deleting the TAP costs a few log lines ($added)" [ "$added" -le 10 ]
wn_check "the TAP's loss is counted" [ "$(status_key taps_lost)" -eq 1 ]
wn_check "the attachment comes back up by itself" wn_wait_for 10 "vm1 up" bash -c \
  "${CTL[*]} list --json | python3 -c 'import json,sys; d=json.load(sys.stdin); \
   sys.exit(0 if [a[\"state\"] for a in d[\"attachments\"] if a[\"vm\"]==\"vm1\"]==[\"up\"] else 1)'"
wn_check "with a new TAP on its bridge" bash -c "ip -n $H -o link show wnt1 | grep -q 'master wnb1'"
wn_check "traffic resumes: vm1 pings vm2" wn_wait_for 10 "ping after TAP loss" \
  ip netns exec "${VM[1]}" ping -c 1 -W 1 10.128.0.52

# --- signals and a second hostd ------------------------------------------------
printf '[hostd]\nlog_level = "debug"\n' >"$CONF"
kill -HUP "$HOSTD"
kill -USR1 "$HOSTD"
sleep 0.5
wn_check "SIGHUP and SIGUSR1 leave hostd running" kill -0 "$HOSTD"
wn_check "SIGHUP re-read the config: log level debug" grep -q "reload (SIGHUP) of .*: applied hostd.log_level \"info\" -> \"debug\"" "$LOG"
wn_check "hostd still answers after the signals" "${CTL[@]}" status
FIRST=$HOSTD
start_hostd hostd2
SECOND=$HOSTD
wn_check "a second hostd on the same state waits for the first" wn_wait_for 5 "waiting line" \
  grep -q "waiting up to 30 s for the wownet-hostd (pid" "$WN_TMP/hostd2.log"
wn_check "and does not give up while it waits" kill -0 "$SECOND"
wn_stop "$FIRST" TERM
wn_check "the first hostd logged why it stopped" grep -q "SIGTERM): shutting down" "$LOG"
wn_check "the second takes over" wn_wait_for 10 "second hostd answers" "${CTL[@]}" status
wn_check "with every attachment up" wn_wait_for 10 "attachments up" bash -c \
  "${CTL[*]} list --json | python3 -c 'import json,sys; d=json.load(sys.stdin); \
   sys.exit(0 if [a[\"state\"] for a in d[\"attachments\"]]==[\"up\"]*3 else 1)'"
wn_check "traffic flows through the second hostd" wn_wait_for 10 "ping via second hostd" \
  ip netns exec "${VM[1]}" ping -c 1 -W 1 10.128.0.52
wn_stop "$SECOND" TERM
wn_check_not "a stopped hostd leaves no socket file" test -e "$SOCK"

wn_finish
