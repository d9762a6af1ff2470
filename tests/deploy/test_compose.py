"""docker-compose.yml and docker/Dockerfile agree with each other and with the code they run.

No Docker engine runs on these machines, so the images are not built here; what can go wrong between the files
(a backend of the registry without a service, a package a backend imports that the image does not copy, a port,
a health check or a volume that does not line up, an environment variable nobody reads) is checked instead.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

from backends.config import DEFAULT_PORT, Settings
from backends.registry import ADAPTERS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
DOCKERFILE = (ROOT / "docker/Dockerfile").read_text()
BACKENDS = {name: svc for name, svc in SERVICES.items() if "BACKEND" in (svc.get("environment") or {})}
GPU = {name: svc for name, svc in SERVICES.items() if "gpu" in svc.get("profiles", [])}
WORKERS = {name: svc for name, svc in SERVICES.items() if (svc.get("command") or [])[-2:] == ["backends", "worker"]}
BUILT = {name: svc for name, svc in SERVICES.items() if "build" in svc}
SETTINGS_VARS = {"LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "BASIC_AUTH_USER", "BASIC_AUTH_PASS", "REDIS_URL",
                 "MODEL_DIR", "WEIGHTS_DIR", "LOG_LEVEL", "RETRAIN_EVERY"}
GUNICORN_VARS = {"BACKEND", "PORT", "WORKERS"}
# top-level packages of this repository (folders with an __init__.py)
LOCAL_PACKAGES = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}


def _dockerfile(svc: dict) -> Path:
    build = svc["build"]
    return ROOT / build["context"] / build.get("dockerfile", "Dockerfile")


def _resolve(value) -> str:
    """A compose value with ${VAR:-default} / ${VAR:?msg} replaced by the default or a placeholder."""
    return re.sub(r"\$\{(\w+)(?::-([^}]*)|:\?[^}]*)?\}", lambda m: m.group(2) if m.group(2) is not None else "x",
                  str(value))


def _env(svc: dict) -> dict[str, str]:
    return {k: _resolve(v) for k, v in (svc.get("environment") or {}).items()}


def _mounts(svc: dict) -> dict[str, str]:
    """Container path -> "source[:mode]" of a service's volumes."""
    out = {}
    for v in svc.get("volumes", []):
        source, target, *mode = _resolve(v).split(":")
        out[target] = ":".join([source, *mode])
    return out


def _published(svc: dict) -> dict[int, int]:
    """Container port -> host port (defaults of ${VAR:-default} taken)."""
    out = {}
    for p in svc.get("ports", []):
        host, container = _resolve(p).rsplit(":", 1)
        out[int(container)] = int(host.rsplit(":", 1)[-1])
    return out


@lru_cache(maxsize=None)
def _imports(path: Path) -> frozenset[str]:
    """Top-level names imported anywhere (also inside functions) by a module or a package's modules."""
    files = [path] if path.is_file() else sorted(path.rglob("*.py"))
    names: set[str] = set()
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"), str(f))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return frozenset(names)


def packages_the_backends_need() -> set[str]:
    """backends/, the packages each registered adapter imports, and what those import in turn."""
    need = {"backends"}
    for target in ADAPTERS.values():
        module = target.partition(":")[0]
        need |= _imports(ROOT / (module.replace(".", "/") + ".py")) & LOCAL_PACKAGES
    todo = list(need)
    while todo:
        for dep in _imports(ROOT / todo.pop()) & LOCAL_PACKAGES - need:
            need.add(dep)
            todo.append(dep)
    return need


def test_every_built_service_has_its_context_and_dockerfile():
    assert BUILT, "no service is built from this repository"
    for name, svc in BUILT.items():
        assert (ROOT / svc["build"]["context"]).is_dir(), name
        assert _dockerfile(svc).is_file(), name


