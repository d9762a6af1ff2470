#!/usr/bin/env bash
# The demo: Label Studio with a "question topics" project pre-annotated by the text backend.
#
#   bash ops/demo.sh        # start everything (again: starts only what is not running)
#   bash ops/stop.sh        # stop everything this started
#
# Starts in the background (pids in var/run/, logs in var/log/):
#   redis-server  127.0.0.1:6379 (or a free port when 6379 is taken)
#   text backend  gunicorn backends.wsgi:app, BACKEND=text_cls, 127.0.0.1:9090
#   RQ worker     training jobs (queue labelloop-train)
#   Label Studio  127.0.0.1:8080, data kept in var/label-studio/
# then creates the demo project (ops/demo_project.py) and prints the URL, login and token.
#
# Env: LABEL_STUDIO_PORT (8080), BACKEND_PORT (9090), REDIS_PORT (6379), WEIGHTS_DIR (../shared/models when
# present), LABEL_STUDIO_USERNAME / LABEL_STUDIO_PASSWORD / LABEL_STUDIO_USER_TOKEN (first run only: after that
# the login lives in var/label-studio/), DEMO_TASKS (200), SKIP_SETUP=1 (do not run ops/setup.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
PY=$ROOT/.venv/bin/python

LS_PORT=${LABEL_STUDIO_PORT:-8080}
BACKEND_PORT=${BACKEND_PORT:-9090}
REDIS_PORT=${REDIS_PORT:-6379}
RUN=$ROOT/var/run
LOGS=$ROOT/var/log
LS_DATA=$ROOT/var/label-studio
CREDENTIALS=$LS_DATA/demo-credentials.env

log() { printf '[demo] %s\n' "$*" >&2; }
die() { printf '[demo] ERROR: %s\n[demo] (what did start keeps running: bash ops/stop.sh)\n' "$*" >&2; exit 1; }

