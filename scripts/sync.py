"""labelloop's project manager command line, from the repository root: `python -m scripts.sync <command> --help`
(`python scripts/sync.py ...` works too, from anywhere).

Commands: setup, import, predict, rank, retrain, export, status (see scripts/labelloop_sync/ and README.md).
"""
from __future__ import annotations

import sys

if not __package__:
    # Run as a file, Python puts scripts/ on the path, not the repository root the packages live in. This
    # launcher is the one place that adds it, and only in that case: `python -m scripts.sync` needs nothing.
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.labelloop_sync.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
