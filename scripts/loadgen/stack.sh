# Starts and stops the processes that scripts/bench and scripts/fault-suite measure: a private
# redis-server on its own port, the provider simulator, the gateway and chat-workers (and, when
# asked, a health-data-service, a tts-worker or a semantic-worker), all release builds, each with its log under $OUT.
# Sourced after scripts/lib.sh.
# shellcheck shell=bash

STACK_PIDS=()
STACK_WORKERS=()

# stack_init <name> [more packages to build, e.g. health-data-service]
# Builds the release binaries and sets BIN, OUT and the settings every process shares.
stack_init() {
  local name="$1" pkg
  shift
  local packages=(gateway-service chat-worker provider-sim loadgen "$@") flags=()
  for pkg in "${packages[@]}"; do flags+=(-p "$pkg"); done
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  log "building (release): ${packages[*]}"
  cargo build --release --locked "${flags[@]}"
  BIN="${CARGO_TARGET_DIR:-target}/release"
  OUT="${OUT:-${CARGO_TARGET_DIR:-target}/$name/$(date +%Y%m%d-%H%M%S)}"
  mkdir -p "$OUT"
  OUT="$(cd "$OUT" && pwd)"
  RESULTS="$OUT/results.jsonl"
  : >"$RESULTS"
  PG_ADMIN="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}"
  ensure_postgres "$PG_ADMIN/postgres"
  STACK_DB="${STACK_DB:-ai$name}"
  STACK_DB="${STACK_DB//-/_}"
  export DATABASE_URL="$PG_ADMIN/$STACK_DB"
  psql "$PG_ADMIN/postgres" -qc "DROP DATABASE IF EXISTS \"$STACK_DB\" WITH (FORCE)" >/dev/null
  REDIS_PORT="${REDIS_PORT:-$("$BIN/loadgen" free-port)}"
  export REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
  SIM_PORT="$("$BIN/loadgen" free-port)"
  GATEWAY_PORT="$("$BIN/loadgen" free-port)"
  export GATEWAY_ADDR="127.0.0.1:$GATEWAY_PORT"
  export LOADGEN_GATEWAY="http://127.0.0.1:$GATEWAY_PORT"
  export LOADGEN_SIM="http://127.0.0.1:$SIM_PORT"
  export LOADGEN_PG_URL="$DATABASE_URL"
  export APP_ENV=dev
  JWT_SECRET="${name}-$(date +%s)-$RANDOM$RANDOM"
  export JWT_SECRET
  export RUST_LOG="${RUST_LOG:-warn}"
  # The per-tenant limits must not throttle the load (every client is one tenant): requests,
  # and open WebSockets (the idle phase holds 10,000). The login limits stay on.
  export RATE_LIMIT__REQUESTS_PER_MINUTE=0
  export WS__MAX_PER_TENANT=0
  # One storage directory for every process: uploads the gateway stores, workers read.
  export STORAGE__DIR="$OUT/storage"
  export OPENAI_API_KEY=sk-bench
  export OPENAI_BASE_URL="http://127.0.0.1:$SIM_PORT/v1"
  STACK_RUN=0
  trap stack_cleanup EXIT
  trap 'exit 130' INT TERM
  log "output: $OUT"
}

# A fresh key namespace for each start, so consumers and streams of earlier phases stay apart.
stack_namespace() {
  STACK_RUN=$((STACK_RUN + 1))
  export STREAM_PREFIX="bench${RANDOM}r$STACK_RUN"
}

redis_start() {
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --maxmemory-policy noeviction --daemonize yes --dir "$OUT" \
    --pidfile "$OUT/redis.pid" --logfile "$OUT/redis.log"
  for _ in $(seq 100); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.05
  done
  REDIS_PID="$(cat "$OUT/redis.pid")"
}

redis_stop() {
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
}

# stack_up "<provider-sim flags>" [workers] [VAR=value ... for the workers]
stack_up() {
  local sim_flags="$1" workers="${2:-1}"
  shift 2 || shift $#
  stack_namespace
  redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 || redis_start
  # shellcheck disable=SC2086 # the flags are words
  "$BIN/provider-sim" --addr "127.0.0.1:$SIM_PORT" $sim_flags >"$OUT/sim.log" 2>&1 &
  SIM_PID=$!
  STACK_PIDS+=("$SIM_PID")
  "$BIN/gateway-service" >>"$OUT/gateway.log" 2>&1 &
  GATEWAY_PID=$!
  STACK_PIDS+=("$GATEWAY_PID")
  "$BIN/loadgen" wait-http "$LOADGEN_SIM/health" --timeout-secs 30
  # The gateway creates and migrates the database before it is ready; workers start after it.
  "$BIN/loadgen" wait-http "$LOADGEN_GATEWAY/ready" --timeout-secs 120
  STACK_WORKER_ENV=("$@")
  STACK_WORKERS=()
  for i in $(seq "$workers"); do worker_start "$i"; done
  wait_consumers "$workers"
}

# Starts a health-data-service on a free port of 127.0.0.1 (after stack_up: the gateway has
# migrated the database); sets HEALTH_PID and LOADGEN_HEALTH. Needs `stack_init <name>
# health-data-service`. Extra VAR=value arguments go to its environment.
health_up() {
  local port
  port="$("$BIN/loadgen" free-port)"
  env HEALTH_ADDR="127.0.0.1:$port" "$@" "$BIN/health-data-service" >>"$OUT/health.log" 2>&1 &
  HEALTH_PID=$!
  STACK_PIDS+=("$HEALTH_PID")
  export LOADGEN_HEALTH="http://127.0.0.1:$port"
  "$BIN/loadgen" wait-http "$LOADGEN_HEALTH/ready" --timeout-secs 60
}

