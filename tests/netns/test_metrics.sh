#!/usr/bin/env bash
# The Prometheus endpoint ([metrics] listen), end to end: one host
# namespace running wownet-hostd with one VM (statically addressed), the
# exposition checked by promtool, scraped every second by a real Prometheus
# in the host namespace, whose HTTP API must show wownet's series and a
# traffic counter moving once the VM pings its gateway. Garbage and an
# oversized header on the metrics port are answered 4xx and closed, and
# hostd keeps serving.
#
# Needs root. Run through ctest (label netns) or directly with
# WOWNET_BIN=build/bin.
source "$(dirname "$0")/lib.sh"
BIN=${WOWNET_BIN:?set WOWNET_BIN to the directory holding wownet-hostd}
wn_require promtool prometheus ping python3

wn_ns H host
wn_ns VM vm1
wn_veth "$H" vif1 "$VM" eth0
ip -n "$VM" addr add 10.128.0.50/9 dev eth0
ip -n "$VM" route add default via 10.128.0.1

METRICS=127.0.0.1:9770
PROM=127.0.0.1:9090
cat >"$WN_TMP/hostd.toml" <<EOF
[metrics]
listen = "$METRICS"
EOF
wn_check "hostd --check-config accepts [metrics]" "$BIN/wownet-hostd" --check-config --config "$WN_TMP/hostd.toml"
printf '[metrics]\nlisten = "127.0.0.1"\n' >"$WN_TMP/bad.toml"
msg=$("$BIN/wownet-hostd" --check-config --config "$WN_TMP/bad.toml" 2>&1 || true)
wn_check "a bad metrics.listen is refused with the key named ($msg)" grep -q "metrics.listen: expected ADDRESS:PORT" <<<"$msg"

wn_hostd "$H" --config "$WN_TMP/hostd.toml" --log-level debug
wn_check "attach vm1" "${CTL[@]}" attach vif1 --vm vm1

# http GET PATH: the status line, then the body, from inside the host namespace.
http() {
  ip netns exec "$H" python3 - "$1" "$2" <<'EOF'
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen("http://" + sys.argv[1] + sys.argv[2], timeout=5) as r:
        print(r.status)
        print(r.headers.get("Content-Type"))
        sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code)
EOF
}
scrape() {
  local r
  r=$(http "$METRICS" /metrics)
  tail -n +3 <<<"$r"
}
export -f http
export H METRICS

wn_check "the metrics endpoint comes up" wn_wait_for 10 "metrics endpoint" \
  bash -c 'http "$METRICS" /metrics | grep -x 200 >/dev/null'
resp=$(http "$METRICS" /metrics)
head2=$(sed -n 1,2p <<<"$resp" | tr '\n' ' ')
wn_eq "GET /metrics answers 200 in format 0.0.4" "$head2" "200 text/plain; version=0.0.4; charset=utf-8 "
resp=$(http "$METRICS" /)
wn_eq "GET / is 404" "$resp" 404
scrape >"$WN_TMP/metrics.txt"
wn_check "promtool check metrics passes" bash -c "promtool check metrics <'$WN_TMP/metrics.txt'"
wn_check_not "every family has a help text" grep -q "undocumented" "$WN_TMP/metrics.txt"
for series in 'wownet_attachments 1' 'wownet_attachment_up{vm="vm1"} 1' 'wownet_leases_active ' \
  'wownet_attachment_rx_frames_total{vm="vm1"} ' 'wownet_attachment_drops_total{vm="vm1",reason="ethertype"} ' \
  'wownet_engine_drops_total{reason="spoofed_ip"} ' 'wownet_dhcp_discovers_total ' 'wownet_dns_queries_total ' \
  'wownet_engine_icmp_echo_replies_total ' 'wownet_engine_tap_write_errors_total ' 'wownet_build_info{version="' \
  'wownet_metrics_http_requests_total '; do
  wn_check "exposition has $series" grep -qF "$series" "$WN_TMP/metrics.txt"
done
wn_check "TYPE of a counter" grep -qx "# TYPE wownet_engine_icmp_echo_replies_total counter" "$WN_TMP/metrics.txt"
wn_check "HELP of a counter" grep -q "^# HELP wownet_engine_icmp_echo_replies_total ." "$WN_TMP/metrics.txt"

# --- a real Prometheus scrapes hostd ---------------------------------------------
mkdir -p "$WN_TMP/prometheus"
cat >"$WN_TMP/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: wownet
    static_configs:
      - targets: ["$METRICS"]
