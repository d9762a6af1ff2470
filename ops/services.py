"""Real services for the demo and the tests: redis-server and Label Studio, started on free local ports.

Used by ops/demo.sh and ops/setup.sh (`python -m ops.services ...`, see `main`) and by the test fixtures
(tests/conftest.py). Needs only the standard library at import time.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class ServiceUnavailable(RuntimeError):
    """A service's program is not installed here."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen | None = None, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def wait_until(what: str, check, timeout: float, log=lambda: ""):
    """Poll `check()` once a second until it returns something truthy; fail with `log()`'s tail on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}\n{log()[-4000:]}")


class RedisServer:
    """A private redis-server on a free port, data in a temp dir, stopped by `stop()`."""

    def __init__(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise ServiceUnavailable("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="labelloop-redis-")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, 15, self.proc)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------------------------
# Label Studio
# --------------------------------------------------------------------------------------------------------------

LS_DEFAULT_USERNAME = "admin@example.com"
LS_DEFAULT_PASSWORD = "labelloop-admin"
LS_DB_NAME = "label_studio.sqlite3"
CACHE_DIR = Path(os.environ.get("LABELLOOP_CACHE_DIR", ROOT / ".cache"))
# Environment variables of the caller that Label Studio would read as its own settings (it looks up NAME,
# LABEL_STUDIO_NAME and HEARTEX_NAME): they are dropped, and only the ones set below are passed on.
_LS_SCRUB = ("HOST", "PORT", "DEBUG", "DATABASE_NAME", "DJANGO_DB", "DJANGO_SETTINGS_MODULE", "PYTHONPATH",
             "PYTHONHOME", "VIRTUAL_ENV", "USERNAME", "PASSWORD", "USER_TOKEN")


def label_studio_venv() -> Path:
    return Path(os.environ.get("LABEL_STUDIO_VENV", ROOT / ".venv-ls"))


def label_studio_exe() -> Path:
    exe = label_studio_venv() / "bin" / "label-studio"
    if not exe.is_file():
        raise ServiceUnavailable(
            f"Label Studio is not installed: no {exe} (run ops/setup.sh, or set LABEL_STUDIO_VENV)")
    return exe


def label_studio_version() -> str:
    """The installed version, read from the dist-info folder name (importing label_studio takes seconds)."""
    venv = label_studio_venv()
    for info in sorted(venv.glob("lib/python*/site-packages/label_studio-*.dist-info")):
        return info.name[len("label_studio-"):-len(".dist-info")]
    raise ServiceUnavailable(f"no label_studio package in {venv}")


def label_studio_env(data_dir: Path, home: Path, username: str | None = None, password: str | None = None,
                     token: str | None = None) -> dict[str, str]:
    """Environment for a scripted, offline Label Studio whose data lives in data_dir."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LABEL_STUDIO_", "HEARTEX_")) and k not in _LS_SCRUB}
    no_proxy = ",".join(p for p in (env.get("NO_PROXY") or env.get("no_proxy"), "127.0.0.1,localhost") if p)
    env.update({
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LATEST_VERSION_CHECK": "false",
        "COLLECT_ANALYTICS": "false",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        # the ML backends run on 127.0.0.1
        "ML_BLOCK_LOCAL_IP": "false",
        "SSRF_PROTECTION_ENABLED": "false",
        "NO_PROXY": no_proxy,
        "no_proxy": no_proxy,
        "PYTHONUNBUFFERED": "1",
    })
    if username:
        env["LABEL_STUDIO_USERNAME"] = username
    if password:
        env["LABEL_STUDIO_PASSWORD"] = password
    if token:
        env["LABEL_STUDIO_USER_TOKEN"] = token
    return env


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def label_studio_template_db(timeout: float = 600) -> Path:
    """A migrated, empty Label Studio database (no user, no organization), built once per Label Studio version
    under .cache/ and copied for each new server: migrating a fresh database takes close to a minute."""
    exe = label_studio_exe()
    cache = CACHE_DIR / f"label-studio-{label_studio_version()}"
    template = cache / LS_DB_NAME
    if template.is_file():
        return template
    cache.mkdir(parents=True, exist_ok=True)
    import fcntl

    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be building it right now
        if template.is_file():
            return template
        work = Path(tempfile.mkdtemp(prefix="labelloop-ls-template-"))
        try:
            data = work / "data"
            log = cache / "migrate.log"
            env = label_studio_env(data, work / "home")
            with open(log, "wb") as out:
                # `label-studio version` applies the migrations, prints the version and exits: no user is made.
                proc = subprocess.run([str(exe), "version"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, timeout=timeout, cwd=work)
            if proc.returncode != 0 or not (data / LS_DB_NAME).is_file():
                raise RuntimeError(f"building the Label Studio template database failed "
                                   f"(exit {proc.returncode}); log {log}:\n{_tail(log)}")
            tmp = cache / (LS_DB_NAME + ".tmp")
            shutil.copyfile(data / LS_DB_NAME, tmp)
            os.replace(tmp, template)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return template


def prepare_label_studio_data(data_dir: str | Path) -> bool:
    """Give data_dir a database: the cached template when it has none. True when it was copied."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    if (data_dir / LS_DB_NAME).exists():
        return False
    shutil.copyfile(label_studio_template_db(), data_dir / LS_DB_NAME)
    return True


class LabelStudioServer:
    """A real Label Studio (`label-studio start`, Django's server) on 127.0.0.1, started from .venv-ls.

    `data_dir=None` uses a temp dir removed by `stop()`; a given data_dir is kept (and reused when it already holds
    a database). The user is created at start with a fixed legacy API token: use it as
    `Authorization: Token <token>`, or `LabelStudio(base_url=server.url, api_key=server.token)`.
    `env` adds or overrides Label Studio settings, e.g. {"ML_TIMEOUT_SETUP": "30"} (its default for an ML
    backend's /setup is 3 s, for /health 1 s, for /predict 100 s).
    """

    def __init__(self, port: int | None = None, data_dir: str | Path | None = None,
                 username: str = LS_DEFAULT_USERNAME, password: str = LS_DEFAULT_PASSWORD,
                 token: str | None = None, start_timeout: float = 180, log_path: str | Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        import secrets

        self.exe = label_studio_exe()
        self.username = username
        self.password = password
        # DRF tokens are at most 40 characters; Label Studio ignores tokens of 5 characters or fewer
        self.token = token or secrets.token_hex(20)
        if not 5 < len(self.token) <= 40:
            raise ValueError("the token must have 6 to 40 characters")
        self._tmp = None if data_dir is not None else Path(tempfile.mkdtemp(prefix="labelloop-ls-"))
        self.data_dir = Path(data_dir).resolve() if data_dir is not None else self._tmp / "data"
        self.home = (self._tmp / "home") if self._tmp else self.data_dir / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_path = Path(log_path) if log_path else (self._tmp or self.data_dir) / "label-studio.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        try:
            prepare_label_studio_data(self.data_dir)
            if port is None:
                port = free_port()
            elif port_in_use(port):
                # label-studio would silently move to the next free port
                raise RuntimeError(f"port {port} is already in use")
            self.port = port
            self.url = f"http://127.0.0.1:{port}"
            run_env = label_studio_env(self.data_dir, self.home, username, password, self.token)
            run_env.update(env or {})  # e.g. {"ML_TIMEOUT_SETUP": "30"}
            cmd = [str(self.exe), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
                   "--enable-legacy-api-token"]
            self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(cmd, env=run_env, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, cwd=self.home, start_new_session=True)
            self._wait(start_timeout)
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def _get(self, path: str, auth: bool = False, timeout: float = 5) -> tuple[int, bytes]:
        import urllib.error
        import urllib.request

        req = urllib.request.Request(self.url + path)
        if auth:
            req.add_header("Authorization", f"Token {self.token}")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def _fail(self, message: str):
        raise RuntimeError(f"Label Studio {message}; log {self.log_path}:\n{_tail(self.log_path)}")

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                self._fail(f"exited with {self.proc.returncode} before answering on {self.url}")
            try:
                status, _ = self._get("/api/version", timeout=2)
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self._fail(f"did not answer on {self.url} within {timeout}s")
            time.sleep(0.25)
        with open(self.log_path, "rb") as f:
            f.seek(self._log_start)
            started = f.read().decode(errors="replace")
        if f"127.0.0.1:{self.port}/" not in started:
            self._fail(f"is not the server on port {self.port}")
        status, body = self._get("/api/projects", auth=True, timeout=10)
        if status != 200:
            self._fail(f"rejects the API token {self.token!r}: HTTP {status} {body[:300]!r}")

    def detach(self) -> int:
        """Leave the server running after this Python process exits (the demo); returns its pid."""
        pid = self.proc.pid
        self.proc = None
        return pid

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "LabelStudioServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Something accepts connections on host:port."""
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


def main(argv: list[str] | None = None) -> int:
    """For ops/ scripts: `python -m ops.services ls-template` builds the cached template database;
    `python -m ops.services label-studio --port 8080 --data-dir DIR --pid-file F --log F` starts a Label Studio
    that keeps running after this command returns (stop it by its pid)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ops.services")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("ls-template", help="build the cached migrated Label Studio database if missing")
    ls = sub.add_parser("label-studio", help="start a detached Label Studio")
    ls.add_argument("--port", type=int, default=8080)
    ls.add_argument("--data-dir", required=True)
    ls.add_argument("--log", required=True)
    ls.add_argument("--pid-file", required=True)
    ls.add_argument("--username", default=LS_DEFAULT_USERNAME)
    ls.add_argument("--password", default=LS_DEFAULT_PASSWORD)
    ls.add_argument("--token", required=True)
    ls.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args(argv)
    if args.command == "ls-template":
        t0 = time.monotonic()
        path = label_studio_template_db()
        print(f"{path} ({time.monotonic() - t0:.1f}s)")
        return 0
    t0 = time.monotonic()
    server = LabelStudioServer(port=args.port, data_dir=args.data_dir, username=args.username,
                               password=args.password, token=args.token, start_timeout=args.timeout,
                               log_path=args.log)
    pid = server.detach()
    Path(args.pid_file).parent.mkdir(parents=True, exist_ok=True)
    Path(args.pid_file).write_text(f"{pid}\n")
    print(f"Label Studio up at {server.url} (pid {pid}, {time.monotonic() - t0:.1f}s)")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
