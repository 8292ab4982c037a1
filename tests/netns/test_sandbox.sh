#!/usr/bin/env bash
# hostd under the shipped systemd unit's file-system sandbox
# (ProtectSystem=strict): online enrollment and a rendezvous' ca_dir work
# with only the paths the unit lets hostd write.
#
# The writable paths come from packaging/wownet-hostd.service itself
# (StateDirectory=, RuntimeDirectory=, ReadWritePaths=), so the test fails
# if the unit misses a path hostd writes. Each node gets a root directory
# laid out as an installed system ($ROOT/etc/wownet for the config and keys,
# the unit's paths under $ROOT); hostd runs in a mount namespace where every
# mount is read-only except /proc, /sys, /dev and $ROOT + each of the unit's
# writable paths: what ProtectSystem=strict leaves writable. (PrivateTmp=
# would give hostd a writable private /tmp; here /tmp is read-only too,
# which is stricter.) systemd is not PID 1 in every test environment, so
# the sandbox is built with unshare and bind mounts rather than systemd-run.
#
# A rendezvous holding the CA (ca_dir in its state dir, as hostd.toml
# suggests) and a host with only a key and a CSR (no cert path: it defaults
# to the state dir): the host submits, the admin approves, the host writes
# its certificate and joins. Then the admin revokes it, and a reload of the
# rendezvous takes the new CRL at once and drops the host.
#
# Needs root. Run through ctest (label netns) or directly with
# WOWNET_BIN=build/bin WOWNET_SOURCE=.
source "$(dirname "$0")/lib.sh"
BIN=${WOWNET_BIN:?set WOWNET_BIN to the directory holding wownet-hostd}
SRC=${WOWNET_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}
UNIT="$SRC/packaging/wownet-hostd.service"
command -v unshare >/dev/null || { echo "missing tool: unshare (util-linux)"; exit 1; }

# --- the unit's writable paths ----------------------------------------------------
unit_values() { sed -n "s/^$1=//p" "$UNIT"; }
wn_eq "the unit protects the file system" "$(unit_values ProtectSystem)" strict
wn_eq "systemctl reload sends SIGHUP (tests/netns/test_reload.sh tests what it does)" \
  "$(unit_values ExecReload)" '/bin/kill -HUP $MAINPID'
WRITABLE=()
for d in $(unit_values StateDirectory); do WRITABLE+=("/var/lib/$d"); done
for d in $(unit_values RuntimeDirectory); do WRITABLE+=("/run/$d"); done
for p in $(unit_values ReadWritePaths); do WRITABLE+=("${p#-}"); done
wn_log "writable under the unit: ${WRITABLE[*]}"
wn_check "the unit names writable paths" [ "${#WRITABLE[@]}" -ge 2 ]

