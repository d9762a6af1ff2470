"""The labeling loop, simulated (by hand, not CI): how much annotation time pre-annotations save, round by round, as
the model retrains on what is labeled and a selection strategy picks what to label next.

A labeled data set is replayed through the real model code. Text (`text_cls`): the served `TextClassifier` (zero-shot
until it has labels, then a head; a candidate the publish guard calls worse is not served, as in the backend;
given no open texts, so without the self-training of text_score_bench: retraining each round with it is ~5x slower)
predicts every open task; a strategy from `selection` ranks them; the simulated annotator (`bench/effort.py`,
`choices`) labels the top batch, confirming a right pre-annotation or correcting a wrong one; the classifier
retrains; repeat. Arms, on the same seeds and pools:

- random_scratch: random order, no pre-annotations (the baseline: what labeling costs without labelloop);
- random: random order, with pre-annotations;
- the default strategy (`selection.DEFAULT`) and the best of the ranking study (bench/results/selection.json when
  there, else margin, the best of bench/results/text_cls.json), with pre-annotations.

Per round and arm: cumulative annotation seconds against labeling the same tasks without pre-annotations, the
saving against the baseline's seconds for as many labels, and the held-out accuracy of the served model; means and
seed spreads. Also the confidence from which showing a pre-annotation pays (below it a wrong choice costs more than
it saves; the backend shows every prediction today).

    .venv/bin/python -m bench.loop_bench --out bench/results                 # TREC-6 and SST-2, ~40 min on 2 cores
    .venv/bin/python -m bench.loop_bench --export project.json --task text_cls --out my_results
    .venv/bin/python -m bench.loop_bench --export project.json --task detection

`--export` replays a Label Studio JSON export of a manager's own labeled project instead (`bench/loop_export.py`).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.effort import CHOICE_COSTS, ChoiceCosts, choices
from ops.sample_data import read_sst2
from selection import DEFAULT, MEASURES, STRATEGIES, Pool

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared"))
RESULTS = ROOT / "bench" / "results"
FALLBACK_BEST = "margin"  # the best uncertainty measure of bench/results/text_cls.json, when no selection study
SST2_MIN_WORDS = 5  # SST-2's training split is mostly phrases; the selection study keeps sentences of 5+ words
POOL_SHARE = 0.8  # of the pool each seed replays (as bench/selection_bench.py): seeds vary the data, not only the order
SHOW_THRESHOLDS = tuple(round(0.1 * i, 1) for i in range(0, 10))  # confidence from which a prediction is shown


@dataclass
class TextData:
    """A labeled pool to replay and a held-out test set, single choice."""

    name: str
    texts: list[str]
    labels: np.ndarray  # class index per pool text
    test_texts: list[str]
    test_labels: np.ndarray
    classes: list[str]
    descriptions: dict[str, list[str]] = field(default_factory=dict)


def load_text(datasets: Path, name: str, pool_size: int, seed: int = 0) -> TextData:
    """TREC-6 (pool from the 5,452 training questions, test TREC_10's 500) or SST-2 (pool from the training
    sentences of 5+ words, test the 872 dev sentences), the pool a random `pool_size` of the training split."""
    rng = np.random.default_rng(seed)
    if name == "trec6":
        from ops.sample_data import TREC_DESCRIPTIONS, read_trec

        train, test = (read_trec(datasets / "text" / "trec" / f) for f in ("train_5500.label", "TREC_10.label"))
        classes = list(TREC_DESCRIPTIONS)
        keep = np.sort(rng.choice(len(train[0]), min(pool_size, len(train[0])), replace=False))
        return TextData(name, [train[0][i] for i in keep], np.array([classes.index(train[1][i]) for i in keep]),
                        test[0], np.array([classes.index(c) for c in test[1]]), classes, dict(TREC_DESCRIPTIONS))
    if name == "sst2":
        texts, y = read_sst2(datasets, "train")
        sentences = [i for i, t in enumerate(texts) if len(t.split()) >= SST2_MIN_WORDS]
        keep = np.sort(rng.choice(sentences, min(pool_size, len(sentences)), replace=False))
        test_texts, test_y = read_sst2(datasets, "dev")
        return TextData(name, [texts[i] for i in keep], y[keep], test_texts, test_y, ["negative", "positive"])
    raise ValueError(f"unknown data set {name!r}; choose trec6 or sst2")


class DiskCachedEncoder:
    """The real encoder behind a store of vectors kept in bench/.cache (ignored by git): a rerun, or a second data
    set on a busy machine, does not embed the same texts again. Everything but `encode` is the real encoder's."""

    def __init__(self, encoder, cache_dir: Path = ROOT / "bench" / ".cache"):
        self._encoder = encoder
        self._cache_dir = cache_dir
        self._vectors: dict[str, np.ndarray] = {}

    def __getattr__(self, name: str):
        return getattr(self._encoder, name)

    def preload(self, texts: list[str], tag: str) -> None:
        """Vectors of `texts` from bench/.cache/loop-<tag>-<hash>.npy, embedded and stored there when absent."""
        import hashlib

        key = hashlib.sha256("\n".join([Path(self._encoder.name_or_path).name, *texts]).encode()).hexdigest()[:16]
        path = self._cache_dir / f"loop-{tag}-{key}.npy"
        if path.is_file():
            vectors = np.load(path)
        else:
            vectors = self._encoder.encode(texts)
            self._cache_dir.mkdir(parents=True, exist_ok=True)
            np.save(path, vectors)
        self._vectors.update(zip(texts, vectors))

    def encode(self, texts) -> np.ndarray:
        texts = list(texts)
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            self._vectors.update(zip(missing, self._encoder.encode(missing)))
        if not texts:
            return np.zeros((0, self._encoder.dim), dtype=np.float32)
        return np.stack([self._vectors[t] for t in texts])


