#!/usr/bin/env bash
# Run the test suite on the robot's architectures under qemu user-mode
# emulation: linux/arm64 and linux/arm v7 (32-bit int: overflow in step
# counts and image sizes shows up here). `go test -exec` runs each test
# binary through qemu-*-static, so no binfmt registration is needed.
#
# -short: tests that are heavy under emulation honour testing.Short(); the
# motion (ticaxis, ticemu), camera, scan planning and classify tests run.
# Args are passed to go test (e.g. a package list; default ./...);
# QEMU_USER_TARGETS picks targets (default "arm64 armv7").
# Needs qemu-user-static (scripts/deps.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
export CGO_ENABLED=0
pkgs=("$@")
# Default: every package but the fleet side's server code (fleet/...,
# cmd/papscan-fleet, telemetry/fleet/integration), which never runs on the
# robot and whose SQLite/PostgreSQL drivers take minutes to build per target.
[ ${#pkgs[@]} -eq 0 ] && mapfile -t pkgs < <(go list ./... | grep -v -E '^papscan/(fleet(/|$)|cmd/papscan-fleet$|telemetry/fleet/integration$)')
failed=()
for target in ${QEMU_USER_TARGETS:-arm64 armv7}; do
  case $target in
    arm64) env=(GOARCH=arm64) qemu=qemu-aarch64-static ;;
    armv7) env=(GOARCH=arm GOARM=7) qemu=qemu-arm-static ;;
  esac
  command -v "$qemu" >/dev/null || { echo "qemu-user: $qemu missing (apt-get install qemu-user-static)" >&2; exit 1; }
  echo "-- linux/$target ($qemu)"
  start=$(date +%s)
  if env "${env[@]}" go test -count=1 -short -timeout 15m -exec "$qemu" "${pkgs[@]}" | grep --line-buffered -v '\[no test files\]'; then
    echo "-- linux/$target: PASS in $(($(date +%s) - start))s"
  else
    echo "-- linux/$target: FAIL after $(($(date +%s) - start))s"
    failed+=("$target")
  fi
done
[ ${#failed[@]} -eq 0 ] || { echo "qemu-user: failed on ${failed[*]}" >&2; exit 1; }
