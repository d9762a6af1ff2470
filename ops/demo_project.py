"""Create (idempotently) the demo project in a running Label Studio, connect the text backend and ask Label Studio
to fetch predictions for every task.

    .venv/bin/python ops/demo_project.py --url http://127.0.0.1:8080 --token TOKEN [--backend-url http://127.0.0.1:9090]

Run by ops/demo.sh. Running it again reuses the project, its tasks and its ML backend connection.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared"))
TREC_FILE = SHARED / "datasets" / "text" / "trec" / "TREC_10.label"
FALLBACK_FILE = ROOT / "examples" / "demo_questions.jsonl"

PROJECT_TITLE = "Demo: question topics"
BACKEND_TITLE = "labelloop text_cls"
# TREC coarse classes, with readable names
TREC_CLASSES = {"ABBR": "Abbreviation", "ENTY": "Entity", "DESC": "Description", "HUM": "Human",
                "LOC": "Location", "NUM": "Numeric"}
LABEL_CONFIG = (
    '<View>\n'
    '  <Header value="What is the question asking for?"/>\n'
    '  <Text name="text" value="$text"/>\n'
    '  <Choices name="topic" toName="text" choice="single" showInline="true">\n'
    + "".join(f'    <Choice value="{name}"/>\n' for name in TREC_CLASSES.values())
    + '  </Choices>\n'
    '</View>\n'
)


def _detokenize(text: str) -> str:
    """TREC questions are tokenized ("Who was Galileo ?"): make them read normally."""
    for a, b in ((" ?", "?"), (" ,", ","), (" 's", "'s"), (" n't", "n't"), ("`` ", '"'), (" ''", '"'),
                 (" .", "."), (" :", ":"), (" ;", ";"), ("( ", "("), (" )", ")")):
        text = text.replace(a, b)
    return text.strip()


def demo_tasks(limit: int) -> tuple[list[dict], str]:
    """The demo questions: the first `limit` TREC test questions when shared/ is there, else the committed file."""
    if TREC_FILE.is_file():
        tasks = []
        for line in TREC_FILE.read_text(encoding="latin-1").splitlines():
            label, _, question = line.partition(" ")
            if question.strip():
                tasks.append({"text": _detokenize(question)})
            if len(tasks) >= limit:
                break
        return tasks, str(TREC_FILE)
    tasks = [json.loads(line) for line in FALLBACK_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    return tasks[:limit], str(FALLBACK_FILE)


def find_project(client):
    for project in client.projects.list():
        if project.title == PROJECT_TITLE:
            return project
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("LABEL_STUDIO_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--token", default=os.environ.get("LABEL_STUDIO_API_KEY", ""),
                        help="Label Studio API token (legacy token)")
    parser.add_argument("--backend-url", default=os.environ.get("BACKEND_URL", "http://127.0.0.1:9090"))
    parser.add_argument("--no-backend", action="store_true", help="only the project and its tasks")
    parser.add_argument("--tasks", type=int, default=200, help="how many questions to import (default 200)")
    parser.add_argument("--username", default=os.environ.get("LABEL_STUDIO_USERNAME", ""),
                        help="only printed")
    parser.add_argument("--password", default=os.environ.get("LABEL_STUDIO_PASSWORD", ""),
                        help="only printed")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("no token: pass --token or set LABEL_STUDIO_API_KEY")
    url = args.url.rstrip("/")

    from label_studio_sdk import LabelStudio
    from label_studio_sdk.actions import PrepareParamsRequestRequestSelectedItemsExcluded

    client = LabelStudio(base_url=url, api_key=args.token, timeout=300)

    project = find_project(client)
    if project is None:
        project = client.projects.create(title=PROJECT_TITLE, label_config=LABEL_CONFIG,
                                         description="labelloop demo: TREC question types, pre-annotated by the "
                                                     "text_cls backend")
        print(f"created project {project.id} {PROJECT_TITLE!r}")
    else:
        print(f"using project {project.id} {PROJECT_TITLE!r}")

    n_tasks = client.projects.get(project.id).task_number or 0
    if n_tasks == 0:
        tasks, source = demo_tasks(args.tasks)
        result = client.projects.import_tasks(project.id, request=tasks)
        n_tasks = result.task_count
        print(f"imported {n_tasks} tasks from {source}")
    else:
        print(f"project already has {n_tasks} tasks")

    if not args.no_backend:
        backend_url = args.backend_url.rstrip("/")
        ml = next((m for m in client.ml.list(project=project.id) if (m.url or "").rstrip("/") == backend_url), None)
        if ml is None:
            ml = client.ml.create(url=backend_url, project=project.id, title=BACKEND_TITLE, is_interactive=False)
            print(f"connected ML backend {ml.id} at {backend_url}")
        else:
            print(f"ML backend {ml.id} at {backend_url} already connected")
        client.projects.update(project.id, show_collab_predictions=True)
        t0 = time.monotonic()
        client.actions.create(id="retrieve_tasks_predictions", project=project.id,
                              selected_items=PrepareParamsRequestRequestSelectedItemsExcluded(all_=True, excluded=[]))
        total = client.projects.get(project.id).total_predictions_number
        print(f"asked Label Studio for predictions of all tasks ({time.monotonic() - t0:.1f}s): "
              f"project has {total} predictions")
        # The Data Manager sorts by "Prediction score" only over predictions of the project's model version: point
        # it at the version the backend serves now (it reports it to /setup, which Label Studio just called).
        served = client.ml.get(ml.id).model_version
        if served:
            client.projects.update(project.id, model_version=served)
            print(f"project model version: {served} (sort by Prediction score, ascending: least confident first)")

    print()
    print(f"Label Studio:  {url}")
    if args.username:
        print(f"  login:       {args.username} / {args.password or '(your password)'}")
    print(f"  API token:   {args.token}")
    print(f"Demo project:  {url}/projects/{project.id}/data")
    return 0


if __name__ == "__main__":
    sys.exit(main())
