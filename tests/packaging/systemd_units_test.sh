#!/bin/bash
# The systemd units in packaging/ (wownet-hostd.service, wownet-agent.service)
# are valid: `systemd-analyze verify` finds nothing to say about them (it
# exits 0 even for unknown keys and bad values, so any message fails), or,
# without systemd-analyze, every line is a section, a comment or a Key=Value
# of a known section. Also: each unit is installed by a Debian package, and
# its ExecStart= program is one that package ships. Needs no privileges.
set -u
src=${1:?usage: systemd_units_test.sh SOURCE_DIR}
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { echo "ok: $*"; }
bad() {
  echo "FAIL: $*"
  fail=1
}

# check_units DIR UNIT...: prints what is wrong with the units (nothing if valid).
check_units() {
  local dir=$1
  shift
  if command -v systemd-analyze >/dev/null; then
    # verify also wants the programs to exist: point ExecStart*= at /bin/true.
    local u
    for u in "$@"; do
      sed -E 's#^(Exec[A-Za-z]*=[-@:+!]*)/[^ ]*#\1/bin/true#' "$dir/$u" >"$tmp/check/$u"
    done
    (cd "$tmp/check" && SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no "$@" 2>&1)
  else
    awk '
      /^[ \t]*([#;].*)?$/ { next }
      /^\[(Unit|Service|Install)\]$/ { section = $0; next }
      /^\[/ { print FILENAME ":" FNR ": unknown section " $0; next }
      section == "" { print FILENAME ":" FNR ": outside any section"; next }
      !/^[A-Z][A-Za-z0-9]*=/ { print FILENAME ":" FNR ": not Key=Value: " $0 }
      /^ExecStart=/ && !/^ExecStart=[-@:+!]*\// { print FILENAME ":" FNR ": ExecStart is not an absolute path" }
    ' "${@/#/$dir/}"
  fi
}
mkdir -p "$tmp/check"

units=()
for f in "$src"/packaging/*.service; do units+=("$(basename "$f")"); done
[ ${#units[@]} -ge 2 ] && ok "units: ${units[*]}" || bad "expected wownet-hostd.service and wownet-agent.service, found: ${units[*]}"

out=$(check_units "$src/packaging" "${units[@]}")
[ -z "$out" ] && ok "the units verify cleanly" || bad "the units do not verify:"$'\n'"$out"

# The check itself must catch a bad unit.
mkdir -p "$tmp/broken"
cp "$src/packaging/wownet-agent.service" "$tmp/broken/"
printf 'RestartSecs=2\n' >>"$tmp/broken/wownet-agent.service"
sed -i 's/^\[Service\]/[Servcie]/' "$tmp/broken/wownet-agent.service"
out=$(check_units "$tmp/broken" wownet-agent.service)
[ -n "$out" ] && ok "a unit with a misspelt section and key is caught" || bad "a broken unit passed the check"

for u in "${units[@]}"; do
  pkg=$(grep -l "^lib/systemd/system/$u\$" "$src"/packaging/debian/*.install | head -1)
  if [ -z "$pkg" ]; then
    bad "$u is installed by no package (packaging/debian/*.install)"
    continue
  fi
  ok "$u is installed by $(basename "$pkg" .install)"
  prog=$(sed -n 's/^ExecStart=[-@:+!]*\([^ ]*\).*/\1/p' "$src/packaging/$u" | head -1)
  grep -qx "${prog#/}" "$pkg" && ok "$u runs ${prog}, which that package ships" ||
    bad "$u runs ${prog:-nothing}, which $(basename "$pkg") does not ship"
done
exit $fail
