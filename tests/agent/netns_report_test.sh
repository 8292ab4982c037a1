#!/bin/sh
# Root only. Runs `wownet-agent --once --dhcp-client none` in a VM namespace
# and checks the report that arrives on the host side of the channel veth,
# and that nothing leaves through the overlay NIC.
#   VM ns:  eth0 (overlay, 10.202.0.5/24, valid_lft 300)  eth1 (channel)
#   host ns: ch0 (peer of eth1)    overlay ns: ov0 (peer of eth0)
AGENT=${1:?usage: netns_report_test.sh WOWNET_AGENT PROTOC PROTO_DIR}
PROTOC=${2:?}
PROTO_DIR=${3:?}
. "$(dirname "$0")/netns_lib.sh"

vm=${WNA_TAG}vm host=${WNA_TAG}h ovl=${WNA_TAG}o
netns_add "$vm" && netns_add "$host" && netns_add "$ovl" || exit 1
ip -n "$vm" link add eth0 type veth peer name ov0 netns "$ovl" || exit 1
ip -n "$vm" link add eth1 type veth peer name ch0 netns "$host" || exit 1
ip -n "$vm" link set eth0 address 52:54:00:12:34:56
ip -n "$vm" addr add 10.202.0.5/24 dev eth0 valid_lft 300 preferred_lft 300
ip -n "$vm" link set eth0 up
ip -n "$vm" link set eth1 up
ip -n "$ovl" addr add 10.202.0.1/24 dev ov0
ip -n "$ovl" link set ov0 up
ip -n "$host" addr add 169.254.100.1/24 dev ch0
ip -n "$host" link set ch0 up

port=6570
ip netns exec "$host" python3 -c "$WNA_RECEIVER" $port "$WNA_TMP/host" "$WNA_TMP/host.ready" 4 &
ip netns exec "$ovl" python3 -c "$WNA_RECEIVER" $port "$WNA_TMP/ovl" "$WNA_TMP/ovl.ready" 3 &
if ! wait_for_file "$WNA_TMP/host.ready" 10 || ! wait_for_file "$WNA_TMP/ovl.ready" 10; then
  echo "FAIL: receiver"
  exit 1
fi

# The VM's channel NIC has no IPv4 address: the broadcast must go out anyway.
before=$(date +%s)
in_ns "$vm" "$AGENT" --once --dhcp-client none --nic eth0 --channel eth1 --port $port \
  --hostname Test_VM.example.org --log-level debug
rc=$?
check "exit code of --once" "$rc" 0
wait_for_file "$WNA_TMP/host" 5 || { echo "FAIL: no datagram arrived on the channel"; exit 1; }
wait  # for both receivers

text=$(decode_report "$WNA_TMP/host") || exit 1
echo "$text"
check agent_version "$(field "$text" agent_version)" 0.1.0
check host_name "$(field "$text" host_name)" test-vm
check nic "$(field "$text" nic)" eth0
check address "$(field "$text" address)" 10.202.0.5
check prefix_length "$(field "$text" prefix_length)" 24
check dhcp_client "$(field "$text" dhcp_client)" none
check sequence "$(field "$text" sequence)" 1
check mac "$(field "$text" mac)" 52:54:00:12:34:56
expiry=$(field "$text" lease_expiry_unix)
if [ -n "$expiry" ] && [ "$expiry" -ge $((before + 290)) ] && [ "$expiry" -le $((before + 301)) ]; then
  echo "ok: lease_expiry_unix = $expiry (now + ~300)"
else
  echo "FAIL: lease_expiry_unix = '$expiry', want about $((before + 300))"
  WNA_FAILED=1
fi
check "datagrams on the channel" "$(find "$WNA_TMP" -name 'host.[0-9]*' | wc -l)" 1
if [ -e "$WNA_TMP/ovl" ]; then
  echo "FAIL: a report left through the overlay NIC"
  WNA_FAILED=1
else
  echo "ok: nothing on the overlay NIC"
fi

# A missing channel NIC is an error of --once (exit 1), not a hang.
in_ns "$vm" "$AGENT" --once --dhcp-client none --nic eth0 --channel nosuch0 --hostname vm 2>/dev/null
check "exit code of --once without the channel NIC" "$?" 1
exit $WNA_FAILED
