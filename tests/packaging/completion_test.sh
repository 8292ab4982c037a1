#!/bin/bash
# packaging/wownetctl.bash-completion against wownetctl itself: the commands,
# ca/cert subcommands and options it completes are exactly those that
# `wownetctl ... --help` lists (so the static lists cannot fall behind), and
# arguments complete to interfaces, directories and files. Needs no
# privileges.
set -u
ctl=${1:?usage: completion_test.sh WOWNETCTL SOURCE_DIR}
src=${2:?}
# shellcheck source=/dev/null
source "$src/packaging/wownetctl.bash-completion"
fail=0

# completions WORDS...: what _wownetctl offers for the last word (may be "").
completions() {
  COMP_WORDS=(wownetctl "$@")
  COMP_CWORD=$#
  COMP_LINE="${COMP_WORDS[*]}"
  COMP_POINT=${#COMP_LINE}
  COMPREPLY=()
  _wownetctl wownetctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
  ((${#COMPREPLY[@]})) || return 0
  printf '%s\n' "${COMPREPLY[@]}" | sort -u | tr '\n' ' '
}

# help_section SECTION ARGS...: the names CLI11's help of `wownetctl ARGS`
# lists under "SECTION:" (subcommands, or each option's spellings).
help_section() {
  local section=$1
  shift
  "$ctl" "$@" --help | awk -v s="$section:" '
    $0 == s { on = 1; next }
    /^[A-Za-z]/ { on = 0 }
    on && /^  [^ ]/ { split($1, names, ","); for (i in names) if (names[i] != "") print names[i] }' | sort -u | tr '\n' ' '
}

expect() {
  local what=$1 got=$2 want=$3
  if [[ $got == "$want" ]]; then
    echo "ok: $what: $got"
  else
    echo "FAIL: $what: completion offers '$got', wownetctl has '$want'"
    fail=1
  fi
}

expect "commands" "$(completions "")" "$(help_section Subcommands)"
expect "ca subcommands" "$(completions ca "")" "$(help_section Subcommands ca)"
expect "cert subcommands" "$(completions cert "")" "$(help_section Subcommands cert)"
expect "lease subcommands" "$(completions lease "")" "$(help_section Subcommands lease)"
# The options of the main command are accepted after any command too.
global=$(help_section Options)
expect "options" "$(completions --)" "$(help_section Options | tr ' ' '\n' | grep -- '^--' | tr '\n' ' ')"
for cmd in attach detach list leases "lease release" status peers version log-level reload "ca init" "ca sign" "ca revoke" "ca crl" "ca pending" \
  "ca approve" "ca deny" "cert request" "cert show"; do
  # shellcheck disable=SC2086
  want=$(printf '%s\n' $global $(help_section Options $cmd) | grep -- '^--' | sort -u | tr '\n' ' ')
  # shellcheck disable=SC2086
  expect "options of $cmd" "$(completions $cmd --)" "$want"
done
expect "a command after options" "$(completions --json -s /x st)" "status "
expect "log-level's levels" "$(completions log-level "")" "critical debug error info off trace warn "
expect "log-level's levels, by prefix" "$(completions log-level w)" "warn "
expect "log-level takes one level" "$(completions log-level debug "")" ""
expect "ca subcommand after --json" "$(completions --json ca ap)" "approve "
[[ " $(completions attach "") " == *" lo "* ]] && echo "ok: attach completes interfaces" ||
  { echo "FAIL: attach IFNAME does not complete interface lo"; fail=1; }
[[ " $(completions attach vif --agent-if "") " == *" lo "* ]] && echo "ok: --agent-if completes interfaces" ||
  { echo "FAIL: --agent-if does not complete interface lo"; fail=1; }
dir=$(mktemp -d /tmp/wownet-completion.XXXXXX)
trap 'rm -rf "$dir"' EXIT
mkdir "$dir/cadir"
touch "$dir/node.crt"
expect "--dir completes directories" "$(completions ca init --dir "$dir/")" "$dir/cadir "
expect "cert show completes files" "$(completions cert show "$dir/n")" "$dir/node.crt "
expect "--socket completes files" "$(completions --socket "$dir/no")" "$dir/node.crt "
expect "--vm takes a free name" "$(completions attach vif1 --vm "")" ""
exit $fail
