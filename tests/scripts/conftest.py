"""Fixtures for scripts/sync.py: the command run in-process (fast) and one real text_cls backend per module."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
import requests

from ops.services import free_port, wait_for_port

BACKEND_USER, BACKEND_PASS = "label-studio", "sync-test-pass"


@pytest.fixture
def sync(label_studio, capsys):
    """Run `sync.py ARGS...` in this process against the session's Label Studio: (exit code, stdout, stderr)."""
    from scripts.labelloop_sync.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["--url", label_studio.url, "--api-key", label_studio.token, *map(str, args)])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="module")
def sdk(label_studio):
    from label_studio_sdk import LabelStudio

    return LabelStudio(base_url=label_studio.url, api_key=label_studio.token)


@contextlib.contextmanager
def start_text_backend(label_studio, weights_dir: Path, tmp: Path, **extra_env: str):
    """`python -m backends serve text_cls` with basic auth; training in-process unless REDIS_URL is given."""
    from tests.e2e.conftest import Process

    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "WEIGHTS_DIR": str(weights_dir), "MODEL_DIR": str(tmp / "models"),
           "MEDIA_CACHE_DIR": str(tmp / "media"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": label_studio.token,
           "BASIC_AUTH_USER": BACKEND_USER, "BASIC_AUTH_PASS": BACKEND_PASS, "RETRAIN_EVERY": "0",
           "LOG_LEVEL": "INFO"}
    env.pop("REDIS_URL", None)
    env.update(extra_env)
    proc = Process(["serve", "text_cls", "--host", "127.0.0.1", "--port", str(port)], env, tmp / "backend.log")
    try:
        wait_for_port(port, 120, proc.proc)
        proc.url = f"http://127.0.0.1:{port}"
        assert requests.get(proc.url + "/health", timeout=10).ok
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def text_backend(label_studio, weights_dir, tmp_path_factory):
    """A text_cls backend for the module, training in-process (no Redis)."""
    with start_text_backend(label_studio, weights_dir, tmp_path_factory.mktemp("text-backend")) as proc:
        yield proc


def write_config(path: Path, title: str, backend_url: str | None, **extra: str) -> Path:
    """A text_cls project file for the tests."""
    lines = [f"title: {title!r}", "template: text_cls", "labels: [Location, Human, Numeric, Description]",
             "description: sync.py test project", "instructions: <p>Pick the answer type.</p>",
             "overlap: {maximum_annotations: 2, overlap_cohort_percentage: 100}",
             "views: {most_uncertain: true, tiers: {hard_below: 0.3, easy_from: 0.7}}"]
    if backend_url:
        lines += ["ml_backends:", f"  - url: {backend_url}", "    title: labelloop text_cls",
                  "    auth: {user: " + BACKEND_USER + ", password: \"${SYNC_TEST_BACKEND_PASS}\"}",
                  "    interactive: false"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    path.write_text("\n".join(lines) + "\n")
    return path
