#!/usr/bin/env bash
# Container test: build the images, run the stack under Compose, test it through
# the published port, then drills (order stopped, catalog killed during buys,
# order crashed during buys, compose down/up with the same volumes).
# Removes everything it created (containers, network, volumes, images) on exit.
#
#   dockerfiles/test.sh                      # skip (exit 0) when no Docker engine answers
#   TOYSTORE_TEST_PORT=16060 dockerfiles/test.sh   # publish the front-end there
#   TOYSTORE_TEST_KEEP_IMAGES=1 ...          # keep the test-tagged images
#   TOYSTORE_TEST_FUNC=path/test_func.sh ... # the functional tests to run (default: the
#                                            # repository's test_func.sh, if any)
#
# Prints `N passed, M failed` last; exits non-zero on any failure.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
  echo "container test skipped: no Docker engine"
  exit 0
fi
if docker compose version >/dev/null 2>&1; then
  compose_cmd=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose_cmd=(docker-compose)
else
  echo "container test skipped: no Docker Compose (neither 'docker compose' nor 'docker-compose')"
  exit 0
fi
for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "container test: $tool is required" >&2; echo "0 passed, 1 failed"; exit 1; }
done

id=$$
project="toystore-test-$id"
export TOYSTORE_IMAGE_PREFIX=toystore
export TOYSTORE_TAG="test-$id"
export TOYSTORE_BIND=127.0.0.1
if [ -n "${TOYSTORE_TEST_PORT:-}" ]; then
  port=$TOYSTORE_TEST_PORT
else
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
fi
export TOYSTORE_PORT=$port
export ADMIN_TOKEN="test-token-$id"
# The services' shared secret (Compose requires one): random, as the launcher makes it.
INTERNAL_TOKEN=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
export INTERNAL_TOKEN
# No automatic restocks: they are not visible through the API, so they would upset both
# test_func.sh's stock checks and the invariant here.
export RESTOCK_PERIOD_MS=0
front="http://127.0.0.1:$port"
work=$(mktemp -d "${TMPDIR:-/tmp}/toystore-ctest.XXXXXX")
started=$SECONDS

passed=0
failed=0
ok()  { passed=$((passed + 1)); printf '  ok    %-5s %s\n' "$((SECONDS - started))s" "$*"; }
bad() { failed=$((failed + 1)); printf '  FAIL  %-5s %s\n' "$((SECONDS - started))s" "$*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; return 1; fi; }
step() { echo "== [$((SECONDS - started))s] $*"; }

compose() { "${compose_cmd[@]}" -p "$project" -f "$root/docker-compose.yml" "$@"; }

bg_pids=()
placeholders=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  if [ "$failed" -gt 0 ] || [ "$rc" -ne 0 ]; then
    echo "== logs (last 25 lines per service, health checks left out)"
    for s in catalog order frontend; do
      compose logs --no-color "$s" 2>/dev/null | grep -v -e ' GET /health ' -e '^Attaching' | tail -25 | sed 's/^/    /'
    done
  fi
  echo "== cleanup"
  for p in "${placeholders[@]}"; do docker rm -f "$p" >/dev/null 2>&1; done
  compose down -v --remove-orphans --timeout 5 >/dev/null 2>&1
  if [ -z "${TOYSTORE_TEST_KEEP_IMAGES:-}" ]; then
    for s in catalog order frontend; do
      docker image rm "$TOYSTORE_IMAGE_PREFIX-$s:$TOYSTORE_TAG" >/dev/null 2>&1
    done
  fi
  rm -rf "$work"
  echo "$passed passed, $failed failed"
  if [ "$failed" -gt 0 ] || [ "$rc" -ne 0 ]; then exit 1; fi
  exit 0
}
trap cleanup EXIT
trap 'echo "interrupted"; failed=$((failed + 1)); exit 1' INT TERM

# --- helpers -----------------------------------------------------------------

