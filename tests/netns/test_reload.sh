#!/usr/bin/env bash
# Live reload of hostd's config (SIGHUP, wownetctl reload), end to end: one
# host namespace with two DHCP VMs. A changed dns.ttl shows in dig's
# answers, lease_time in the next lease, a moved metrics.listen moves the
# endpoint, a changed network.prefix is refused with one log line and the
# old network keeps serving; a log level set with wownetctl log-level stays
# until the file's own log_level changes; an invalid file is refused whole;
# wownetctl reload reports applied and refused keys, also as JSON.
#
# Needs root. Run through ctest (label netns) or directly with
# WOWNET_BIN=build/bin.
source "$(dirname "$0")/lib.sh"
BIN=${WOWNET_BIN:?set WOWNET_BIN to the directory holding wownet-hostd}
wn_require dhclient dig ping jq python3

wn_ns H host
declare -A VM
for i in 1 2; do
  wn_ns VM[$i] "vm$i"
  wn_veth "$H" "vif$i" "${VM[$i]}" eth0
done

STATE="$WN_TMP/state"
SOCK="$WN_TMP/hostd.sock"
CONF="$WN_TMP/hostd.toml"
LOG="$WN_TMP/hostd.log"
CTL=(ip netns exec "$H" "$BIN/wownetctl" --socket "$SOCK")
write_config() {  # write_config LOG_LEVEL PREFIX TTL LEASE_TIME METRICS_LISTEN
  cat >"$CONF" <<EOF
[hostd]
log_level = "$1"
[network]
prefix = "$2"
lease_time = $4
[dns]
ttl = $3
[metrics]
listen = "$5"
EOF
}
write_config info 10.128.0.0/9 60 3600 127.0.0.1:9770
wn_spawn hostd ip netns exec "$H" "$BIN/wownet-hostd" --config "$CONF" --state-dir "$STATE" --control-socket "$SOCK"
HOSTD=$WN_LAST_PID
wn_wait_for 10 "hostd control socket" "${CTL[@]}" status

http_code() {  # http_code ADDRESS:PORT: the status of GET /metrics, or "down"
  ip netns exec "$H" python3 - "$1" <<'EOF'
import sys, urllib.request
try:
    with urllib.request.urlopen("http://" + sys.argv[1] + "/metrics", timeout=3) as r:
        print(r.status)
except Exception:
    print("down")
EOF
}
dhcp() {  # dhcp VM-INDEX: one dhclient run in the VM (its own lease and pid files)
  ip netns exec "${VM[$1]}" timeout 30 dhclient -4 -1 -pf "$WN_TMP/vm$1.pid" -lf "$WN_TMP/vm$1.leases" eth0
}
addr_of() { ip -n "${VM[$1]}" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1 | head -1; }
ttl_of() { ip netns exec "${VM[1]}" dig +time=2 +tries=2 +noall +answer "$1" @10.128.0.1 | awk '{print $2; exit}'; }
level() { "${CTL[@]}" log-level --json | jq -r .level; }
# summary_after LINES: waits for the reload's summary line past line LINES of the log.
summary_after() {
  wn_wait_for 10 "reload summary" bash -c "tail -n +$(($1 + 1)) '$LOG' | grep -q 'reload (SIGHUP) of '"
  tail -n +$(($1 + 1)) "$LOG" | grep 'reload (SIGHUP) of ' | tail -1
}

wn_check "attach vm1" "${CTL[@]}" attach vif1 --vm vm1
wn_check "vm1 gets a lease" dhcp 1
IP1=$(addr_of 1)
wn_check "vm1's address is in 10.128.0.0/9 ($IP1)" bash -c "[[ '$IP1' == 10.1[2-9]* || '$IP1' == 10.2* ]]"
wn_eq "DNS TTL before the reload" "$(ttl_of gateway.wow)" 60
wn_eq "metrics on 9770" "$(http_code 127.0.0.1:9770)" 200
wn_check "log-level debug at runtime" "${CTL[@]}" log-level debug

# --- SIGHUP: TTL, lease time, metrics move; the prefix is refused -------------
write_config info 10.0.0.0/8 5 120 127.0.0.1:9771
before=$(wc -l <"$LOG")
kill -HUP "$HOSTD"
summary=$(summary_after "$before")
wn_check "hostd still runs after SIGHUP" kill -0 "$HOSTD"
wn_check "one summary line ($summary)" grep -q "applied network.lease_time 3600 -> 120, dns.ttl 60 -> 5" <<<"$summary"
wn_check "the summary names the metrics move" grep -q "metrics.listen 127.0.0.1:9770 -> 127.0.0.1:9771" <<<"$summary"
wn_check "the prefix change is refused with its own log line" grep -q \
  "reload (SIGHUP): network.prefix 10.128.0.0/9 -> 10.0.0.0/8 (needs a restart) refused; running on with the old value" \
  "$LOG"
