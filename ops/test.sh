#!/usr/bin/env bash
# The test command (README, CI): set-up, then the whole test suite against real services.
# The tests start their own redis-server and Label Studio (ops/services.py), on free local ports.
# Extra arguments go to pytest, e.g.  bash ops/test.sh -k label_studio_server -x
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

bash ops/setup.sh

if [ -z "${WEIGHTS_DIR:-}" ] && [ -d "$ROOT/../shared/models" ]; then
    WEIGHTS_DIR=$(cd "$ROOT/../shared/models" && pwd)
fi
if [ -n "${WEIGHTS_DIR:-}" ]; then export WEIGHTS_DIR; fi
export LABELLOOP_REQUIRE_SERVICES=1
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
# Ultralytics must not reach for GitHub (fonts, weights, pip) during the tests; detection/runtime.py gives it a
# settings folder of its own
export YOLO_OFFLINE=1

set +e
"$ROOT/.venv/bin/python" -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "[test] pytest collected no tests: failing" >&2
    rc=1
fi
exit "$rc"
