#!/usr/bin/env bash
# hostd's log, from the outside: under systemd (JOURNAL_STREAM names its
# stderr) or with --log-priorities every line starts with its syslog
# priority (<3> error, <4> warning, <6> info, <7> debug), without them lines
# keep their timestamp and no prefix; `wownetctl log-level` changes the
# level at run time (text and --json) and debug lines appear at once; a
# repeated line is written 20 times per 10 s, then summed up in one line.
#
# Needs root. Run through ctest (label netns) or directly with
# WOWNET_BIN=build/bin WOWNET_SOURCE=.
source "$(dirname "$0")/lib.sh"
BIN=${WOWNET_BIN:?set WOWNET_BIN to the directory holding wownet-hostd}
wn_require jq

wn_ns H host
STATE="$WN_TMP/state"
SOCK="$WN_TMP/hostd.sock"
CONFIG="$WN_TMP/hostd.toml"
printf '[hostd]\nlog_level = "info"\n' >"$CONFIG"
CTL=(ip netns exec "$H" "$BIN/wownetctl" --socket "$SOCK")
HOSTD_CMD=(ip netns exec "$H" "$BIN/wownet-hostd" --config "$CONFIG" --state-dir "$STATE" --control-socket "$SOCK")

# start_hostd NAME [ENV...] [-- HOSTD ARGS...]: hostd logging to $WN_TMP/NAME.log.
start_hostd() {
  local name=$1
  shift
  local envs=() args=()
  while (($#)) && [[ $1 != -- ]]; do envs+=("$1"); shift; done
  (($#)) && shift
  args=("$@")
  wn_spawn "$name" env "${envs[@]}" "${HOSTD_CMD[@]}" "${args[@]}"
  HOSTD=$WN_LAST_PID
  wn_wait_for 10 "hostd control socket" "${CTL[@]}" status
}
stop_hostd() {
  wn_stop "$HOSTD"
  wn_forget "$HOSTD"
}
# count FILE REGEX: lines of FILE matching REGEX.
count() { grep -cE "$2" "$1" || true; }

# --- under systemd: JOURNAL_STREAM is the device and inode of stderr --------------
LOG="$WN_TMP/journal.log"
: >"$LOG"
start_hostd journal "JOURNAL_STREAM=$(stat -c '%d:%i' "$LOG")"
wn_check "journal: hostd's start is an info line (<6>)" grep -q '^<6>info wownet-hostd up' "$LOG"
wn_check_not "journal: no debug line at level info" grep -q '^<7>' "$LOG"

# log-level: text output, and the change itself is a warning (<4>).
out=$("${CTL[@]}" log-level debug)
wn_eq "log-level debug prints old and new" "$out" "log level info -> debug"
wn_check "journal: the change is logged as a warning (<4>)" grep -q '^<4>warning control: log level info -> debug' "$LOG"
"${CTL[@]}" status >/dev/null
wn_check "journal: at debug, a control request gives a debug line (<7>)" \
  grep -q '^<7>debug control: status request' "$LOG"
out=$("${CTL[@]}" log-level)
wn_eq "log-level alone shows the level" "$out" "log level debug"

# --json
out=$("${CTL[@]}" log-level warn --json)
wn_eq "log-level --json: old and new" "$(jq -c . <<<"$out")" '{"old_level":"debug","level":"warn"}'
before=$(count "$LOG" 'control: status request')
"${CTL[@]}" status >/dev/null
wn_eq "at warn, no more debug lines" "$(count "$LOG" 'control: status request')" "$before"
rc=0
out=$("${CTL[@]}" --json log-level loud 2>/dev/null) || rc=$?
wn_check "log-level with an unknown level fails" test "$rc" -ne 0
wn_check "and says so in JSON" jq -e '.error | test("loud")' <<<"$out"
out=$("${CTL[@]}" log-level --json)
wn_eq "the level stayed warn" "$(jq -r .level <<<"$out")" "warn"

# An error (<3>): SIGHUP with a config file that no longer parses.
echo 'log_level = ' >>"$CONFIG"
kill -HUP "$HOSTD"
wn_check "journal: a broken config on SIGHUP is an error line (<3>)" \
  wn_wait_for 5 "SIGHUP error" grep -q '^<3>error reload (SIGHUP): ' "$LOG"
printf '[hostd]\nlog_level = "info"\n' >"$CONFIG"

# --- repeats: 30 identical debug lines, most within one window ----------------------
"${CTL[@]}" log-level debug >/dev/null
start=$SECONDS
for _ in $(seq 30); do "${CTL[@]}" leases >/dev/null; done
elapsed=$((SECONDS - start))
wn_check "one line sums up the rest" wn_wait_for 15 "repeat summary" \
  grep -qE '^<7>debug repeated [0-9]+ more times in the last 10 s: control: leases request$' "$LOG"
sleep 11 # every window the loop opened has ended and been summed up
written=$(count "$LOG" 'debug control: leases request$')
summed=$(grep -oE 'repeated [0-9]+ more times in the last 10 s: control: leases request$' "$LOG" |
  awk '{ n += $2 } END { print n + 0 }')
wn_eq "every request is either logged or counted" "$((written + summed))" 30
if ((elapsed < 9)); then # all in one window (a loaded machine may take longer)
  wn_eq "the first 20 are logged" "$written" 20
  wn_eq "the other 10 are counted in one line" "$(count "$LOG" '^<7>debug repeated 10 more times .*: control: leases request$')" 1
else
  wn_log "the 30 requests took ${elapsed}s: not checking the split into windows"
fi
wn_eq "journal: every line has a priority prefix" "$(grep -cvE '^<[0-7]>' "$LOG" || true)" 0
stop_hostd

# --- not under systemd: plain lines -------------------------------------------------
PLAIN="$WN_TMP/plain.log"
start_hostd plain
wn_check "plain: lines start with a timestamp" grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+ info wownet-hostd up' "$PLAIN"
wn_check_not "plain: no priority prefix" grep -q '^<' "$PLAIN"
stop_hostd

# JOURNAL_STREAM inherited from elsewhere (not this stderr): plain.
OTHER="$WN_TMP/other.log"
: >"$OTHER"
start_hostd inherited "JOURNAL_STREAM=$(stat -c '%d:%i' "$OTHER")"
wn_check_not "JOURNAL_STREAM of another file: no prefix" grep -q '^<' "$WN_TMP/inherited.log"
stop_hostd

# --log-priorities forces them.
start_hostd forced -- --log-priorities
wn_check "--log-priorities: prefixed" grep -q '^<6>info wownet-hostd up' "$WN_TMP/forced.log"
stop_hostd
wn_finish