# req METHOD PATH [JSON] [extra curl args...] -> sets CODE and BODY
req() {
  local method=$1 path=$2 body=${3:-}
  shift 3 2>/dev/null || shift $#
  local args=(-s -o "$work/body" -w '%{http_code}' --max-time 10 -X "$method")
  [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data "$body")
  CODE=$(curl "${args[@]}" "$@" "$front$path" 2>/dev/null) || CODE=${CODE:-000}
  BODY=$(cat "$work/body" 2>/dev/null || true)
}
# json EXPR: evaluate a Python expression over d = the JSON in $BODY
json() { printf '%s' "$BODY" | python3 -c "import json,sys; d=json.load(sys.stdin); print($1)" 2>/dev/null; }

cid() { compose ps -q "$1" 2>/dev/null | head -n1; }
health() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$1" 2>/dev/null; }

# wait_answering TIMEOUT: the front-end at $front answers GET /health with 200
wait_answering() {
  local deadline=$((SECONDS + $1))
  while [ $SECONDS -lt $deadline ]; do
    req GET /health
    [ "$CODE" = 200 ] && return 0
    sleep 0.5
  done
  return 1
}

# wait_healthy TIMEOUT SERVICE...: every named container healthy and the front-end answering
wait_healthy() {
  local deadline=$((SECONDS + $1)) s c all
  shift
  while [ $SECONDS -lt $deadline ]; do
    all=1
    for s in "$@"; do
      c=$(cid "$s")
      [ -n "$c" ] && [ "$(health "$c")" = healthy ] || { all=0; break; }
    done
    if [ $all = 1 ]; then
      req GET /health
      [ "$CODE" = 200 ] && return 0
    fi
    sleep 0.5
  done
  return 1
}

ip_of() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$1" 2>/dev/null; }
network_of() { docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}' "$1" 2>/dev/null; }

# placeholder NAME NETWORK: a bystander container on the stack's network. Docker hands a
# starting container the lowest free address, so a placeholder started while a service
# is down takes that service's address, and the service comes back on a new one: its
# peers must resolve its name again rather than keep the old address.
placeholder() {
  docker run -d --name "$project-$1" --network "$2" --init \
    -e LISTEN=0.0.0.0:6060 -e CATALOG=127.0.0.1 -e ORDER=127.0.0.1 \
    "$TOYSTORE_IMAGE_PREFIX-frontend:$TOYSTORE_TAG" >/dev/null && placeholders+=("$project-$1")
}
drop_placeholders() {
  for p in "${placeholders[@]}"; do docker rm -f "$p" >/dev/null 2>&1; done
  placeholders=()
}

# buy_retry NAME: POST /orders for 1 NAME, up to 3 tries 1 s apart; sets CODE, BODY, TRIES
buy_retry() {
  TRIES=0
  while [ "$TRIES" -lt 3 ]; do
    TRIES=$((TRIES + 1))
    req POST /orders "{\"name\":\"$1\",\"quantity\":1}"
    [ "$CODE" = 200 ] && return 0
    sleep 1
  done
  return 1
}

# products: "name quantity" per line, sorted
products() {
  req GET /products
  [ "$CODE" = 200 ] || { echo "GET /products -> $CODE" >&2; return 1; }
  json '"\n".join(sorted("%s %s" % (p["name"], p["quantity"]) for p in d["data"]))'
}

