#!/usr/bin/env bash
# The demo: Label Studio with one project per labelloop backend, each pre-annotated by its backend.
#
#   bash ops/demo.sh        # start everything (again: starts only what is not running, adds no duplicates)
#   bash ops/stop.sh        # stop everything this started
#
# Starts in the background (pids in $VAR_DIR/run/, logs in $VAR_DIR/log/; VAR_DIR defaults to var/):
#   redis-server   127.0.0.1:6379 (or a free port when 6379 is taken)
#   backends       every backend of backends/registry.py under gunicorn (backends.wsgi:app) on its own port:
#                  text_cls 9090, detection 9091, segmentation 9092, asr 9093, ner 9094, image_cls 9095,
#                  ocr 9096, keypoints 9097
#   worker         one `python -m backends worker`, for the training jobs of all backends (queue labelloop-train)
#   Label Studio   127.0.0.1:8080, data kept in $VAR_DIR/label-studio/
# then waits until each backend's model is loaded and creates the demo projects (ops/demo_project.py): questions
# (text_cls), photos with boxes (detection), photos with masks (segmentation), speech clips (asr), sentences with
# entities (ner: CoNLL-2003 dev sentences, else examples/demo_sentences.jsonl), photos to classify (image_cls), face landmarks (keypoints), rendered text images
# (ocr). A backend that
# cannot serve (weights missing: /health answers 503) is reported with the reason and its project skipped.
#
# Env: VAR_DIR (var/), LABEL_STUDIO_PORT (8080), REDIS_PORT (6379), TEXT_CLS_PORT (9090), DETECTION_PORT (9091),
# SEGMENTATION_PORT (9092), ASR_PORT (9093), NER_PORT (9094), IMAGE_CLS_PORT (9095), OCR_PORT (9096), KEYPOINTS_PORT (9097), DEMO_BACKENDS (all; e.g. "text_cls asr"), WEIGHTS_DIR
# (../shared/models when present), DEMO_TASKS (200 questions), DEMO_IMAGES (20), DEMO_CLIPS (10), DEMO_SENTENCES (100),
# DEMO_HEALTH_TIMEOUT (900 s for all models to load), BASIC_AUTH_USER / BASIC_AUTH_PASS (backends require them;
# the projects are connected with them), LABEL_STUDIO_USERNAME / LABEL_STUDIO_PASSWORD / LABEL_STUDIO_USER_TOKEN
# (first run only: after that the login lives in $VAR_DIR/label-studio/), SKIP_SETUP=1 (do not run ops/setup.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
PY=$ROOT/.venv/bin/python
# shellcheck source=ops/common.sh
. "$ROOT/ops/common.sh"

LS_PORT=${LABEL_STUDIO_PORT:-8080}
REDIS_PORT=${REDIS_PORT:-6379}
LS_DATA=$VAR/label-studio
CREDENTIALS=$LS_DATA/demo-credentials.env

log() { printf '[demo] %s\n' "$*" >&2; }
die() { printf '[demo] ERROR: %s\n[demo] (what did start keeps running: bash ops/stop.sh)\n' "$*" >&2; exit 1; }

if [ -z "${SKIP_SETUP:-}" ]; then bash ops/setup.sh; fi
mkdir -p "$RUN" "$LOGS" "$VAR/models" "$VAR/redis" "$LS_DATA"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

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
    log "note: LABEL_STUDIO_USER_TOKEN is ignored: $LS_DATA already has its user (token in $CREDENTIALS)"
fi

# --- weights and env shared by the backends and the worker ---------------------------------------------------
find_weights_dir
offline_env

# --- redis-server --------------------------------------------------------------------------------------------
if running redis; then
    REDIS_URL=$(cat "$RUN/redis.url")
    log "redis-server already running ($REDIS_URL)"
else
    if port_open "$REDIS_PORT"; then
        taken=$REDIS_PORT
        REDIS_PORT=$("$PY" -c 'from ops.services import free_port; print(free_port())')
        log "port $taken is taken: redis-server on $REDIS_PORT instead"
    fi
    command -v redis-server >/dev/null || die "redis-server is not installed (run ops/setup.sh)"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes --dir "$VAR/redis" \
        --pidfile "$RUN/redis.pid" --logfile "$LOGS/redis.log" --save 60 1 --appendonly no
    REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
    echo "$REDIS_URL" > "$RUN/redis.url"
    for _ in $(seq 1 50); do port_open "$REDIS_PORT" && break; sleep 0.1; done
    port_open "$REDIS_PORT" || die "redis-server did not start (log: $LOGS/redis.log)"
    log "redis-server on $REDIS_URL"
fi

