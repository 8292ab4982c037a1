#!/usr/bin/env bash
# Revocation reaches everyone: one etcd, two rendezvous A and B sharing the
# registry in it, host 1 registered at A, hosts 2 and 3 at B, one VM on
# each host, all pinging each other. Host 3 is revoked on rendezvous A
# alone (wownetctl ca revoke on A's ca_dir, whose crl.pem A reads; B reads
# a stale copy of the old CRL as its [overlay] crl). Within 2 s host 3 has no session left
# with host 1, host 2 or rendezvous B and its VM reaches no other; its new
# handshakes are refused; host 1 and host 2 still reach each other. The
# CRL went through etcd (B took it from there, its hosts from B), B's stale
# file undid nothing, and garbage or an older CRL written to etcd is
# refused (counted, logged once), replaced by the CRL in force, and crashes
# nothing. A restarted B loads the CRL from etcd. The measured time from
# the revoke to the cut-off is printed.
#
# Needs root. Run through ctest (label netns) or with WOWNET_BIN=build/bin.
source "$(dirname "$0")/lib.sh"
BIN=${WOWNET_BIN:?set WOWNET_BIN to the directory holding wownet-hostd}
for tool in etcd etcdctl dhclient busybox ping python3; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool (scripts/install-deps.sh installs it)"; exit 1; }
done
CTL() { local ns=$1; shift; ip netns exec "$ns" "$BIN/wownetctl" --socket "$WN_TMP/$ns.sock" "$@"; }

PKI=$WN_TMP/pki
wn_pki_init "test network"
for n in rva rvb h1 h2 h3; do wn_node_cert "$n"; done
# B's own CRL file: the CA's CRL as it is now (CRL 1), never updated.
cp "$PKI/ca/crl.pem" "$WN_TMP/rvb-crl.pem"

wn_underlay WAN
declare -A NODE_NS NODE_IP
NODE_IP=([etcd]=192.0.2.5 [rva]=192.0.2.10 [rvb]=192.0.2.20 [h1]=192.0.2.11 [h2]=192.0.2.12 [h3]=192.0.2.13)
for n in etcd rva rvb h1 h2 h3; do wn_underlay_node "NODE_NS[$n]" "$WAN" "$n" "${NODE_IP[$n]}"; done

ETCD_URL=http://192.0.2.5:2379
wn_spawn etcd ip netns exec "${NODE_NS[etcd]}" etcd --name wn --data-dir "$WN_TMP/etcd" \
  --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
  --listen-peer-urls http://192.0.2.5:2380 --initial-advertise-peer-urls http://192.0.2.5:2380 \
  --initial-cluster wn=http://192.0.2.5:2380 --logger zap --log-outputs "$WN_TMP/etcd-server.log"
ETCDCTL() { ip netns exec "${NODE_NS[etcd]}" env ETCDCTL_API=3 etcdctl --endpoints "$ETCD_URL" "$@"; }
wn_check "etcd answers" wn_wait_for 20 "etcd" ETCDCTL endpoint health
etcd_crl() { ETCDCTL get /wownet/crl --print-value-only; }
etcd_holds() { [ "$(etcd_crl)" = "$(cat "$1")" ]; }  # FILE: etcd's CRL is that file's

write_config() {  # name role rendezvous-address
  local n=$1 role=$2
  cat >"$WN_TMP/$n.toml" <<TOML
[hostd]
state_dir = "$WN_TMP/state-$n"
control_socket = "$WN_TMP/${NODE_NS[$n]}.sock"
log_level = "debug"
[overlay]
role = "$role"
listen = "${NODE_IP[$n]}:7700"
rendezvous = ["$3:7700"]
cert = "$PKI/$n/node.crt"
key = "$PKI/$n/node.key"
ca = "$PKI/ca/ca.crt"
keepalive = 2
TOML
}
write_config rva rendezvous "${NODE_IP[rva]}"
write_config rvb rendezvous "${NODE_IP[rvb]}"
# A holds the CA (no [overlay] crl: it reads ca_dir/crl.pem). The CRL
# refresh stays at its default (60 s): a revocation must not wait for it.
echo "ca_dir = \"$PKI/ca\"" >>"$WN_TMP/rva.toml"
echo "crl = \"$WN_TMP/rvb-crl.pem\"" >>"$WN_TMP/rvb.toml"
for n in rva rvb; do printf '[registry]\nbackend = "etcd"\nendpoints = ["%s"]\n' "$ETCD_URL" >>"$WN_TMP/$n.toml"; done
write_config h1 host "${NODE_IP[rva]}"
write_config h2 host "${NODE_IP[rvb]}"
write_config h3 host "${NODE_IP[rvb]}"

