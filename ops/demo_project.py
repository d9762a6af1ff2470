"""Create the demo projects in a running Label Studio: one per backend that is up, each pre-annotated by it.

    .venv/bin/python -m ops.demo_project --url http://127.0.0.1:8080 --token TOKEN \\
        --backend text_cls=http://127.0.0.1:9090 --backend asr=http://127.0.0.1:9093 \\
        [--skipped detection="port 9091 is taken by another program (set DETECTION_PORT)"]

Run by ops/demo.sh once it has started the services. For each backend it waits until /health says the model is
loaded (a 503 means it cannot serve: the reason is reported and its project skipped; so is a backend whose process
exited), then with scripts/labelloop_sync (what `sync.py setup`, `import` and `predict` do): creates or updates the
project (found by its title) with the backend connected, its webhook and the Data Manager tabs; imports the demo
data (records by their text, files by their SHA-256: nothing twice); writes the backend's predictions with their
scores into Label Studio and sets the project's model version, so sorting by "Prediction score" puts the least
confident tasks first. Running it again adds nothing that is already there.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.labelloop_sync.templates import render

ROOT = Path(__file__).resolve().parent.parent

# TREC coarse classes, with readable names
TREC_CLASSES = {"ABBR": "Abbreviation", "ENTY": "Entity", "DESC": "Description", "HUM": "Human",
                "LOC": "Location", "NUM": "Numeric"}
IMAGE_LABELS = ["Person", "Car", "Bus", "Truck", "Bicycle", "Dog", "Cat"]
FACE_KEYPOINTS = ["left_eye", "right_eye", "nose_tip", "mouth_left", "mouth_right", "chin"]


@dataclass(frozen=True)
class Demo:
    title: str
    description: str
    label_config: str
    data: str  # "questions", "sentences", "images", "faces", "text_images" or "clips"
    interactive: bool = False  # Label Studio sends the smart tools' clicks and boxes to the backend


DEMOS: dict[str, Demo] = {
    "text_cls": Demo(
        "Demo: question topics", "labelloop demo: TREC question types, pre-annotated by the text_cls backend",
        render("text_cls", list(TREC_CLASSES.values()), name="topic", header="What is the question asking for?"),
        "questions"),
    "detection": Demo(
        "Demo: objects in photos", "labelloop demo: boxes pre-annotated by the detection backend (YOLO)",
        render("detection", IMAGE_LABELS), "images"),
    "segmentation": Demo(
        "Demo: object masks", "labelloop demo: masks pre-annotated by the segmentation backend; click a point or "
                              "draw a box with the smart tools for a Segment Anything mask",
        render("segmentation", IMAGE_LABELS, name="mask", mask="brush", smart=True), "images", interactive=True),
    "asr": Demo(
        "Demo: speech transcripts", "labelloop demo: transcripts pre-written by the asr backend (Whisper)",
        render("asr", []), "clips"),
    "ner": Demo(
        "Demo: named entities", "labelloop demo: CoNLL-2003 entity spans pre-annotated by the ner backend (spaCy, "
                                "then a tagger learned from your spans)",
        render("ner", ["PER", "ORG", "LOC", "MISC"]), "sentences"),
    "image_cls": Demo(
        "Demo: photo classes", "labelloop demo: coco128 photos classified by the image_cls backend (YOLO's classes "
                               "found in the photo, then a head learned from your choices), with the top 5 classes",
        render("image_cls", IMAGE_LABELS + ["Other"], header="What is the photo mostly of?"), "images"),
    "keypoints": Demo(
        "Demo: face landmarks", "labelloop demo: coco128 photos with faces, their landmarks pre-annotated by the "
                                "keypoints backend (dlib's 68 face landmarks, each face's box its parent)",
        render("keypoints", FACE_KEYPOINTS, box="Face", header="Place each face's landmarks"), "faces"),
    "ocr": Demo(
        "Demo: text in images", "labelloop demo: signs and receipts rendered in DejaVu fonts, each line's box and "
                                "text pre-annotated by the ocr backend (RapidOCR; then corrections learned from "
                                "your text)",
        render("ocr", ["Text", "Handwriting"], header="Check each line's box and text"), "text_images"),
}


def say(message: str) -> None:
    print(f"[demo] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------------------
# waiting for the backends
# --------------------------------------------------------------------------------------------------------------

def _pid_alive(pid_file: Path) -> bool | None:
    """Whether the process of a pid file runs (None: no pid file)."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


_ERROR_LINE = re.compile(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception|Unavailable|UnknownBackend)\w*): (.+)$")