def best_of_study(path: Path = RESULTS / "selection.json") -> str:
    """The registered strategy with the largest mean area over random in the ranking study
    (bench/selection_bench.py's "results" per data set), or `FALLBACK_BEST` without one."""
    try:
        study = json.loads(path.read_text())
        gains: dict[str, list[float]] = {}
        for result in study["results"].values():
            for name, s in (result.get("strategies") or {}).items():
                if name in STRATEGIES and name != "random":
                    gains.setdefault(name, []).append(float(s["auc_minus_random"]))
        return max(gains, key=lambda n: np.mean(gains[n])) if gains else FALLBACK_BEST
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return FALLBACK_BEST


def draw(data: TextData, seed: int, share: float = POOL_SHARE) -> TextData:
    """The seed's own `share` of the pool (the same for every arm), the test set unchanged."""
    keep = np.sort(np.random.default_rng(10_000 + seed).choice(len(data.texts), max(1, int(share * len(data.texts))),
                                                                replace=False))
    return TextData(data.name, [data.texts[i] for i in keep], data.labels[keep], data.test_texts, data.test_labels,
                    data.classes, data.descriptions)


def best_label(best: str) -> str:
    """Where the compared strategy comes from, for the arm's name."""
    if (RESULTS / "selection.json").is_file():
        return "best of the ranking study"
    return "best measure of bench/results/text_cls.json"


def _served_after(candidate, served, metrics: dict, control: str):
    """What the backend serves after a fit: the candidate when it trained a head the guard does not call worse."""
    m = metrics.get(control) or {}
    if m.get("mode") != "trained" or (m.get("guard") or {}).get("worse"):
        return served
    return candidate


