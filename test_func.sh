#!/usr/bin/env bash
# test_func.sh: the functional tests against servers that are already running, like
# the original lab's script.
#
# Usage:
#   ./test_func.sh                      # front-end at http://127.0.0.1:6060
#   FRONT=http://host:6060 ./test_func.sh
#   FRONT=host:6060 CATALOG=host:10086 ORDER=host:10010 ADMIN_TOKEN=secret ./test_func.sh
#   ./test_func.sh -- buy_                # extra arguments go to the test binaries (a filter)
#
# FRONT (default http://127.0.0.1:6060) names the front-end: `host`, `host:port` or
# `http://host:port`. CATALOG and ORDER, when set, add the checks that talk to those
# services directly (health, limits). ADMIN_TOKEN, when set, enables the admin
# (PUT /products/{name}) success cases and the concurrency tests, which set stock.
#
# The servers' state is not fresh: the tests are relative to what they find (stock
# deltas, order numbers going up by one between their own buys), so nobody else should
# buy while they run. Tests that need a fresh stack or process control (numbering from
# 0, restarts, kill -9) print "skipped: needs spawned stack". Without FRONT set by the
# caller, `cargo test` instead starts its own fresh stack per test.
#
# A few tests sell a product out and then expect 409 / a stock of 0; the catalog's
# periodic restock (RESTOCK_PERIOD_MS, default 10 s) can refill it in between. For exact
# results start the catalog with RESTOCK_PERIOD_MS=0 (the spawned stacks do).
#
# Exit status: 0 when every test passed, otherwise cargo's non-zero status.
set -euo pipefail

cd "$(dirname "$0")"
export FRONT="${FRONT:-http://127.0.0.1:6060}"

# Fail early and clearly when nothing listens there.
base="$FRONT"
case "$base" in http://*) ;; *) base="http://$base" ;; esac
case "${base#http://}" in *:*) ;; *) base="$base:6060" ;; esac
if command -v curl >/dev/null 2>&1; then
    if ! curl -fsS -m 5 "$base/health" >/dev/null; then
        echo "test_func.sh: no front-end answers at $base/health (set FRONT)" >&2
        exit 2
    fi
fi

echo "test_func.sh: testing the front-end at $base"
if [ "${1:-}" = "--" ]; then shift; fi
exec cargo test --test api --test orders --test admin --test http --test concurrency -- "$@"