# A small helper for what would take a curl and a python3 per request.
cat > "$work/scan.py" <<'PY'
import json, sys, urllib.request, urllib.error
def get(front, path):
    try:
        with urllib.request.urlopen(front + path, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.load(e)
        except Exception:
            return e.code, None
    except Exception as e:
        return 0, str(e)
cmd, front = sys.argv[1], sys.argv[2]
if cmd == "orders":
    # every order readable via GET /orders/n, n = 0.. until 40 numbers in a row
    # past FLOOR are not found: "number name quantity" per line
    floor, n, misses = int(sys.argv[3]), 0, 0
    while misses < 40:
        code, d = get(front, "/orders/%d" % n)
        if code == 200:
            print(d["data"]["number"], d["data"]["name"], d["data"]["quantity"]); misses = 0
        elif code == 404:
            misses += n >= floor
        else:
            sys.exit("GET /orders/%d -> %s %s" % (n, code, d))
        n += 1
elif cmd == "readable":
    # every successful buy of a stream file is readable with its name and quantity
    bad = 0
    for line in open(sys.argv[3]):
        code, num, name, q = line.split()[:4]
        if code != "200":
            continue
        c, d = get(front, "/orders/%s" % num) if num.isdigit() else (0, "no order number in the reply")
        if c != 200 or (d["data"]["name"], d["data"]["quantity"]) != (name, int(q)):
            bad += 1; print("      order %s (%s x%s): %s %s" % (num, name, q, c, d))
    sys.exit(1 if bad else 0)
PY

# orders [FLOOR]: "number name quantity" per line for every order readable now
orders() { python3 "$work/scan.py" orders "$front" "${1:-0}"; }

# The seed (database.txt, built into the catalog binary): "name quantity"
seed=$(awk 'NF >= 4 && $1 !~ /^#/ { print $2, $4 }' "$root/database.txt" | sort)
names=$(printf '%s\n' "$seed" | awk '{print $1}')

# invariant BASE_PRODUCTS BASE_ORDERS MAXNUM: for every product,
#   base stock − current stock = sum of the quantities of the orders readable now
#   that were not in BASE_ORDERS,
# every order of BASE_ORDERS is still readable unchanged, and GET /orders/n answers
# order n. (With the seed and no orders as the base, this is the contract's invariant.)
# Details go to $work/invariant.
invariant() {
  products > "$work/products" || return 1
  orders "${3:-0}" > "$work/orders" || return 1
  python3 - "$1" "$2" "$work/products" "$work/orders" > "$work/invariant" <<'PY'
import sys
def table(path):
    return dict((l.split()[0], int(l.split()[1])) for l in open(path) if l.strip())
def orders(path):
    out = {}
    for l in open(path):
        if l.strip():
            n, name, q = l.split()
            out.setdefault(int(n), []).append((name, int(q)))
    return out
base, cur = table(sys.argv[1]), table(sys.argv[3])
old, now = orders(sys.argv[2]), orders(sys.argv[4])
bad = 0
sold = {}
for n, v in now.items():
    if n not in old:
        for name, q in v:
            sold[name] = sold.get(name, 0) + q
for name, b in sorted(base.items()):
    c = cur.get(name)
    line = "%s: base %s, now %s, ordered since %s" % (name, b, c, sold.get(name, 0))
    if c is None or b - c != sold.get(name, 0):
        bad += 1; line += "   <-- MISMATCH"
    print(line)
lost = [n for n in old if old[n] != now.get(n)]
if lost:
    bad += 1; print("orders lost or changed: %s" % lost[:20])
dup = [n for n, v in now.items() if len(v) != 1]
if dup:
    bad += 1; print("GET /orders/n answered a different number: %s" % dup[:20])
print("orders readable: %d (%d new)" % (len(now), len([n for n in now if n not in old])))
sys.exit(1 if bad else 0)
PY
}

# invariant_settled BASE_PRODUCTS BASE_ORDERS MAXNUM: the invariant holds now or within
# ~15 s (recovery may settle in-flight buys after a restart).
invariant_settled() {
  local t0=$SECONDS deadline=$((SECONDS + 15)) tries=0
  while :; do
    tries=$((tries + 1))
    if invariant "$@"; then
      [ "$tries" -gt 1 ] && echo "    (the invariant held at check $tries, $((SECONDS - t0))s after the first)"
      return 0
    fi
    [ $SECONDS -ge $deadline ] && { sed 's/^/      /' "$work/invariant"; return 1; }
    sleep 1
  done
}

# buy_stream FILE COUNT: COUNT buys of quantity 1..2, round-robin over the products,
# each line "code order_number name quantity"
buy_stream() {
  local out=$1 count=$2 i name q code num out_w secs bodyf="$1.body.$BASHPID"
  local arr=($names)
  for ((i = 0; i < count; i++)); do
    name=${arr[$((RANDOM % ${#arr[@]}))]}
    q=$((RANDOM % 2 + 1))
    out_w=$(curl -s -o "$bodyf" -w '%{http_code} %{time_total}' --max-time 10 -X POST \
      -H 'Content-Type: application/json' --data "{\"name\":\"$name\",\"quantity\":$q}" "$front/orders" 2>/dev/null) || true
    code=${out_w%% *}; secs=${out_w#* }
    num=-
    if [ "$code" = 200 ]; then
      num=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["data"]["order_number"])' "$bodyf" 2>/dev/null || echo '?')
    fi
    echo "$code $num $name $q $secs" >> "$out"
    sleep 0.05
  done
}

# stream_summary FILE -> prints counts per status and sets MAXNUM and STREAM_OK
stream_summary() {
  local f=$1
  echo "    stream: $(awk '{c[$1]++; t[$1] += $5; if ($5 > m[$1]) m[$1] = $5}
    END {for (k in c) printf "%s x%d (mean %.0f ms, max %.0f ms)  ", k, c[k], 1000 * t[k] / c[k], 1000 * m[k]}' "$f")"
  MAXNUM=$(awk '$1 == 200 && $2 ~ /^[0-9]+$/ && $2 > m {m = $2} END {print m + 0}' "$f")
  STREAM_DUPS=$(awk '$1 == 200 {print $2}' "$f" | sort | uniq -d | wc -l)
}

# Every successful buy of a stream is readable with its name and quantity.
stream_orders_readable() { python3 "$work/scan.py" readable "$front" "$1"; }

# --- build and start --------------------------------------------------------

step "build images (tag $TOYSTORE_TAG) with dockerfiles/build.sh"
if ! "$here/build.sh" > "$work/build.log" 2>&1; then
  tail -40 "$work/build.log"
  bad "build.sh"
  exit 1
fi
ok "build.sh built the images"
grep -A3 '^== images' "$work/build.log" | tail -3 | sed 's/^/    /'
for s in catalog order frontend; do
  user=$(docker image inspect -f '{{.Config.User}}' "toystore-$s:$TOYSTORE_TAG" 2>/dev/null)
  check "$s image runs as a non-root user ($user)" test "$user" = "10001:10001"
done

step "compose up (project $project, front-end on $front)"
if ! compose up -d > "$work/up.log" 2>&1; then
  cat "$work/up.log"
  bad "compose up"
  exit 1
fi
check "all three services healthy" wait_healthy 90 catalog order frontend || exit 1
for s in catalog order; do
  c=$(cid "$s")
  check "$s publishes no host port" test -z "$(docker port "$c" 2>/dev/null)"
done
check "front-end published on $TOYSTORE_BIND:$port only" \
  test "$(docker port "$(cid frontend)" 2>/dev/null | sort -u)" = "6060/tcp -> 127.0.0.1:$port"

# --- functional tests through the published port ----------------------------

step "functional tests through $front"
func=${TOYSTORE_TEST_FUNC:-}
if [ -z "$func" ]; then
  for f in "$root/test_func.sh" "$root/tests/test_func.sh"; do
    [ -f "$f" ] && { func=$f; break; }
  done
fi
if [ -n "$func" ]; then
  # test_func.sh takes the front-end from FRONT (its arguments are a test filter);
  # with ADMIN_TOKEN it runs the admin and concurrency tests too.
  echo "    running FRONT=$front ${func#$root/} (output in the log below on failure)"
  if FRONT="$front" ADMIN_TOKEN="$ADMIN_TOKEN" bash "$func" > "$work/func.log" 2>&1; then
    ok "${func#$root/} passed"
  else
    sed 's/^/      /' "$work/func.log" | tail -60
    bad "${func#$root/}"
  fi
  # Its last line counts the tests that skipped themselves apart from those that passed.
  grep -E '^(test result:|test_func.sh: [0-9]+ passed)' "$work/func.log" | sed 's/^/    /'
else
  echo "    (no test_func.sh in the repository: only our own curl checks)"
fi
# A few checks of our own either way (the test_func.sh run may have changed stock,
# so nothing here assumes the seed quantities).
req GET /health
check "GET /health 200" test "$CODE" = 200
req GET /products
check "GET /products lists Tux" test "$(json 'any(p["name"] == "Tux" for p in d["data"])')" = True
req GET /products/Tux
if [ -z "$func" ]; then
  check "GET /products/Tux 200 with price 25.99" test "$CODE $(json 'd["data"]["price"]')" = "200 25.99"
else  # test_func.sh's admin tests may have changed the price
  check "GET /products/Tux 200 with exactly name, price, quantity" \
    test "$CODE $(json 'sorted(d["data"])')" = "200 ['name', 'price', 'quantity']"
fi
req GET /products/NoSuchToy
check "GET /products/NoSuchToy 404 product not found" test "$CODE $(json 'd["error"]["message"]')" = "404 product not found"
req POST /orders '{"name":"Tux","quantity":1}'
first_num=$(json 'd["data"]["order_number"]'); first_num=${first_num:-0}
check "POST /orders 200 with an integer order number ($first_num)" test "$CODE $(json 'type(d["data"]["order_number"]).__name__')" = "200 int"
req GET "/orders/$first_num"
check "GET /orders/$first_num is Tux x1" test "$CODE $(json 'd["data"]["name"], d["data"]["quantity"]')" = "200 Tux 1"
req POST /Whale/2
check "POST /Whale/2 200" test "$CODE" = 200
req POST /orders '{"name":"Tux","quantity":100000}'
check "buy beyond stock 409 out of stock" test "$CODE $(json 'd["error"]["message"]')" = "409 out of stock"
req POST /orders '{"name":"Tux","quantity":0}'
check "quantity 0 is 400" test "$CODE" = 400
req PUT /products/Elephant '{"price":31.5}'
check "PUT without the admin token 401" test "$CODE" = 401
req PUT /products/Elephant '{"price":31.5}' -H "Authorization: Bearer $ADMIN_TOKEN"
check "PUT with ADMIN_TOKEN (passed through by compose) 200" test "$CODE" = 200
req GET /products/Elephant
check "GET /products/Elephant shows the new price" test "$(json 'd["data"]["price"]')" = 31.5
printf '%s\n' "$seed" > "$work/seed"
: > "$work/no-orders"
if [ -z "$func" ]; then
  check "invariant holds against the seed" invariant_settled "$work/seed" "$work/no-orders" "$first_num"
  sed 's/^/    /' "$work/invariant"
fi

# The drills measure from a base: every product restocked to 500 with the admin
# token (so the streams never run out and no automatic restock interferes), then
# the stock and every order as they are now.
for n in $names; do
  req PUT "/products/$n" '{"quantity":500}' -H "Authorization: Bearer $ADMIN_TOKEN"
  [ "$CODE" = 200 ] || echo "    (PUT /products/$n quantity 500 -> $CODE: drills start from the current stock)"
done
products > "$work/base.products" && orders "$first_num" > "$work/base.orders" \
  || bad "could not read the base stock and orders"

# --- drill 1: order service stopped -----------------------------------------

step "drill: docker stop order"
order_c=$(cid order)
old_ip=$(ip_of "$order_c")
t0=$SECONDS
docker stop "$order_c" >/dev/null
check "order stopped gracefully (exit code $(docker inspect -f '{{.State.ExitCode}}' "$order_c"), $((SECONDS - t0))s)" \
  test "$(docker inspect -f '{{.State.ExitCode}}' "$order_c")" = 0
req GET /products/Tux
check "queries work while order is down (GET /products/Tux $CODE)" test "$CODE" = 200
t0=$(date +%s%N)
req POST /orders '{"name":"Tux","quantity":1}'
ms=$((($(date +%s%N) - t0) / 1000000))
check "buy while order is down is 503/504 within 5 s ($CODE in ${ms} ms)" \
  test \( "$CODE" = 503 -o "$CODE" = 504 \) -a "$ms" -lt 5000
check "... with the error envelope" test "$(json 'd["error"]["code"]')" = "$CODE"
net=$(network_of "$order_c")
placeholder order-ip "$net"
docker start "$order_c" >/dev/null
echo "    order's address: $old_ip before the stop, $(ip_of "$order_c") after the start" \
  "(a placeholder holds $(ip_of "$project-order-ip"))"
check "order healthy again after docker start" wait_healthy 60 order
buy_retry Tux
num=$(json 'd["data"]["order_number"]')
check "buy works again with order on its new address ($CODE at try $TRIES, order $num)" test "$CODE" = 200
check "... and its number is new (> $first_num)" test "${num:-0}" -gt "$first_num"
drop_placeholders

# --- drill 2: catalog killed during a stream of buys ------------------------

step "drill: docker kill catalog during a stream of buys"
catalog_c=$(cid catalog)
old_ip=$(ip_of "$catalog_c")
: > "$work/stream1"
buy_stream "$work/stream1" 30 & bg_pids+=($!)
buy_stream "$work/stream1" 30 & bg_pids+=($!)
sleep 1
docker kill "$catalog_c" >/dev/null
echo "    catalog killed (SIGKILL) at [$((SECONDS - started))s]"
req GET "/orders/$first_num"
check "GET /orders/$first_num works while the catalog is down ($CODE)" test "$CODE" = 200
t0=$(date +%s%N)
req GET /products/Tux
ms=$((($(date +%s%N) - t0) / 1000000))
check "a query while the catalog is down is 503/504 within 5 s ($CODE in ${ms} ms)" \
  test \( "$CODE" = 503 -o "$CODE" = 504 \) -a "$ms" -lt 5000
placeholder catalog-ip "$(network_of "$order_c")"
docker start "$catalog_c" >/dev/null
echo "    catalog's address: $old_ip before the kill, $(ip_of "$catalog_c") after the start" \
  "(a placeholder holds $(ip_of "$project-catalog-ip"))"
wait "${bg_pids[@]}" 2>/dev/null
bg_pids=()
check "catalog healthy again after docker start" wait_healthy 60 catalog order frontend
buy_retry Whale
check "buys work with the catalog on its new address ($CODE at try $TRIES)" test "$CODE" = 200
req GET /products/Whale
check "queries work with the catalog on its new address ($CODE)" test "$CODE" = 200
drop_placeholders
stream_summary "$work/stream1"
check "no order number handed out twice in the stream" test "$STREAM_DUPS" = 0
check "every successful buy of the stream is readable" stream_orders_readable "$work/stream1"
check "invariant holds after the catalog restart (the volume kept table and log)" \
  invariant_settled "$work/base.products" "$work/base.orders" "$MAXNUM"
sed 's/^/    /' "$work/invariant"

# --- drill 3: order crashes during a stream of buys; the restart policy -----

step "drill: order crashes (SIGKILL of its process) during a stream of buys"
order_c=$(cid order)
restarts0=$(docker inspect -f '{{.RestartCount}}' "$order_c")
init_pid=$(docker inspect -f '{{.State.Pid}}' "$order_c")
svc_pid=$(pgrep -P "$init_pid" 2>/dev/null | head -n1)
: > "$work/stream2"
buy_stream "$work/stream2" 30 & bg_pids+=($!)
buy_stream "$work/stream2" 30 & bg_pids+=($!)
sleep 1
if [ -n "$svc_pid" ] && kill -9 "$svc_pid" 2>/dev/null; then
  echo "    order process $svc_pid killed at [$((SECONDS - started))s]; waiting for the restart policy"
  crash=1
else
  echo "    (cannot signal the container's process from here: docker kill + docker start instead)"
  docker kill "$order_c" >/dev/null
  sleep 1
  docker start "$order_c" >/dev/null
  crash=0
fi
wait "${bg_pids[@]}" 2>/dev/null
bg_pids=()
check "order healthy again" wait_healthy 60 catalog order frontend
if [ "$crash" = 1 ]; then
  check "restart policy restarted the crashed order service (restarts $restarts0 -> $(docker inspect -f '{{.RestartCount}}' "$order_c"))" \
    test "$(docker inspect -f '{{.RestartCount}}' "$order_c")" -gt "$restarts0"
fi
stream_summary "$work/stream2"
check "no order number handed out twice in the stream" test "$STREAM_DUPS" = 0
check "every successful buy of the stream is readable" stream_orders_readable "$work/stream2"
check "invariant holds after the order restart" \
  invariant_settled "$work/base.products" "$work/base.orders" "$MAXNUM"
sed 's/^/    /' "$work/invariant"

# --- drill 4: compose down (volumes kept) and up again ----------------------

step "drill: compose down (without -v), then up with the same volumes"
cp "$work/products" "$work/products.before"
cp "$work/orders" "$work/orders.before"
compose down --timeout 10 > "$work/down.log" 2>&1
check "compose down removed the containers" test -z "$(compose ps -q 2>/dev/null)"
check "the named volumes are still there" \
  test "$(docker volume ls -q --filter "name=${project//[^a-z0-9_-]/}" | wc -l)" -ge 2
compose up -d > "$work/up2.log" 2>&1 || cat "$work/up2.log"
check "all three services healthy after up" wait_healthy 90 catalog order frontend
products > "$work/products.after"
maxbefore=$(awk '{ if ($1 > m) m = $1 } END { print m + 0 }' "$work/orders.before")
orders "$maxbefore" > "$work/orders.after"
check "stock unchanged across down/up" cmp -s "$work/products.before" "$work/products.after"
check "orders unchanged across down/up ($(wc -l < "$work/orders.after") readable)" cmp -s "$work/orders.before" "$work/orders.after"
req POST /orders '{"name":"Bird","quantity":1}'
num=$(json 'd["data"]["order_number"]')
check "a new buy after up gets a fresh number ($num > $maxbefore)" test "$CODE" = 200 -a "${num:-0}" -gt "$maxbefore"
check "invariant holds at the end" invariant_settled "$work/base.products" "$work/base.orders" "$num"
sed 's/^/    /' "$work/invariant"

# --- drill 5: a backend whose name hangs in DNS --------------------------------

# A killed container's name leaves Docker's DNS, which then asks upstream servers that
# may never answer: getaddrinfo blocked a query for 10 s. Here the lookup of every name
# goes to an address on the network that answers nothing, every time, deterministically.
step "drill: a front-end whose catalog name never resolves (DNS server silent)"
net=$(network_of "$(cid frontend)")
subnet=$(docker network inspect -f '{{(index .IPAM.Config 0).Subnet}}' "$net")
silent_dns="${subnet%.*}.250"
dns_front="$project-dns-front"
placeholders+=("$dns_front")
docker run -d --name "$dns_front" --network "$net" --dns "$silent_dns" \
  -e CATALOG=no-such-catalog -e ORDER=no-such-order -p 127.0.0.1::6060 \
  "$TOYSTORE_IMAGE_PREFIX-frontend:$TOYSTORE_TAG" >/dev/null
dns_port=$(docker port "$dns_front" 6060/tcp | head -n1 | sed 's/.*://')
saved_front=$front
front="http://127.0.0.1:$dns_port"
check "the front-end with a silent DNS server answers" wait_answering 30
t0=$(date +%s%N)
req GET /products/Tux
ms=$((($(date +%s%N) - t0) / 1000000))
check "a query whose backend name never resolves is 503/504 within 5 s ($CODE in ${ms} ms)" \
  test \( "$CODE" = 503 -o "$CODE" = 504 \) -a "$ms" -lt 5000
front=$saved_front
docker rm -f "$dns_front" >/dev/null 2>&1

step "done in $((SECONDS - started))s"
