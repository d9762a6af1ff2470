#!/usr/bin/env bash
# Stop what ops/demo.sh started (by the pids in var/run/). Data in var/ is kept.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUN=var/run

# stop NAME PATTERN: TERM the pid in var/run/NAME.pid if its command line matches PATTERN, KILL after 20 s
stop() {
    local name=$1 pattern=$2 f=$RUN/$1.pid pid i
    [ -s "$f" ] || { rm -f "$f"; return 0; }
    pid=$(cat "$f")
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "[stop] $name: not running"; rm -f "$f"; return 0
    fi
    if ! tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern"; then
        echo "[stop] $name: pid $pid is not $pattern any more; leaving it alone"; rm -f "$f"; return 0
    fi
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 80; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then
        echo "[stop] $name: still running after 20 s, killing"
        # started with setsid / a new session: the process group holds its children (gunicorn and RQ workers)
        if [ "$(sed "s/.*) //" "/proc/$pid/stat" | cut -d" " -f3)" = "$pid" ]; then kill -KILL -- "-$pid" 2>/dev/null
        else kill -KILL "$pid" 2>/dev/null; fi
    fi
    echo "[stop] $name stopped (pid $pid)"
    rm -f "$f"
}

stop worker "rq"
stop backend "gunicorn"
stop label-studio "label-studio"
stop redis "redis-server"
rm -f "$RUN/redis.url"
