"""labelloop's project manager command line: `python scripts/sync.py <command> --help`.

Commands: setup, import, predict, rank, retrain, export, status (see scripts/labelloop_sync/ and README.md).
"""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# the package next to this file, and the repository root for the small helpers it takes from backends/
for path in (str(HERE), str(HERE.parent)):
    if path not in sys.path:
        sys.path.insert(0, path)

from labelloop_sync.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
