"""Backends as real processes, next to the real Label Studio and redis-server of the session."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from ops.services import ROOT, free_port, wait_for_port


class Process:
    """A labelloop process (`python -m backends ...`) with its log file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "backends", *args], cwd=ROOT, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


@pytest.fixture
def start_backend(tmp_path, weights_dir):
    """Start `python -m backends serve NAME` (and an RQ worker when REDIS_URL is given) with extra env."""
    started: list[Process] = []

    def start(name: str, worker: bool = False, **env_extra: str):
        port = free_port()
        env = {**os.environ, "WEIGHTS_DIR": str(weights_dir), "MODEL_DIR": str(tmp_path / "models"),
               "MEDIA_CACHE_DIR": str(tmp_path / "media"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "LOG_LEVEL": "DEBUG", **env_extra}
        server = Process(["serve", name, "--host", "127.0.0.1", "--port", str(port)], env,
                         tmp_path / f"{name}-{port}.log")
        started.append(server)
        try:
            wait_for_port(port, 120, server.proc)
        except Exception as e:
            raise RuntimeError(f"{name} did not start: {e}\n{server.log()[-3000:]}") from e
        server.url = f"http://127.0.0.1:{port}"
        assert requests.get(server.url + "/health", timeout=10).ok
        if worker:
            server.worker = Process(["worker"], env, tmp_path / f"worker-{port}.log")
            started.append(server.worker)
        return server

    yield start
    for p in reversed(started):
        p.stop()
