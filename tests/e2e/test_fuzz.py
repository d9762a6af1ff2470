"""Every backend, as a real process, against the attack corpus (tests/e2e/fuzz_corpus.py): no 5xx, no crash, no
request over 30 s, and Label Studio's token never leaves for another host nor reaches the log."""
from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
import ultralytics

from backends.registry import ADAPTERS
from tests.e2e.fuzz_corpus import TOKEN, corpus, media_files
from tests.media_server import MediaServer, serving

pytestmark = pytest.mark.slow

BUS = Path(ultralytics.__file__).parent / "assets" / "bus.jpg"
MAX_SECONDS = 30
MAX_RSS_BYTES = 6 << 30  # a backend past this is killed, so a regression fails the test instead of the machine


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _guard_memory(proc, stop: threading.Event, peak: list[int]) -> None:
    while not stop.wait(0.1) and proc.poll() is None:
        peak[0] = max(peak[0], _rss(proc.pid))
        if peak[0] > MAX_RSS_BYTES:
            proc.kill()


@pytest.fixture
def fake_ls():
    # /big over MAX_MEDIA_BYTES (2 MiB below); /trickle for 50 s, past MEDIA_DEADLINE
    with serving(MediaServer(TOKEN, media_files(BUS.read_bytes()), big_bytes=3 << 20, trickle=(1000, 0.05))) as srv:
        yield srv


def _allowed(probe, status: int) -> bool:
    if status < 500:
        return True
    return status == 501 and probe.path == "/embed"  # documented: a backend without embeddings


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_backend_survives_the_attack_corpus(start_backend, fake_ls, name):
    port = fake_ls.server_address[1]
    ls, other = f"http://127.0.0.1:{port}", f"http://localhost:{port}"
    backend = start_backend(name, LABEL_STUDIO_URL=ls, LABEL_STUDIO_API_KEY=TOKEN, MEDIA_TIMEOUT="3",
                            MEDIA_DEADLINE="8", MAX_MEDIA_BYTES=str(2 << 20), RETRAIN_EVERY="0")
    session = requests.Session()
    failures, statuses = [], Counter()
    stop, peak = threading.Event(), [0]
    threading.Thread(target=_guard_memory, args=(backend.proc, stop, peak), daemon=True).start()
    for probe in corpus(name, ls, other):
        start = time.monotonic()
        try:
            r = session.request(probe.method, backend.url + probe.path, data=probe.data(),
                                headers={"Content-Type": probe.content_type}, timeout=MAX_SECONDS + 5)
        except requests.RequestException as e:
            failures.append(f"{probe.name}: no answer ({type(e).__name__})")
            if backend.proc.poll() is not None:
                break
            continue
        elapsed = time.monotonic() - start
        statuses[r.status_code] += 1
        if not _allowed(probe, r.status_code):
            failures.append(f"{probe.name}: {r.status_code} {r.text[:200]}")
        elif elapsed > MAX_SECONDS:
            failures.append(f"{probe.name}: {elapsed:.1f} s")
    stop.set()
    assert peak[0] <= MAX_RSS_BYTES, f"{name} grew past {MAX_RSS_BYTES >> 30} GiB and was killed (last probe: {probe.name})"
    assert backend.proc.poll() is None, f"{name} died:\n{backend.log()[-3000:]}"
    assert requests.get(backend.url + "/health", timeout=10).status_code == 200
    leaked = [(host, path) for host, path, auth in fake_ls.auth_seen if auth is not None and not host.startswith("127.0.0.1")]
    assert leaked == [], f"the token went to another host: {leaked}"
    assert TOKEN not in backend.log(), "the token reached the log"
    assert failures == [], f"{len(failures)} of {sum(statuses.values())} probes failed ({dict(statuses)}):\n" + "\n".join(
        failures[:60])