wn_eq "status still shows the old network" "$("${CTL[@]}" status --json | jq -r .network)" 10.128.0.0/9
wn_eq "dig sees the new TTL" "$(ttl_of gateway.wow)" 5
wn_eq "metrics moved to 9771" "$(http_code 127.0.0.1:9771)" 200
wn_eq "and 9770 is closed" "$(http_code 127.0.0.1:9770)" down
wn_eq "the runtime log level stays (the file's log_level did not change)" "$(level)" debug

# hostd keeps serving: a new VM gets a lease (with the new lease time) and pings.
wn_check "attach vm2" "${CTL[@]}" attach vif2 --vm vm2
wn_check "vm2 gets a lease after the reload" dhcp 2
IP2=$(addr_of 2)
wn_check "vm2's lease has the new lease time (120 s)" grep -q "option dhcp-lease-time 120;" "$WN_TMP/vm2.leases"
wn_check "vm1 pings the gateway" ip netns exec "${VM[1]}" ping -c 1 -W 2 10.128.0.1
wn_check "vm1 pings vm2 ($IP2)" ip netns exec "${VM[1]}" ping -c 1 -W 2 "$IP2"

# --- the file's own log_level changed: it wins over the runtime one ----------
write_config warn 10.0.0.0/8 5 120 127.0.0.1:9771
before=$(wc -l <"$LOG")
kill -HUP "$HOSTD"
wn_wait_for 10 "log level warn" bash -c "[ \"\$(${CTL[*]} log-level --json | jq -r .level)\" = warn ]"
wn_eq "the file's new log_level applies" "$(level)" warn
wn_check "the refusal is still logged at warn" bash -c "tail -n +$((before + 1)) '$LOG' | grep -q 'network.prefix .* refused'"

# --- wownetctl reload, text and JSON -------------------------------------------
write_config warn 10.0.0.0/8 7 120 127.0.0.1:9771
out=$("${CTL[@]}" reload)
wn_check "wownetctl reload lists what it applied ($out)" grep -qx "applied: dns.ttl 5 -> 7" <<<"$out"
wn_check "and what it refused" grep -qx "refused: network.prefix 10.128.0.0/9 -> 10.0.0.0/8 (needs a restart)" <<<"$out"
wn_eq "dig sees TTL 7" "$(ttl_of gateway.wow)" 7
write_config warn 10.0.0.0/8 7 120 127.0.0.1:9771
json=$("${CTL[@]}" reload --json)
wn_check "reload --json is one document: nothing applied, the prefix refused ($json)" \
  jq -e '(.applied == []) and (.refused | length == 2) and (.refused[0] | startswith("network.prefix")) and (.config | length > 0)' \
  <<<"$json"

# --- an invalid file is refused whole -------------------------------------------
printf '[dns]\nttl = "soon"\n' >"$CONF"
wn_check_not "wownetctl reload of an invalid file fails" "${CTL[@]}" reload
msg=$("${CTL[@]}" reload 2>&1 || true)
wn_check "it says why and that hostd runs on ($msg)" \
  grep -q "$CONF: dns.ttl: expected an integer.*hostd runs on with its previous configuration" <<<"$msg"
json=$("${CTL[@]}" reload --json || true)
wn_check "as JSON too ($json)" jq -e '.error | contains("dns.ttl")' <<<"$json"
before=$(wc -l <"$LOG")
kill -HUP "$HOSTD"
wn_check "SIGHUP with an invalid file logs an error" wn_wait_for 10 "reload error" bash -c \
  "tail -n +$((before + 1)) '$LOG' | grep -q 'reload (SIGHUP): $CONF: dns.ttl: .*running on with the previous configuration'"
wn_check "hostd still runs" kill -0 "$HOSTD"
wn_eq "the running TTL is kept" "$(ttl_of gateway.wow)" 7
wn_eq "metrics still on 9771" "$(http_code 127.0.0.1:9771)" 200

# --- metrics turned off ----------------------------------------------------------
printf '[hostd]\nlog_level = "warn"\n[network]\nprefix = "10.128.0.0/9"\nlease_time = 120\n[dns]\nttl = 7\n' >"$CONF"
out=$("${CTL[@]}" reload)
wn_eq "only the metrics change, nothing refused" "$out" "reloaded $CONF
applied: metrics.listen 127.0.0.1:9771 -> off"
wn_eq "metrics endpoint closed" "$(http_code 127.0.0.1:9771)" down
wn_check "vm2 still pings vm1" ip netns exec "${VM[2]}" ping -c 1 -W 2 "$IP1"

wn_stop "$HOSTD"
wn_finish