declare -A HOSTD
start_node() {  # name
  wn_spawn "hostd-$1" ip netns exec "${NODE_NS[$1]}" "$BIN/wownet-hostd" --config "$WN_TMP/$1.toml"
  HOSTD[$1]=$WN_LAST_PID
  wn_wait_for 10 "hostd $1" CTL "${NODE_NS[$1]}" status
}
for n in rva rvb h1 h2 h3; do start_node "$n"; done
for h in h1 h2 h3; do
  wn_check "$h registered" wn_wait_for 15 "$h registered" grep -q "registered; the rendezvous sees us" "$WN_TMP/hostd-$h.log"
done

# --- one VM per host, under real DHCP clients -------------------------------------------
declare -A VM VM_HOST VM_CLIENT IP
VM_HOST=([v1]=h1 [v2]=h2 [v3]=h3)
VM_CLIENT=([v1]=udhcpc [v2]=dhclient [v3]=udhcpc)
i=0
for v in v1 v2 v3; do
  i=$((i + 1))
  h=${NODE_NS[${VM_HOST[$v]}]}
  wn_ns VM[$v] "$v"
  wn_veth "$h" "vif-$v" "${VM[$v]}" eth0
  wn_veth "$h" "ch-$v" "${VM[$v]}" eth1
  ip -n "$h" addr add "169.254.$i.1/30" dev "ch-$v"
  ip -n "${VM[$v]}" addr add "169.254.$i.2/30" dev eth1
  wn_check "attach $v on ${VM_HOST[$v]}" CTL "$h" attach "vif-$v" --vm "$v" --agent-if "ch-$v"
  mkdir -p "$WN_TMP/agent-$v"
  wn_spawn "agent-$v" ip netns exec "${VM[$v]}" unshare --uts sh -c \
    "hostname vm-$v; exec $BIN/wownet-agent --nic eth0 --channel eth1 --interval 1 \
      --dhcp-client ${VM_CLIENT[$v]} --state-dir $WN_TMP/agent-$v --log-level debug"
done
for v in v1 v2 v3; do
  wn_wait_for 40 "lease in $v" bash -c "ip -n ${VM[$v]} -4 -o addr show dev eth0 | grep -q 'inet 10\.'" || true
  IP[$v]=$(ip -n "${VM[$v]}" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1 | head -1)
  wn_check "$v on ${VM_HOST[$v]} has a lease: ${IP[$v]:-none}" [ -n "${IP[$v]}" ]
done
ping_ok() { ip netns exec "${VM[$1]}" ping -c 1 -W 1 "${IP[$2]}"; }
for pair in "v1 v2" "v2 v1" "v1 v3" "v3 v1" "v2 v3" "v3 v2"; do
  set -- $pair
  wn_check "before: $1 pings $2" wn_wait_for 20 "$1 -> $2" ping_ok "$1" "$2"
done
wn_check "etcd holds the CA's CRL" wn_wait_for 10 "CRL 1 in etcd" etcd_holds "$PKI/ca/crl.pem"