common_env=(REDIS_URL="$REDIS_URL" MODEL_DIR="$VAR/models" MEDIA_CACHE_DIR="$VAR/media-cache"
            LABEL_STUDIO_URL="http://127.0.0.1:$LS_PORT" LABEL_STUDIO_API_KEY="$LS_TOKEN")
if [ -n "${WEIGHTS_DIR:-}" ]; then common_env+=(WEIGHTS_DIR="$WEIGHTS_DIR"); fi

# --- backends (gunicorn), one per registry entry -------------------------------------------------------------
# "name default-port" for every backend name
catalog=$("$PY" -c '
from backends.config import DEFAULT_PORT
from backends.registry import ADAPTERS
for name in ADAPTERS:
    print(name, DEFAULT_PORT.get(name, 0))
') || die "cannot read the backend registry (is .venv set up? run ops/setup.sh)"
wanted=" $(echo "${DEMO_BACKENDS:-}" | tr ',' ' ') "
backend_args=()   # --backend NAME=URL for each running backend, --skipped NAME=REASON for the others
while read -r name default_port; do
    if [ -n "${DEMO_BACKENDS:-}" ] && [[ $wanted != *" $name "* ]]; then continue; fi
    port_var=${name^^}_PORT
    port=${!port_var:-$default_port}
    if [ "$name" = text_cls ] && [ -z "${TEXT_CLS_PORT:-}" ] && [ -n "${BACKEND_PORT:-}" ]; then
        port=$BACKEND_PORT  # the name this script used before there was more than one backend
    fi
    if running "backend-$name"; then
        url=$(cat "$RUN/backend-$name.url" 2>/dev/null || echo "http://127.0.0.1:$port")
        log "$name backend already running (pid $(cat "$RUN/backend-$name.pid"), $url)"
    elif [ "$name" = text_cls ] && running backend; then  # started by the demo.sh of one backend only
        url=http://127.0.0.1:$port
        log "$name backend already running (pid $(cat "$RUN/backend.pid"), $url)"
    elif port_open "$port"; then
        reason="port $port is taken by another program (set $port_var)"
        log "$name: skipped ($reason)"
        backend_args+=(--skipped "$name=$reason")
        continue
    else
        url=http://127.0.0.1:$port
        # PROMETHEUS_MULTIPROC_DIR is left to gunicorn_conf.py: one folder per backend, not a shared one
        setsid env -u PROMETHEUS_MULTIPROC_DIR -u CONTROL_SOCKET "${common_env[@]}" BACKEND="$name" \
            BIND="127.0.0.1:$port" PORT="$port" "$ROOT/.venv/bin/gunicorn" -c backends/gunicorn_conf.py \
            backends.wsgi:app >> "$LOGS/backend-$name.log" 2>&1 < /dev/null &
        echo $! > "$RUN/backend-$name.pid"
        echo "$url" > "$RUN/backend-$name.url"
        log "$name backend starting on $url (pid $!, log $LOGS/backend-$name.log)"
    fi
    backend_args+=(--backend "$name=$url")
done <<< "$catalog"

# --- one RQ worker for the training jobs of every backend (each job names its backend) -----------------------
if running worker; then
    log "RQ worker already running (pid $(cat "$RUN/worker.pid"))"
else
    # our worker, not plain `rq worker`: it records a killed work-horse's job at once and waits out a Redis restart
    setsid env "${common_env[@]}" "$ROOT/.venv/bin/python" -m backends worker \
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
    "$PY" -m ops.services label-studio --port "$LS_PORT" --data-dir "$LS_DATA" --log "$LOGS/label-studio.log" \
        --pid-file "$RUN/label-studio.pid" --username "$LS_USERNAME" --password "$LS_PASSWORD" --token "$LS_TOKEN" \
        >&2 || die "Label Studio did not start (log: $LOGS/label-studio.log)"
fi

# --- the demo projects: wait for each model, then create, import and pre-annotate ----------------------------
"$PY" -m ops.demo_project --url "http://127.0.0.1:$LS_PORT" --token "$LS_TOKEN" \
    --username "$LS_USERNAME" --password "$LS_PASSWORD" --var-dir "$VAR" \
    --tasks "${DEMO_TASKS:-200}" --images "${DEMO_IMAGES:-20}" --clips "${DEMO_CLIPS:-10}" \
    --sentences "${DEMO_SENTENCES:-100}" \
    --health-timeout "${DEMO_HEALTH_TIMEOUT:-900}" "${backend_args[@]}" \
    || die "the demo projects were not all created (see above)"
stop_cmd="bash ops/stop.sh"
if [ "$VAR" != "$ROOT/var" ]; then stop_cmd="VAR_DIR=$VAR $stop_cmd"; fi
echo
echo "Logs in $LOGS/, pids in $RUN/. Stop everything with: $stop_cmd"
