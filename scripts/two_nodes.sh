#!/usr/bin/env bash
# Bijou on two Ray nodes on this machine: a head node and a second node joined to it, with
# replicas placed on both (bench/configs/serve-2node.yaml). Prints where each replica runs,
# checks the app answers, and stops everything. Usage: scripts/two_nodes.sh [port]
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${1:-8000}"
RAY=.venv/bin/ray
# Every ray command of one cluster must agree on the auth mode (MODELS.md).
export RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0
trap '$RAY stop --force >/dev/null 2>&1 || true' EXIT

$RAY start --head --num-cpus 1 --resources '{"head_node": 1}' --port 6380 \
    --dashboard-host 127.0.0.1 --disable-usage-stats >/dev/null
$RAY start --address 127.0.0.1:6380 --num-cpus 1 --resources '{"second_node": 1}' >/dev/null
.venv/bin/python - <<'PY'
import ray
ray.init(address="auto", logging_level="ERROR")
for node in ray.nodes():
    if node["Alive"]:
        print("node", node["NodeID"][:8], {k: v for k, v in node["Resources"].items()
                                          if k in ("CPU", "head_node", "second_node")})
PY
.venv/bin/bijou serve --address auto --config bench/configs/serve-2node.yaml --port "$PORT" \
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
kill "$SERVE" 2>/dev/null || true
wait "$SERVE" 2>/dev/null || true