def test_the_image_holds_every_package_a_backend_needs():
    copied = set(re.findall(r"^COPY (\S+) ", DOCKERFILE, re.M))
    for src in copied:
        assert (ROOT / src).exists(), f"Dockerfile copies {src}, which is not in the repository"
    need = packages_the_backends_need()
    assert {"backends", "text_cls", "asr", "ner", "image_cls"} <= need, need
    missing = need - copied
    assert not missing, f"the backends import {sorted(missing)}, which the Dockerfile does not COPY"
    assert "tests" not in need and "ops" not in need, "a backend package imports test or ops code"
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert not copied & ignored, f".dockerignore leaves {sorted(copied & ignored)} out of the build context"
    assert {".venv", ".venv-ls", "var", ".git", ".env", "tests"} <= ignored


def test_dockerfile_runs_the_shipped_entry_points_as_a_user_without_weights():
    assert re.search(r"^USER (?!root)\w+", DOCKERFILE, re.M), "the image must not run as root"
    assert "backends/gunicorn_conf.py" in DOCKERFILE and (ROOT / "backends/gunicorn_conf.py").is_file()
    assert "backends.wsgi:app" in DOCKERFILE and (ROOT / "backends/wsgi.py").is_file()
    assert not any(p.suffix in {".pt", ".pth", ".onnx", ".safetensors", ".bin"} for p in ROOT.glob("docker/**/*")), \
        "no weights are baked into images"
    assert re.search(r"^ARG TORCH_INDEX=https://download\.pytorch\.org/whl/cpu$", DOCKERFILE, re.M), "CPU default"


def test_torch_and_torchvision_come_from_the_chosen_index_with_the_pinned_versions():
    # a torchvision from another index than torch's (CUDA next to CPU) fails to load its operators (nms)
    install = re.search(r'pip install --index-url "\$TORCH_INDEX".*?(?=&&|\n\n)', DOCKERFILE, re.S).group(0)
    for package in ("torch", "torchvision"):
        assert f"s/^{package}==//p" in install, f"{package} is not installed from $TORCH_INDEX"
        pin = subprocess.run(["sed", "-n", f"s/^{package}==//p", "constraints.txt"], cwd=ROOT,
                             capture_output=True, text=True).stdout.strip()
        assert re.fullmatch(r"\d+\.\d+\.\d+", pin), (package, pin)


def test_ultralytics_finds_a_font_and_a_writable_settings_folder_offline():
    apt = re.search(r"apt-get install[^\n]*", DOCKERFILE).group(0)
    assert "fonts-dejavu-core" in apt
    assert "libgl1" in apt and "libglib2.0-0" in apt, "opencv-python (from Ultralytics) loads libGL and glib"
    config_dir = re.search(r"YOLO_CONFIG_DIR=(\S+)", DOCKERFILE).group(1)
    chown = re.search(r"chown -R \w+ ([^\n]+)", DOCKERFILE).group(1).split()
    assert any(config_dir == d or config_dir.startswith(d.rstrip("/") + "/") for d in chown), \
        f"{config_dir} is not writable by the image's user"
    runtime = ROOT / "detection/runtime.py"  # copies a system font to where Ultralytics looks for it
    if runtime.is_file():
        assert "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf" in runtime.read_text()  # fonts-dejavu-core's


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_every_registered_backend_has_a_service(name):
    svc = SERVICES.get(name)
    assert svc is not None, f"backend {name!r} of backends/registry.py has no service in docker-compose.yml"
    assert "profiles" not in svc, f"{name}: the CPU service starts with a plain `docker compose up`"
    env = _env(svc)
    port = DEFAULT_PORT[name]
    assert env["BACKEND"] == name and env["PORT"] == str(port)
    assert _published(svc).get(port) == port, f"{name}: port {port} is not published on {port} by default"
    assert f"{name.upper()}_PORT" in str(svc["ports"]), f"{name}: the host port is not overridable"
    assert f"127.0.0.1:{port}/health" in " ".join(svc["healthcheck"]["test"])
    assert svc["healthcheck"]["start_period"], f"{name}: loading the model needs a start period"
    mounts = _mounts(svc)
    assert mounts["/models"] == "models" and mounts["/weights"].endswith(":ro"), mounts


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_backend_services_are_consistent(name):
    svc = BACKENDS[name]
    env = _env(svc)
    assert env["BACKEND"] in ADAPTERS, f"{name}: backend {env['BACKEND']!r} is not in the registry"
    port = int(env["PORT"])
    assert port in _published(svc), f"{name}: port {port} is not published"
    assert f":{port}/health" in " ".join(svc["healthcheck"]["test"])
    unknown = set(env) - SETTINGS_VARS - GUNICORN_VARS
    assert not unknown, f"{name}: nobody reads {unknown}"
    settings = Settings.from_env(env)
    assert settings.redis_url.startswith("redis://redis:") and str(settings.model_dir) == "/models"
    assert settings.label_studio_url == "http://label-studio:8080"
    assert str(settings.weights_dir) == "/weights"