# sandbox ROOT CMD...: runs CMD with the file system read-only but for the
# API file systems and ROOT + each writable path. With SANDBOX_EXEC=exec the
# shell becomes CMD (for daemons: their pid is the shell's).
sandbox() {
  local root=$1
  shift
  ${SANDBOX_EXEC:-} unshare -m --propagation private bash -c '
    set -e
    root=$1; n=$2; shift 2
    keep=()
    for ((i = 0; i < n; i++)); do
      mount --bind "$root$1" "$root$1"
      keep+=("$root$1")
      shift
    done
    # Every other mount read-only: the deepest last, so that nothing is missed.
    while read -r m; do
      case $m in /proc | /proc/* | /sys | /sys/* | /dev | /dev/*) continue ;; esac
      skip=
      for k in "${keep[@]}"; do [[ $m == "$k" || $m == "$k"/* ]] && skip=1; done
      [ -n "$skip" ] || mount -o remount,bind,ro "$m" 2>/dev/null || true
    done < <(awk "{print \$5}" /proc/self/mountinfo | sort -u)
    exec "$@"' sandbox "$root" "${#WRITABLE[@]}" "${WRITABLE[@]}" "$@"
}

# --- two nodes laid out as installed systems --------------------------------------------
wn_underlay WAN
wn_underlay_node RV "$WAN" rv 192.0.2.10
wn_underlay_node HA "$WAN" hosta 192.0.2.11
declare -A ROOT=([rv]="$WN_TMP/rv" [hosta]="$WN_TMP/hosta")
for n in rv hosta; do
  for p in "${WRITABLE[@]}"; do mkdir -p "${ROOT[$n]}$p"; done
  mkdir -p "${ROOT[$n]}/etc/wownet"
done
ETC_RV="${ROOT[rv]}/etc/wownet"
ETC_HA="${ROOT[hosta]}/etc/wownet"
CA_DIR="${ROOT[rv]}/var/lib/wownet/ca"
"$BIN/wownetctl" ca init --dir "$CA_DIR" --name sandbox-ca --days 30 >/dev/null
"$BIN/wownetctl" cert request --dir "$ETC_RV" --name rv >/dev/null
"$BIN/wownetctl" ca sign --dir "$CA_DIR" --csr "$ETC_RV/node.csr" --out "$ETC_RV/node.crt" --days 10 >/dev/null
cp "$CA_DIR/ca.crt" "$ETC_RV/ca.crt"
cp "$CA_DIR/ca.crt" "$ETC_HA/ca.crt"
"$BIN/wownetctl" cert request --dir "$ETC_HA" --name hosta >/dev/null

cat >"$ETC_RV/hostd.toml" <<EOF
[hostd]
state_dir = "${ROOT[rv]}/var/lib/wownet"
control_socket = "${ROOT[rv]}/run/wownet/hostd.sock"
log_level = "debug"
[overlay]
role = "rendezvous"
listen = "192.0.2.10:7700"
cert = "$ETC_RV/node.crt"
key = "$ETC_RV/node.key"
ca = "$ETC_RV/ca.crt"
ca_dir = "$CA_DIR"
crl = "$CA_DIR/crl.pem"
crl_refresh = 86400
EOF
cat >"$ETC_HA/hostd.toml" <<EOF
[hostd]
state_dir = "${ROOT[hosta]}/var/lib/wownet"
control_socket = "${ROOT[hosta]}/run/wownet/hostd.sock"
log_level = "debug"
[overlay]
listen = "192.0.2.11:7700"
rendezvous = ["192.0.2.10:7700"]
key = "$ETC_HA/node.key"
ca = "$ETC_HA/ca.crt"
csr = "$ETC_HA/node.csr"
EOF
declare -A NS=([rv]="$RV" [hosta]="$HA")
CTL() { ip netns exec "${NS[$1]}" "$BIN/wownetctl" --socket "${ROOT[$1]}/run/wownet/hostd.sock" "${@:2}"; }

for n in rv hosta; do
  wn_check "$n: --check-config passes" "$BIN/wownet-hostd" --check-config --config "${ROOT[$n]}/etc/wownet/hostd.toml"
done

# --- the sandbox itself ----------------------------------------------------------------
wn_check_not "the sandbox keeps the config directory read-only" \
  sandbox "${ROOT[hosta]}" touch "$ETC_HA/probe"
wn_check_not "and /tmp" sandbox "${ROOT[hosta]}" touch "$WN_TMP/probe"
wn_check "but the state directory is writable" sandbox "${ROOT[hosta]}" touch "${ROOT[hosta]}/var/lib/wownet/probe"
rm -f "${ROOT[hosta]}/var/lib/wownet/probe"

declare -A HOSTD
for n in rv hosta; do
  wn_spawn "hostd-$n" ip netns exec "${NS[$n]}" bash -c "$(declare -f sandbox); WRITABLE=(${WRITABLE[*]}); \
    SANDBOX_EXEC=exec sandbox '${ROOT[$n]}' '$BIN/wownet-hostd' --config '${ROOT[$n]}/etc/wownet/hostd.toml'"
  HOSTD[$n]=$WN_LAST_PID
  wn_check "$n starts in the sandbox" wn_wait_for 10 "hostd $n" CTL "$n" status
done

# --- online enrollment ----------------------------------------------------------------
id_of() { CTL rv ca pending --json | jq -r '.requests[] | select(.name == "hosta") | .id'; }
wn_check "hosta's request reaches the CA's rendezvous" wn_wait_for 15 "pending request" \
  bash -c "$(declare -f CTL id_of); $(declare -p NS ROOT BIN); [ -n \"\$(id_of)\" ]"
ID=$(id_of)
serial=$(cat "$CA_DIR/serial")
wn_check "the admin approves it" CTL rv ca approve "$ID" --days 5
wn_check "hostd updated the CA's serial in ca_dir ($serial -> $(cat "$CA_DIR/serial"))" \
  [ "$(cat "$CA_DIR/serial")" != "$serial" ]
CERT="${ROOT[hosta]}/var/lib/wownet/node.crt"
wn_check "hosta writes its certificate to the state dir" wn_wait_for 15 "hosta certificate" test -s "$CERT"
wn_check "it is from the network's CA" openssl verify -CAfile "$ETC_HA/ca.crt" "$CERT"
wn_check "hosta joins: its session to the rendezvous comes up" wn_wait_for 20 "hosta registered" \
  grep -q "registered; the rendezvous sees us" "$WN_TMP/hostd-hosta.log"
for n in rv hosta; do
  wn_check_not "$n logged no write failure" grep -Eq "cannot write|Read-only file system" "$WN_TMP/hostd-$n.log"
  wn_check "$n still runs" kill -0 "${HOSTD[$n]}"
done

# --- a restarted host finds its certificate where it wrote it -----------------------------
wn_stop "${HOSTD[hosta]}"
wn_forget "${HOSTD[hosta]}"
wn_spawn hostd-hosta2 ip netns exec "$HA" bash -c "$(declare -f sandbox); WRITABLE=(${WRITABLE[*]}); \
  SANDBOX_EXEC=exec sandbox '${ROOT[hosta]}' '$BIN/wownet-hostd' --config '$ETC_HA/hostd.toml'"
HOSTD[hosta]=$WN_LAST_PID
wn_check "after a restart hosta joins with the stored certificate" wn_wait_for 20 "hosta registered again" \
  grep -q "registered; the rendezvous sees us" "$WN_TMP/hostd-hosta2.log"
wn_check_not "without enrolling again" grep -q "submitting" "$WN_TMP/hostd-hosta2.log"

# --- the rendezvous re-reads its CRL on a reload (crl_refresh is a day) ---------------------
"$BIN/wownetctl" ca revoke --dir "$CA_DIR" --cert "$CERT" >/dev/null
before=$(wc -l <"$WN_TMP/hostd-rv.log")
json=$(CTL rv reload --json)
wn_check "wownetctl reload on the rendezvous takes the new CRL ($json)" \
  jq -e '(.applied | map(select(startswith("CRL ") and contains("crl.pem"))) | length == 1) and (.refused == [])' \
  <<<"$json"
wn_check "and the revoked host loses its session at once" wn_wait_for 10 "hosta down" \
  bash -c "tail -n +$((before + 1)) '$WN_TMP/hostd-rv.log' | grep -q 'peer hosta (.*) down: .*revoked'"

for n in rv hosta; do wn_stop "${HOSTD[$n]}"; done
wn_finish
