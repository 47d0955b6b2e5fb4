#!/usr/bin/env bash
# ajv-cli (JSON Schema draft 2020-12 in ajv 8, the validator most JavaScript
# fleet tooling uses), installed from npm on first use into a cache directory
# (PAPSCAN_AJV_DIR, default ~/.cache/papscan/ajv). Prints the path of the ajv
# binary. Exit 3: npm is not installed (the schema test then skips).
# telemetry/schematest runs it on every schema and real payload, beside the
# Go validator.
set -euo pipefail
dir=${PAPSCAN_AJV_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/papscan/ajv}
bin="$dir/node_modules/.bin/ajv"
if [ ! -x "$bin" ] || [ ! -d "$dir/node_modules/ajv-formats" ]; then
  command -v npm >/dev/null 2>&1 || { echo "ajv.sh: npm not found" >&2; exit 3; }
  mkdir -p "$dir"
  npm install --silent --no-audit --no-fund --no-save --prefix "$dir" ajv-cli@5.0.0 ajv-formats@3.0.1 >&2
fi
echo "$bin"
