# Shared by ops/demo.sh, ops/stop.sh and ops/test.sh (sourced, not run, after setting ROOT): where the demo keeps its
# state, process checks, and where the model weights are.
#   VAR_DIR   (default $ROOT/var; a relative path is taken from the repository root): pids in run/, logs in log/,
#             Label Studio's data, trained models, the demo's data.
# shellcheck shell=bash
VAR=${VAR_DIR:-$ROOT/var}
case $VAR in /*) ;; *) VAR=$ROOT/$VAR ;; esac
VAR=${VAR%/}
RUN=$VAR/run
LOGS=$VAR/log

# proc_stat PID N: the Nth field of /proc/PID/stat after the command name (1 state, 2 ppid, 3 process group)
proc_stat() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f"$2"; }

# alive PID: the process exists and is not a zombie (an orphan nobody reaped still answers kill -0)
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    [ "$(proc_stat "$1" 1)" != "Z" ]
}

# running NAME: the pid in $RUN/NAME.pid is alive
running() { local f=$RUN/$1.pid; [ -s "$f" ] && alive "$(cat "$f")"; }

# find_weights_dir: WEIGHTS_DIR defaults to ../shared/models (made absolute) when that folder is there; not exported
find_weights_dir() {
    if [ -z "${WEIGHTS_DIR:-}" ] && [ -d "$ROOT/../shared/models" ]; then
        WEIGHTS_DIR=$(cd "$ROOT/../shared/models" && pwd)
    fi
}

# offline_env: export HF_HUB_OFFLINE and TRANSFORMERS_OFFLINE (default 1), and YOLO_OFFLINE (default 1) when
# WEIGHTS_DIR is set: the YOLO weights are there, Ultralytics must not go looking on the internet.
# offline_env force: all three are 1 whatever the environment says (the tests: no fonts, weights or pip from GitHub).
offline_env() {
    if [ "${1:-}" = force ]; then
        export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 YOLO_OFFLINE=1
        return
    fi
    export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} TRANSFORMERS_OFFLINE=${TRANSFORMERS_OFFLINE:-1}
    if [ -n "${WEIGHTS_DIR:-}" ]; then export YOLO_OFFLINE=${YOLO_OFFLINE:-1}; fi
}