def run_text(data: TextData, strategy: str, seed: int, batch: int, budget: int, encoder,
             params: dict | None = None, costs: ChoiceCosts = CHOICE_COSTS) -> dict:
    """One seed of one strategy: per round the labels so far, the batch's seconds with and without its
    pre-annotations, the served model's test accuracy; and per labeled task its shown confidence and whether the
    pre-annotation was right (for the show threshold)."""
    from text_cls.classifier import ControlSpec, TextClassifier

    spec = ControlSpec("label", data.classes, descriptions=data.descriptions)
    params = {"seed": seed, **(params or {})}
    chosen = STRATEGIES[strategy]
    measure = MEASURES[chosen.measure]
    x = encoder.encode(data.texts)
    words = np.array([len(t.split()) for t in data.texts])
    k = len(data.classes)
    served = TextClassifier(encoder, [spec], params)  # zero-shot
    labeled: list[int] = []
    is_open = np.ones(len(data.texts), dtype=bool)
    rounds, shown = [], []
    while len(labeled) < min(budget, len(data.texts)):
        open_idx = np.flatnonzero(is_open)
        probs = served.predict_proba([data.texts[i] for i in open_idx])["label"]
        pool = Pool.from_probs(probs, measure, embeddings=x[open_idx], labeled_embeddings=x[labeled],
                               labeled_classes=data.labels[labeled])
        pick = chosen.order(pool, min(batch, budget - len(labeled)), seed=seed * 1000 + len(labeled))
        assisted = scratch = 0.0
        for j in pick:
            i, predicted = int(open_idx[j]), int(probs[j].argmax())
            e = choices([data.classes[predicted]], [data.classes[data.labels[i]]], int(words[i]), k, costs=costs)
            assisted, scratch = assisted + e.assisted, scratch + e.scratch
            shown.append((float(probs[j].max()), bool(predicted == data.labels[i]), int(words[i])))
        picked = open_idx[pick]
        labeled.extend(int(i) for i in picked)
        is_open[picked] = False
        candidate = TextClassifier(encoder, [spec], params)
        metrics = candidate.fit([data.texts[i] for i in labeled],
                                {"label": [[data.classes[data.labels[i]]] for i in labeled]}, served=served)
        served = _served_after(candidate, served, metrics, "label")
        test_pred = served.predict_proba(data.test_texts)["label"].argmax(axis=1)
        rounds.append({"labels": len(labeled), "assisted_s": assisted, "scratch_s": scratch,
                       "accuracy": float((test_pred == data.test_labels).mean()),
                       "batch_preannotation_accuracy": float(np.mean([s[1] for s in shown[-len(pick):]])),
                       "served": served.mode("label"), "rejected": bool((metrics["label"].get("guard") or {})
                                                                         .get("worse"))})
    return {"rounds": rounds, "shown": shown}


def show_threshold(shown: list[tuple[float, bool, int]], k: int, thresholds=SHOW_THRESHOLDS,
                   costs: ChoiceCosts = CHOICE_COSTS) -> dict:
    """Seconds if a pre-annotation were shown only from confidence t (below it the annotator chooses from
    scratch), per t, and the cheapest t (the lowest on a tie)."""
    seconds = []
    for t in thresholds:
        total = 0.0
        for conf, right, w in shown:
            e = choices(None if conf < t else (["y"] if right else ["n"]), ["y"], w, k, costs=costs)
            total += e.assisted
        seconds.append(total)
    scratch = sum(choices(None, ["y"], w, k, costs=costs).scratch for _, _, w in shown)
    best = int(np.argmin(seconds))
    return {"thresholds": list(thresholds), "saving": [round(1 - s / scratch, 4) for s in seconds],
            "best": thresholds[best], "saving_at_best": round(1 - seconds[best] / scratch, 4),
            "saving_showing_all": round(1 - seconds[0] / scratch, 4)}


def arms(default: str, best: str, best_label: str = "best of the ranking study",
         extra: tuple[str, ...] = ()) -> dict[str, tuple[str, bool]]:
    """Arm name -> (strategy, pre-annotations shown)."""
    out = {"random_scratch": ("random", False), "random": ("random", True)}
    label = f"default, {best_label}" if best == default else "default"
    out[f"{default} ({label})"] = (default, True)
    if best != default:
        out[f"{best} ({best_label})"] = (best, True)
    for name in extra:
        if name not in {s for s, _ in out.values()}:
            out[name] = (name, True)
    return out


