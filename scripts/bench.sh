#!/usr/bin/env bash
# `make bench`: run every Go benchmark once on this machine and write the
# figures, with the machine they came from, into BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CGO_ENABLED=0
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
go test -run '^$' -bench . -benchmem -count 1 ./... | tee "$raw"
# Scan measures: one full simulated slide per shipped profile, each in its
# own process so its peak RSS is that slide's (see BenchmarkSlide).
scanraw=$(mktemp)
trap 'rm -f "$raw" "$scanraw"' EXIT
for profile in sim papscan-r2; do
  PAPSCAN_BENCH_SLIDE=1 go test -run '^$' -bench "BenchmarkSlide/${profile}\$" -benchtime 1x -timeout 60m ./scan | tee -a "$scanraw"
done
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
{
  echo "# Benchmarks"
  echo
  echo "Written by \`make bench\` from one run on $(date -u +%Y-%m-%d):"
  echo "${cpu:-unknown CPU}, $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(go version | cut -d' ' -f3-)."
  echo "Do not edit by hand; rerun \`make bench\`."
  echo
  echo '```'
  grep -E '^(Benchmark|pkg:)' "$raw"
  echo '```'
  echo
  echo "## Scan measures (one full simulated slide per profile)"
  echo
  echo "13 mm SurePath spot of synthetic cells, label read from the overview, focus map, every tile"
  echo "imaged and analysed. scan_efficiency = tile-phase machine time / its physical lower bound"
  echo "(moves + settle + exposures, frame rate; target <= 1.10); af/field = autofocus operations per"
  echo "tile (target <= 0.125); focus_err_um = RMS focus error against the simulator's true surface"
  echo "(target <= dof/4_um); slides/h = 3600 / machine seconds from load to unload;"
  echo "analysis_wait_wall_s = real time the capture waited for the analysis; peak_rss_MB = VmHWM."
  echo
  echo '```'
  grep -E '^Benchmark' "$scanraw" | awk '{print $1; for (i = 3; i < NF; i += 2) printf "  %-22s %s\n", $(i+1), $i}'
  echo '```'
} > BENCHMARKS.md
echo "wrote BENCHMARKS.md"
