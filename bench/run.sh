#!/usr/bin/env bash
# Side-by-side benchmark of toystore and the peers in ../shared/peers (Flask, axum,
# nginx ceiling), with the peers' own wrk harness (bench.sh), so every row is
# measured the same way in the same window.
#
#   bench/run.sh                       ROUNDS=3, all peers; about 6 min a round here
#   ROUNDS=1 DURATION=2s bench/run.sh  a quick look
#   PEERS="toystore axum" bench/run.sh
#
# Each round, for each peer in turn: a fresh stack (fresh data dir, stock 100,000,000
# per toy as in the peers' db.txt, access logs off as the peers have none), then
# bench.sh: queries (GET /products/Tux) and durable buys (POST /orders) through the
# front-end at 1, 16 and 64 connections. For toystore also, on the same fresh stack:
# each hop alone (catalog queried directly; the order service bought from directly),
# queries through the front-end at 1,000 connections, and each service's RSS at
# rest, at its peak over the 1/16/64-connection runs through the front-end, and at its
# peak after everything (VmHWM). The toystore rows are with the front-end's cache on
# (its default size; the queries all ask for Tux, so they are hits); beside them, a
# second front-end on the same catalog and order service with its cache off
# (CACHE_SIZE=0) answers the same queries at 1, 16, 64 and 1,000 connections: the
# toystore-uncached rows.
#
# Output, in a new directory bench/results/<UTC date and time>-<commit>/ (RESULTS sets
# another; an existing one is never overwritten): raw/roundN-LABEL.txt (bench.sh lines),
# env.txt (machine, versions, fsync probe), rss.txt, summary.md (medians of clean runs,
# by the peers' summarize.py).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
peers_src=${PEERS_DIR:-$repo/../shared/peers}
work=${WORK:-/tmp/toystore-bench}
rounds=${ROUNDS:-3}
peers=${PEERS:-toystore axum flask ceiling}
base=19000

# --- the inputs, checked before anything is installed, built, copied or written
fail() {
    echo "bench: $*" >&2
    exit 1
}
[[ $rounds =~ ^[1-9][0-9]*$ ]] || fail "ROUNDS=$rounds: expected a whole number from 1"
for peer in $peers; do
    case $peer in
    toystore | axum | flask | ceiling) ;;
    *) fail "PEERS: unknown peer '$peer' (known: toystore axum flask ceiling)" ;;
    esac
done
needed=(bench.sh summarize.py db.txt up.sh down.sh tools/fsync_probe.py)
for peer in $peers; do [[ $peer == toystore ]] || needed+=("$peer"); done
for file in "${needed[@]}"; do
    [[ -e $peers_src/$file ]] ||
        fail "no $peers_src/$file: the peers' harness (../shared/peers beside this repository) is needed; set PEERS_DIR to where it is"
done
commit=$(git -C "$repo" rev-parse --short=7 HEAD 2>/dev/null) ||
    fail "$repo is not a git checkout: results are named by the commit measured"
git -C "$repo" diff --quiet HEAD -- || commit+=-dirty
results=${RESULTS:-$repo/bench/results/$(date -u +%Y-%m-%dT%H%MZ)-$commit}
[[ ! -e $results ]] || fail "$results exists: not overwriting a run's results (set RESULTS to a new directory)"
ulimit -n 65536 2>/dev/null || true

