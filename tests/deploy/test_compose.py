"""docker-compose.yml and docker/Dockerfile agree with each other and with the code they run.

No Docker engine runs on these machines, so the images are not built here; what can go wrong between the files
(a missing build context, a backend name the registry does not know, a port or a volume that does not line up,
an environment variable nobody reads) is checked instead.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from backends.config import Settings
from backends.registry import ADAPTERS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
BACKENDS = {name: svc for name, svc in SERVICES.items() if "BACKEND" in (svc.get("environment") or {})}
BUILT = {name: svc for name, svc in SERVICES.items() if "build" in svc}
SETTINGS_VARS = {"LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "BASIC_AUTH_USER", "BASIC_AUTH_PASS", "REDIS_URL",
                 "MODEL_DIR", "WEIGHTS_DIR", "LOG_LEVEL", "RETRAIN_EVERY"}
GUNICORN_VARS = {"BACKEND", "PORT", "WORKERS"}


def _dockerfile(svc: dict) -> Path:
    build = svc["build"]
    return ROOT / build["context"] / build.get("dockerfile", "Dockerfile")


def _resolve(value: str) -> str:
    """A compose value with ${VAR:-default} / ${VAR:?msg} replaced by the default or a placeholder."""
    return re.sub(r"\$\{(\w+)(?::-([^}]*)|:\?[^}]*)?\}", lambda m: m.group(2) if m.group(2) is not None else "x",
                  str(value))


def test_every_built_service_has_its_context_and_dockerfile():
    assert BUILT, "no service is built from this repository"
    for name, svc in BUILT.items():
        assert (ROOT / svc["build"]["context"]).is_dir(), name
        assert _dockerfile(svc).is_file(), name


def test_dockerfile_copies_what_exists_and_runs_the_shipped_entry_points():
    text = (ROOT / "docker/Dockerfile").read_text()
    for src in re.findall(r"^COPY (\S+) ", text, re.M):
        assert (ROOT / src).exists(), f"Dockerfile copies {src}, which is not in the repository"
    for package in ("backends", "text_cls"):
        assert re.search(rf"^COPY {package} ", text, re.M), f"{package}/ is not in the image"
    assert re.search(r"^USER (?!root)\w+", text, re.M), "the image must not run as root"
    assert "backends/gunicorn_conf.py" in text and (ROOT / "backends/gunicorn_conf.py").is_file()
    assert "backends.wsgi:app" in text and (ROOT / "backends/wsgi.py").is_file()
    # the torch pin is read from constraints.txt at build time
    pin = subprocess.run(["sed", "-n", "s/^torch==//p", "constraints.txt"], cwd=ROOT, capture_output=True,
                         text=True).stdout.strip()
    assert re.fullmatch(r"\d+\.\d+\.\d+", pin), pin
    assert not any(p.suffix in {".pt", ".onnx", ".safetensors", ".bin"} for p in ROOT.glob("docker/**/*")), \
        "no weights are baked into images"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".venv-ls", "var", ".git"} <= set(ignored)


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_backend_services_are_registered_and_their_ports_line_up(name):
    svc = BACKENDS[name]
    env = {k: _resolve(v) for k, v in svc["environment"].items()}
    assert ADAPTERS.get(env["BACKEND"]), f"{name}: backend {env['BACKEND']!r} is not available"
    port = env["PORT"]
    assert any(str(p).endswith(f":{port}") for p in svc.get("ports", [])), f"{name}: port {port} not published"
    assert f":{port}/health" in " ".join(svc["healthcheck"]["test"])
    unknown = set(env) - SETTINGS_VARS - GUNICORN_VARS
    assert not unknown, f"{name}: nobody reads {unknown}"
    settings = Settings.from_env(env)
    assert settings.redis_url.startswith("redis://redis:") and str(settings.model_dir) == "/models"
    assert settings.label_studio_url == "http://label-studio:8080"


def test_backends_and_worker_share_models_redis_and_label_studio():
    worker = SERVICES["worker"]
    assert worker["command"][-2:] == ["backends", "worker"]
    mounts = lambda svc: {v.split(":")[1]: v.split(":")[0] for v in svc["volumes"]}  # noqa: E731
    for name, svc in BACKENDS.items():
        assert mounts(svc)["/models"] == mounts(worker)["/models"], name
        for var in ("REDIS_URL", "LABEL_STUDIO_URL", "MODEL_DIR"):
            assert svc["environment"][var] == worker["environment"][var], (name, var)
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
    assert SERVICES["redis"]["healthcheck"]["test"][-1] == "ping"
    ls_env = SERVICES["label-studio"]["environment"]
    assert ls_env["LABEL_STUDIO_USER_TOKEN"] == SERVICES["worker"]["environment"]["LABEL_STUDIO_API_KEY"]
    assert ls_env["ML_BLOCK_LOCAL_IP"] == "false"
    assert set(COMPOSE["volumes"]) >= {"models", "label-studio-data", "redis-data"}


def test_gpu_variant_reserves_a_gpu_and_uses_the_cuda_wheels():
    gpu = [svc for svc in SERVICES.values() if "gpu" in svc.get("profiles", [])]
    assert gpu
    for svc in gpu:
        assert svc["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
        assert "pypi.org" in svc["build"]["args"]["TORCH_INDEX"]


def test_worker_command_exists():
    r = subprocess.run([sys.executable, "-m", "backends", "worker", "--help"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "RQ" in r.stdout
