#!/usr/bin/env bash
# The LLM under load: the one-process app (bijou.serve.local behind the same HTTP API, what
# the Agent replica of the Ray app runs inside) started once per LLM setting, then
# bench/load.py's ladder of concurrent shoppers (chat only) against it; a JSON per setting.
#
#   bash bench/llm_under_load.sh [OUT=var/bench/llm-load] [SECONDS=30] [PORT=18915]
#                                [SETTINGS="one-copy two-copies"]
#
# Settings (BIJOU__ environment overrides of the defaults):
#   one-copy:     one llama.cpp copy on 2 threads, a queued turn waits as long as its own
#                 timeout allows (llm.queue_timeout_s unset);
#   two-copies:   llm.replicas 2 on 1 thread each, queued work given up after 4 s;
#   default:      the shipped settings: one copy on 2 threads, queued work given up after 4 s;
#   llama-server: llama.cpp's server (scripts/build_llama_server.sh) with 4 parallel slots
#                 batched together on 2 threads, queued work given up after 4 s;
#                 llama-server-2 and llama-server-8 the same with 2 and 8 slots.
set -euo pipefail
OUT=${1:-var/bench/llm-load}
SECONDS_PER_LEVEL=${2:-30}
PORT=${3:-18915}
mkdir -p "$OUT"
export RAY_USAGE_STATS_ENABLED=0 HF_HUB_OFFLINE=1

run_setting() {
  local name=$1; shift
  env "$@" python -c "
import uvicorn
from bijou.config import load_config
from bijou.serve.api import create_app
from bijou.serve.local import LocalBackend
config = load_config()
uvicorn.run(create_app(config, lambda: LocalBackend.load(config)), port=$PORT, log_level='warning')
" > "$OUT/$name.serve.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 120); do
    curl -sf "http://127.0.0.1:$PORT/readyz" > /dev/null && break
    sleep 5
  done
  # One unmeasured turn: the first loads what the agent reads lazily.
  curl -sf -X POST "http://127.0.0.1:$PORT/v1/chat" -H 'content-type: application/json' \
    -d '{"message": "gold earrings under 2000"}' > /dev/null
  python bench/load.py --url "http://127.0.0.1:$PORT" --levels 1 5 20 50 --search 0 \
    --voice 0 --seconds "$SECONDS_PER_LEVEL" --json "$OUT/$name.json" | tail -8
  kill -INT "$pid"; wait "$pid" || true
}

declare -A SETTING=(
  [one-copy]="BIJOU__LLM__REPLICAS=1 BIJOU__LLM__THREADS=2 BIJOU__LLM__QUEUE_TIMEOUT_S="
  [two-copies]="BIJOU__LLM__REPLICAS=2 BIJOU__LLM__THREADS=1 BIJOU__LLM__QUEUE_TIMEOUT_S=4"
  [default]="BIJOU__LLM__REPLICAS=1 BIJOU__LLM__THREADS=2 BIJOU__LLM__QUEUE_TIMEOUT_S=4"
  [llama-server]="BIJOU__LLM__BACKEND=llama-server BIJOU__LLM__SLOTS=4 BIJOU__LLM__THREADS=2 BIJOU__LLM__QUEUE_TIMEOUT_S=4"
  [llama-server-2]="BIJOU__LLM__BACKEND=llama-server BIJOU__LLM__SLOTS=2 BIJOU__LLM__THREADS=2 BIJOU__LLM__QUEUE_TIMEOUT_S=4"
  [llama-server-8]="BIJOU__LLM__BACKEND=llama-server BIJOU__LLM__SLOTS=8 BIJOU__LLM__THREADS=2 BIJOU__LLM__QUEUE_TIMEOUT_S=4"
)
for name in ${4:-one-copy two-copies}; do
  # shellcheck disable=SC2086
  run_setting "$name" ${SETTING[$name]:?unknown setting $name}
done
