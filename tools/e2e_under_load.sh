#!/usr/bin/env bash
# Run the end-to-end tests with every core kept busy, to flush out timing assumptions that a
# quiet developer machine hides (CI machines are shared). Usage: tools/e2e_under_load.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-1}"
cores="$(nproc)"
status=0
for round in $(seq "$rounds"); do
  pids=()
  for _ in $(seq "$cores"); do
    sh -c 'while :; do :; done' &
    pids+=("$!")
  done
  echo "round $round: $cores busy loops, $(date -u +%T) UTC"
  uv run pytest -q -p no:randomly -m e2e tests/e2e || status=$?
  kill "${pids[@]}"
  wait "${pids[@]}" 2>/dev/null || true
done
exit "$status"
