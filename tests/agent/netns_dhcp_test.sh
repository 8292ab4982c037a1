#!/bin/sh
# Root only. Drives real DHCP clients through wownet-agent against busybox
# udhcpd in throw-away namespaces, for each of dhclient and udhcpc:
# the overlay NIC gets a lease (address, prefix, MTU 1400 from option 26),
# the report says so, the server saw the host name, SIGTERM stops the client.
# Also: a lost client is restarted; --keep-client leaves it running and the
# next agent adopts it.
#   VM ns:   eth0 (overlay, DHCP)  eth1 (channel)
#   host ns: ov0 (10.203.0.1/24, udhcpd)  ch0 (report receiver)
AGENT=${1:?usage: netns_dhcp_test.sh WOWNET_AGENT PROTOC PROTO_DIR}
PROTOC=${2:?}
PROTO_DIR=${3:?}
. "$(dirname "$0")/netns_lib.sh"
command -v busybox >/dev/null 2>&1 || { echo "SKIP: busybox is missing"; exit 77; }

vm=${WNA_TAG}vm host=${WNA_TAG}h
netns_add "$vm" && netns_add "$host" || exit 1
ip -n "$vm" link add eth0 type veth peer name ov0 netns "$host" || exit 1
ip -n "$vm" link add eth1 type veth peer name ch0 netns "$host" || exit 1
ip -n "$vm" link set eth0 address 52:54:00:00:20:03
ip -n "$vm" link set eth1 up
ip -n "$host" addr add 10.203.0.1/24 dev ov0
ip -n "$host" addr add 169.254.100.1/24 dev ch0
ip -n "$host" link set ov0 up
ip -n "$host" link set ch0 up

cat >"$WNA_TMP/udhcpd.conf" <<CONF
start 10.203.0.100
end 10.203.0.120
interface ov0
lease_file $WNA_TMP/udhcpd.leases
pidfile $WNA_TMP/udhcpd.pid
opt subnet 255.255.255.0
opt mtu 1400
opt lease 120
CONF
: >"$WNA_TMP/udhcpd.leases"
ip netns exec "$host" busybox udhcpd -f "$WNA_TMP/udhcpd.conf" >"$WNA_TMP/udhcpd.log" 2>&1 &
udhcpd=$!
ip netns exec "$host" python3 -c "$WNA_RECEIVER" 6570 "$WNA_TMP/rep" "$WNA_TMP/rep.ready" 300 >/dev/null &
wait_for_file "$WNA_TMP/rep.ready" 10 || { echo "FAIL: receiver"; exit 1; }

# alive PID: the process exists and is not a zombie.
alive() {
  [ -r "/proc/$1/stat" ] && ! sed 's/.*) //' "/proc/$1/stat" | grep -q '^[ZX]'
}

# wait_report SECONDS: waits for a report (newer than the last
# `rm -f $WNA_TMP/rep`) whose address is non-empty; leaves it in $report.
wait_report() {
  i=0
  while [ "$i" -lt $(($1 * 5)) ]; do
    if [ -e "$WNA_TMP/rep" ] && report=$(decode_report "$WNA_TMP/rep" 2>/dev/null) &&
       [ -n "$(field "$report" address)" ]; then
      return 0
    fi
    i=$((i + 1))
    sleep 0.2
  done
  return 1
}

# start_agent CLIENT EXTRA...: runs the agent in the VM namespace; sets $agent.
start_agent() {
  client=$1
  shift
  rm -f "$WNA_TMP/rep"
  # Not via in_ns: $! must be the agent itself (ip and unshare exec it).
  ip netns exec "$vm" unshare --uts "$AGENT" --nic eth0 --channel eth1 --interval 1 --dhcp-client "$client" \
    --state-dir "$WNA_TMP/state" --hostname "vm-$client" --log-level debug "$@" \
    >>"$WNA_TMP/agent-$client.log" 2>&1 &
  agent=$!
}

# stop_agent: SIGTERM, then its exit code must be 0.
stop_agent() {
  kill -TERM "$agent"
  wait "$agent"
  check "agent exit code after SIGTERM" "$?" 0
}

expect_address() {
  if wait_report 40; then
    echo "$report" | sed 's/^/    /'
    addr=$(field "$report" address)
    case $addr in
      10.203.0.1[0-2][0-9]) echo "ok: address = $addr" ;;
      *) echo "FAIL: address = $addr"; WNA_FAILED=1 ;;
    esac
    check prefix_length "$(field "$report" prefix_length)" 24
    check dhcp_client "$(field "$report" dhcp_client)" "$1"
    check mac "$(field "$report" mac)" 52:54:00:00:20:03
  else
    echo "FAIL: $1: no report with an address within 40 s"
    sed 's/^/    /' "$WNA_TMP/agent-$1.log"
    WNA_FAILED=1
    return 1
  fi
}

