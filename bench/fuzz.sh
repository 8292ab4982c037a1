#!/usr/bin/env bash
# Coverage-guided fuzzing of wownet's parsers and entry points (tests/fuzz).
# Builds the libFuzzer targets with clang (ASan + UBSan) in build-fuzz, runs
# each for a budget with its checked-in corpus, merges what found new
# coverage into tests/fuzz/corpus/<target> (-merge=1: only inputs that add
# coverage), and prints a table of executions, speed, coverage and crashes.
#
#   bench/fuzz.sh [target...]      default: every target
#
# Environment:
#   FUZZ_SECONDS  time budget per target (default 60)
#   FUZZ_RUNS     also stop after this many executions (default: no limit)
#   FUZZ_JOBS     targets fuzzed at once (default 1); each runs under nice -n 10
#   FUZZ_MERGE    0: leave the checked-in corpora alone (default 1)
#   FUZZ_BUILD    build directory (default build-fuzz)
#
# Crashing inputs are kept in $FUZZ_BUILD/artifacts/<target>/; libFuzzer
# stops a target at its first crash. Exit status 1 if anything crashed.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
RUNS=${FUZZ_RUNS:--1}
JOBS=${FUZZ_JOBS:-1}
MERGE=${FUZZ_MERGE:-1}
BUILD=${FUZZ_BUILD:-build-fuzz}
CORPUS=tests/fuzz/corpus

if (($#)); then
  targets=("$@")
else
  mapfile -t targets < <(ls tests/fuzz/*_fuzz.cpp | sed 's|.*/||; s|_fuzz\.cpp$||')
fi

echo "== build (clang, libFuzzer, ASan+UBSan) in $BUILD"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWOWNET_FUZZ=ON \
  -DCMAKE_CXX_COMPILER=clang++ >/dev/null
nice -n 10 ninja -C "$BUILD" -j "${FUZZ_BUILD_JOBS:-$(nproc)}" "${targets[@]/#/fuzz_}"

logs="$BUILD/fuzz-logs"
mkdir -p "$logs"
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

fuzz_one() {
  local t=$1 new="$BUILD/fuzz-new/$1" art="$BUILD/artifacts/$1"
  rm -rf "$new"
  mkdir -p "$new" "$art" "$CORPUS/$t"
  # New finds go to $new (the first directory); the checked-in corpus is read.
  nice -n 10 "$BUILD/bin/fuzz_$t" -runs="$RUNS" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$art/" "$new" "$CORPUS/$t" >"$logs/$t.log" 2>&1 || true
  if ((MERGE)) && [[ -n $(ls -A "$new") ]]; then
    nice -n 10 "$BUILD/bin/fuzz_$t" -merge=1 "$CORPUS/$t" "$new" >"$logs/$t.merge.log" 2>&1 || true
  fi
}

echo "== fuzzing ${#targets[@]} targets, ${SECONDS_PER_TARGET}s each (runs: $RUNS), $JOBS at a time"
for t in "${targets[@]}"; do
  while (($(jobs -rp | wc -l) >= JOBS)); do wait -n || true; done
  fuzz_one "$t" &
done
wait

crashed=0
printf '\n%-18s %12s %9s %7s %8s %7s %8s\n' target execs exec/s cov ft corpus crashes
for t in "${targets[@]}"; do
  log="$logs/$t.log"
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  files=$(find "$CORPUS/$t" -type f | wc -l)
  crashes=$(find "$BUILD/artifacts/$t" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
    -o -name 'oom-*' \) -newer "$BUILD/bin/fuzz_$t" | wc -l)
  ((crashes)) && crashed=1
  printf '%-18s %12s %9s %7s %8s %7s %8s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$files" "$crashes"
done
printf '\ncorpus size: %s\n' "$(du -sh --apparent-size "$CORPUS" | cut -f1)"
if ((crashed)); then
  echo "crashes: see $BUILD/artifacts/<target>/ and $logs/<target>.log" >&2
  exit 1
fi