def summarize(runs: dict[str, list[dict]], baseline: str = "random_scratch") -> dict:
    """Per arm and round: mean and seed std of cumulative seconds, saving on the same tasks, saving against the
    baseline's seconds for as many labels, test accuracy."""
    def cum(arm: str, key: str) -> np.ndarray:
        return np.array([np.cumsum([r[key] for r in run["rounds"]]) for run in runs[arm]])

    base = cum(baseline, "scratch_s")
    out = {}
    for arm, per_seed in runs.items():
        assisted = cum(arm, "scratch_s") if arm == baseline else cum(arm, "assisted_s")
        scratch = cum(arm, "scratch_s")
        same = 1 - assisted / scratch
        vs_base = 1 - assisted / base
        acc = np.array([[r["accuracy"] for r in run["rounds"]] for run in per_seed])
        pre = np.array([[r["batch_preannotation_accuracy"] for r in run["rounds"]] for run in per_seed])
        out[arm] = {
            "labels": [r["labels"] for r in per_seed[0]["rounds"]],
            "cumulative_s": _ms(assisted, 1), "scratch_same_tasks_s": _ms(scratch, 1),
            "saving_same_tasks": _ms(same, 4), "saving_vs_baseline": _ms(vs_base, 4),
            "accuracy": _ms(acc, 4), "batch_preannotation_accuracy": _ms(pre, 4),
            "rejected_fits": int(sum(r["rejected"] for run in per_seed for r in run["rounds"])),
        }
    return out


def _ms(a: np.ndarray, digits: int) -> dict:
    return {"mean": a.mean(axis=0).round(digits).tolist(), "std": a.std(axis=0).round(digits).tolist()}


def text_study(data: TextData, seeds: list[int], batch: int, budget: int, encoder, default: str,
               best: str, best_label: str = "best of the ranking study", extra: tuple[str, ...] = (),
               log=None) -> dict:
    """Every arm over every seed (each on its own draw of the pool) on one data set, summarized; show threshold
    from the default arm's tasks."""
    log = log or (lambda line: print(line, flush=True))
    runs: dict[str, list[dict]] = {}
    for arm, (strategy, _) in arms(default, best, best_label, extra).items():
        if arm == "random_scratch":  # the same order and model as "random": only the annotator differs
            continue
        for seed in seeds:
            start = time.perf_counter()
            run = run_text(draw(data, seed), strategy, seed, batch, budget, encoder)
            runs.setdefault(arm, []).append(run)
            log(f"  {data.name} {arm} seed {seed}: acc {run['rounds'][-1]['accuracy']:.3f} "
                f"({time.perf_counter() - start:.0f}s)")
    runs["random_scratch"] = runs["random"]
    summary = summarize({"random_scratch": runs["random_scratch"], **{a: r for a, r in runs.items()
                                                                      if a != "random_scratch"}})
    default_arm = next(a for a in runs if a.startswith(default))
    return {
        "pool": len(data.texts), "pool_per_seed": len(draw(data, 0).texts), "test": len(data.test_texts),
        "classes": data.classes,
        "zero_shot_note": "round 1's pre-annotations come from zero-shot (no labels yet)",
        "arms": summary,
        "show_threshold": show_threshold([s for run in runs[default_arm] for s in run["shown"]], len(data.classes)),
        "show_threshold_random": show_threshold([s for run in runs["random"] for s in run["shown"]],
                                                len(data.classes)),
    }


