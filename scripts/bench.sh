#!/usr/bin/env bash
# `make bench`: run every Go benchmark once on this machine and write the
# figures, with the machine they came from, into BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CGO_ENABLED=0
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
go test -run '^$' -bench . -benchmem -count 1 ./... | tee "$raw"
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
} > BENCHMARKS.md
echo "wrote BENCHMARKS.md"