# --- revoke host 3 on rendezvous A -----------------------------------------------------------
# Cut off: no established session with h3 on h1, h2 or rendezvous B.
has_session_with_h3() {  # node
  CTL "${NODE_NS[$1]}" peers --json |
    python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if any(p.get("node_name")=="h3" and p.get("established") for p in d.get("peers",[])) else 1)'
}
cut_off() { ! has_session_with_h3 h1 && ! has_session_with_h3 h2 && ! has_session_with_h3 rvb; }
for n in h1 h2 rvb; do wn_check "before: $n has a session with h3" has_session_with_h3 "$n"; done
# The time of the cut-off comes from the nodes' own log lines (hostd logs
# local time to the millisecond), not from polling, which is slow on a busy
# machine: the first "peer h3 (...) down" of each node after the revoke.
h3_down_at() {  # node: the time of its first line about h3's session ending since $T0_LOG
  awk -v t0="$T0_LOG" '$1 >= t0 && /peer h3 \(.*\) down/ { print $1; exit }' "$WN_TMP/hostd-$1.log"
}
all_down() { [ -n "$(h3_down_at h1)" ] && [ -n "$(h3_down_at h2)" ] && [ -n "$(h3_down_at rvb)" ]; }
T0_LOG=$(date +%Y-%m-%dT%H:%M:%S.%3N)
t0=$(date -d "$T0_LOG" +%s%3N)
"$BIN/wownetctl" ca revoke --dir "$PKI/ca" --cert "$PKI/h3/node.crt" >/dev/null
wn_check "h1, h2 and rendezvous B end their sessions with h3" wn_wait_for 10 "h3 cut off" all_down
elapsed_ms=0
for n in h1 h2 rvb; do
  at=$(h3_down_at "$n")
  if [[ -z $at ]]; then elapsed_ms=999999; continue; fi
  ms=$(($(date -d "$at" +%s%3N) - t0))
  wn_log "revoke on rendezvous A -> $n ends its session with h3 at $at (+${ms} ms)"
  if ((ms > elapsed_ms)); then elapsed_ms=$ms; fi
done
echo "revocation on rendezvous A: host 3 cut off everywhere after ${elapsed_ms} ms" | tee "$WN_TMP/revocation-time.txt" >&2
wn_check "h3 cut off everywhere within 2 s (${elapsed_ms} ms)" [ "$elapsed_ms" -le 2000 ]
wn_check "no node lists an established session with h3" cut_off
for pair in "v3 v1" "v3 v2" "v1 v3" "v2 v3"; do
  set -- $pair
  wn_check_not "after: $1 cannot ping $2" ping_ok "$1" "$2"
done
for pair in "v1 v2" "v2 v1"; do
  set -- $pair
  wn_check "after: $1 still pings $2" ping_ok "$1" "$2"
done

# The path went through etcd: B took CRL 2 from the shared registry (its own
# file still holds CRL 1) and pushed it to its hosts.
wn_check "rendezvous B took CRL 2 from the shared registry" grep -q "CRL 2 from the shared registry" "$WN_TMP/hostd-rvb.log"
wn_check "host 2 took CRL 2 from rendezvous B" grep -q "CRL 2 from the registry" "$WN_TMP/hostd-h2.log"
wn_check "host 1 took CRL 2 from rendezvous A" grep -q "CRL 2 from the registry" "$WN_TMP/hostd-h1.log"
wn_check "etcd holds CRL 2" etcd_holds "$PKI/ca/crl.pem"
wn_check_not "rendezvous B's stale file did not replace it" grep -q "CRL 1 loaded\|CRL 1 from" "$WN_TMP/hostd-rvb.log"

# --- host 3 cannot come back -------------------------------------------------------------
# Its VM keeps sending; host 3 gives up its dead sessions and handshakes
# again, with rendezvous B and with the hosts: all refuse it.
wn_spawn ping-v3 ip netns exec "${VM[v3]}" ping -i 0.5 "${IP[v1]}"
PING_V3=$WN_LAST_PID
wn_spawn ping-v3b ip netns exec "${VM[v3]}" ping -i 0.5 "${IP[v2]}"
PING_V3B=$WN_LAST_PID
refused_by() { grep -qE "refusing peer h3 [^:]*: revoked" "$WN_TMP/hostd-$1.log"; }
wn_check "rendezvous B refuses host 3's new handshake (revoked)" wn_wait_for 30 "rvb refuses h3" refused_by rvb
wn_check "host 1 or host 2 refuses host 3's new handshake (revoked)" wn_wait_for 30 "h1/h2 refuse h3" \
  bash -c "grep -qE 'refusing peer h3 [^:]*: revoked' '$WN_TMP/hostd-h1.log' '$WN_TMP/hostd-h2.log'"
