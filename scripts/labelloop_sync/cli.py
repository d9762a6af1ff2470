"""The command line: `python scripts/sync.py <command> --help` for each command."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

import selection

from .connection import LS
from .errors import SyncError
from .rank import MEASURES
from .rank import STRATEGIES as RANK_STRATEGIES

INTERRUPTED_EXIT = 130


def _project_args(p: argparse.ArgumentParser, backend: bool = True) -> None:
    p.add_argument("--config", "-c", help="the project file (the project is found by its title)")
    p.add_argument("--project", "-p", type=int, help="the project id (instead of --config)")
    if backend:
        p.add_argument("--backend-url", help="the backend to call (default: the project file's first backend, or "
                                             "the first one connected in Label Studio)")
        p.add_argument("--backend-user", help="basic-auth user of the backend (or LABELLOOP_BACKEND_USER)")
        p.add_argument("--backend-password", help="basic-auth password (or LABELLOOP_BACKEND_PASSWORD)")


def _command(sub: argparse._SubParsersAction, common: argparse.ArgumentParser, name: str,
             **kwargs: Any) -> argparse.ArgumentParser:
    """A subcommand's parser that also takes the global options after its name."""
    return sub.add_parser(name, parents=[common], **kwargs)


def _setup_args(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = _command(sub, common, "setup", help="create or update a project from its project file (idempotent)",
                 description="Create or update the project described by --config: settings, overlap, ML "
                             "backends (with the webhook's basic-auth header), Data Manager views, model "
                             "version. A second run with the same file changes nothing.")
    p.add_argument("--config", "-c", required=True, help="the project file (YAML); see examples/")
    p.add_argument("--update-auth", action="store_true",
                   help="push the backends' basic-auth passwords again (Label Studio never shows them back)")


def _import_args(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = _command(sub, common, "import", help="import tasks from a folder, CSV, JSON, JSONL or a URL list",
                 description="Import tasks, skipping those already in the project (by file hash, --key "
                             "field or the whole data).")
    _project_args(p, backend=False)
    p.add_argument("source", type=Path, help="a folder of media files, .csv/.tsv, .json, .jsonl, or a URL list")
    p.add_argument("--urls", action="store_true", help="SOURCE is a text file with one media URL per line")
    p.add_argument("--key", help="data field that identifies a task (default: the whole data)")
    p.add_argument("--blur-faces", action="store_true",
                   help="blur faces in images before upload (OpenCV Haar cascades; a privacy aid, not a guarantee)")
    p.add_argument("--local-storage", action="store_true",
                   help="serve the folder through a local-files storage instead of uploading (large sets)")


def _predict_args(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = _command(sub, common, "predict", help="pre-annotate tasks through the backend's /predict (resumable)",
                 description="Predict every task without a prediction of the served model version, in "
                             "batches written as they finish; then set the project's model version.")
    _project_args(p)
    p.add_argument("--limit", type=int, help="predict at most N tasks (default: all)")
    p.add_argument("--batch-size", type=int, default=32)


def _rank_args(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = _command(sub, common, "rank", help="re-score open tasks so the most useful come first",
                 description="Re-score every open task with the served model; the 'Most uncertain first' "
                             "view then shows the least confident first.")
    _project_args(p)
    p.add_argument("--strategy", choices=RANK_STRATEGIES,
                   help=f"default {selection.DEFAULT}, the best measured (bench/results/selection.json)")
    p.add_argument("--batch", type=int, default=20,
                   help="batch-aware strategies: how many tasks they put on top, in their order")
    p.add_argument("--uncertainty", choices=MEASURES, help="the measure behind the scores (default: the strategy's)")
    p.add_argument("--batch-size", type=int, default=32)


def _retrain_args(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = _command(sub, common, "retrain", help="train a new version, wait for it, then re-rank (cron-safe)",
                 description="Send START_TRAINING to the backend, wait for the job, fail (non-zero) when it "
                             "fails or publishes nothing; a lock keeps two runs apart. Exit 3: locked, "
                             "4: timed out.")
    _project_args(p)
    p.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the job (default 1800)")
    p.add_argument("--lock-file", type=Path, help="default: $TMPDIR/labelloop-sync-retrain-<project>.lock")
    p.add_argument("--strategy", choices=RANK_STRATEGIES, help=f"re-rank strategy (default {selection.DEFAULT})")
    p.add_argument("--no-rank", action="store_true", help="do not re-rank after training")


def _export_args(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = _command(sub, common, "export", help="export completed tasks (json, csv, coco, yolo, voc, asr-manifest, "
                                             "ocr, conll, spacy-jsonl)",
                 description="Export tasks with at least one submitted annotation, with agreement between "
                             "annotators (agreement.json): IoU for boxes, polygons and masks, OKS for keypoints, "
                             "word / character error rate for transcripts / OCR lines, set overlap for choices, "
                             "span F1 for entities.")
    _project_args(p, backend=False)
    p.add_argument("--format", "-f", required=True, choices=["json", "csv", "coco", "yolo", "voc", "asr-manifest",
                                                                 "ocr", "conll", "spacy-jsonl"],
                   help="coco and yolo also take brush masks, polygons and keypoints; ocr: a JSONL manifest of "
                        "text lines")
    p.add_argument("--out", "-o", type=Path, required=True, help="output folder")
    p.add_argument("--all", action="store_true", help="also tasks without annotations")
    p.add_argument("--min-agreement", type=float, help="drop overlapping tasks whose agreement (0..1) is below this")
    p.add_argument("--copy-media", action="store_true",
                   help="copy images / audio next to the labels (ocr: also a crop of every line)")


def _status_args(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = _command(sub, common, "status", help="tasks, labeled, predicted, served versions, agreement, backend health")
    _project_args(p)


_COMMANDS = (_setup_args, _import_args, _predict_args, _rank_args, _retrain_args, _export_args, _status_args)


def _repeated_options() -> argparse.ArgumentParser:
    """The global options again, for after the command name (`sync.py status --url ...`), without overriding the
    ones given before it."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--api-key", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return common


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command (one `_<command>_args` function each)."""
    parser = argparse.ArgumentParser(
        prog="sync.py", description="labelloop project manager: set up Label Studio projects, import tasks, "
                                    "pre-annotate, rank, retrain and export.")
    parser.add_argument("--url", default=os.environ.get("LABEL_STUDIO_URL", ""),
                        help="Label Studio URL (default: $LABEL_STUDIO_URL)")
    parser.add_argument("--api-key", default=os.environ.get("LABEL_STUDIO_API_KEY", ""),
                        help="legacy token or personal access token (default: $LABEL_STUDIO_API_KEY)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    common = _repeated_options()
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for add_command in _COMMANDS:
        add_command(sub, common)
    return parser


def _print(args: argparse.Namespace, result: Any, text: Callable[[Any], str]) -> None:
    print(json.dumps(result, indent=2, default=str) if args.json else text(result))


def _errors(errs: list[str]) -> str:
    return f"; {len(errs)} not predicted (first: {errs[0]})" if errs else ""


def run(args: argparse.Namespace) -> int:
    from . import context

    ls = LS(args.url, args.api_key)
    if args.command == "setup":
        from . import config as config_mod
        from .project import setup

        cfg = config_mod.load(args.config)
        ls.check()
        project_id, changes, notes = setup(ls, cfg, update_auth=args.update_auth)
        result = {"project": project_id, "changes": changes, "notes": notes}
        _print(args, result, lambda r: "\n".join([f"project {project_id} {cfg.title!r}: "
                                                  + (f"{len(changes)} change(s)" if changes else "no changes"),
                                                  *(f"  {c}" for c in changes), *(f"  note: {n}" for n in notes)]))
        return 0
    ctx = context.resolve(ls, args)
    if args.command == "import":
        from . import importing

        result = importing.run(ctx, args.source, urls=args.urls, key=args.key, blur=args.blur_faces,
                               local_storage=args.local_storage)
        _print(args, result, lambda r: f"project {ctx.project_id}: " + ", ".join(
            f"{k} {v}" for k, v in r.items() if k != "kind"))
    elif args.command == "predict":
        from . import predict

        result = predict.run(ctx, limit=args.limit, batch_size=args.batch_size)
        _print(args, result, lambda r: f"project {ctx.project_id}: {r['predicted']} tasks predicted by "
                                       f"{r['model_version']}, {r['already']} already were{_errors(r['errors'])}")
    elif args.command == "rank":
        from . import rank

        result = rank.run(ctx, args.strategy, batch=args.batch, batch_size=args.batch_size,
                          uncertainty=args.uncertainty)
        _print(args, result, lambda r: f"project {ctx.project_id}: {r['scored']} open tasks ranked by "
                                       f"{r['strategy']} with {r['model_version']}; first: {r['top'][:5]}"
                                       + (f" ({r['note']})" if r.get("note") else "") + _errors(r["errors"]))
    elif args.command == "retrain":
        from . import rank, retrain

        rerank = None if args.no_rank else (lambda: rank.run(ctx, args.strategy))
        result = retrain.run(ctx, timeout=args.timeout, lock_path=args.lock_file, rerank=rerank)
        _print(args, result, lambda r: f"project {ctx.project_id}: trained {r['model_version']} (was {r['before']})"
                                       f" metrics {json.dumps(r['metrics'])}"
                                       + (f"; re-ranked {r['rank']['scored']} tasks" if r["rank"] else ""))
    elif args.command == "export":
        from . import export

        result = export.run(ctx, args.format, args.out, include_all=args.all, min_agreement=args.min_agreement,
                            copy_media=args.copy_media)
        _print(args, result, lambda r: f"project {ctx.project_id}: exported {r['tasks']} tasks as {r['format']} to "
                                       f"{args.out} (overlapping {r['overlapping']}, mean agreement "
                                       f"{r['mean_agreement']}, dropped {r['dropped_low_agreement']})")
    elif args.command == "status":
        from . import status

        result = status.run(ctx)
        _print(args, result, status.render)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except SyncError as e:
        print(f"sync.py {args.command}: error: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print(f"sync.py {args.command}: interrupted; what was written stays, run it again to continue",
              file=sys.stderr)
        return INTERRUPTED_EXIT
