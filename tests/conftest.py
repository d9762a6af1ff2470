from __future__ import annotations

import os
from pathlib import Path

import pytest

from ops.services import LabelStudioServer, RedisServer, ServiceUnavailable

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared"))
# In CI every real service must be there: a missing one fails the run instead of skipping tests.
REQUIRE_SERVICES = os.environ.get("LABELLOOP_REQUIRE_SERVICES") == "1" or os.environ.get("CI") == "true"


def _unavailable(reason: str):
    if REQUIRE_SERVICES:
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    path = Path(os.environ.get("WEIGHTS_DIR", SHARED / "models"))
    if not path.is_dir():
        _unavailable(f"no weights folder at {path} (set WEIGHTS_DIR)")
    return path.resolve()


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    path = SHARED / "datasets"
    if not path.is_dir():
        _unavailable(f"no datasets folder at {path}")
    return path.resolve()


@pytest.fixture(scope="session")
def redis_server():
    try:
        server = RedisServer()
    except ServiceUnavailable as e:
        _unavailable(str(e))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def label_studio():
    """One real Label Studio per test session (started from a cached migrated database: about 6 s; the first run
    on a machine also builds that database: about 50 s). Use `.url` and `.token` (legacy API token)."""
    try:
        server = LabelStudioServer()
    except ServiceUnavailable as e:
        _unavailable(str(e))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    """A clean database on the session's real redis-server."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    client.close()
    return redis_server.url
