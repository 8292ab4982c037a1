#!/usr/bin/env bash
# Builds wownet's Debian packages (wownet, wownet-agent) with
# dpkg-buildpackage -b from a temporary copy of the source tree that has
# packaging/debian as its debian/. The .debs, .buildinfo and .changes land in
# build-deb/. Installs what it needs (as root): the Build-Depends of
# packaging/debian/control (scripts/install-deps.sh) plus debhelper and
# dpkg-dev.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/build-deb

if [[ $(id -u) == 0 ]]; then
  scripts/install-deps.sh
  missing=()
  for p in debhelper dpkg-dev fakeroot; do
    [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]] || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "build-deb: installing ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
src=$tmp/wownet
mkdir "$src"
# The tracked and the new (not ignored) files that exist: no build trees.
if git rev-parse --git-dir >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do if [[ -e $f || -L $f ]]; then printf '%s\0' "$f"; fi; done |
    xargs -0 cp -a --parents -t "$src"
else
  tar -C "$root" --exclude='./build' --exclude='./build-*' --exclude='./.git' -cf - . | tar -C "$src" -xf -
fi
rm -rf "$src/debian"
cp -a "$root/packaging/debian" "$src/debian"

# On every core unless DEB_BUILD_OPTIONS already says (dh builds and
# debian/rules runs the unit tests with parallel=N).
if [[ " ${DEB_BUILD_OPTIONS:-} " != *" parallel="* ]]; then
  export DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:+$DEB_BUILD_OPTIONS }parallel=$(nproc)"
fi
echo "DEB_BUILD_OPTIONS=$DEB_BUILD_OPTIONS"
(cd "$src" && dpkg-buildpackage -us -uc -b "$@")

mkdir -p "$out"
rm -f "$out"/*.deb "$out"/*.buildinfo "$out"/*.changes
mv "$tmp"/*.deb "$tmp"/*.buildinfo "$tmp"/*.changes "$out"/
ls -l "$out"
