#!/usr/bin/env bash
# The catalog alone, queried at 64 and 1,000 connections: does a smaller worker pool or
# glibc's thread-cache limit keep its memory down, and at what cost? (issue 12, item 5)
#
#   bench/catalog-pool.sh [ROUNDS]      # default 3; needs wrk and ../shared/peers
#
# Prints one line per run: requests/s at c=64 and c=1000, p99 at c=64, VmHWM and VmRSS
# after both. Each configuration starts a fresh catalog (release build, access log off,
# the peers' 100M-unit seed) with GLIBC_TUNABLES given, so no self-re-exec happens.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
peers="$root/../shared/peers"
rounds=${1:-3}
for need in "$peers/db.txt" "$peers/wrk/query.lua"; do
  [ -f "$need" ] || { echo "catalog-pool.sh: $need is missing (../shared/peers)" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "catalog-pool.sh: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
(cd "$root" && cargo build --release --bin catalog >/dev/null 2>&1)
bin="$root/target/release/catalog"

rate() { awk '{split($2,a,"="); split($3,b,"="); printf "%.0f", a[2]/(b[2]/1e6)}'; }

run() { # label workers tunables
  local label=$1 workers=$2 tunables=$3 dir pid addr q64 q1000
  dir=$(mktemp -d)
  GLIBC_TUNABLES=$tunables TOYSTORE_MALLOC_TUNED=1 ACCESS_LOG=false "$bin" --listen 127.0.0.1:0 \
    --data-dir "$dir" --seed "$peers/db.txt" --workers "$workers" --restock-period-ms 0 >"$dir/out" 2>&1 &
  pid=$!
  for _ in $(seq 100); do grep -q listening "$dir/out" && break; sleep 0.1; done
  addr=$(grep -o 'http://[0-9.:]*' "$dir/out" | head -1)
  q64=$(wrk -t1 -c64 -d5s -s "$peers/wrk/query.lua" "$addr/products/Tux" | grep RESULT)
  q1000=$(wrk -t2 -c1000 -d5s -s "$peers/wrk/query.lua" "$addr/products/Tux" | grep RESULT)
  echo "$label workers=$workers $tunables c64=$(rate <<<"$q64")/s $(grep -o 'p99_us=[0-9]*' <<<"$q64")" \
    "c1000=$(rate <<<"$q1000")/s $(grep VmHWM "/proc/$pid/status" | tr -s ' \t' ' ') $(grep VmRSS "/proc/$pid/status" | tr -s ' \t' ' ')"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}

for round in $(seq "$rounds"); do
  echo "# round $round"
  run default-cache 128 glibc.malloc.tcache_max=1032
  run limited-cache 128 glibc.malloc.tcache_max=128
  run small-pool-16 16 glibc.malloc.tcache_max=1032
  run small-pool-8 8 glibc.malloc.tcache_max=1032
done
