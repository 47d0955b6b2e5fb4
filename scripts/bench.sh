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
for profile in sim papscan-r2 sim-fly papscan-r2-fly; do
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
  echo "On-the-fly profiles (sim-fly, papscan-r2-fly): bound_s = max(frames / frame rate, stage travel)"
  echo "+ load; slide/bound = machine time over it (target <= 1.25); blur_px = row speed x strobe pulse."
  echo
  echo '```'
  grep -E '^Benchmark' "$scanraw" | awk '{print $1; for (i = 3; i < NF; i += 2) printf "  %-22s %s\n", $(i+1), $i}'
  echo '```'
} > BENCHMARKS.md

# Detection and classification per core and scaling (-cpu 1,2) on real CRIC
# fields, and the same detection steps with OpenCV on the same images
# (bench/opencv_detect.py, Debian python3-opencv; bench only, not a test
# dependency).
data="${PAPSCAN_DATA:-$(cd .. && pwd)/shared/data}"
if [ -d "$data/cric/fields/images" ]; then
  if ! /usr/bin/python3 -c 'import cv2' 2>/dev/null; then
    apt-get install -y -q python3-opencv >/dev/null 2>&1 || echo "bench: python3-opencv not installable; skipping OpenCV comparison" >&2
  fi
  fields=$(mktemp)
  trap 'rm -f "$raw" "$fields"' EXIT
  PAPSCAN_DATA="$data" go test -run '^$' -bench 'Fields' -benchmem -cpu 1,2 -count 1 ./classify/ | tee "$fields"
  gomps=$(awk '$1=="BenchmarkDetectFields" {for (i=1;i<=NF;i++) if ($(i+1)=="MP/s") print $i}' "$fields")
  cv=""
  if /usr/bin/python3 -c 'import cv2' 2>/dev/null; then
    # The same files as BenchmarkDetectFields: the first 8 field images by name.
    mapfile -t imgs < <(ls "$data"/cric/fields/images/*.png | LC_ALL=C sort | head -8)
    cv=$(/usr/bin/python3 bench/opencv_detect.py --pixel-um 0.5 --seconds 5 --threads 1 "${imgs[@]}")
    echo "$cv"
  fi
  {
    echo
    echo "## Detection on real fields, per core and scaling, and OpenCV"
    echo
    echo "8 CRIC fields (1280x960 each, treated as 0.5 µm/px camera tiles); \`-cpu 1,2\`:"
    echo
    echo '```'
    grep -E '^Benchmark' "$fields"
    echo '```'
    if [ -n "$cv" ]; then
      cvmps=$(echo "$cv" | awk '{for (i=1;i<=NF;i++) if ($i=="mp_per_s") print $(i+1)}')
      ratio=$(awk -v a="$gomps" -v b="$cvmps" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "n/a" }')
      echo
      echo "Same detection steps with OpenCV (bench/opencv_detect.py, one thread, same images):"
      echo
      echo '```'
      echo "$cv"
      echo '```'
      echo
      echo "Go detector ${gomps} MP/s vs OpenCV ${cvmps} MP/s on one core: ratio Go/OpenCV = ${ratio}."
    fi
  } >> BENCHMARKS.md
fi
# The fleet's load benchmark (Mosquitto + PostgreSQL, three receivers).
./scripts/bench-fleet.sh
echo "wrote BENCHMARKS.md"
