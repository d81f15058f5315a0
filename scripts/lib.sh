# Shared by scripts/dev and scripts/test: make sure the tools and a Redis are there.
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
