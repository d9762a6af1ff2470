#!/usr/bin/env bash
# Stop what ops/demo.sh started (by the pids in $VAR_DIR/run/, default var/run/): the RQ worker, every backend,
# Label Studio and redis-server. Data in $VAR_DIR is kept.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# shellcheck source=ops/common.sh
. "$ROOT/ops/common.sh"

# stop NAME PATTERN: TERM the pid in $RUN/NAME.pid if its command line matches PATTERN, KILL after 20 s
stop() {
    local name=$1 pattern=$2 f=$RUN/$1.pid pid i
    [ -s "$f" ] || { rm -f "$f"; return 0; }
    pid=$(cat "$f")
    if ! alive "$pid"; then
        echo "[stop] $name: not running"; rm -f "$f"; return 0
    fi
    if ! tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern"; then
        echo "[stop] $name: pid $pid is not $pattern any more; leaving it alone"; rm -f "$f"; return 0
    fi
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 80; i++)); do alive "$pid" || break; sleep 0.25; done
    if alive "$pid"; then
        echo "[stop] $name: still running after 20 s, killing"
        # started with setsid / a new session: the process group holds its children (gunicorn and RQ workers)
        if [ "$(proc_stat "$pid" 3)" = "$pid" ]; then kill -KILL -- "-$pid" 2>/dev/null
        else kill -KILL "$pid" 2>/dev/null; fi
    fi
    echo "[stop] $name stopped (pid $pid)"
    rm -f "$f"
}

[ -d "$RUN" ] || { echo "[stop] nothing to stop: no $RUN"; exit 0; }
stop worker "backends worker\\|bin/rq"  # python -m backends worker; rq worker in earlier versions
shopt -s nullglob
for f in "$RUN"/backend-*.pid "$RUN"/backend.pid; do  # backend.pid: the text backend of earlier versions
    name=$(basename "$f" .pid)
    stop "$name" "gunicorn"
    rm -f "$RUN/$name.url"
done
stop label-studio "label-studio"
stop redis "redis-server"
rm -f "$RUN/redis.url"
