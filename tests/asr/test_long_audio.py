"""A 20-minute recording: transcribed in chunks with bounded memory, speech found at both ends."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.asr.conftest import ffmpeg

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _run(path: Path, weights_dir: Path, chunk_s: float = 120) -> dict:
    # A fresh process per file, so ru_maxrss is this transcription's peak and nothing else's.
    out = subprocess.run([sys.executable, str(Path(__file__).with_name("_peak_memory.py")), str(path),
                          str(weights_dir), str(chunk_s)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_twenty_minutes_in_bounded_memory(ljspeech, weights_dir, tmp_path):
    first, last = ljspeech[2][0], ljspeech[3][0]  # "... movable types." / "than in the same operations with ugly ones."
    long = tmp_path / "twenty-minutes.ogg"
    ffmpeg("-i", str(first), "-f", "lavfi", "-t", "1190", "-i", "anullsrc=r=16000:cl=mono", "-i", str(last),
           "-filter_complex", "[0:a]aresample=16000[a];[2:a]aresample=16000[c];[a][1:a][c]concat=n=3:v=0:a=1",
           "-c:a", "libvorbis", str(long))
    short = _run(first, weights_dir)
    result = _run(long, weights_dir)
    growth_mib = (result["peak_kib"] - short["peak_kib"]) / 1024
    print(f"20 min: {result['seconds']:.1f} s, peak {result['peak_kib'] // 1024} MiB "
          f"(+{growth_mib:.0f} MiB over a 7 s clip)")
    assert 1195 < result["duration"] < 1205
    assert "types" in result["text"] and "ugly" in result["text"]
    assert result["segments"][-1][0] > 1190  # the last sentence is placed at the end of the file
    # Decoding the whole file at once would add ~320 MiB (float32 samples, VAD and features of 20 minutes).
    assert growth_mib < 100
