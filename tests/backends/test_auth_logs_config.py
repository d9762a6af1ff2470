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
