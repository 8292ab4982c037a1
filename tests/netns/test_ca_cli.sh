#!/usr/bin/env bash
# wownetctl's offline PKI commands (ca init / cert request / ca sign /
# ca revoke / ca crl / cert show) against the openssl CLI: openssl must parse
# and verify everything wownetctl writes, and wownetctl must sign an
# openssl-made CSR. Needs neither root nor namespaces; lives here with the
# other shell tests. Fails (never skips) if wownetctl has no `ca` command.
source "$(dirname "$0")/lib.sh"

CTL=${WOWNET_BIN:?set WOWNET_BIN to the build bin directory}/wownetctl
D=$WN_TMP/pki
mkdir -p "$D"
cd "$D"

# (`--help` exits 0 even where `ca` is unknown: look for the ca subcommands in it.)
if ! grep -q revoke <<<"$("$CTL" ca --help 2>&1 || true)"; then
  wn_log "FAIL - $CTL has no 'ca' command (add_ca_commands not hooked into wownetctl)"
  exit 1
fi

mode() { stat -c %a "$1"; }
lines() { printf '%s\n' "$1" | wc -l; }
# Node ID as specified: first 16 bytes of SHA-256 over the DER SubjectPublicKeyInfo.
openssl_node_id() {
  openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha256 -r | cut -c1-32
}
# fails_one_line WHAT CMD...: CMD exits non-zero with exactly one "wownetctl: ..." line on stderr.
fails_one_line() {
  local what=$1 err rc=0
  shift
  err=$("$@" 2>&1 >/dev/null) || rc=$?
  echo "### (expected to fail) $what: $* -> rc=$rc: $err" >>"$WN_TMP/checks.log"
  if [[ $rc != 0 && $(lines "$err") == 1 && $err == wownetctl:* ]]; then
    wn_pass "$what ($err)"
  else
    wn_fail "$what: rc=$rc stderr='$err'"
  fi
}

# --- CA -------------------------------------------------------------------
out=$("$CTL" ca init --dir "$D/ca" --name "test net CA" --days 30)
wn_eq "ca init prints one line" "$(lines "$out")" 1
wn_eq "CA directory is 0700" "$(mode ca)" 700
wn_eq "ca.key is 0600" "$(mode ca/ca.key)" 600
wn_check "openssl parses ca.crt" openssl x509 -noout -text -in ca/ca.crt
ca_text=$(openssl x509 -noout -text -in ca/ca.crt)
wn_check "CA is CA:TRUE pathlen:0" grep -q "CA:TRUE, pathlen:0" <<<"$ca_text"
wn_check "CA key usage keyCertSign,cRLSign" grep -q "Certificate Sign, CRL Sign" <<<"$ca_text"
wn_check "CA subject" grep -q "Subject: CN = test net CA" <<<"$ca_text"
wn_check "openssl parses ca.key" openssl pkey -noout -in ca/ca.key
wn_check "initial CRL verifies with the CA" openssl crl -noout -in ca/crl.pem -CAfile ca/ca.crt

# --- node a: request, sign ----------------------------------------------
out=$("$CTL" cert request --dir "$D/a" --name node-a)
wn_eq "cert request prints one line" "$(lines "$out")" 1
wn_eq "node.key is 0600" "$(mode a/node.key)" 600
# (openssl 3.0's `req -verify` exits 0 either way: judge by what it says.)
wn_check "openssl req -verify accepts the CSR" grep -q "verify OK" <<<"$(openssl req -verify -noout -in a/node.csr 2>&1)"
wn_check "CSR subject" grep -q "CN *= *node-a" <<<"$(openssl req -noout -subject -in a/node.csr)"
out=$("$CTL" ca sign --dir "$D/ca" --csr a/node.csr --out a/node.crt --days 10)
wn_eq "ca sign prints one line" "$(lines "$out")" 1
wn_check "openssl parses node.crt" openssl x509 -noout -text -in a/node.crt
node_text=$(openssl x509 -noout -text -in a/node.crt)
wn_check "node cert CN" grep -q "Subject: CN = node-a" <<<"$node_text"
wn_check "node cert CA:FALSE" grep -q "CA:FALSE" <<<"$node_text"
wn_check "node cert EKU serverAuth,clientAuth" \
  grep -q "TLS Web Server Authentication, TLS Web Client Authentication" <<<"$node_text"
wn_check "node cert has an authority key id" grep -q "Authority Key Identifier" <<<"$node_text"
wn_eq "openssl verify -CAfile" "$(openssl verify -CAfile ca/ca.crt a/node.crt 2>&1)" "a/node.crt: OK"
wn_eq "openssl verify -crl_check before revoke" \
  "$(openssl verify -crl_check -CAfile ca/ca.crt -CRLfile ca/crl.pem a/node.crt 2>&1)" "a/node.crt: OK"
wn_check "certificate matches node.key" \
  test "$(openssl x509 -noout -pubkey -in a/node.crt)" = "$(openssl pkey -pubout -in a/node.key)"

