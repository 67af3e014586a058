#!/usr/bin/env bash
# Bijou on two Ray nodes on this machine: a head node and a second node joined to it, with
# replicas placed on both (bench/configs/serve-2node.yaml). Prints where each replica runs,
# checks the app answers, and stops everything. Usage: scripts/two_nodes.sh [--postgres] [port]
#
# --postgres: a throwaway PostgreSQL server holds the sessions (memory.backend: postgres),
# with an Agent replica on each node (bench/configs/serve-2node-shared.yaml); one shopper's
# turns then land on both replicas, and the script checks that the dialog state and the cart
# carried over from turn to turn, and counts the turns each replica answered.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=0
if [ "${1:-}" = "--postgres" ]; then SHARED=1; shift; fi
PORT="${1:-8000}"
RAY=.venv/bin/ray
CONFIG=bench/configs/serve-2node.yaml
# Every ray command of one cluster must agree on the auth mode (MODELS.md).
export RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0
# Every replica's access log line reaches the driver's log (one_shopper.py reads them).
export RAY_DEDUP_LOGS=0
PGDIR=""
# This cluster's own temp folder and address: `ray stop` would stop every Ray on the
# machine, other people's too, so only the processes of this folder (and theirs) are ended.
RAYTMP=$(mktemp -d /tmp/bijou-ray-XXXXXX)
stop_ray() {
    local pids kids
    pids=$(pgrep -f -- "$RAYTMP" || true)
    for _ in 1 2 3 4 5; do
        kids=$(for pid in $pids; do pgrep -P "$pid" || true; done)
        pids=$(printf '%s\n' $pids $kids | sort -u)
    done
    [ -n "$pids" ] || return 0
    kill -TERM $pids 2>/dev/null || true
    sleep 3
    kill -KILL $pids 2>/dev/null || true
}
cleanup() {
    stop_ray
    rm -rf "$RAYTMP"
    if [ -n "$PGDIR" ]; then
        $AS_PG "$PGBIN/pg_ctl" -D "$PGDIR/data" -m fast stop >/dev/null 2>&1 || true
        rm -rf "$PGDIR"
    fi
}
trap cleanup EXIT

if [ "$SHARED" = 1 ]; then
    PGBIN=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | tail -1)")
    PGDIR=$(mktemp -d /tmp/bijou-pg-XXXXXX)
    AS_PG=""
    # The server refuses to run as root.
    if [ "$(id -u)" = 0 ]; then chown postgres "$PGDIR"; AS_PG="runuser -u postgres --"; fi
    $AS_PG "$PGBIN/initdb" -D "$PGDIR/data" -A trust -U bijou >/dev/null
    $AS_PG "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w \
        -o "-p 6543 -k $PGDIR -c listen_addresses=127.0.0.1" start >/dev/null
    export BIJOU__MEMORY__BACKEND=postgres BIJOU__MEMORY__URL=postgresql://bijou@127.0.0.1:6543/postgres
    export BIJOU__SERVE__RATE_LIMIT__ENABLED=false
    CONFIG=bench/configs/serve-2node-shared.yaml
    echo "PostgreSQL on 127.0.0.1:6543 ($PGDIR)"
fi

$RAY start --head --num-cpus 1 --resources '{"head_node": 1}' --port 6380 \
    --dashboard-host 127.0.0.1 --disable-usage-stats --temp-dir "$RAYTMP" >/dev/null
export RAY_ADDRESS=127.0.0.1:6380
$RAY start --address 127.0.0.1:6380 --num-cpus 1 --resources '{"second_node": 1}' >/dev/null
.venv/bin/python - <<'PY'
import ray
ray.init(logging_level="ERROR")  # $RAY_ADDRESS
for node in ray.nodes():
    if node["Alive"]:
        print("node", node["NodeID"][:8], {k: v for k, v in node["Resources"].items()
                                          if k in ("CPU", "head_node", "second_node")})
PY
.venv/bin/bijou serve --address "$RAY_ADDRESS" --config "$CONFIG" --port "$PORT" \
    > var/two_nodes.log 2>&1 &
SERVE=$!
for _ in $(seq 1 120); do
    curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    sleep 2
done
curl -sf "http://127.0.0.1:$PORT/readyz"; echo
$RAY list actors --filter "state=ALIVE" --limit 100 --detail 2>/dev/null \
    | grep -E "class_name|node_id" | paste - - | sed 's/  */ /g' | grep -i "Replica" || true
curl -s -N -X POST "http://127.0.0.1:$PORT/v1/chat" -H 'content-type: application/json' \
    -d '{"message": "gold earrings under 3000"}' | grep -A1 "event: reply" | head -c 400; echo
if [ "$SHARED" = 1 ]; then
    .venv/bin/python scripts/one_shopper.py --url "http://127.0.0.1:$PORT"
fi
kill "$SERVE" 2>/dev/null || true
wait "$SERVE" 2>/dev/null || true
