#!/bin/sh
# wownet-agent's command line: bad values exit 2 with a message naming the
# option; --help and --version exit 0. Needs no privileges or network.
agent=${1:?usage: cli_test.sh WOWNET_AGENT}
fail=0

# expect CODE OPTION-IN-MESSAGE ARGS...
expect() {
  code=$1 name=$2
  shift 2
  err=$("$agent" "$@" 2>&1 >/dev/null)
  rc=$?
  if [ "$rc" -ne "$code" ]; then
    echo "FAIL: wownet-agent $*: exit $rc, want $code: $err"
    fail=1
  elif [ -n "$name" ] && ! printf '%s' "$err" | grep -q -- "$name"; then
    echo "FAIL: wownet-agent $*: message does not name $name: $err"
    fail=1
  else
    echo "ok: wownet-agent $* -> $rc"
  fi
}

expect 0 "" --help
expect 0 "" --version
if ! "$agent" --version | grep -qE '^[0-9]+\.[0-9]+\.[0-9]+$'; then
  echo "FAIL: --version does not print a version"
  fail=1
fi
expect 2 --port --once --port 0
expect 2 --port --once --port 65536
expect 2 --port --once --port abc
expect 2 --interval --once --interval 0
expect 2 --interval --once --interval 3601
expect 2 --nic --once --nic bad/name
expect 2 --nic --once --nic 0123456789abcdef
expect 2 --channel --once --channel "two words"
expect 2 --channel --once --nic eth7 --channel eth7
expect 2 --dhcp-client --once --dhcp-client dhcpcd
expect 2 --log-level --once --log-level loud
expect 2 --hostname --once --hostname ___
expect 2 --state-dir --once --state-dir relative/dir
expect 2 --bogus --once --bogus
exit $fail