json=$("$CTL" cert show --json a/node.crt)
wn_eq "cert show name" "$(wn_json "d['name']" <<<"$json")" node-a
wn_eq "cert show issuer" "$(wn_json "d['issuer']" <<<"$json")" "test net CA"
wn_eq "cert show serial" "$(wn_json "d['serial']" <<<"$json")" 01
wn_eq "cert show node id = SHA-256(SPKI)[:16]" "$(wn_json "d['node_id']" <<<"$json")" "$(openssl_node_id a/node.crt)"
wn_eq "cert show validity 10 days (+1h backdate)" \
  "$(wn_json "d['not_after_unix'] - d['not_before_unix']" <<<"$json")" $((10 * 86400 + 3600))
wn_check "cert show (text)" "$CTL" cert show a/node.crt

# --- interop: an openssl-made CSR ----------------------------------------
mkdir -p c
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=node-c \
  -keyout c/node.key -out c/node.csr 2>>"$WN_TMP/checks.log"
wn_check "wownetctl signs an openssl CSR" "$CTL" ca sign --dir "$D/ca" --csr c/node.csr --out c/node.crt --days 5
wn_eq "openssl verifies it" "$(openssl verify -CAfile ca/ca.crt c/node.crt 2>&1)" "c/node.crt: OK"
wn_eq "second serial" "$(openssl x509 -noout -serial -in c/node.crt)" "serial=02"

# --- revoke ---------------------------------------------------------------
out=$("$CTL" ca revoke --dir "$D/ca" --cert a/node.crt)
wn_eq "ca revoke prints one line" "$(lines "$out")" 1
wn_check "new CRL verifies with the CA" openssl crl -noout -in ca/crl.pem -CAfile ca/ca.crt
wn_check "CRL lists serial 01" grep -q "Serial Number: 01" <<<"$(openssl crl -noout -text -in ca/crl.pem)"
wn_check "CRL number is 2" grep -Eq "crlNumber=(0x)?0*2$" <<<"$(openssl crl -noout -crlnumber -in ca/crl.pem)"
rc=0
verify=$(openssl verify -crl_check -CAfile ca/ca.crt -CRLfile ca/crl.pem a/node.crt 2>&1) || rc=$?
echo "### openssl verify after revoke: rc=$rc $verify" >>"$WN_TMP/checks.log"
wn_check "openssl verify -crl_check fails after revoke" test "$rc" != 0
wn_check "... saying revoked" grep -q "revoked" <<<"$verify"
wn_eq "other node still verifies with the CRL" \
  "$(openssl verify -crl_check -CAfile ca/ca.crt -CRLfile ca/crl.pem c/node.crt 2>&1)" "c/node.crt: OK"
wn_check "ca crl re-issues the CRL" "$CTL" ca crl --dir "$D/ca"
wn_check "re-issued CRL number is 3" grep -Eq "crlNumber=(0x)?0*3$" <<<"$(openssl crl -noout -crlnumber -in ca/crl.pem)"
wn_check "re-issued CRL still revokes node-a" \
  grep -q revoked <<<"$(openssl verify -crl_check -CAfile ca/ca.crt -CRLfile ca/crl.pem a/node.crt 2>&1)"

# --- errors ---------------------------------------------------------------
ca_key_sum=$(sha256sum <ca/ca.key)
node_key_sum=$(sha256sum <a/node.key)
fails_one_line "missing CSR" "$CTL" ca sign --dir "$D/ca" --csr "$D/missing.csr" --out x.crt
fails_one_line "node dir is no CA dir" "$CTL" ca sign --dir "$D/a" --csr c/node.csr --out x.crt
fails_one_line "CA dir does not exist" "$CTL" ca sign --dir "$D/nope" --csr c/node.csr --out x.crt
fails_one_line "revoke with the wrong CA dir" "$CTL" ca revoke --dir "$D/a" --cert a/node.crt
"$CTL" ca init --dir "$D/ca2" --name "other CA" >/dev/null
fails_one_line "revoke a cert of another CA" "$CTL" ca revoke --dir "$D/ca2" --cert a/node.crt
fails_one_line "ca init over an existing CA" "$CTL" ca init --dir "$D/ca"
wn_eq "ca.key unchanged" "$(sha256sum <ca/ca.key)" "$ca_key_sum"
fails_one_line "cert request over an existing key" "$CTL" cert request --dir "$D/a" --name node-a
wn_eq "node.key unchanged" "$(sha256sum <a/node.key)" "$node_key_sum"
fails_one_line "bad node name" "$CTL" cert request --dir "$D/bad" --name Bad_Name
printf 'garbage\n' >garbage.pem
fails_one_line "cert show on garbage" "$CTL" cert show garbage.pem
fails_one_line "ca sign of garbage" "$CTL" ca sign --dir "$D/ca" --csr garbage.pem --out x.crt
# A CSR whose signed contents were changed (node-a -> node-b).
openssl req -in a/node.csr -outform DER -out bad.der
python3 -c "import sys; p=sys.argv[1]; b=open(p,'rb').read(); open(p,'wb').write(b.replace(b'node-a', b'node-b', 1))" bad.der
openssl req -inform DER -in bad.der -out bad.csr
wn_check "openssl req -verify rejects the tampered CSR" \
  grep -q "verify failure" <<<"$(openssl req -verify -noout -in bad.csr 2>&1 || true)"
fails_one_line "ca sign refuses the tampered CSR" "$CTL" ca sign --dir "$D/ca" --csr bad.csr --out x.crt
wn_check_not "no certificate was written" test -e x.crt

wn_finish