def test_host_ports_do_not_collide():
    seen: dict[int, str] = {}
    for name, svc in SERVICES.items():
        for host in _published(svc).values():
            assert host not in seen, f"{name} and {seen[host]} both publish host port {host}"
            seen[host] = name


def test_backends_and_workers_share_models_redis_and_label_studio():
    assert WORKERS, "no training worker"
    cpu_workers = [n for n in WORKERS if n not in GPU]
    assert cpu_workers, "a plain `docker compose up` starts no training worker"
    for name in WORKERS:
        assert "BACKEND" not in SERVICES[name]["environment"], f"{name}: one worker serves every backend's jobs"
    reference = SERVICES[cpu_workers[0]]
    for name, svc in {**BACKENDS, **WORKERS}.items():
        assert _mounts(svc)["/models"] == _mounts(reference)["/models"], name
        assert _mounts(svc)["/weights"] == _mounts(reference)["/weights"], name
        for var in ("REDIS_URL", "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "MODEL_DIR", "WEIGHTS_DIR"):
            assert svc["environment"][var] == reference["environment"][var], (name, var)
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
    assert SERVICES["redis"]["healthcheck"]["test"][-1] == "ping"
    ls_env = SERVICES["label-studio"]["environment"]
    assert ls_env["LABEL_STUDIO_USER_TOKEN"] == reference["environment"]["LABEL_STUDIO_API_KEY"]
    assert ls_env["ML_BLOCK_LOCAL_IP"] == "false"
    assert set(COMPOSE["volumes"]) >= {"models", "label-studio-data", "redis-data"}


def test_gpu_variants_reserve_a_gpu_use_the_cuda_wheels_and_mirror_a_cpu_backend():
    assert GPU
    assert {"text_cls-gpu", "detection-gpu", "segmentation-gpu"} <= set(GPU)
    for name, svc in GPU.items():
        assert svc["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"], name
        assert "pypi.org" in svc["build"]["args"]["TORCH_INDEX"], name
        assert svc["image"] != SERVICES["worker"]["image"], f"{name}: the CUDA image needs its own tag"
        if name in BACKENDS:
            backend = _env(svc)["BACKEND"]
            assert name == f"{backend}-gpu" and backend in SERVICES, name
    # one anchor holds the GPU settings: the variants are not copies of each other
    assert COMPOSE_TEXT.count("capabilities: [gpu]") == 1 and COMPOSE_TEXT.count("<<: *gpu") == len(GPU)


def test_every_required_variable_is_in_the_env_example():
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE_TEXT))
    example = set(re.findall(r"^(\w+)=", (ROOT / "docker/.env.example").read_text(), re.M))
    assert required and required <= example, required - example


def test_worker_command_exists():
    r = subprocess.run([sys.executable, "-m", "backends", "worker", "--help"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "RQ" in r.stdout