# expect_daemon CLIENT: the client's pid file names a live daemon; sets $dpid.
expect_daemon() {
  sleep 1  # the pid file is written just after the client daemonizes
  dpid=$(cat "$WNA_TMP/state/$1.eth0.pid" 2>/dev/null)
  if [ -n "$dpid" ] && alive "$dpid"; then
    echo "ok: $1 runs in the background as pid $dpid ($(cat /proc/"$dpid"/comm))"
  else
    echo "FAIL: no running $1 in $WNA_TMP/state/$1.eth0.pid"
    WNA_FAILED=1
  fi
}

# expect_gone WHAT PID
expect_gone() {
  sleep 0.2
  if [ -n "$2" ] && alive "$2"; then
    echo "FAIL: $1 (pid $2) is still running"
    WNA_FAILED=1
    kill "$2"
  else
    echo "ok: $1 (pid $2) is gone"
  fi
}

for client in dhclient udhcpc; do
  echo "=== $client"
  if [ "$client" = dhclient ] && ! PATH=$PATH:/usr/sbin:/sbin command -v dhclient >/dev/null 2>&1; then
    echo "skip: dhclient is not installed"
    continue
  fi
  ip -n "$vm" addr flush dev eth0
  ip -n "$vm" link set eth0 mtu 1500
  start_agent "$client"
  expect_address "$client" || continue
  expiry=$(field "$report" lease_expiry_unix)
  now=$(date +%s)
  if [ "$client" = dhclient ]; then
    # dhclient-script sets valid_lft to the lease time (120 s).
    if [ -n "$expiry" ] && [ "$expiry" -gt "$now" ] && [ "$expiry" -le $((now + 121)) ]; then
      echo "ok: lease_expiry_unix = $expiry (now + $((expiry - now)))"
    else
      echo "FAIL: lease_expiry_unix = '$expiry', want within 120 s of $now"
      WNA_FAILED=1
    fi
  else
    # udhcpc's default.script uses ifconfig: the address lifetime is infinite.
    check "lease_expiry_unix (udhcpc: infinite lifetime)" "${expiry:-0}" 0
  fi
  check "eth0 MTU (DHCP option 26)" "$(ip -n "$vm" -o link show eth0 | sed -n 's/.* mtu \([0-9]*\) .*/\1/p')" 1400
  kill -USR1 "$udhcpd"  # makes udhcpd write its lease file
  sleep 0.3
  if busybox dumpleases -f "$WNA_TMP/udhcpd.leases" 2>/dev/null | grep -q "vm-$client"; then
    echo "ok: udhcpd saw host name vm-$client"
  else
    echo "FAIL: udhcpd did not see host name vm-$client"
    busybox dumpleases -f "$WNA_TMP/udhcpd.leases"
    WNA_FAILED=1
  fi
  expect_daemon "$client"

  if [ "$client" = dhclient ]; then
    # The client dies and the address goes: the agent starts a new one.
    old=$dpid
    kill -TERM "$old"
    sleep 0.5
    ip -n "$vm" addr flush dev eth0
    rm -f "$WNA_TMP/rep"
    expect_address "$client"
    expect_daemon "$client"
    if [ "$dpid" != "$old" ]; then echo "ok: restarted"; else echo "FAIL: not restarted"; WNA_FAILED=1; fi
    stop_agent
    expect_gone "$client after SIGTERM to the agent" "$dpid"
  else
    stop_agent
    expect_gone "$client after SIGTERM to the agent" "$dpid"
    # --keep-client: the client survives the agent, and the next agent adopts it.
    ip -n "$vm" addr flush dev eth0
    start_agent "$client" --keep-client
    expect_address "$client"
    expect_daemon "$client"
    stop_agent
    if alive "$dpid"; then
      echo "ok: --keep-client left $client (pid $dpid) running"
    else
      echo "FAIL: --keep-client did not leave $client running"
      WNA_FAILED=1
    fi
    start_agent "$client"
    sleep 2
    if grep -q "adopted the running $client (pid $dpid)" "$WNA_TMP/agent-$client.log"; then
      echo "ok: the next agent adopted $client (pid $dpid)"
    else
      echo "FAIL: the next agent did not adopt $client (pid $dpid)"
      WNA_FAILED=1
    fi
    stop_agent
    expect_gone "adopted $client after SIGTERM to the agent" "$dpid"
  fi
done

if [ "$WNA_FAILED" != 0 ]; then
  for f in "$WNA_TMP"/agent-*.log "$WNA_TMP/udhcpd.log"; do
    echo "--- $f"
    cat "$f"
  done
fi
exit $WNA_FAILED
