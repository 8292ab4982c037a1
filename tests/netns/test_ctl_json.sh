#!/usr/bin/env bash
# wownetctl against a real wownet-hostd: --json prints exactly one JSON
# document per command (checked with jq): counters are numbers, 64-bit ones
# too; empty lists are []; unknown values are null; errors are
# {"error": ...} with a non-zero exit; --json works before and after the
# command. Also `wownetctl version`, `--version` and bare `wownetctl`.
#
# Needs root. Run through ctest (label netns) or directly with
# WOWNET_BIN=build/bin WOWNET_SOURCE=.
source "$(dirname "$0")/lib.sh"
BIN=${WOWNET_BIN:?set WOWNET_BIN to the directory holding wownet-hostd}
SRC=${WOWNET_SOURCE:-$(dirname "$0")/../..}
wn_require jq

wn_ns H host
wn_vm VM1 "$H" vm1 vif1 ch1 1
wn_hostd "$H"

# json_check ok|error WHAT FILTER ARGS...: wownetctl ARGS prints exactly one
# JSON document for which the jq FILTER is true; with "ok" it exits 0, with
# "error" non-zero, the document is {"error": ...} and stderr has one line.
json_check() {
  local mode=$1 what=$2 filter=$3
  shift 3
  local out rc=0
  out=$("${CTL[@]}" "$@" 2>"$WN_TMP/stderr") || rc=$?
  echo "### $what: wownetctl $*: exit $rc: $out" >>"$WN_TMP/checks.log"
  [[ $mode == error ]] && filter="(.error | type) == \"string\" and ($filter)"
  if [[ $mode == ok && $rc != 0 ]]; then
    wn_fail "$what: exit $rc ($(cat "$WN_TMP/stderr"))"
  elif [[ $mode == error && $rc == 0 ]]; then
    wn_fail "$what: exit 0, want non-zero"
  elif [[ $(jq -s length <<<"$out" 2>/dev/null) != 1 ]]; then
    wn_fail "$what: not exactly one JSON document: $out"
  elif ! jq -e "$filter" <<<"$out" >/dev/null; then
    wn_fail "$what: jq '$filter' is not true for: $out"
  elif [[ $mode == error && $(wc -l <"$WN_TMP/stderr") != 1 ]]; then
    wn_fail "$what: want one stderr line, got: $(cat "$WN_TMP/stderr")"
  else
    wn_pass "$what (exit $rc)"
  fi
}
json_ok() { json_check ok "$@"; }
json_error() { json_check error "$@"; }

# --- a fresh hostd: empty lists are [] -------------------------------------------
json_ok "no attachments: []" '.attachments == []' list --json
json_ok "no leases: []" '.leases == []' leases --json
json_ok "status counters are numbers" \
  '(.uptime_seconds | type) == "number" and (.agent_reports | type) == "number" and (.mtu | type) == "number"
   and (.attachments == 0) and ([.drops, .dhcp, .dns, .engine] | all(type == "object"))
   and ([.drops[], .dhcp[], .dns[], .engine[]] | length > 0 and all(type == "number"))
   and .overlay == {}' status --json
json_ok "--json before the command" '.network == "10.128.0.0/9" and (.active_leases | type) == "number"' --json status
json_ok "bare wownetctl --json is status" '(.uptime_seconds | type) == "number" and .role == "single-host"' --json
json_error "peers without the overlay: hostd's refusal" '.code == "FAILED_PRECONDITION"' peers --json
json_error "attach of a missing interface" '.error == "no interface named nosuchif"' --json attach nosuchif
json_error "a command line error" '.error | test("not expected")' --json frobnicate
json_error "detach of an unknown VM" '.error | length > 0' detach nosuchvm --json

