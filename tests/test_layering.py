"""Who may import whom, for every top-level package of the repository, read from the source with `ast`.

- a task package (the ML of a task: text_cls, detection, ...) imports none of backends/, lsclient/, scripts/, ops/,
  bench/, tests/: it is usable without Label Studio;
- no task package imports another task package's Label Studio code (a module holding Label Studio's formats);
- scripts/ never imports backends/ (both reach Label Studio through lsclient/), lsclient/ neither of them;
- nothing imports tests/ but the tests;
- no module puts folders on sys.path: code run from the repository root imports by package (`python -m ...`).

The rules are data: `ROLES` names what each package is, and any package it does not name is checked as a task
package, so a new package is covered the day it appears.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# what each top-level package is; every other package is a task package
ROLES = {
    "backends": "label_studio_server",  # the ML-backend side of Label Studio: protocol, adapters, versions, jobs
    "lsclient": "label_studio_api",  # the client of Label Studio's API, shared by backends/ and scripts/
    "scripts": "cli",  # the project manager's command line
    "ops": "ops",  # set-up, demo, services for the tests, shared sample data
    "bench": "bench",
    "tests": "tests",
}
NOT_FOR_TASKS = {"backends", "lsclient", "scripts", "ops", "bench", "tests"}
# role -> the packages it must not import ("TASKS": every task package)
FORBIDDEN: dict[str, set[str]] = {
    "task": NOT_FOR_TASKS,
    "label_studio_api": {"backends", "scripts", "ops", "bench", "tests", "TASKS"},
    "label_studio_server": {"scripts", "ops", "bench", "tests"},
    "cli": {"backends", "bench", "tests"},
    "ops": {"bench", "tests"},
    "bench": {"tests"},
    "tests": set(),
}
# Label Studio's result types and region keys: a module whose code names one of these speaks Label Studio's formats
LABEL_STUDIO_MARKERS = {"from_name", "to_name", "original_width", "original_height", "rectanglelabels",
                        "polygonlabels", "brushlabels", "keypointlabels", "ellipselabels"}
# the one module allowed to touch sys.path: the launcher that lets `python scripts/sync.py` run as a file
SYS_PATH_ALLOWED = {"scripts/sync.py"}

def _packages() -> dict[str, str]:
    """Top-level package name -> role, for every folder of the repository that holds Python code."""
    found = {}
    for p in sorted(ROOT.iterdir()):
        if p.is_dir() and p.name.isidentifier() and ((p / "__init__.py").is_file() or any(p.glob("*.py"))):
            found[p.name] = ROLES.get(p.name, "task")
    return found


PACKAGES = _packages()
TASKS = {name for name, role in PACKAGES.items() if role == "task"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(dotted: str) -> bool:
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    tree: ast.Module

    @property
    def package(self) -> str:
        return self.name.split(".")[0]

    def imports(self) -> set[str]:
        """Dotted names this module imports (anywhere, also inside functions), relative imports resolved; for
        `from pkg import sub`, also pkg.sub when that is a module; `importlib.import_module("...")` counts too."""
        out: set[str] = set()
        own = self.name.split(".") if self.path.name == "__init__.py" else self.name.split(".")[:-1]
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = own[:len(own) - node.level + 1]
                    base = ".".join(parent + ([node.module] if node.module else []))
                out.add(base)
                out.update(f"{base}.{a.name}" for a in node.names if _is_module(f"{base}.{a.name}"))
            elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
                  == "import_module" and node.args and isinstance(node.args[0], ast.Constant)
                  and isinstance(node.args[0].value, str)):
                out.add(node.args[0].value)
        return {name for name in out if name}

    def speaks_label_studio(self) -> bool:
        return any(isinstance(n, ast.Constant) and n.value in LABEL_STUDIO_MARKERS for n in ast.walk(self.tree))

    def touches_sys_path(self) -> bool:
        """sys.path.insert/append/extend/remove, or an assignment to sys.path or one of its items."""
        def is_sys_path(n: ast.AST) -> bool:
            return isinstance(n, ast.Attribute) and n.attr == "path" and getattr(n.value, "id", None) == "sys"

        for node in ast.walk(self.tree):
            if isinstance(node, ast.Attribute) and is_sys_path(node.value) and node.attr in (
                    "insert", "append", "extend", "remove", "pop", "clear"):
                return True
            if isinstance(node, (ast.Assign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(is_sys_path(t) or (isinstance(t, ast.Subscript) and is_sys_path(t.value)) for t in targets):
                    return True
        return False


@lru_cache(maxsize=None)
def modules(package: str) -> tuple[Module, ...]:
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if "__pycache__" not in path.parts:
            out.append(Module(_module_name(path), path, ast.parse(path.read_text(encoding="utf-8"), str(path))))
    return tuple(out)


@lru_cache(maxsize=None)
def _module(name: str) -> Module | None:
    return next((m for m in modules(name.split(".")[0]) if m.name == name), None)


def import_violations(package: str) -> set[tuple[str, str, str]]:
    """(importer module, imported name, rule) for every import `package` must not make."""
    role = PACKAGES[package]
    forbidden = FORBIDDEN[role] - {"TASKS"} | (TASKS if "TASKS" in FORBIDDEN[role] else set())
    found = set()
    for m in modules(package):
        for name in m.imports():
            top = name.split(".")[0]
            if top == package or top not in PACKAGES:
                continue
            if top in forbidden:
                found.add((m.name, name, f"a {role} package must not import {top}"))
            elif role == "task" and top in TASKS:
                target = _module(name)
                if target is not None and target.speaks_label_studio():
                    found.add((m.name, name, f"{name} is Label Studio code of the task package {top}"))
    return found


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_imports_follow_the_layers(package):
    found = sorted(import_violations(package))
    assert not found, "\n".join(f"{importer} imports {name}: {rule}" for importer, name, rule in found)


@pytest.mark.parametrize("package", sorted(TASKS))
def test_task_packages_hold_no_label_studio_formats(package):
    found = [m.name for m in modules(package) if m.speaks_label_studio()]
    assert not found, f"{found} use Label Studio's result types or region keys ({sorted(LABEL_STUDIO_MARKERS)}): " \
                      "those belong to backends/"


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_module_changes_sys_path(package):
    found = [str(m.path.relative_to(ROOT)) for m in modules(package) if m.touches_sys_path()]
    found = [p for p in found if p not in SYS_PATH_ALLOWED]
    assert not found, f"{found} change sys.path: import by package and run them with `python -m` from the root"


def test_the_checks_see_what_they_check():
    """The rules fire on the shapes they are meant to catch (so a green run means something)."""
    probe = Module("text_cls.probe", ROOT / "text_cls" / "probe.py", ast.parse(
        "import sys\nfrom .encoder import x\nfrom backends.labels import y\n"
        "def f():\n    import scripts.labelloop_sync\n    sys.path.insert(0, '.')\n"
        "importlib.import_module('tests.samples')\nREGION = {'from_name': 1}\n"))
    assert {"text_cls.encoder", "backends.labels", "scripts.labelloop_sync", "tests.samples"} <= probe.imports()
    assert probe.touches_sys_path() and probe.speaks_label_studio()
    assert {"backends", "lsclient", "scripts", "ops", "tests"} <= NOT_FOR_TASKS
    assert {"text_cls", "detection", "segmentation", "asr"} <= TASKS, TASKS
    assert ROLES.keys() <= PACKAGES.keys(), "a role names a package that is not there"
