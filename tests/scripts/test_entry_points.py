"""The documented ways to start the command line tools work without any sys.path set-up: `python -m` from the
repository root, and `python scripts/sync.py` from any folder."""
from __future__ import annotations

import subprocess
import sys

import pytest

from ops.services import ROOT


@pytest.mark.parametrize("args, where, usage", [
    (["-m", "scripts.sync", "status", "--help"], "root", "usage: sync.py status"),
    ([str(ROOT / "scripts" / "sync.py"), "export", "--help"], "elsewhere", "usage: sync.py export"),
    (["-m", "ops.demo_project", "--help"], "root", "usage: demo_project.py"),
])
def test_entry_point_starts(args, where, usage, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no PYTHONPATH: imports must resolve on their own
    proc = subprocess.run([sys.executable, *args], cwd=ROOT if where == "root" else tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith(usage), proc.stdout + proc.stderr
