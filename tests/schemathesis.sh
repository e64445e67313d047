#!/usr/bin/env bash
# Checks the running API against its reference with schemathesis (every check on):
# builds the release binaries, starts a fresh stack on free ports with a temporary data
# directory, runs `st run` against the front-end's GET /openapi.json, stops the stack.
# Exit status: schemathesis's (non-zero on any failure). `.ci/run` calls it; by hand:
#
#   tests/schemathesis.sh                 # a few minutes; extra args go to `st run`
#
# The venv lives in target/schemathesis-venv (SCHEMATHESIS_VENV chooses another) and
# is made once; schemathesis is pinned to a version this was last run with.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
VENV=${SCHEMATHESIS_VENV:-target/schemathesis-venv}

echo "== schemathesis $SCHEMATHESIS_VERSION in $VENV"
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    # Debian splits venv out of python3; CI runs as root on a fresh machine.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    else
        echo "python3 has no venv module: install python3-venv" >&2
        exit 1
    fi
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
if [ "$("$VENV/bin/st" --version 2>/dev/null)" != "st, version $SCHEMATHESIS_VERSION" ]; then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# The served JSON is generated from the YAML; a stale copy would test the wrong document.
"$VENV/bin/python" docs/openapi.py --check

echo "== release binaries"
cargo build --release --quiet --bin catalog --bin order --bin frontend
BIN=${CARGO_TARGET_DIR:-target}/release

WORK=$(mktemp -d)
PIDS=()
stop_stack() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap stop_stack EXIT

# Starts `$1` (a binary) with the rest as arguments on a free port, in this shell (so
# that stop_stack knows its pid).
start() {
    local name=$1
    shift
    "$BIN/$name" --listen 127.0.0.1:0 "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
}

# The address `$1` bound, once it says so (within 10 s).
address() {
    local name=$1 line
    for _ in $(seq 1 100); do
        line=$(grep -m1 -o "$name listening on http://[0-9.:]*" "$WORK/$name.log" || true)
        if [ -n "$line" ]; then
            echo "${line##*http://}"
            return
        fi
        sleep 0.1
    done
    echo "$name did not start:" >&2
    cat "$WORK/$name.log" >&2
    return 1
}

echo "== a fresh stack"
export INTERNAL_TOKEN=schemathesis-internal ADMIN_TOKEN=schemathesis-admin
# No restock: stock moves only by what the run does. No access log: nobody reads it.
export RESTOCK_PERIOD_MS=0 ACCESS_LOG=false
start catalog --data-dir "$WORK/data"
catalog=$(address catalog)
start order --data-dir "$WORK/data" --catalog "$catalog"
order=$(address order)
start frontend --catalog "$catalog" --order "$order"
front=$(address frontend)
echo "front-end on http://$front"

echo "== st run"
# Two narrow settings (tests/schemathesis.toml, tests/schemathesis_hooks.py) say why.
PYTHONPATH=tests SCHEMATHESIS_HOOKS=schemathesis_hooks \
    "$VENV/bin/st" --config-file tests/schemathesis.toml run "http://$front/openapi.json" \
    --checks all \
    --header "Authorization: Bearer $ADMIN_TOKEN" \
    --request-timeout 10 \
    "$@"