def exit_reason(log_path: Path) -> str:
    """Why a backend process exited, from the end of its log."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()[-200:]
    except OSError:
        return "the process exited"
    for line in reversed(lines):
        m = _ERROR_LINE.match(line.strip())
        if m:
            return f"the process exited: {m.group(2)} ({m.group(1)}; log {log_path})"
    return f"the process exited (log {log_path})"


def probe(session, url: str) -> tuple[str, Any]:
    """("ready" | "loading" | "failed" | "down", detail) of a backend from its /health."""
    import requests

    try:
        r = session.get(url + "/health", timeout=10)
    except requests.RequestException:
        return "down", None
    try:
        body = r.json()
    except ValueError:
        body = {}
    if r.status_code == 503:
        return "failed", body.get("reason") or body.get("error") or "its /health answers 503"
    if r.status_code != 200:
        return "loading", f"/health answered {r.status_code}"
    model = body.get("model", "ready")
    # "idle": the model loads on the first request (a server started without warm-up)
    return ("ready", body) if model in ("ready", "idle") else ("loading", model)


def wait_for_backends(backends: dict[str, str], timeout: float, run_dir: Path,
                      log_dir: Path) -> dict[str, tuple[bool, Any]]:
    """Per backend (True, /health body) once its model is loaded, or (False, reason) when it cannot serve."""
    import requests

    session = requests.Session()
    session.trust_env = False
    pending, out = dict(backends), {}
    started = time.monotonic()
    next_note = started + 20
    last: dict[str, Any] = {}
    while pending:
        for name, url in list(pending.items()):
            state, detail = probe(session, url)
            last[name] = state
            if state == "ready":
                out[name] = (True, detail)
                say(f"{name}: ready at {url} (model version {detail.get('model_version')}, "
                    f"{time.monotonic() - started:.0f}s)")
                if smart_tools_off(detail):
                    say(f"{name}: the smart tools (SAM) are OFF, automatic masks only: {smart_tools_off(detail)}")
            elif state == "failed":
                out[name] = (False, detail)
            elif state == "down" and _pid_alive(run_dir / f"backend-{name}.pid") is False:
                out[name] = (False, exit_reason(log_dir / f"backend-{name}.log"))
            else:
                continue
            del pending[name]
        if not pending:
            break
        now = time.monotonic()
        if now - started > timeout:
            for name in pending:
                out[name] = (False, f"not ready after {timeout:.0f}s (last state: {last.get(name)}); see its log")
            break
        if now > next_note:
            say("waiting for the models to load: " + ", ".join(f"{n} ({last.get(n)})" for n in pending))
            next_note = now + 30
        time.sleep(1)
    return out


# --------------------------------------------------------------------------------------------------------------
# the projects
# --------------------------------------------------------------------------------------------------------------

def smart_tools_off(health: dict) -> str | None:
    """Why a backend's interactive (SAM) tools will not work, from its /health; None when they will or it has none."""
    sam = health.get("sam") if isinstance(health, dict) else None
    if isinstance(sam, dict) and sam.get("state") == "unavailable":
        return str(sam.get("reason") or "no SAM weights")
    return None


def _auth() -> tuple[str, str] | None:
    user = os.environ.get("BASIC_AUTH_USER", "")
    return (user, os.environ.get("BASIC_AUTH_PASS", "")) if user else None


def project_config(name: str, url: str):
    """The sync.py project file of a backend's demo project, as parsed settings."""
    from scripts.labelloop_sync import config

    demo = DEMOS[name]
    backend: dict[str, Any] = {"url": url, "title": f"labelloop {name}", "interactive": demo.interactive}
    auth = _auth()
    if auth:
        backend["auth"] = {"user": auth[0], "password": auth[1]}
    return config.parse({
        "title": demo.title, "description": demo.description, "label_config": demo.label_config,
        "predictions": {"show": True, "model_version": "auto"}, "ml_backends": [backend],
        "views": {"most_uncertain": True, "tiers": {"hard_below": 0.5, "easy_from": 0.8}},
    })