EOF
wn_check "promtool check config" promtool check config "$WN_TMP/prometheus.yml"
wn_spawn prometheus ip netns exec "$H" prometheus --config.file="$WN_TMP/prometheus.yml" \
  --storage.tsdb.path="$WN_TMP/prometheus" --web.listen-address="$PROM"

# query PROMQL: the value of the first result, or nothing.
query() {
  ip netns exec "$H" python3 - "$PROM" "$1" <<'EOF'
import json, sys, urllib.parse, urllib.request
url = "http://%s/api/v1/query?%s" % (sys.argv[1], urllib.parse.urlencode({"query": sys.argv[2]}))
try:
    with urllib.request.urlopen(url, timeout=5) as r:
        d = json.load(r)
except Exception:
    sys.exit(1)
res = d.get("data", {}).get("result", [])
if d.get("status") != "success" or not res:
    sys.exit(1)
print(res[0]["value"][1])
EOF
}
export -f query
export PROM
wn_check "Prometheus scrapes hostd (up == 1)" wn_wait_for 60 "up{job=wownet} == 1" \
  bash -c 'test "$(query "up{job=\"wownet\"}")" = 1'
wn_check "Prometheus has wownet series" wn_wait_for 10 "wownet series" \
  bash -c 'test "$(query "count({__name__=~\"wownet_.+\"})")" -gt 80'
wn_check "Prometheus has per-VM series" wn_wait_for 10 "per-VM series" \
  bash -c 'query "wownet_attachment_rx_frames_total{vm=\"vm1\"}"'
wn_check "Prometheus has drop reasons" wn_wait_for 10 "drop reasons" \
  bash -c 'test "$(query "count(wownet_engine_drops_total)")" -ge 14'

before=$(query 'wownet_attachment_rx_frames_total{vm="vm1"}' || echo 0)
replies_before=$(query 'wownet_engine_icmp_echo_replies_total' || echo 0)
wn_check "vm1 pings its gateway" ip netns exec "$VM" ping -c 10 -i 0.2 -W 2 10.128.0.1
wn_check "Prometheus sees vm1's frames counted (from $before)" wn_wait_for 20 "rx frames move" \
  bash -c "test \"\$(query 'wownet_attachment_rx_frames_total{vm=\"vm1\"}')\" -ge $((before + 10))"
wn_check "Prometheus sees the echo replies (from $replies_before)" wn_wait_for 20 "echo replies move" \
  bash -c "test \"\$(query 'wownet_engine_icmp_echo_replies_total')\" -ge $((replies_before + 10))"
wn_check "rate() over the traffic counter is positive" wn_wait_for 10 "rate" \
  bash -c "query 'rate(wownet_attachment_tx_frames_total{vm=\"vm1\"}[30s]) > 0'"

# --- bad clients on the metrics port ---------------------------------------------
out=$(ip netns exec "$H" python3 - "$METRICS" <<'EOF'
import socket, sys
host, port = sys.argv[1].split(":")
def exchange(data):
    s = socket.create_connection((host, int(port)), timeout=5)
    s.sendall(data)
    got = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return got.split(b"\r\n")[0].decode(errors="replace") + " closed"
            got += chunk
    except socket.timeout:
        return got.split(b"\r\n")[0].decode(errors="replace") + " open"
    finally:
        s.close()
print(exchange(b"\x16\x03\x01\x02\x00\x01 garbage garbage\r\n\r\n"))
print(exchange(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"))
print(exchange(b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"))
for _ in range(30):  # connection churn
    socket.create_connection((host, int(port)), timeout=5).close()
EOF
)
wn_eq "garbage gets 400 and is closed" "$(sed -n 1p <<<"$out")" "HTTP/1.1 400 Bad Request closed"
wn_eq "an oversized header gets 431 and is closed" "$(sed -n 2p <<<"$out")" \
  "HTTP/1.1 431 Request Header Fields Too Large closed"
wn_eq "a request body gets 400 and is closed" "$(sed -n 3p <<<"$out")" "HTTP/1.1 400 Bad Request closed"
wn_check "hostd is still running" kill -0 "$HOSTD"
resp=$(http "$METRICS" /metrics)
wn_eq "hostd still serves /metrics" "$(sed -n 1p <<<"$resp")" 200
wn_check "hostd still answers on its control socket" "${CTL[@]}" status
bad=$(scrape | awk '$1 == "wownet_metrics_http_bad_requests_total" {print $2}')
wn_eq "the bad requests are counted" "$bad" 3
wn_check "Prometheus still scrapes hostd" bash -c 'test "$(query "up{job=\"wownet\"}")" = 1'

wn_finish
