#!/bin/bash
# The man pages (packaging/man/*.scd, built into roff by the `man` target):
# all four exist, man renders each without a warning, and hostd.toml(5)
# documents exactly the tables and keys that hostd/config.cpp accepts, so
# that the page cannot silently fall behind the loader. Needs no privileges.
set -u
man_dir=${1:?usage: man_pages_test.sh MAN_DIR SOURCE_DIR SCDOC_FOUND}
src=${2:?}
scdoc_found=${3:?}
if [[ $scdoc_found != 1 ]]; then
  echo "SKIP: scdoc was not found at configure time (scripts/install-deps.sh installs it)"
  exit 77
fi
for tool in man groff python3; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found (scripts/install-deps.sh installs it)"; exit 1; }
done
fail=0
tmp=$(mktemp -d /tmp/wownet-man.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

for page in wownet-hostd.8 wownetctl.8 wownet-agent.8 hostd.toml.5; do
  f=$man_dir/$page
  if [[ ! -s $f ]]; then
    echo "FAIL: $f was not built"
    fail=1
    continue
  fi
  name=${page%.*}
  # man-db runs groff with -ww (every warning) and prints them on stderr.
  MANWIDTH=80 man --warnings -E UTF-8 -l "$f" >"$tmp/out" 2>"$tmp/err"
  if [[ -s $tmp/err ]]; then
    echo "FAIL: $page: man --warnings: $(cat "$tmp/err")"
    fail=1
  elif ! grep -q "^NAME" "$tmp/out" || ! grep -q "$name - " "$tmp/out"; then
    echo "FAIL: $page: the rendered page has no NAME section for $name: $(head -5 "$tmp/out")"
    fail=1
  else
    echo "ok: $page renders without warnings ($(wc -l <"$tmp/out") lines)"
  fi
  groff -man -Tutf8 -ww -z "$f" 2>"$tmp/err"
  if [[ -s $tmp/err ]]; then
    echo "FAIL: $page: groff -ww: $(cat "$tmp/err")"
    fail=1
  fi
done

# Every [table] and key that load_config accepts (its only_keys lists) is
# a ".SS [table]" section of hostd.toml(5) with a "key = ..." entry, and
# the page documents no other.
python3 - "$src/hostd/config.cpp" "$man_dir/hostd.toml.5" <<'PY' || fail=1
import re, sys
cpp = open(sys.argv[1]).read()
page = open(sys.argv[2]).read() if len(sys.argv) > 2 else ""
accepted = {}
tables = None
for table, body in re.findall(r'only_keys\(\s*\*?\w+,\s*"(\w*)",\s*\{([^}]*)\}', cpp, re.S):
    keys = set(re.findall(r'"(\w+)"', body))
    if table == "":
        tables = keys
    else:
        accepted[table] = keys
if not tables or set(accepted) != tables or sum(map(len, accepted.values())) < 30:
    sys.exit(f"FAIL: could not read the accepted keys from config.cpp (tables {tables}, keys {accepted})")
documented = {}
current = None
for line in page.splitlines():
    m = re.match(r'\.SS \[(\w+)\]$', line)
    if m:
        current = m.group(1)
        documented.setdefault(current, set())
        continue
    if line.startswith((".SH", ".SS")):
        current = None
        continue
    m = re.match(r'\\fB(\w+)\\fR = ', line)
    if m and current:
        documented[current].add(m.group(1))
bad = False
for table in sorted(tables | set(documented)):
    want, have = accepted.get(table, set()), documented.get(table)
    if have is None:
        print(f"FAIL: hostd.toml(5) has no [{table}] section"); bad = True; continue
    if table not in accepted:
        print(f"FAIL: hostd.toml(5) documents [{table}], which config.cpp does not accept"); bad = True; continue
    for key in sorted(want - have):
        print(f"FAIL: hostd.toml(5) does not document {table}.{key}"); bad = True
    for key in sorted(have - want):
        print(f"FAIL: hostd.toml(5) documents {table}.{key}, which config.cpp does not accept"); bad = True
n = sum(map(len, accepted.values()))
if bad:
    sys.exit(1)
print(f"ok: hostd.toml(5) documents all {len(tables)} tables and {n} keys of config.cpp, and no others")
PY
exit $fail
