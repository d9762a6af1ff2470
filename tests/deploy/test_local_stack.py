"""The README's main command: `bash ops/demo.sh` brings up the whole local stack, `bash ops/stop.sh` takes it down.

A second stack of its own (temp VAR_DIR, free ports) beside whatever a developer runs: redis-server, every
backend of the registry under gunicorn, one RQ worker and Label Studio; one pre-annotated demo project per
backend whose weights are there (the others must be reported as skipped).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from backends.registry import ADAPTERS
from ops.demo_project import DEMOS
from ops.services import ROOT, ServiceUnavailable, free_port, label_studio_exe, port_in_use
from tests.conftest import _unavailable

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TOKEN = "labelloop-demo-test-token-0123456789abc"  # 40 characters at most
_SCRUB = ("REDIS_URL", "MODEL_DIR", "MEDIA_CACHE_DIR", "DEMO_BACKENDS", "BACKEND_PORT", "BACKEND", "PORT", "BIND",
          "PROMETHEUS_MULTIPROC_DIR", "CONTROL_SOCKET", "WORKERS")


def _session_members(leaders: set[int]) -> dict[int, str]:
    """Live (not zombie) processes whose session is one of `leaders` (everything demo.sh started runs in a session
    of its own: setsid, Label Studio's new session, redis' daemon), with their command names."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, rest = stat.read_text().rsplit(") ", 1)
        except OSError:
            continue
        fields = rest.split()
        if fields[0] != "Z" and int(fields[3]) in leaders:
            found[int(stat.parent.name)] = name.split("(", 1)[1]
    return found


def _pids(run_dir: Path) -> set[int]:
    pids = set()
    for f in run_dir.glob("*.pid"):
        try:
            pids.add(int(f.read_text().strip()))
        except ValueError:
            pass
    return pids


def test_demo_starts_every_backend_with_a_preannotated_project_and_stop_ends_it(tmp_path, weights_dir):
    missing = [what for what, ok in (("redis-server", shutil.which("redis-server")),
                                     ("gunicorn", (ROOT / ".venv/bin/gunicorn").is_file()),
                                     ("rq", (ROOT / ".venv/bin/rq").is_file())) if not ok]
    if missing:
        _unavailable(f"not installed: {', '.join(missing)} (run ops/setup.sh)")
    try:
        label_studio_exe()
    except ServiceUnavailable as e:
        _unavailable(str(e))

    var = tmp_path / "var"
    ports = {"LABEL_STUDIO_PORT": free_port(), "REDIS_PORT": free_port(),
             **{f"{name.upper()}_PORT": free_port() for name in ADAPTERS}}
    env = {k: v for k, v in os.environ.items()
           if k not in _SCRUB and not k.startswith(("LABEL_STUDIO_", "BASIC_AUTH_")) and not k.endswith("_PORT")}
    env.update({k: str(v) for k, v in ports.items()})
    env.update({
        "SKIP_SETUP": "1", "VAR_DIR": str(var), "WEIGHTS_DIR": str(weights_dir),
        "DEMO_TASKS": "12", "DEMO_IMAGES": "3", "DEMO_CLIPS": "2", "DEMO_HEALTH_TIMEOUT": "600",
        "YOLO_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TQDM_DISABLE": "1",
        "LABEL_STUDIO_USERNAME": "demo@example.com", "LABEL_STUDIO_PASSWORD": "demo-pass",
        "LABEL_STUDIO_USER_TOKEN": TOKEN,  # the demo as the README runs it: backends without basic auth
    })
    ls_url = f"http://127.0.0.1:{ports['LABEL_STUDIO_PORT']}"
    out_path = tmp_path / "demo.out"
    http, plain = requests.Session(), requests.Session()  # Label Studio with the token; backends without
    http.trust_env = plain.trust_env = False
    unavailable: dict[str, str] = {}
    leaders: set[int] = set()
    started = time.monotonic()
    try:
        with open(out_path, "wb") as out:
            demo = subprocess.run(["bash", "ops/demo.sh"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=1500)
        leaders = _pids(var / "run")
        output = out_path.read_text(errors="replace")
        logs = "\n".join(f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-30:])
                         for p in sorted((var / "log").glob("*.log")))
        assert demo.returncode == 0, f"demo.sh exited {demo.returncode}:\n{output[-6000:]}\n{logs[-8000:]}"
        print(f"demo.sh took {time.monotonic() - started:.0f}s")

        http.headers["Authorization"] = f"Token {TOKEN}"
        projects = {p["title"]: p for p in http.get(f"{ls_url}/api/projects", params={"page_size": 100},
                                                    timeout=30).json()["results"]}
        for name in ADAPTERS:
            url = f"http://127.0.0.1:{ports[name.upper() + '_PORT']}"
            health = plain.get(url + "/health", timeout=30)
            if health.status_code == 503:  # its weights are not in WEIGHTS_DIR: reported, its project skipped
                reason = health.json().get("reason", "")
                assert re.search(rf"\[demo\] {name}: skipped: ", output), output[-3000:]
                unavailable[name] = reason
                continue
            assert health.status_code == 200 and health.json()["model"] == "ready", (name, health.text)

            project = projects.get(DEMOS[name].title)
            assert project is not None, f"no demo project for {name}\n{output[-3000:]}"
            pid = project["id"]
            assert project["task_number"] > 0, name
            assert project["total_predictions_number"] >= project["task_number"], (name, project)
            sam = health.json().get("sam")
            if sam and sam["state"] == "unavailable":  # no SAM weights: said where the manager and annotators look
                assert f"[demo] {name}: the smart tools (SAM) are OFF" in output, output[-3000:]
                assert "smart tools are OFF" in project["description"], project["description"]
            versions = http.get(f"{ls_url}/api/projects/{pid}/model-versions", timeout=30).json()
            assert project["model_version"] in versions, (name, project["model_version"], versions)

            tasks = http.get(f"{ls_url}/api/tasks", params={"project": pid, "page_size": 1}, timeout=30).json()
            task = (tasks["tasks"] if isinstance(tasks, dict) else tasks)[0]
            r = plain.post(url + "/predict", timeout=300, json={
                "tasks": [{"id": task["id"], "data": task["data"]}], "project": f"{pid}.1700000000",
                "label_config": project["label_config"]})
            assert r.status_code == 200, (name, r.status_code, r.text[:500])
            [result] = r.json()["results"]
            assert "error" not in result and isinstance(result.get("result"), list), (name, result)
        assert "Stop everything with: VAR_DIR=" in output
    finally:
        leaders |= _pids(var / "run")
        members = _session_members(leaders)
        stop = subprocess.run(["bash", "ops/stop.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300)

    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert len(members) >= 3 + len(ADAPTERS), members  # redis, LS, worker, backends
    deadline = time.monotonic() + 30
    while _session_members(leaders) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = _session_members(leaders)
    assert not left, f"still running after stop.sh: {left}\n{stop.stdout}"
    for name, port in ports.items():
        assert not port_in_use(port), f"{name} {port} still answers after stop.sh"
    assert not list((var / "run").glob("*.pid")), "stop.sh leaves no pid files"
    if unavailable:
        _unavailable(f"backends without their weights in {weights_dir}: {unavailable}")
