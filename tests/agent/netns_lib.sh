# Shared by the agent's netns tests (sourced). Namespaces are named
# wna<pid><suffix>; everything they hold is killed and removed on exit,
# including /etc/netns/NAME (made for every namespace so that no DHCP client
# script in it can touch the machine's /etc/resolv.conf).
# shellcheck shell=sh disable=SC2034  # variables for the sourcing scripts

if [ "$(id -u)" != 0 ]; then
  echo "SKIP: needs root"
  exit 77
fi
for tool in ip python3 unshare "${PROTOC:-protoc}"; do
  command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: $tool is missing"; exit 77; }
done

WNA_TAG=wna$$
WNA_NAMESPACES=""
WNA_TMP=$(mktemp -d /tmp/wna-netns.XXXXXX)
WNA_MADE_ETC_NETNS=0

# netns_add NAME: creates namespace NAME (use $WNA_TAG as its prefix) with lo
# up and registers it for removal. Not in a subshell: $(netns_add ..) would
# lose the registration.
netns_add() {
  ns=$1
  if [ ! -d /etc/netns ]; then
    mkdir -p /etc/netns
    WNA_MADE_ETC_NETNS=1
  fi
  mkdir -p "/etc/netns/$ns"
  echo "# wownet agent netns test $ns" >"/etc/netns/$ns/resolv.conf"
  ip netns add "$ns" || return 1
  WNA_NAMESPACES="$WNA_NAMESPACES $ns"
  ip -n "$ns" link set lo up
}

# in_ns NS CMD...: runs CMD in NS with its own UTS namespace, so that no
# DHCP client script can change the machine's host name.
in_ns() {
  ns=$1
  shift
  ip netns exec "$ns" unshare --uts "$@"
}

netns_cleanup() {
  for ns in $WNA_NAMESPACES; do
    # Only processes this test started live in its namespaces.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null; done
  done
  sleep 0.3
  for ns in $WNA_NAMESPACES; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
    rm -rf "/etc/netns/$ns"
  done
  [ "$WNA_MADE_ETC_NETNS" = 1 ] && rmdir /etc/netns 2>/dev/null
  rm -rf "$WNA_TMP"
}
trap netns_cleanup EXIT
trap 'exit 1' INT TERM

# Receives report datagrams on UDP port $1 (all interfaces of the namespace
# it runs in): each one is written to $2.N, N counting from 1, and the latest
# also to $2; $3 is created once the socket is bound. Stops after $4 seconds.
WNA_RECEIVER='
import os, socket, sys, time
port, out, ready, seconds = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port))
open(ready, "w").close()
deadline = time.monotonic() + seconds
n = 0
while time.monotonic() < deadline:
    s.settimeout(max(0.05, deadline - time.monotonic()))
    try:
        data, src = s.recvfrom(65535)
    except socket.timeout:
        break
    n += 1
    with open("%s.%d" % (out, n), "wb") as f:
        f.write(data)
    with open(out + ".tmp", "wb") as f:
        f.write(data)
    os.rename(out + ".tmp", out)
    print("datagram %d: %d bytes from %s:%d" % (n, len(data), src[0], src[1]), flush=True)
'

# wait_for_file PATH SECONDS
wait_for_file() {
  i=0
  while [ ! -e "$1" ]; do
    i=$((i + 1))
    [ "$i" -gt $(($2 * 10)) ] && return 1
    sleep 0.1
  done
}

# decode_report FILE: prints the Report a datagram carries, as protobuf text;
# fails unless it starts with "WNA1".
decode_report() {
  [ "$(head -c 4 "$1")" = WNA1 ] || { echo "bad magic in $1" >&2; return 1; }
  tail -c +5 "$1" | "$PROTOC" -I "$PROTO_DIR" --decode=wownet.agent.Report agent.proto
}

# field TEXT NAME: the value of NAME in protobuf text TEXT (quotes removed).
field() {
  printf '%s\n' "$1" | sed -n "s/^$2: //p" | tr -d '"'
}

WNA_FAILED=0
# check WHAT GOT WANT
check() {
  if [ "$2" = "$3" ]; then
    echo "ok: $1 = $2"
  else
    echo "FAIL: $1 = '$2', want '$3'"
    WNA_FAILED=1
  fi
}
