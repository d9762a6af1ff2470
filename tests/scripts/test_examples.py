"""The README's sync.py commands run against the demo's projects: each example project file is its demo project."""
from __future__ import annotations

from pathlib import Path

import pytest

from ops.demo_project import DEMOS
from scripts.labelloop_sync.config import load

ROOT = Path(__file__).resolve().parents[2]


def test_every_demo_project_has_its_example_file():
    assert sorted(p.stem for p in (ROOT / "examples").glob("*.yaml")) == sorted(DEMOS)


@pytest.mark.parametrize("name", sorted(DEMOS))
def test_example_is_the_demo_project_and_needs_no_password(name, monkeypatch):
    monkeypatch.delenv("BACKEND_PASS", raising=False)
    config = load(ROOT / "examples" / f"{name}.yaml")
    assert config.title == DEMOS[name].title  # sync.py finds the project by its title
    assert config.label_config == DEMOS[name].label_config.strip()
    assert config.backends[0].auth is None  # the demo's backends run without basic auth
    monkeypatch.setenv("BACKEND_PASS", "s3cret")
    assert load(ROOT / "examples" / f"{name}.yaml").backends[0].auth == ("label-studio", "s3cret")
