import base64
import logging

import pytest

from backends.auth import check_basic_auth
from backends.config import Settings
from backends.logs import RedactSecrets


def _basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth():
    assert check_basic_auth(_basic("ls", "s3cret"), "ls", "s3cret")
    assert not check_basic_auth(_basic("ls", "wrong"), "ls", "s3cret")
    assert not check_basic_auth(_basic("other", "s3cret"), "ls", "s3cret")
    assert not check_basic_auth(None, "ls", "s3cret")
    assert not check_basic_auth("Basic !!!notbase64", "ls", "s3cret")
    assert not check_basic_auth("Bearer abc", "ls", "s3cret")
    assert not check_basic_auth("Basic " + base64.b64encode(b"lss3cret").decode(), "ls", "s3cret")


def test_redaction_of_known_secrets_and_token_fields():
    f = RedactSecrets(["supersecretkey"])
    assert "supersecretkey" not in f.redact("using key supersecretkey now")
    assert f.redact("Authorization: Token abcdef123") == "Authorization: Token ***"
    assert "abc.def" not in f.redact('{"access_token": "abc.def", "x": 1}')
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token=%s", ("zzz999",), None)
    f.filter(record)
    assert "zzz999" not in record.getMessage()


def test_settings_from_env_and_repr_hides_secrets(tmp_path):
    s = Settings.from_env({"LABEL_STUDIO_URL": "http://ls:8080/", "LABEL_STUDIO_API_KEY": "k3y-value",
                           "BASIC_AUTH_PASS": "pw-value", "WEIGHTS_DIR": str(tmp_path), "RETRAIN_EVERY": "3",
                           "ALLOWED_MEDIA_HOSTS": "a.com, *.b.org", "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": "/data"})
    assert s.label_studio_url == "http://ls:8080" and s.weights_dir == tmp_path and s.retrain_every == 3
    assert s.allowed_hosts == ("a.com", "*.b.org") and str(s.local_roots[0]) == "/data"
    assert "k3y-value" not in repr(s) and "pw-value" not in repr(s)
    with pytest.raises(ValueError, match="RETRAIN_EVERY"):
        Settings.from_env({"RETRAIN_EVERY": "often"})


@pytest.mark.parametrize("env, bind", [({"BACKEND": "detection"}, "0.0.0.0:9091"),
                                       ({"BACKEND": "asr"}, "0.0.0.0:9093"),
                                       ({"BACKEND": "text_cls", "PORT": "1234"}, "0.0.0.0:1234"),
                                       ({"BACKEND": "segmentation", "BIND": "127.0.0.1:5"}, "127.0.0.1:5")])
def test_gunicorn_binds_the_backends_own_port_unless_told(monkeypatch, tmp_path, env, bind):
    import runpy
    from pathlib import Path

    for key in ("PORT", "BIND"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # else the config makes a folder of its own
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    conf = runpy.run_path(str(Path(__file__).resolve().parents[2] / "backends" / "gunicorn_conf.py"))
    assert conf["bind"] == bind


def test_basic_scheme_is_case_insensitive():
    for scheme in ("basic", "BASIC", "bAsIc"):
        assert check_basic_auth(_basic("ls", "s3cret").replace("Basic", scheme, 1), "ls", "s3cret")
    assert check_basic_auth("  " + _basic("ls", "s3cret"), "ls", "s3cret")
    assert not check_basic_auth("Basicx " + _basic("ls", "s3cret")[6:], "ls", "s3cret")


def test_failed_attempts_brake_per_client(monkeypatch):
    from backends import auth

    now = [1000.0]
    monkeypatch.setattr(auth.time, "monotonic", lambda: now[0])
    attempts = auth.FailedAttempts(limit=3, window_s=60, max_clients=2)
    for _ in range(3):
        assert attempts.retry_after("a") == 0
        attempts.failed("a")
    assert attempts.retry_after("a") == 60 and attempts.retry_after("b") == 0
    now[0] += 59.5
    assert attempts.retry_after("a") == 1
    now[0] += 1
    assert attempts.retry_after("a") == 0  # the oldest failure left the window
    attempts.failed("b"), attempts.failed("c")
    assert len(attempts._failures) == 2  # the stalest client is forgotten, memory stays bounded


def test_redaction_covers_tracebacks_and_stacks():
    import io

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets(["supersecretkey"]))
    logger = logging.getLogger("test_redaction_covers_tracebacks")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ConnectionError("GET http://ls/api?token=abc123def failed with key supersecretkey")
        except ConnectionError:
            logger.exception("fetch failed")
        logger.warning("where", stack_info=True, extra={"k": "supersecretkey"})
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "fetch failed" in text and "Traceback" in text and "ConnectionError" in text
    assert "supersecretkey" not in text and "abc123def" not in text and "token=***" in text
    assert "Stack (most recent call last)" in text


def test_add_secrets_reaches_the_configured_handlers():
    from backends.logs import add_secrets, setup_logging

    setup_logging("INFO", ["first-secret"])
    add_secrets(["project-token-1", "", "abc"])  # empty and too short values are not secrets
    filters = [f for h in logging.getLogger().handlers for f in h.filters if isinstance(f, RedactSecrets)]
    assert filters and all(f.redact("t project-token-1 first-secret abc") == "t *** *** abc" for f in filters)


def test_a_key_given_to_a_client_is_redacted_in_this_process():
    # how a training worker (another process than the one /setup reached) learns a project's token
    from backends.logs import setup_logging
    from backends.ls_client import client_for

    setup_logging("INFO", [])
    client_for(Settings(), "http://127.0.0.1:9", "worker-side-token-7")
    filters = [f for h in logging.getLogger().handlers for f in h.filters if isinstance(f, RedactSecrets)]
    assert filters and all(f.redact("key worker-side-token-7") == "key ***" for f in filters)
