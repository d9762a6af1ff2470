"""One CPU thread budget per process, for every native runtime a backend uses.

PyTorch, CTranslate2 (faster-whisper) and onnxruntime each size their thread pools to every core by default, and
Ultralytics silently resets PyTorch's to `cores - 1` at its first prediction. Processes that share cores and each
use all of them slow each other down many times over (a cached SAM click: 0.13 s alone, 0.9 s beside one busy
process). Every entry point (serve, gunicorn, worker, train, the benches) calls `apply_threads` once, from the one
setting `CPU_THREADS`; the task packages read the budget back (`OMP_NUM_THREADS`, `torch.get_num_threads()`)
instead of choosing their own.
"""
from __future__ import annotations

import os
import sys
from typing import Mapping

# An OpenMP thread (PyTorch's, CTranslate2's: both libgomp) that reaches a barrier spins up to GOMP_SPINCOUNT times
# (300,000 by default) before it sleeps. Beside another busy process the spinning threads crowd out the one with
# work: YOLOv8n at 2 threads took 370-580 ms an image beside two busy loops; spinning at most 50,000 times took
# 150-175 ms there and kept the quiet machine's 60-65 ms (the default 66-71 ms), where sleeping at once
# (OMP_WAIT_POLICY=PASSIVE) cost a quiet machine 1.3x (bench/results/threads.json). libgomp reads it when it loads,
# so it is set before torch or ctranslate2 is imported; an operator's own GOMP_SPINCOUNT or OMP_WAIT_POLICY wins.
SPIN_COUNT = "50000"


def thread_budget(env: Mapping[str, str] | None = None, processes: int = 1) -> int:
    """Threads one process may use: `CPU_THREADS` (or the older `TORCH_THREADS`), else its cores / `processes`.

    Raises:
        ValueError: a setting that is not a positive integer.
    """
    env = os.environ if env is None else env
    for name in ("CPU_THREADS", "TORCH_THREADS"):
        raw = (env.get(name) or "").strip()
        if raw:
            if not raw.isdigit() or int(raw) < 1:
                raise ValueError(f"{name} must be a positive integer, got {raw!r}")
            return int(raw)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, processes))


def apply_threads(n: int) -> int:
    """Give this process `n` threads in PyTorch, CTranslate2, onnxruntime and OpenMP, now and for what loads later,
    and OpenMP's bounded spinning (`bound_spinning`) where the runtime has not loaded yet.

    Returns:
        `n`.
    """
    n = max(1, int(n))
    bound_spinning()
    # Read by OpenMP runtimes when they start, by CTranslate2 through asr.models.cpu_threads, and by the benches'
    # and the workers' child processes.
    os.environ["OMP_NUM_THREADS"] = os.environ["CPU_THREADS"] = str(n)
    # PyTorch sizes its pool from OMP_NUM_THREADS when it is imported later; importing it here would cost a
    # process that never uses it (asr) a few hundred MiB
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    return n


def bound_spinning() -> None:
    """Set GOMP_SPINCOUNT to `SPIN_COUNT` unless the operator chose a spin count or a wait policy."""
    if not os.environ.get("GOMP_SPINCOUNT") and not os.environ.get("OMP_WAIT_POLICY"):
        os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT


def thread_report() -> dict[str, int | None]:
    """The thread counts in force, for /health."""
    torch = sys.modules.get("torch")
    torch_threads = torch.get_num_threads() if torch is not None else None
    raw = os.environ.get("CPU_THREADS", "")
    return {"budget": int(raw) if raw.isdigit() else None, "torch": torch_threads,
            "gomp_spincount": os.environ.get("GOMP_SPINCOUNT"), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