for pair in "v3 v1" "v3 v2"; do
  set -- $pair
  wn_check_not "later: $1 still cannot ping $2" ping_ok "$1" "$2"
done
wn_check "later: nobody has a session with h3" cut_off
wn_stop "$PING_V3"
wn_forget "$PING_V3"
wn_stop "$PING_V3B"
wn_forget "$PING_V3B"

# --- bad CRLs in etcd: refused, counted, replaced; nothing crashes ------------------------
counter() {  # node name
  CTL "${NODE_NS[$1]}" status --json | python3 -c "
import json, sys
def find(d, k):
    if isinstance(d, dict):
        for key, v in d.items():
            if key == k: return v
            r = find(v, k)
            if r is not None: return r
    elif isinstance(d, list):
        for v in d:
            r = find(v, k)
            if r is not None: return r
print(int(find(json.load(sys.stdin), sys.argv[1]) or 0))" "$2"
}
wn_eq "rendezvous B counted one CRL taken from etcd" "$(counter rvb etcd_crl_taken)" 1
ETCDCTL put /wownet/crl "not a CRL at all" >/dev/null
wn_check "garbage in etcd is replaced by CRL 2" wn_wait_for 10 "etcd CRL repaired" etcd_holds "$PKI/ca/crl.pem"
ETCDCTL put -- /wownet/crl "$(cat "$WN_TMP/rvb-crl.pem")" >/dev/null
wn_check "an older CRL in etcd is replaced by CRL 2" wn_wait_for 10 "etcd CRL 2 again" etcd_holds "$PKI/ca/crl.pem"
wn_check "both rendezvous kept CRL 2 in force" \
  bash -c "grep -q 'older than CRL 2 in force' '$WN_TMP/hostd-rva.log' '$WN_TMP/hostd-rvb.log'"
for n in rva rvb; do
  wn_check "$n counted the garbage" [ "$(counter "$n" etcd_crl_refused)" -ge 1 ]
  wn_eq "$n logged the garbage once" "$(grep -c "CRL in the shared registry refused" "$WN_TMP/hostd-$n.log")" 1
  wn_check "$n still running" kill -0 "${HOSTD[$n]}"
done
wn_check_not "the older CRL did not let h3 back in: v3 cannot ping v1" ping_ok v3 v1
wn_check "v1 still pings v2" ping_ok v1 v2

# --- a restarted rendezvous B (its file still holds CRL 1) loads CRL 2 from etcd ----------
wn_stop "${HOSTD[rvb]}"
wn_forget "${HOSTD[rvb]}"
mv "$WN_TMP/hostd-rvb.log" "$WN_TMP/hostd-rvb.1.log"
start_node rvb
wn_check "restarted B takes CRL 2 from etcd" wn_wait_for 10 "rvb CRL 2" \
  grep -q "CRL 2 from the shared registry" "$WN_TMP/hostd-rvb.log"
wn_check "host 2 registered again at the restarted B" wn_wait_for 30 "h2 back at rvb" \
  bash -c "[ \"\$(grep -c 'registered; the rendezvous sees us' '$WN_TMP/hostd-h2.log')\" -ge 2 ]"
wn_check "v2 pings v1" wn_wait_for 30 "v2 -> v1" ping_ok v2 v1
wn_check_not "v3 still cannot ping v2" ping_ok v3 v2
wn_check_not "B has no session with h3" has_session_with_h3 rvb
for n in rva rvb h1 h2 h3; do
  wn_check "hostd $n still running" kill -0 "${HOSTD[$n]}"
done
wn_finish
