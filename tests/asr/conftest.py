"""Real tiny.en weights, real speech clips from ../shared, and audio files made on the spot with espeak-ng and
ffmpeg (formats, rates, channels, broken files, video containers)."""
from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import pytest

from asr.engine import Transcriber, get_transcriber

DIGITS = "zero one two three four five six seven eight nine".split()


def need(tool: str) -> str:
    exe = shutil.which(tool)
    if exe is None:
        pytest.skip(f"{tool} is not installed")
    return exe


def speak(text: str, out: Path, speed: int = 150) -> Path:
    """`text` spoken by espeak-ng into a 22 kHz mono wav."""
    subprocess.run([need("espeak-ng"), "-v", "en-us", "-s", str(speed), "-w", str(out), text], check=True,
                   capture_output=True)
    return out


def ffmpeg(*args: str) -> None:
    subprocess.run([need("ffmpeg"), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="session")
def transcriber(weights_dir) -> Transcriber:
    return get_transcriber(None, weights_dir)


@pytest.fixture(scope="session")
def ljspeech(datasets_dir) -> list[tuple[Path, str]]:
    """(flac, normalised reference) for the LJSpeech clips, sorted by id."""
    root = datasets_dir / "speech" / "ljspeech"
    rows = [line.split("|") for line in (root / "metadata.csv").read_text(encoding="utf-8").splitlines() if line]
    return sorted((root / "wavs" / f"{r[0]}.flac", r[2]) for r in rows)


@pytest.fixture(scope="session")
def fsdd(datasets_dir) -> list[tuple[Path, str]]:
    root = datasets_dir / "speech" / "fsdd"
    with open(root / "transcripts.tsv", encoding="utf-8") as f:
        return [(root / r["file"], r["transcript"]) for r in csv.DictReader(f, delimiter="\t")]


def write_wav(path: Path, samples, rate: int = 16000) -> Path:
    """float samples in [-1, 1] to a 16-bit wav."""
    import numpy as np
    from scipy.io import wavfile

    wavfile.write(path, rate, (np.clip(samples, -1, 1) * 32767).astype(np.int16))
    return path
