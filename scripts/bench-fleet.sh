#!/usr/bin/env bash
# The fleet load benchmark (telemetry/fleet/integration BenchmarkFleetLoad:
# 200 simulated robots x 20 results with images, three receivers sharing
# the subscription, PostgreSQL and Mosquitto started by the test), written
# into the "## Fleet load" section of BENCHMARKS.md (replaced if present).
# make bench calls it; it can run alone.
set -euo pipefail
cd "$(dirname "$0")/.."
export CGO_ENABLED=0
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
load=$(cut -d' ' -f1-3 /proc/loadavg)
PAPSCAN_BENCH_FLEET=1 go test -run '^$' -bench 'BenchmarkFleetLoad' -benchtime 1x -count 1 -timeout 20m ./telemetry/fleet/integration | tee "$raw"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
section=$(mktemp)
trap 'rm -f "$raw" "$section"' EXIT
{
  echo "## Fleet load"
  echo
  echo "Written by \`scripts/bench-fleet.sh\` ($(date -u +%Y-%m-%d), ${cpu:-unknown CPU}, $(nproc) cores,"
  echo "load average at the start ${load}: the figures move with what else runs on the machine):"
  echo "200 simulated robots publish 20 results each, every result with one 48x48 PNG crop"
  echo "(8,000 messages), at most 4 unacked per robot, re-sent after 3 s without an ack, into"
  echo "three receiver processes sharing \`\$share/fleet/...\` on one Mosquitto, committing to"
  echo "one PostgreSQL (fsync on). results/s = 4,000 / wall time from the first publish to the"
  echo "last ack; p50/p99_ack_ms = first publish of a result to its ack at the robot."
  echo "kill_receiver_and_db_conns: one receiver SIGKILLed after 1/3 of the results were acked,"
  echo "every database connection terminated after 2/3 (4,000/4,000 stored exactly once)."
  echo
  echo '```'
  grep -E '^BenchmarkFleetLoad' "$raw" | awk '{print $1; for (i = 3; i < NF; i += 2) printf "  %-12s %s\n", $(i+1), $i}'
  echo '```'
} > "$section"
if grep -q '^## Fleet load' BENCHMARKS.md 2>/dev/null; then
  # Replace the old section (up to the next "## " heading or the end).
  awk -v f="$section" '
    /^## Fleet load/ { while ((getline l < f) > 0) print l; skip = 1; next }
    skip && /^## / { skip = 0 }
    !skip { print }' BENCHMARKS.md > BENCHMARKS.md.new && mv BENCHMARKS.md.new BENCHMARKS.md
else
  { echo; cat "$section"; } >> BENCHMARKS.md
fi
echo "wrote the fleet load section of BENCHMARKS.md"
