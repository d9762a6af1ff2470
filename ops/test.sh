#!/usr/bin/env bash
# The test command (README, CI): set-up, then the whole test suite against real services.
# The tests start their own redis-server and Label Studio (ops/services.py), on free local ports.
# Extra arguments go to pytest, e.g.  bash ops/test.sh -k label_studio_server -x
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# shellcheck source=ops/common.sh
. "$ROOT/ops/common.sh"

bash ops/setup.sh

find_weights_dir
if [ -n "${WEIGHTS_DIR:-}" ]; then export WEIGHTS_DIR; fi
export LABELLOOP_REQUIRE_SERVICES=1
# every text_cls server the tests start exports the same int8 encoder (keyed by the weights' digest): once a run
# instead of 10-30 s per server
export TEXT_ONNX_DIR="${TEXT_ONNX_DIR:-$ROOT/.cache/text-onnx}"
# Ultralytics must not reach for GitHub (fonts, weights, pip) during the tests either; detection/runtime.py gives it
# a settings folder of its own
offline_env force

set +e
"$ROOT/.venv/bin/python" -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "[test] pytest collected no tests: failing" >&2
    rc=1
fi
exit "$rc"
