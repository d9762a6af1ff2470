"""One thread budget per process: parsed once, applied to every runtime, kept by Ultralytics."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from backends.config import Settings
from backends.threads import apply_threads, thread_budget, thread_report


@pytest.fixture
def restore_threads(monkeypatch):
    before = torch.get_num_threads()
    for name in ("OMP_NUM_THREADS", "CPU_THREADS"):
        monkeypatch.setenv(name, os.environ.get(name, ""))
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)  # restored afterwards
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    yield
    torch.set_num_threads(before)


def test_budget_from_the_one_setting_or_the_cores():
    assert thread_budget({"CPU_THREADS": "3"}) == 3
    assert thread_budget({"TORCH_THREADS": "2"}) == 2  # the older name still works
    assert thread_budget({"CPU_THREADS": "3", "TORCH_THREADS": "2"}) == 3
    cores = len(os.sched_getaffinity(0))
    assert thread_budget({}) == cores
    assert thread_budget({}, processes=cores * 4) == 1
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(ValueError, match="CPU_THREADS"):
            thread_budget({"CPU_THREADS": bad})
    assert Settings.from_env({"CPU_THREADS": "5"}).cpu_threads == 5


def test_apply_sets_torch_and_the_environment_for_ctranslate2(restore_threads):
    from asr.models import cpu_threads

    assert apply_threads(1) == 1
    assert torch.get_num_threads() == 1
    assert os.environ["OMP_NUM_THREADS"] == "1" and cpu_threads() == 1
    assert thread_report() == {"budget": 1, "torch": 1, "gomp_spincount": "50000", "omp_wait_policy": None}


def test_openmp_spinning_is_bounded_unless_the_operator_chose():
    import subprocess
    import sys

    from backends.threads import SPIN_COUNT

    code = ("import os; from backends.threads import apply_threads; apply_threads(1); "
            "print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    for given, expected in (({}, f"{SPIN_COUNT} None"), ({"GOMP_SPINCOUNT": "7"}, "7 None"),
                            ({"OMP_WAIT_POLICY": "PASSIVE"}, "None PASSIVE")):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                             env={**env, **given})
        assert out.stdout.strip() == expected, out.stderr
    # gunicorn's settings set it in the master, before a worker (or a preloaded app) imports torch
    code = "import os, backends.gunicorn_conf; print(os.environ['GOMP_SPINCOUNT'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert out.stdout.strip() == SPIN_COUNT, out.stderr


def test_ultralytics_keeps_the_process_thread_count(restore_threads, weights_dir):
    from ultralytics import YOLO
    from ultralytics.utils import torch_utils

    from detection.runtime import keep_process_threads

    own = torch_utils.NUM_THREADS
    wanted = own + 1  # anything but Ultralytics' own choice, so that a reset shows
    apply_threads(wanted)
    keep_process_threads()
    YOLO(str(weights_dir / "yolov8n.pt")).predict(np.zeros((64, 64, 3), np.uint8), imgsz=64, verbose=False)
    assert torch.get_num_threads() == wanted
    torch_utils.NUM_THREADS = own


def test_a_process_without_torch_does_not_load_it_and_a_later_import_follows_the_budget():
    import subprocess
    import sys

    code = ("import sys; from backends.threads import apply_threads; apply_threads(1); "
            "print('torch' in sys.modules); import torch; print(torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert out.stdout.split() == ["False", "1"], out.stderr
