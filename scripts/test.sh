#!/usr/bin/env bash
# The project's test command (README, `make test`, .ci/run): lint, build for
# every target, then the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
export CGO_ENABLED=0

echo "== deps"
./scripts/deps.sh

echo "== lint"
make -s lint

echo "== cross-build (linux/arm64, linux/arm v7)"
make -s cross >/dev/null

echo "== systemd unit (systemd-analyze verify, make install into a scratch root)"
make -s verify-unit
scratch=$(mktemp -d); make -s install DESTDIR="$scratch" >/dev/null
test -x "$scratch/usr/local/bin/papscan" && test -f "$scratch/etc/systemd/system/papscan.service" && test -f "$scratch/usr/lib/sysusers.d/papscan.conf"
rm -rf "$scratch"

echo "== go test"
go test -count=1 -timeout 20m ./...

# The race detector needs cgo (gcc); the shipped binary stays CGO-free. It
# covers the concurrent packages: drivers and their emulators, the agent's
# loop, MQTT and the outbox (scan and classify are compute-bound and take
# ~10 min under -race on 2 cores, so they run without it).
echo "== go test -race (hal, telemetry, agent internals)"
# (telemetry/fleet/integration is left out: under -short it runs nothing and its
# race build of the SQLite and PostgreSQL drivers takes minutes.)
CGO_ENABLED=1 go test -race -short -count=1 ./hal/... $(go list ./telemetry/... | grep -v '/telemetry/fleet/integration$') ./agent/... ./delivery/... ./robot/... ./cmd/papscan/internal/...

echo "== camera driver against the kernel's vivid V4L2 driver (qemu VM)"
./scripts/vm/vivid.sh

echo "== outbox and result files across power cuts (qemu VM killed at random moments)"
POWERCUT_CUTS=${POWERCUT_CUTS:-3} ./scripts/vm/powercut.sh

echo "== go test on arm64 and armv7 (qemu-user)"
./scripts/qemu-user.sh
