#!/usr/bin/env bash
# Check the systemd unit offline with `systemd-analyze verify` (CI boxes may
# not run systemd as PID 1): the unit is copied to a temporary directory with
# ExecStart pointing at a real binary, and any warning fails the check.
# Usage: deploy/verify.sh [PAPSCAN_BINARY]
set -euo pipefail
bin=$(readlink -f "${1:-$(command -v true)}")
[ -x "$bin" ] || { echo "verify: $bin is not an executable" >&2; exit 1; }
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -e "s|^ExecStart=/usr/local/bin/papscan |ExecStart=$bin |" papscan.service >"$tmp/papscan.service"
grep -q "^ExecStart=$bin " "$tmp/papscan.service" || { echo "verify: ExecStart not rewritten" >&2; exit 1; }
out=$(cd "$tmp" && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "$tmp/papscan.service" 2>&1) || {
  echo "$out" >&2; echo "verify: systemd-analyze verify failed" >&2; exit 1; }
# Only complaints about papscan.service count (verify also loads the
# dependencies, which a minimal CI box may lack).
if grep -i 'papscan.service' <<<"$out"; then
  echo "verify: systemd-analyze verify complained about papscan.service" >&2; exit 1
fi
echo "systemd-analyze verify: papscan.service ok ($(systemd-analyze --version | head -1))"
