# Shared by ops/demo.sh and ops/stop.sh (sourced, not run): where the demo keeps its state, and process checks.
#   VAR_DIR   (default $ROOT/var; a relative path is taken from the repository root): pids in run/, logs in log/,
#             Label Studio's data, trained models, the demo's data.
# shellcheck shell=bash
VAR=${VAR_DIR:-$ROOT/var}
case $VAR in /*) ;; *) VAR=$ROOT/$VAR ;; esac
VAR=${VAR%/}
RUN=$VAR/run
LOGS=$VAR/log

# alive PID: the process exists and is not a zombie (an orphan nobody reaped still answers kill -0)
alive() {
    local pid=$1 state
    kill -0 "$pid" 2>/dev/null || return 1
    state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)
    [ "$state" != "Z" ]
}

# running NAME: the pid in $RUN/NAME.pid is alive
running() { local f=$RUN/$1.pid; [ -s "$f" ] && alive "$(cat "$f")"; }