# --- versions ------------------------------------------------------------------------
want=$(sed -nE 's/^project\(wownet VERSION ([0-9.]+).*/\1/p' "$SRC/CMakeLists.txt")
wn_check "the project version is known ($want)" test -n "$want"
wn_eq "wownetctl --version" "$("$BIN/wownetctl" --version)" "wownetctl $want"
wn_eq "wownet-hostd --version" "$("$BIN/wownet-hostd" --version)" "wownet-hostd $want"
wn_eq "wownetctl version: client and daemon" "$("${CTL[@]}" version)" "$(printf 'wownetctl %s\nwownet-hostd %s' "$want" "$want")"
json_ok "wownetctl version --json" ".client == \"$want\" and .daemon == \"$want\"" version --json
json_ok "wownetctl --json --version" ".client == \"$want\"" --json --version
rc=0
out=$("$BIN/wownetctl" --socket "$WN_TMP/nobody.sock" version 2>/dev/null) || rc=$?
wn_check "version without a hostd prints the client's and fails ($rc: $out)" \
  test "$rc" = 1 -a "$out" = "wownetctl $want"
rc=0
out=$("$BIN/wownetctl" --socket "$WN_TMP/nobody.sock" --json version 2>/dev/null) || rc=$?
wn_check "version --json without a hostd: daemon null, error ($rc: $out)" \
  jq -e ".client == \"$want\" and .daemon == null and (.error | test(\"cannot connect\"))" <<<"$out"
wn_check "bare wownetctl prints the status summary" bash -c \
  "${CTL[*]} | grep -q '^wownet-hostd $want, up [0-9]*s\$'"

# --- an attachment: counters, unknowns as null, then an agent report -------------------
json_ok "attach --json prints the attachment" '.vm == "vm1" and .vif == "vif1" and (.id | type) == "number"' \
  attach vif1 --vm vm1 --agent-if ch1 --json
json_ok "attachment counters are numbers" \
  '.attachments | length == 1 and all(.counters | [.rx_frames, .rx_bytes, .tx_frames, .tx_bytes, .dropped]
   | all(type == "number")) and all(.counters.drops | type == "object")' list --json
json_ok "no lease and no agent report yet: null" \
  '.attachments[0] | .address == null and .lease_expiry_unix == null and .agent == null' list --json
# VM 1 takes an address statically: hostd learns it from its traffic.
ip -n "$VM1" addr add 10.128.0.77/9 dev eth0
wn_check "vm1 reaches the gateway" wn_wait_for 10 "vm1 -> gateway" ip netns exec "$VM1" ping -c 1 -W 1 10.128.0.1
json_ok "the learned lease" \
  '.leases | length == 1 and (.[0] | .address == "10.128.0.77" and .origin == "learned" and .vm == "vm1"
   and (.mac | test("^[0-9a-f:]{17}$")) and (.expiry_unix | type) == "number")' leases --json
json_ok "the attachment's address" '.attachments[0].address == "10.128.0.77"' --json list
json_ok "rx counters count vm1's frames" '.attachments[0].counters.rx_frames > 0' list --json
wn_check "vm1's agent sends one report" ip netns exec "$VM1" "$BIN/wownet-agent" --nic eth0 --channel eth1 \
  --once --dhcp-client none --hostname alpha --state-dir "$WN_TMP/agent"
wn_check "the report arrives" wn_wait_for 5 "agent report" bash -c \
  "${CTL[*]} list --json | jq -e '.attachments[0].agent != null'"
json_ok "the agent's report: numbers and names" \
  '.attachments[0].agent | .host_name == "alpha" and (.reports | type) == "number" and (.age_seconds | type) == "number"
   and .claimed_address == "10.128.0.77"' list --json
json_ok "agent reports counted in status" '.agent_reports >= 1' status --json
json_ok "detach --json" '.message | test("vm1")' detach vm1 --json
json_ok "and the list is empty again" '.attachments == []' list --json

wn_stop "$HOSTD"
json_error "no hostd: {\"error\": ...}" '.error | test("cannot connect")' status --json
wn_finish