# Starts a tts-worker (after stack_up) whose OpenAI, ElevenLabs and Deepgram are the stack's simulator,
# storing clips under $OUT/storage; sets TTS_PID. Needs `stack_init <name> tts-worker`. Extra
# VAR=value arguments go to its environment (e.g. WORKER__CONCURRENCY=256).
tts_up() {
  env OPENAI_API_KEY=sk-bench OPENAI_BASE_URL="$LOADGEN_SIM/v1" \
    ELEVENLABS_API_KEY=xi-bench ELEVENLABS_BASE_URL="$LOADGEN_SIM" \
    DEEPGRAM_API_KEY=dg-bench DEEPGRAM_BASE_URL="$LOADGEN_SIM" \
    STORAGE__DIR="$OUT/storage" "$@" "$BIN/tts-worker" >>"$OUT/tts.log" 2>&1 &
  TTS_PID=$!
  STACK_PIDS+=("$TTS_PID")
  wait_reading tts "$TTS_PID" "$OUT/tts.log"
}

# wait_reading <service> <pid> <log>: waits (60 s at most) until the service's consumer group
# exists, which it does once a worker reads; fails when the process died or never read.
wait_reading() {
  local stream="$STREAM_PREFIX:$APP_ENV:$1:streams:main"
  for _ in $(seq 600); do
    redis-cli -p "$REDIS_PORT" XINFO GROUPS "$stream" 2>/dev/null | grep -q "$1-workers" && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  log "the $1 worker did not start reading (see $3)"
  return 1
}

# Starts a semantic-worker (after stack_up): the offline model, Qdrant Edge in a fresh directory
# under $OUT, uploads read from $OUT/storage (the gateway's); sets SEMANTIC_PID. Needs
# `stack_init <name> semantic-worker`. Extra VAR=value arguments go to its environment.
semantic_up() {
  env SEMANTIC__STORE_DIR="$OUT/semantic-$STACK_RUN" SEMANTIC__EMBEDDING_PROVIDER=local \
    "$@" "$BIN/semantic-worker" >>"$OUT/semantic.log" 2>&1 &
  SEMANTIC_PID=$!
  STACK_PIDS+=("$SEMANTIC_PID")
  wait_reading semantic "$SEMANTIC_PID" "$OUT/semantic.log"
}

# Starts worker number $1 (1-based) with STACK_WORKER_ENV; its pid goes to STACK_WORKERS.
worker_start() {
  local i="$1"
  env "${STACK_WORKER_ENV[@]}" "$BIN/chat-worker" >>"$OUT/worker-$i.log" 2>&1 &
  STACK_WORKERS[i - 1]=$!
  STACK_PIDS+=("$!")
  # The fault suite kills workers on purpose: no "Killed" notices from the shell.
  disown "$!"
}

# Waits until at least $1 chat-workers are reading (a connection whose last command is
# XREADGROUP each; a group's consumer appears only with its first entry).
wait_consumers() {
  local want="$1" have
  for _ in $(seq 600); do
    have=$(redis-cli -p "$REDIS_PORT" CLIENT LIST 2>/dev/null | grep -c 'cmd=xreadgroup' || true)
    [ "${have:-0}" -ge "$want" ] && return 0
    sleep 0.1
  done
  log "chat-workers did not start reading (see $OUT/worker-*.log)"
  return 1
}

# --proc flags for loadgen: every process of the stack.
stack_procs() {
  local args=(--proc "gateway=$GATEWAY_PID" --proc "sim=$SIM_PID" --proc "redis=$REDIS_PID")
  [ -z "${HEALTH_PID:-}" ] || args+=(--proc "health=$HEALTH_PID")
  [ -z "${TTS_PID:-}" ] || args+=(--proc "tts=$TTS_PID")
  [ -z "${SEMANTIC_PID:-}" ] || args+=(--proc "semantic=$SEMANTIC_PID")
  local i=1 name
  for pid in "${STACK_WORKERS[@]}"; do
    name=worker
    [ "$i" -eq 1 ] || name="worker$i"
    args+=(--proc "$name=$pid")
    i=$((i + 1))
  done
  printf '%s\n' "${args[@]}"
}

# Stops the simulator, the gateway and the workers (TERM, then KILL after 40 s).
stack_down() {
  local pid
  for pid in "${STACK_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${STACK_PIDS[@]}"; do
    for _ in $(seq 400); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  STACK_PIDS=()
  STACK_WORKERS=()
  HEALTH_PID=""
  TTS_PID=""
  SEMANTIC_PID=""
  unset LOADGEN_HEALTH
  redis-cli -p "$REDIS_PORT" flushall >/dev/null 2>&1 || true
}

stack_cleanup() {
  trap - EXIT
  stack_down
  redis_stop
  if [ -z "${KEEP_DB:-}" ] && [ -n "${STACK_DB:-}" ]; then
    psql "$PG_ADMIN/postgres" -qc "DROP DATABASE IF EXISTS \"$STACK_DB\" WITH (FORCE)" >/dev/null 2>&1 || true
  fi
}