def plot(results: dict, path: Path, title: str) -> None:
    """Per data set: saving against the baseline and test accuracy, by labels, mean +- std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(len(names), 2, figsize=(11, 3.6 * len(names)), squeeze=False)
    for row, name in zip(axes, names):
        for arm, s in results[name]["arms"].items():
            x = s["labels"]
            for ax, key in zip(row, ("saving_vs_baseline", "accuracy")):
                m, sd = np.array(s[key]["mean"]), np.array(s[key]["std"])
                ax.plot(x, m, marker=".", label=arm)
                ax.fill_between(x, m - sd, m + sd, alpha=0.15)
        row[0].set(title=f"{name}: time saved vs random order without pre-annotations", xlabel="labels",
                   ylabel="1 - seconds / baseline seconds")
        row[0].axhline(0, color="grey", lw=0.5)
        row[1].set(title=f"{name}: held-out accuracy of the served model", xlabel="labels", ylabel="accuracy")
        row[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def machine() -> dict:
    import torch

    return {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, help="folder for the JSON and PNG (default: bench/results, with --export "
                    "./loop_results)")
    ap.add_argument("--task", choices=("text_cls", "detection"), default="text_cls")
    ap.add_argument("--export", type=Path, help="a Label Studio JSON export of a labeled project to replay")
    ap.add_argument("--datasets", nargs="+", default=["trec6", "sst2"], help="text data sets (without --export)")
    ap.add_argument("--pool", type=int, default=2000, help="texts replayed per data set")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--budget", type=int, default=200)
    ap.add_argument("--strategy", action="append", choices=sorted(STRATEGIES), default=[],
                    help="more strategies to compare (always: random, the default and the best of the ranking "
                         "study); repeat for several")
    ap.add_argument("--text-key", help="--export: the task data field holding the text (default: guessed)")
    args = ap.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args.out = args.out or (Path("loop_results") if args.export is not None else RESULTS)
    if args.export is not None:
        from bench.loop_export import run_export

        return run_export(args)
    if args.task == "detection":
        from bench.loop_boxes import main as boxes_main

        return boxes_main(args)
    from text_cls import get_encoder

    encoder = DiskCachedEncoder(get_encoder(None, os.environ.get("WEIGHTS_DIR") or SHARED / "models"))
    default, best = DEFAULT, best_of_study()
    results, start = {}, time.perf_counter()
    for name in args.datasets:
        data = load_text(SHARED / "datasets", name, args.pool)
        encoder.preload(data.texts + data.test_texts, name)  # once, for every arm and rerun
        results[name] = text_study(data, list(range(args.seeds)), args.batch, args.budget, encoder, default,
                                   best, best_label(best), tuple(args.strategy))
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"machine": machine(), "model": encoder.name_or_path, "costs_s": CHOICE_COSTS.__dict__,
              "seeds": args.seeds, "batch": args.batch, "budget": args.budget, "default": default,
              "best_of_study": best, "elapsed_s": round(time.perf_counter() - start), "datasets": results}
    (args.out / "loop_text_cls.json").write_text(json.dumps(report, indent=1))
    plot(results, args.out / "loop_text_cls.png", "text_cls loop: simulated annotator, retrain every batch")
    print(format_table(results))
    return 0


def format_table(results: dict) -> str:
    """The last round of every arm, one line each."""
    lines = []
    for name, r in results.items():
        show = r["show_threshold"]
        lines.append(f"{name}: pool {r['pool']}, show pre-annotations from confidence {show['best']} "
                     f"(saving {show['saving_at_best']:.3f} vs {show['saving_showing_all']:.3f} showing all)")
        for arm, s in r["arms"].items():
            lines.append(f"  {arm:40s} labels {s['labels'][-1]:4d}  saved vs baseline "
                         f"{s['saving_vs_baseline']['mean'][-1]:+.3f} ± {s['saving_vs_baseline']['std'][-1]:.3f}  "
                         f"same tasks {s['saving_same_tasks']['mean'][-1]:+.3f}  accuracy "
                         f"{s['accuracy']['mean'][-1]:.3f} ± {s['accuracy']['std'][-1]:.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
