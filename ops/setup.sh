#!/usr/bin/env bash
# Idempotent set-up on a Debian/Ubuntu machine (as root, or with sudo for apt-get):
#   redis-server, ffmpeg, espeak-ng (apt), .venv (project: requirements-dev.txt + constraints.txt), .venv-ls (Label Studio),
#   and the cached migrated Label Studio database under .cache/.
# A second run is fast: each venv is only (re)installed when the hash of what it is built from changed.
# Env: PYTHON (default python3), LABEL_STUDIO_VERSION (default 1.23.2), LABEL_STUDIO_VENV (default .venv-ls),
#      SETUP_FORCE=1 to reinstall both venvs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

PYTHON=${PYTHON:-python3}
LS_VERSION=${LABEL_STUDIO_VERSION:-1.23.2}
LS_VENV=${LABEL_STUDIO_VENV:-$ROOT/.venv-ls}
STAMP_NAME=.labelloop-setup.sha256

log() { printf '[setup] %s\n' "$*" >&2; }

SUDO=
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; fi
fi
APT_UPDATED=
apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        log "apt-get not found: install $* yourself"; return 1
    fi
    if [ "$(id -u)" -ne 0 ] && [ -z "$SUDO" ]; then
        log "need root or sudo to install $*"; return 1
    fi
    if [ -z "$APT_UPDATED" ]; then
        log "apt-get update"
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- system packages -----------------------------------------------------------------------------------------
# redis-server: training jobs and tests; ffmpeg: decoding audio for asr; espeak-ng: speech for the asr tests
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
if [ ${#missing[@]} -gt 0 ]; then
    apt_install "${missing[@]}"
fi
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    apt_install python3 python3-venv python3-pip
fi
if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    apt_install python3-venv
fi

# --- virtual environments ------------------------------------------------------------------------------------
py_id() { "$PYTHON" -c 'import sys, platform; print(sys.version, platform.machine())'; }

# ensure_venv DIR HASH PIP-ARGS...: (re)create DIR and pip install PIP-ARGS unless DIR's stamp equals HASH
ensure_venv() {
    local dir=$1 hash=$2; shift 2
    if [ -z "${SETUP_FORCE:-}" ] && [ -f "$dir/$STAMP_NAME" ] && [ "$(cat "$dir/$STAMP_NAME")" = "$hash" ] \
        && "$dir/bin/python" -c '' >/dev/null 2>&1; then
        log "$dir is up to date"
        return 0
    fi
    if ! "$dir/bin/python" -c '' >/dev/null 2>&1; then
        log "creating $dir"
        rm -rf "$dir"
        "$PYTHON" -m venv "$dir"
        "$dir/bin/python" -m pip install -q --upgrade pip
    fi
    rm -f "$dir/$STAMP_NAME"
    log "pip install $* (into $dir)"
    "$dir/bin/python" -m pip install -q "$@"
    echo "$hash" > "$dir/$STAMP_NAME"
}

PROJECT_HASH=$({ py_id; cat requirements.txt requirements-dev.txt constraints.txt; } | sha256sum | cut -d' ' -f1)
ensure_venv "$ROOT/.venv" "$PROJECT_HASH" -r requirements-dev.txt -c constraints.txt

LS_HASH=$({ py_id; echo "label-studio==$LS_VERSION"; } | sha256sum | cut -d' ' -f1)
ensure_venv "$LS_VENV" "$LS_HASH" "label-studio==$LS_VERSION"

# --- migrated Label Studio database (about a minute the first time, then cached per version) -----------------
LABEL_STUDIO_VENV=$LS_VENV "$ROOT/.venv/bin/python" -m ops.services ls-template >&2

log "done"