# --- setup: tools, a writable copy of the peers, their builds, our release build
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
[[ $peers == *ceiling* ]] && ! command -v nginx >/dev/null && need+=(nginx)
if ((${#need[@]})); then apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; fi
mkdir -p "$work" "$results/raw"
[[ -d $work/peers ]] || cp -r "$peers_src" "$work/peers"
chmod -R u+w "$work/peers"
peersdir=$work/peers
if [[ $peers == *axum* && ! -x $peersdir/axum/target/release/frontend ]]; then
    (cd "$peersdir/axum" && cargo build --release --quiet)
fi
if [[ $peers == *flask* && ! -x $peersdir/flask/venv/bin/python ]]; then
    python3 -m venv "$peersdir/flask/venv"
    "$peersdir/flask/venv/bin/pip" install -q flask requests
fi
(cd "$repo" && cargo build --release --quiet)
bin=$repo/target/release

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $commit"
    echo "kernel: $(uname -sr)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') x $(nproc)"
    echo "wrk: $(wrk -v 2>&1 | head -1)"
    echo "rustc: $(rustc --version)"
    echo "fsync probe (/tmp):"
    python3 "$peersdir/tools/fsync_probe.py" /tmp 300 | sed 's/^/  /'
} > "$results/env.txt"
cat "$results/env.txt"

# --- our stack, started the way up.sh starts the peers (same pids file format)
toy_data=/tmp/peers-toystore-$base
uncached=$((base + 3)) # the front-end with its cache off
toystore_up() {
    rm -rf "$toy_data"
    mkdir -p "$toy_data"
    : > "$toy_data/pids"
    awk '{ print $1, $2, $3, $4, "animal" }' "$peersdir/db.txt" > "$toy_data/seed.txt"
    local f=$base c=$((base + 1)) o=$((base + 2))
    export ACCESS_LOG=false
    setsid "$bin/catalog" --listen 127.0.0.1:$c --data-dir "$toy_data/catalog" --seed "$toy_data/seed.txt" \
        --restock-period-ms 0 > "$toy_data/catalog.log" 2>&1 < /dev/null &
    echo "$! catalog" >> "$toy_data/pids"
    setsid "$bin/order" --listen 127.0.0.1:$o --data-dir "$toy_data/order" --catalog 127.0.0.1:$c \
        > "$toy_data/order.log" 2>&1 < /dev/null &
    echo "$! order" >> "$toy_data/pids"
    setsid "$bin/frontend" --listen 127.0.0.1:$f --catalog 127.0.0.1:$c --order 127.0.0.1:$o \
        > "$toy_data/frontend.log" 2>&1 < /dev/null &
    echo "$! frontend" >> "$toy_data/pids"
    CACHE_SIZE=0 setsid "$bin/frontend" --listen 127.0.0.1:$uncached --catalog 127.0.0.1:$c \
        --order 127.0.0.1:$o > "$toy_data/frontend-uncached.log" 2>&1 < /dev/null &
    echo "$! frontend-uncached" >> "$toy_data/pids"
    for _ in $(seq 300); do
        curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$f/products/Tux" 2>/dev/null &&
            curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$uncached/products/Tux" 2>/dev/null &&
            return 0
        sleep 0.1
    done
    echo "bench: toystore did not come up; logs in $toy_data" >&2
    return 1
}
toystore_down() { # front-ends first, then the others after in-flight buys drain
    local pid label
    tac "$toy_data/pids" | while read -r pid label; do
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
        if [[ $label == frontend ]]; then sleep 1; fi
    done
}
rss() { # LABEL: "label service VmRSS VmHWM" (kB) for each of our services
    local pid label
    while read -r pid label; do
        echo "$1 $label $(awk '/^VmRSS/ { r = $2 } /^VmHWM/ { h = $2 } END { print r, h }' /proc/$pid/status)"
    done < "$toy_data/pids"
}

bench() { # URL LABEL [VAR=value ...]: the peers' bench.sh, output kept per round
    local url=$1 label=$2
    shift 2
    env "$@" "$peersdir/bench.sh" "$url" "$label" | tee "$results/raw/round$r-$label.txt"
}

: > "$results/rss.txt"
for r in $(seq "$rounds"); do
    echo "=== round $r/$rounds $(date -u +%H:%M:%S)"
    for peer in $peers; do
        case $peer in
        toystore)
            toystore_up
            rss "round$r-rest" >> "$results/rss.txt"
            bench "http://127.0.0.1:$base" toystore PIDFILE="$toy_data/pids"
            rss "round$r-c64" >> "$results/rss.txt"
            bench "http://127.0.0.1:$((base + 1))" toystore-catalog-alone WORKLOADS=query PIDFILE="$toy_data/pids"
            bench "http://127.0.0.1:$((base + 2))" toystore-order-alone WORKLOADS=buy PIDFILE="$toy_data/pids"
            bench "http://127.0.0.1:$base" toystore-c1000 WORKLOADS=query CONNS=1000 THREADS=2 PIDFILE="$toy_data/pids"
            bench "http://127.0.0.1:$uncached" toystore-uncached WORKLOADS=query PIDFILE="$toy_data/pids"
            bench "http://127.0.0.1:$uncached" toystore-uncached-c1000 WORKLOADS=query CONNS=1000 THREADS=2 PIDFILE="$toy_data/pids"
            rss "round$r-peak" >> "$results/rss.txt"
            toystore_down
            ;;
        ceiling)
            (cd "$peersdir" && NGINX_WORKERS=1 ./up.sh ceiling $((base + 200)) > /dev/null)
            bench "http://127.0.0.1:$((base + 200))" ceiling-w1 WORKLOADS=query PIDFILE=/tmp/peers-ceiling-$((base + 200))/pids
            (cd "$peersdir" && ./down.sh ceiling $((base + 200)) > /dev/null)
            ;;
        axum | flask)
            if [[ $peer == axum ]]; then port=$((base + 100)); else port=$((base + 300)); fi
            (cd "$peersdir" && ./up.sh "$peer" $port > /dev/null)
            bench "http://127.0.0.1:$port" "$peer" PIDFILE=/tmp/peers-$peer-$port/pids
            if [[ $peer == axum ]]; then
                bench "http://127.0.0.1:$port" axum-c1000 WORKLOADS=query CONNS=1000 THREADS=2 PIDFILE=/tmp/peers-$peer-$port/pids
            fi
            (cd "$peersdir" && ./down.sh "$peer" $port > /dev/null)
            ;;
        esac
        sleep 2
    done
done
python3 "$peersdir/summarize.py" "$results/raw" --compact | tee "$results/summary.md"
echo
echo "RSS (kB): label service VmRSS VmHWM"
cat "$results/rss.txt"