if [ -z "${SKIP_SETUP:-}" ]; then bash ops/setup.sh; fi
mkdir -p "$RUN" "$LOGS" "$ROOT/var/models" "$ROOT/var/redis" "$LS_DATA"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# running NAME: the pid in var/run/NAME.pid is alive
running() { local f=$RUN/$1.pid; [ -s "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; }
# wait_http URL SECONDS NAME: until URL answers 2xx, or fail with the tail of var/log/NAME.log
wait_http() {
    local url=$1 secs=$2 name=$3 i
    for ((i = 0; i < secs * 4; i++)); do
        if "$PY" - "$url" <<'PYEOF' 2>/dev/null; then return 0; fi
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
opener.open(sys.argv[1], timeout=2).read()
PYEOF
        if ! running "$name"; then break; fi
        sleep 0.25
    done
    tail -n 40 "$LOGS/$name.log" >&2 || true
    die "$name did not answer on $url (log: var/log/$name.log)"
}

# --- login: fixed on the first run (Label Studio keeps the user in its database) -----------------------------
if [ ! -f "$CREDENTIALS" ]; then
    rand() { "$PY" -c "import secrets; print(secrets.token_hex($1))"; }
    umask 077
    cat > "$CREDENTIALS" <<EOF
LS_USERNAME=${LABEL_STUDIO_USERNAME:-admin@example.com}
LS_PASSWORD=${LABEL_STUDIO_PASSWORD:-$(rand 8)}
LS_TOKEN=${LABEL_STUDIO_USER_TOKEN:-$(rand 20)}
EOF
    umask 022
fi
# shellcheck disable=SC1090
. "$CREDENTIALS"
if [ -n "${LABEL_STUDIO_USER_TOKEN:-}" ] && [ "$LABEL_STUDIO_USER_TOKEN" != "$LS_TOKEN" ]; then
    log "note: LABEL_STUDIO_USER_TOKEN is ignored: var/label-studio already has its user (token in $CREDENTIALS)"
fi

# --- weights and env shared by the backend and the worker ----------------------------------------------------
if [ -z "${WEIGHTS_DIR:-}" ] && [ -d "$ROOT/../shared/models" ]; then
    WEIGHTS_DIR=$(cd "$ROOT/../shared/models" && pwd)
fi
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} TRANSFORMERS_OFFLINE=${TRANSFORMERS_OFFLINE:-1}

# --- redis-server --------------------------------------------------------------------------------------------
if running redis; then
    REDIS_URL=$(cat "$RUN/redis.url")
    log "redis-server already running ($REDIS_URL)"
else
    if port_open "$REDIS_PORT"; then
        taken=$REDIS_PORT
        REDIS_PORT=$("$PY" -c 'from tests.services import free_port; print(free_port())')
        log "port $taken is taken: redis-server on $REDIS_PORT instead"
    fi
    command -v redis-server >/dev/null || die "redis-server is not installed (run ops/setup.sh)"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes --dir "$ROOT/var/redis" \
        --pidfile "$RUN/redis.pid" --logfile "$LOGS/redis.log" --save 60 1 --appendonly no
    REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
    echo "$REDIS_URL" > "$RUN/redis.url"
    for _ in $(seq 1 50); do port_open "$REDIS_PORT" && break; sleep 0.1; done
    port_open "$REDIS_PORT" || die "redis-server did not start (log: var/log/redis.log)"
    log "redis-server on $REDIS_URL"
fi

backend_env=(REDIS_URL="$REDIS_URL" MODEL_DIR="$ROOT/var/models" MEDIA_CACHE_DIR="$ROOT/var/media-cache"
             LABEL_STUDIO_URL="http://127.0.0.1:$LS_PORT" LABEL_STUDIO_API_KEY="$LS_TOKEN" BACKEND=text_cls
             BIND="127.0.0.1:$BACKEND_PORT" PORT="$BACKEND_PORT")
if [ -n "${WEIGHTS_DIR:-}" ]; then backend_env+=(WEIGHTS_DIR="$WEIGHTS_DIR"); fi

# --- text backend (gunicorn) ---------------------------------------------------------------------------------
if running backend; then
    log "text backend already running (pid $(cat "$RUN/backend.pid"))"
else
    port_open "$BACKEND_PORT" && die "port $BACKEND_PORT is taken by another program (set BACKEND_PORT)"
    setsid env "${backend_env[@]}" "$ROOT/.venv/bin/gunicorn" -c backends/gunicorn_conf.py backends.wsgi:app \
        >> "$LOGS/backend.log" 2>&1 < /dev/null &
    echo $! > "$RUN/backend.pid"
    log "text backend starting on 127.0.0.1:$BACKEND_PORT (pid $!)"
fi

# --- RQ worker for training jobs -----------------------------------------------------------------------------
if running worker; then
    log "RQ worker already running (pid $(cat "$RUN/worker.pid"))"
else
    setsid env "${backend_env[@]}" "$ROOT/.venv/bin/rq" worker --url "$REDIS_URL" labelloop-train \
        >> "$LOGS/worker.log" 2>&1 < /dev/null &
    echo $! > "$RUN/worker.pid"
    log "RQ worker started (pid $!)"
fi

# --- Label Studio --------------------------------------------------------------------------------------------
# The backend's first /setup can load a model: give Label Studio's calls to it more than the default 3 s.
export ML_TIMEOUT_SETUP=${ML_TIMEOUT_SETUP:-30} ML_TIMEOUT_HEALTH=${ML_TIMEOUT_HEALTH:-10}
if running label-studio; then
    log "Label Studio already running (pid $(cat "$RUN/label-studio.pid"))"
else
    port_open "$LS_PORT" && die "port $LS_PORT is taken by another program (set LABEL_STUDIO_PORT)"
    log "starting Label Studio on 127.0.0.1:$LS_PORT (a first run builds its database: about a minute)"
    "$PY" -m tests.services label-studio --port "$LS_PORT" --data-dir "$LS_DATA" --log "$LOGS/label-studio.log" \
        --pid-file "$RUN/label-studio.pid" --username "$LS_USERNAME" --password "$LS_PASSWORD" --token "$LS_TOKEN" \
        >&2 || die "Label Studio did not start (log: var/log/label-studio.log)"
fi

wait_http "http://127.0.0.1:$BACKEND_PORT/health" 300 backend
log "text backend answers on http://127.0.0.1:$BACKEND_PORT"

# --- the demo project ----------------------------------------------------------------------------------------
"$PY" ops/demo_project.py --url "http://127.0.0.1:$LS_PORT" --token "$LS_TOKEN" \
    --backend-url "http://127.0.0.1:$BACKEND_PORT" --tasks "${DEMO_TASKS:-200}" \
    --username "$LS_USERNAME" --password "$LS_PASSWORD"
echo
echo "Logs in var/log/, pids in var/run/. Stop everything with: bash ops/stop.sh"
