#!/usr/bin/env bash
# wownet's whole test suite, as CI runs it (.ci/run), on a fresh Debian 12
# machine as root: installs what the tests need, builds with warnings as
# errors, runs every test (unit and network-namespace integration), then
# builds again with AddressSanitizer + UndefinedBehaviorSanitizer and runs
# the unit tests under them, and checks formatting.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=$(nproc)

scripts/install-deps.sh

echo "== build (-Werror)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWOWNET_WERROR=ON
ninja -C build -j "$JOBS"

echo "== all tests (unit + namespaces)"
ctest --test-dir build --output-on-failure --timeout 600

echo "== unit tests under ASan + UBSan"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DWOWNET_WERROR=ON -DWOWNET_SANITIZE=ON
ninja -C build-asan -j "$JOBS" core_unit_tests agent_unit_tests fuzz_replay_tests etcd_client_test link_reaper_test
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -L unit

echo "== formatting"
scripts/format.sh --check
