#!/bin/bash
# wownetctl against fake hostds (python3 Unix-socket servers) that hang up
# before a whole reply: it exits 1 with exactly one stderr line that names the
# socket and the problem, and is never killed by SIGPIPE, not even while it
# is still writing a large request. Needs no privileges.
set -u
ctl=${1:?usage: wownetctl_closed_test.sh WOWNETCTL}
command -v python3 >/dev/null || {
  echo "SKIP: python3 not found"
  exit 77
}
dir=$(mktemp -d /tmp/wownetctl-closed.XXXXXX)
server_pid=
cleanup() {
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
fail=0

# serve MODE: a fake hostd on $dir/MODE.sock that takes one connection and
#   close       closes it at once, reading nothing
#   read-close  reads the whole request, closes without a reply
#   truncated   reads the request, sends 10 of a 100-byte reply, closes
#   short-head  reads the request, sends 2 of the 4 length bytes, closes
#   garbage     reads the request, sends a 3-byte reply that is no Response
#   refuse      reads 4 bytes, refuses the request (as hostd does one over
#               1 MiB) and closes with the rest unread
serve() {
  local mode=$1
  sock=$dir/$mode.sock
  rm -f "$sock"
  python3 - "$sock" "$mode" <<'EOF' &
import os, socket, struct, sys
path, mode = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path + ".tmp")
s.listen(1)
os.rename(path + ".tmp", path)  # appears only once it listens
c, _ = s.accept()
def read_exactly(n):
    data = b""
    while len(data) < n:
        part = c.recv(n - len(data))
        if not part:
            sys.exit("fake hostd: client hung up early")
        data += part
    return data
if mode == "refuse":
    read_exactly(4)
    why = b"request larger than 1 MiB"
    resp = b"\x08\x01\x12" + bytes([len(why)]) + why  # code INVALID_ARGUMENT, message
    c.sendall(struct.pack(">I", len(resp)) + resp)
elif mode != "close":
    (n,) = struct.unpack(">I", read_exactly(4))
    read_exactly(n)
if mode == "truncated":
    c.sendall(struct.pack(">I", 100) + b"\x08\x01" + b"x" * 8)
elif mode == "short-head":
    c.sendall(b"\x00\x00")
elif mode == "garbage":
    c.sendall(struct.pack(">I", 3) + b"\xff\xff\xff")
c.close()
EOF
  server_pid=$!
  for _ in $(seq 100); do
    [[ -S $sock ]] && return 0
    sleep 0.05
  done
  echo "FAIL: fake hostd ($mode) did not start"
  exit 1
}

# reap_server: waits for the fake hostd of the last serve, if any.
reap_server() {
  if [[ -n $server_pid ]]; then
    wait "$server_pid" 2>/dev/null
    server_pid=
  fi
}

# expect_failure WHAT PATTERN ARGS...: wownetctl ARGS exits 1 (not by a
# signal), prints nothing on stdout and one stderr line "wownetctl: $sock: ..."
# that contains PATTERN.
expect_failure() {
  local what=$1 pattern=$2
  shift 2
  timeout 20 "$ctl" --socket "$sock" "$@" >"$dir/out" 2>"$dir/err"
  local rc=$?
  local err lines
  err=$(cat "$dir/err")
  lines=$(wc -l <"$dir/err")
  reap_server
  if [[ $rc != 1 ]]; then
    echo "FAIL: $what: exit $rc, want 1 ($((rc > 128 ? rc - 128 : 0)) is the signal if any); stderr: $err"
    fail=1
  elif [[ $lines != 1 || $err != "wownetctl: $sock: "* || $err != *"$pattern"* ]]; then
    echo "FAIL: $what: want one line \"wownetctl: $sock: ...$pattern...\", got $lines: $err"
    fail=1
  elif [[ -s $dir/out ]]; then
    echo "FAIL: $what: printed on stdout: $(cat "$dir/out")"
    fail=1
  else
    echo "ok: $what: $err"
  fi
}

serve close
expect_failure "hostd closes at once" "connection closed by hostd before the reply" status
serve read-close
expect_failure "hostd reads the request, no reply" "connection closed by hostd before the reply" status
serve short-head
expect_failure "hostd sends half a length" "connection closed by hostd before the reply" status
serve truncated
expect_failure "hostd sends 10 of 100 bytes" "connection closed by hostd after 10 of 100 bytes of the reply" status
serve garbage
expect_failure "hostd sends garbage" "malformed reply" status

# A request far larger than the socket buffer (3 arguments of 120 kB: one
# argument may not exceed 128 kB) is still being written when hostd hangs up.
big=$(head -c 120000 /dev/zero | tr '\0' v)
serve close
expect_failure "hostd closes during a large request" "connection closed by hostd before the reply" \
  attach "$big" --vm "$big" --agent-if "$big"

# hostd refuses a request it has not read to the end: its reason is shown.
serve refuse
err=$(timeout 20 "$ctl" --socket "$sock" attach "$big" --vm "$big" --agent-if "$big" 2>&1 >/dev/null)
rc=$?
wait "$server_pid" 2>/dev/null
server_pid=
if [[ $rc == 1 && $err == "wownetctl: request larger than 1 MiB" ]]; then
  echo "ok: hostd refuses a large request unread: $err"
else
  echo "FAIL: hostd refuses a large request unread: exit $rc, want 1 and hostd's reason; stderr: $err"
  fail=1
fi

sock=$dir/nobody-here.sock
expect_failure "no hostd at all" "cannot connect" status

# With --json (before or after the command) the same failures are also one
# JSON document on stdout: {"error": ...}, and "code" when hostd refused.
expect_json() {
  local what=$1 want=$2
  shift 2
  local out rc
  out=$(timeout 20 "$ctl" --socket "$sock" "$@" 2>/dev/null)
  rc=$?
  reap_server
  if [[ $rc == 1 && $out == "$want" ]]; then
    echo "ok: $what: $out"
  else
    echo "FAIL: $what: exit $rc, stdout '$out', want exit 1 and '$want'"
    fail=1
  fi
}
expect_json "--json, no hostd at all" \
  "{\"error\": \"$sock: cannot connect to wownet-hostd: No such file or directory\"}" --json status
serve close
expect_json "--json after the command, hostd closes at once" \
  "{\"error\": \"$sock: connection closed by hostd before the reply\"}" list --json
serve garbage
expect_json "--json, garbage reply" "{\"error\": \"$sock: malformed reply (3 bytes)\"}" --json
serve refuse
expect_json "--json, hostd refuses" \
  "{\"error\": \"request larger than 1 MiB\", \"code\": \"INVALID_ARGUMENT\"}" --json attach "$big" --vm "$big"

exit $fail
