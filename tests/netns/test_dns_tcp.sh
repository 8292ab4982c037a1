#!/usr/bin/env bash
# DNS over TCP at the gateway (RFC 7766), end to end: a statically
# configured VM namespace asks hostd's gateway with real dig over TCP and
# over UDP and must get the same answers; several queries share one
# connection (dig +keepopen); other TCP ports of the gateway refuse at
# once (RST); hostd counts the connections and closes them cleanly.
#
# No name this server knows gives an answer above 512 bytes (the largest,
# a PTR to a 255-byte name, is 324), so UDP never truncates for real and
# dig's TC fallback to TCP cannot be provoked here; TC is covered by the
# unit tests (tests/core/dns_test.cpp).
#
# Needs root. Run through ctest (label netns) or directly with
# WOWNET_BIN=build/bin.
source "$(dirname "$0")/lib.sh"
BIN=${WOWNET_BIN:?set WOWNET_BIN to the directory holding wownet-hostd}
wn_require dig python3

wn_ns H host
wn_ns VM vm
wn_veth "$H" vif1 "$VM" eth0
ip -n "$VM" addr add 10.128.0.51/9 dev eth0
ip -n "$VM" link set lo up

wn_hostd "$H" --log-level debug
wn_check "attach vm" "${CTL[@]}" attach vif1 --vm vm
# The first packet teaches hostd the static address.
wn_check "vm reaches the gateway" wn_wait_for 10 "ping gateway" ip netns exec "$VM" ping -c 1 -W 1 10.128.0.1

dig_vm() { ip netns exec "$VM" dig @10.128.0.1 +time=2 +tries=1 "$@"; }
dns_key() { "${CTL[@]}" status --json | wn_json "int(d.get('dns', {}).get('$1', 0))"; }

# The same answer section, flags and status over both transports.
same_answer() {  # same_answer NAME [TYPE]
  local udp tcp
  udp=$(dig_vm +notcp +noall +answer +comments "$@" | grep -v -e 'Query time' -e '^;; SERVER' -e '^$')
  tcp=$(dig_vm +tcp +noall +answer +comments "$@" | grep -v -e 'Query time' -e '^;; SERVER' -e '^$')
  echo "udp: $udp" >>"$WN_TMP/checks.log"
  echo "tcp: $tcp" >>"$WN_TMP/checks.log"
  [[ -n $udp && "${udp//id: [0-9]*,/}" == "${tcp//id: [0-9]*,/}" ]]
}
wn_eq "dig +tcp gateway.wow" "$(dig_vm +tcp +short gateway.wow)" "10.128.0.1"
wn_eq "dig +tcp the vm's automatic name" "$(dig_vm +tcp +short C128000051.wow)" "10.128.0.51"
wn_eq "dig +tcp PTR" "$(dig_vm +tcp +short -x 10.128.0.1)" "gateway.wow."
wn_check "gateway.wow: TCP answer = UDP answer" same_answer gateway.wow
wn_check "automatic name: TCP answer = UDP answer" same_answer C128000051.wow
wn_check "PTR: TCP answer = UDP answer" same_answer -x 10.128.0.51
wn_check "NXDOMAIN: TCP answer = UDP answer" same_answer nosuch.wow
wn_check "REFUSED: TCP answer = UDP answer" same_answer example.com
wn_check "NXDOMAIN over TCP says so" bash -c "ip netns exec $VM dig @10.128.0.1 +tcp +time=2 nosuch.wow | grep -q 'status: NXDOMAIN'"

# Three queries on one connection (dig +keepopen), one connection counted.
before=$(dns_key tcp_connections)
out=$(dig_vm +tcp +keepopen +short gateway.wow C128000051.wow -x 10.128.0.51 | tr '\n' ' ')
wn_eq "three queries over one kept-open connection" "$out" "10.128.0.1 10.128.0.51 C128000051.wow. "
wn_eq "they used one connection" "$(($(dns_key tcp_connections) - before))" 1

# Length-prefixed queries written in pieces and pipelined, from Python.
wn_check "split and pipelined queries are answered in order" ip netns exec "$VM" python3 - <<'EOF'
import socket, struct, sys, time
def query(qid, name):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack(">HH", 1, 1)
s = socket.create_connection(("10.128.0.1", 53), timeout=3)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
msgs = b"".join(struct.pack(">H", len(m)) + m for m in (query(1, "gateway.wow"), query(2, "C128000051.wow")))
s.sendall(msgs[:3]); time.sleep(0.2); s.sendall(msgs[3:20]); time.sleep(0.2); s.sendall(msgs[20:])
buf = b""
answers = []
while len(answers) < 2:
    chunk = s.recv(4096)
    if not chunk:
        break
    buf += chunk
    while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
        n = struct.unpack(">H", buf[:2])[0]
        answers.append(buf[2:2 + n]); buf = buf[2 + n:]
s.shutdown(socket.SHUT_WR)
rest = s.recv(4096)  # our FIN is answered with FIN: end of stream
s.close()
ids = [struct.unpack(">H", a[:2])[0] for a in answers]
addrs = [socket.inet_ntoa(a[-4:]) for a in answers]
print(ids, addrs, rest)
sys.exit(0 if ids == [1, 2] and addrs == ["10.128.0.1", "10.128.0.51"] and rest == b"" else 1)
EOF

# Any other TCP port of the gateway: refused at once (RST), not left to time out.
wn_check "TCP to another gateway port is refused" ip netns exec "$VM" python3 -c '
import socket, sys
try:
    socket.create_connection(("10.128.0.1", 80), timeout=3)
except ConnectionRefusedError:
    sys.exit(0)
sys.exit(1)'
wn_check "counted as a closed port" test "$(dns_key tcp_closed_port)" -ge 1

# Every connection was closed by FIN exchange; none is left open or reset.
wn_check "connections closed cleanly" wn_wait_for 5 "closed = connections" bash -c \
  "test \"\$(${CTL[*]} status --json | python3 -c 'import json,sys; d=json.load(sys.stdin)[\"dns\"]; print(d.get(\"tcp_closed\", 0) == d.get(\"tcp_connections\", -1))')\" = True"
wn_eq "no retransmission timeouts" "$(dns_key tcp_timeouts)" 0
wn_check "TCP queries were counted" test "$(dns_key tcp_queries)" -ge 10

wn_finish
