#!/usr/bin/env bash
# Install the Debian packages the test suite needs (listed in scripts/deps.txt,
# one per line, '#' comments allowed). Only missing packages are installed, so a
# machine that already has them pays nothing. CI starts from a clean machine with
# only Go, gcc and apt.
set -euo pipefail
cd "$(dirname "$0")"
mapfile -t want < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' deps.txt | grep -v '^$')
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