def build_project(ls, name: str, url: str, sizes: dict[str, int], data_dir: Path) -> dict[str, Any]:
    """Set up, import and pre-annotate one demo project; returns what was done."""
    from scripts.labelloop_sync import importing, predict
    from scripts.labelloop_sync.backend_client import BackendHTTPClient
    from scripts.labelloop_sync.context import Context
    from scripts.labelloop_sync.project import setup
    from ops import demo_data

    demo = DEMOS[name]
    cfg = project_config(name, url)
    off = smart_tools_off(BackendHTTPClient(url, _auth()).health())
    if off:  # the annotators must read it where they work, not only in /health
        cfg = dataclasses.replace(cfg, description=f"{cfg.description}. The smart tools are OFF here: {off}")
    # The tasks go in before the backend is connected: Label Studio asks a connected backend for predictions of
    # every uploaded file during the upload, one request per file; predict.run below sends them in batches.
    project_id, changes, _ = setup(ls, dataclasses.replace(cfg, backends=[]))  # the project now has cfg.label_config
    ctx = Context(ls, project_id, cfg.title, cfg.label_config, BackendHTTPClient(url, _auth()),
                  cfg)
    if demo.data in ("questions", "sentences"):
        reader = demo_data.questions if demo.data == "questions" else demo_data.sentences
        tasks, source = reader(sizes[demo.data])
        imported, _ = importing.import_records(ctx, [{"data": t} for t in tasks], "text")
    else:
        folder = data_dir / demo.data
        maker = {"images": demo_data.images, "faces": demo_data.faces,
                 "text_images": demo_data.text_images}.get(demo.data, demo_data.clips)
        source = maker(folder, sizes[demo.data])
        imported = importing.import_folder(ctx, folder)["imported"]
    changes += setup(ls, cfg)[1]
    say(f"{name}: project {project_id} {demo.title!r}" + (f" ({'; '.join(changes)})" if changes else " (unchanged)"))
    say(f"{name}: {imported} new tasks from {source}")
    t0 = time.monotonic()
    result = predict.run(ctx, batch_size=8 if demo.data in ("questions", "sentences") else 4)
    if result["errors"]:
        say(f"{name}: {len(result['errors'])} tasks not predicted, first: {result['errors'][0]}")
    if not (result["predicted"] or result["already"]):
        raise RuntimeError(f"no task could be pre-annotated: {result['errors'][:1]}")
    say(f"{name}: {result['predicted']} tasks pre-annotated by {result['model_version']} "
        f"({time.monotonic() - t0:.1f}s), {result['already']} already were")
    return {"project": project_id, **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("LABEL_STUDIO_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--token", default=os.environ.get("LABEL_STUDIO_API_KEY", ""),
                        help="Label Studio API token (legacy token)")
    parser.add_argument("--backend", action="append", default=[], metavar="NAME=URL",
                        help="a running backend (repeat for each)")
    parser.add_argument("--skipped", action="append", default=[], metavar="NAME=REASON",
                        help="a backend that was not started, reported in the summary")
    parser.add_argument("--var-dir", type=Path, default=ROOT / "var",
                        help="the demo's folder: run/ (pids: a backend that exited is not waited for), log/, "
                             "demo-data/")
    parser.add_argument("--tasks", type=int, default=200, help="questions for the text project (default 200)")
    parser.add_argument("--images", type=int, default=20, help="photos for the image projects (default 20)")
    parser.add_argument("--clips", type=int, default=10, help="speech clips for the asr project (default 10)")
    parser.add_argument("--sentences", type=int, default=100, help="sentences for the ner project (default 100)")
    parser.add_argument("--health-timeout", type=float, default=900,
                        help="seconds to wait for all models to load (default 900)")
    parser.add_argument("--username", default="", help="only printed")
    parser.add_argument("--password", default="", help="only printed")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("no token: pass --token or set LABEL_STUDIO_API_KEY")
    url = args.url.rstrip("/")

    def pairs(items: list[str], what: str) -> dict[str, str]:
        out = {}
        for item in items:
            name, sep, value = item.partition("=")
            if not sep or name not in DEMOS:
                parser.error(f"{what} takes NAME=VALUE with NAME one of {', '.join(DEMOS)}: {item!r}")
            out[name] = value.rstrip("/")
        return out

    backends, skipped = pairs(args.backend, "--backend"), pairs(args.skipped, "--skipped")

    from scripts.labelloop_sync.connection import LS
    from scripts.labelloop_sync.errors import SyncError

    try:
        ls = LS(url, args.token, timeout=300)
        ls.check()
    except SyncError as e:
        say(f"ERROR: {e}")
        return 1

    status = wait_for_backends(backends, args.health_timeout, args.var_dir / "run", args.var_dir / "log")
    sizes = {"questions": args.tasks, "images": args.images, "clips": args.clips, "sentences": args.sentences,
             "faces": args.images, "text_images": args.images}
    lines: dict[str, str] = {name: f"skipped: {reason}" for name, reason in skipped.items()}
    failed = False
    for name, backend_url in backends.items():
        ok, detail = status[name]
        if not ok:
            say(f"{name}: skipped: {detail}")
            lines[name] = f"skipped: {detail}"
            continue
        try:
            done = build_project(ls, name, backend_url, sizes, args.var_dir / "demo-data")
        except Exception as e:  # noqa: BLE001 - one project failing must not stop the others
            if not isinstance(e, (SyncError, RuntimeError, OSError)):
                e = f"{type(e).__name__}: {e}"  # type: ignore[assignment]
            say(f"{name}: ERROR: the demo project failed: {e}")
            lines[name] = f"{backend_url}  ERROR: {e}"
            failed = True
            continue
        lines[name] = (f"{backend_url}  {url}/projects/{done['project']}/data  "
                       f"({DEMOS[name].title}; predictions of {done['model_version']})")
        if smart_tools_off(detail):
            lines[name] += "\n" + " " * 16 + "the smart tools (SAM) are OFF: no SAM weights; automatic masks only"

    print()
    print(f"Label Studio:  {url}")
    if args.username:
        print(f"  login:       {args.username} / {args.password or '(your password)'}")
    print(f"  API token:   {args.token}")
    print("Backends and their demo projects (sort by Prediction score, ascending: least confident first):")
    for name in DEMOS:
        if name in lines:
            print(f"  {name:<13} {lines[name]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
