"""Study of the selection strategies: which order of labeling makes a model learn fastest, against random.

Simulated pool-based active learning on MiniLM embeddings (the text_cls encoder) with a plain logistic regression
as the model: start with nothing labeled, let a strategy pick a batch from the open pool, reveal those labels,
refit, measure test accuracy, repeat to the budget. Each seed draws 80 % of the pool; every strategy sees the same
draws and seeds, so the first batch of the uncertainty strategies (no model yet: random) is random's first batch.

Data sets (from ../shared/datasets/text): TREC-6 (pool: the 5,452 training questions, test: TREC_10's 500) and
SST-2 (pool: a fixed random 4,000 of the training phrases with at least 5 words, test: the 872 dev sentences;
the whole 67k is too slow to embed on 2 CPU cores and mostly short fragments).

Reported per strategy, as ratios to random in the same run:
- auc: mean accuracy over budgets 20..200 (trapezoid area / 180), and its difference to random's;
- labels to 95 %: the first budget where the mean curve reaches 95 % of the same model's accuracy on the whole
  pool, divided by random's (every strategy keeps going past the budget until it gets there, random first, the
  others at most to random's figure: past it the ratio is above 1 and only "not reached" is reported);
- worse: budgets where random's mean beats the strategy's by more than the larger of their seed spreads (std).

    .venv/bin/python bench/selection_bench.py            # writes bench/results/selection.json and .png

Embeddings are cached in bench/.cache (ignored by git), so reruns take only the simulation's time.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from ops.demo_data import read_trec
from ops.sample_data import read_sst2
from selection import MEASURES, STRATEGIES, Pool, Strategy
from selection import registry
from selection.cold_start import typical_clusters
from selection.diversity import diverse_uncertain, kcenter

ROOT = Path(__file__).resolve().parent.parent

AUC_RANGE = (20, 200)
TARGET = 0.95  # of the full-pool accuracy
C = 10.0  # the text_cls head's C (text_cls/heads.py): a plain LR on unit-length embeddings underfits at C=1
SST2_POOL = 4000
POOL_SHARE = 0.8  # of the pool each seed draws from
SST2_MIN_WORDS = 5


def load(datasets: Path, name: str, seed: int = 0) -> dict:
    """Pool and test texts and integer labels of a data set."""
    if name == "trec6":
        train, test = (read_trec(datasets / "text" / "trec" / f) for f in ("train_5500.label", "TREC_10.label"))
        classes = sorted(set(train[1]))
        return {"pool": (train[0], np.array([classes.index(c) for c in train[1]])),
                "test": (test[0], np.array([classes.index(c) for c in test[1]])), "classes": classes}
    if name == "sst2":
        texts, y = read_sst2(datasets, "train")
        keep = [i for i, t in enumerate(texts) if len(t.split()) >= SST2_MIN_WORDS]
        chosen = np.sort(np.random.default_rng(seed).choice(keep, SST2_POOL, replace=False))
        return {"pool": ([texts[i] for i in chosen], y[chosen]), "test": read_sst2(datasets, "dev"),
                "classes": ["negative", "positive"]}
    raise ValueError(f"unknown data set {name!r}")


def embed(texts: list[str], weights_dir: Path, cache_dir: Path) -> np.ndarray:
    """MiniLM embeddings of the texts, from bench/.cache when the same model already embedded the same texts."""
    from text_cls import get_encoder
    from text_cls.encoder import resolve_model

    model = resolve_model(None, weights_dir)
    key = hashlib.sha256(("\n".join([Path(model).name, *texts])).encode()).hexdigest()[:16]
    path = cache_dir / f"embeddings-{key}.npy"
    if path.is_file():
        return np.load(path)
    start = time.perf_counter()
    vectors = get_encoder(None, weights_dir).encode(texts)
    print(f"  embedded {len(texts)} texts in {time.perf_counter() - start:.0f}s", flush=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def fit(x: np.ndarray, y: np.ndarray, k: int, seed: int) -> Callable[[np.ndarray], np.ndarray] | None:
    """A logistic regression on the labels so far, as (n, k) probabilities; None below two classes."""
    classes = np.unique(y)
    if len(classes) < 2:
        return None
    model = LogisticRegression(C=C, max_iter=2000, random_state=seed).fit(x, y)

    def proba(v: np.ndarray) -> np.ndarray:
        out = np.zeros((len(v), k))
        out[:, classes] = model.predict_proba(v)  # classes without a label get probability 0
        return out
    return proba


def accuracy(proba, labeled_y: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    if proba is None:  # one class labeled: everything is that class
        return float((y == labeled_y[0]).mean())
    return float((proba(x).argmax(axis=1) == y).mean())


def curve(strategy: Strategy, data: dict, seed: int, batch: int, budget: int,
          until: float | None = None, cap: int | None = None) -> tuple[list[int], list[float]]:
    """Labels and test accuracy after each batch up to `budget` labels.

    With `until` (the target accuracy) it goes on past the budget while below it, in steps of a tenth of the
    labels so far, and at most to `cap` labels: random may need thousands, and labels-to-target is then known to
    within 10 %.
    """
    # each seed draws its own 80 % of the pool, so deterministic strategies (k-center) vary with the data too
    keep = np.sort(np.random.default_rng(10_000 + seed).choice(len(data["x"]), int(POOL_SHARE * len(data["x"])),
                                                               replace=False))
    x, y = data["x"][keep], data["pool"][1][keep]
    k = len(data["classes"])
    labeled: list[int] = []
    is_open = np.ones(len(x), dtype=bool)
    sizes: list[int] = []
    accs: list[float] = []
    proba = None
    while True:
        open_idx = np.flatnonzero(is_open)
        known = {"embeddings": x[open_idx], "labeled_embeddings": x[labeled], "labeled_classes": y[labeled]}
        pool = Pool(**known) if proba is None else \
            Pool.from_probs(proba(x[open_idx]), MEASURES[strategy.measure], **known)
        step = batch if len(labeled) < budget else max(batch, len(labeled) // 10)
        picked = open_idx[strategy.order(pool, step, seed=seed * 1000 + len(labeled))]
        labeled.extend(int(i) for i in picked)
        is_open[picked] = False
        proba = fit(x[labeled], y[labeled], k, seed)
        sizes.append(len(labeled))
        accs.append(accuracy(proba, y[labeled], data["xt"], data["test"][1]))
        n = len(labeled)
        if n >= budget and (until is None or accs[-1] >= until or n >= min(len(x), cap or len(x))):
            return sizes, accs


def hybrid_variant(cold_labels: int, then: Callable = diverse_uncertain, name: str | None = None) -> Strategy:
    """The hybrid with another cold-start length or another second phase (the study of its parameters)."""
    def select(pool: Pool, n: int, rng: np.random.Generator) -> np.ndarray:
        if pool.confidence is None or pool.labeled < cold_labels:
            return typical_clusters(pool, n, rng)
        return then(pool, n, rng)
    base = STRATEGIES["hybrid"]
    return Strategy(name or f"hybrid_cold{cold_labels}", select, base.measure, base.needs, True,
                    f"typiclust below {cold_labels} labels, then {then.__name__}")


def labels_to(mean: np.ndarray, sizes: np.ndarray, target: float) -> int | None:
    hit = np.flatnonzero(mean >= target)
    return int(sizes[hit[0]]) if len(hit) else None


def auc(mean: np.ndarray, sizes: np.ndarray) -> float:
    lo, hi = AUC_RANGE
    keep = (sizes >= lo) & (sizes <= hi)
    return float(np.trapezoid(mean[keep], sizes[keep]) / (hi - lo))


def extended_labels_to(per_seed: list[tuple[list[int], list[float]]], target: float) -> int | None:
    """Labels until the mean curve over seeds reaches `target`, the curves past the budget included. Every seed
    follows the same size schedule and stops once it reaches the target; its last accuracy stands in after that
    (it can only flatter a seed that stopped early, and that seed had reached the target)."""
    longest = max(per_seed, key=lambda r: len(r[0]))[0]
    padded = np.array([acc + [acc[-1]] * (len(longest) - len(acc)) for _, acc in per_seed])
    return labels_to(padded.mean(axis=0), np.array(longest), target)


def summarize(runs: dict[str, list[tuple[list[int], list[float]]]], batch: int, budget: int, full: float) -> dict:
    """Per strategy: curves, AUC, labels to 95 % and the budgets where it is worse than random, vs random."""
    target = TARGET * full
    n_budget = budget // batch
    sizes = np.arange(1, n_budget + 1) * batch
    random_to = extended_labels_to(runs["random"], target)
    rand = np.array([acc[:n_budget] for _, acc in runs["random"]])
    random_auc = auc(rand.mean(axis=0), sizes)
    out = {}
    for name, per_seed in runs.items():
        a = np.array([acc[:n_budget] for _, acc in per_seed])
        mean, std = a.mean(axis=0), a.std(axis=0)
        worse = (rand.mean(axis=0) - mean) > np.maximum(std, rand.std(axis=0))
        to = extended_labels_to(per_seed, target)
        out[name] = {
            "mean": mean.round(4).tolist(), "std": std.round(4).tolist(),
            "auc_20_200": round(auc(mean, sizes), 4),
            "auc_minus_random": round(auc(mean, sizes) - random_auc, 4),
            "auc_ratio": round(auc(mean, sizes) / random_auc, 4),
            "labels_to_95": to,
            "labels_to_95_ratio": round(to / random_to, 3) if to and random_to else None,
            "worse_than_random_at": sizes[worse].tolist(),
            "meets_targets": bool(auc(mean, sizes) - random_auc >= 0.01 and to is not None and random_to
                                  and to / random_to <= 0.6 and not worse.any()),
        }
    return {"sizes": sizes.tolist(), "full_pool_accuracy": round(full, 4), "target_accuracy": round(target, 4),
            "random_labels_to_95": random_to, "strategies": out}


def study(data: dict, strategies: dict[str, Strategy], seeds: int, batch: int, budget: int) -> dict:
    x, y, xt, yt = data["x"], data["pool"][1], data["xt"], data["test"][1]
    full_model = fit(x, y, len(data["classes"]), 0)
    full = accuracy(full_model, y, xt, yt)
    print(f"  full pool ({len(x)} labels): accuracy {full:.3f}", flush=True)
    runs: dict[str, list[tuple[list[int], list[float]]]] = {}
    seconds: dict[str, float] = {}
    cap = None  # the others go past the budget at most as far as random needed
    for name, strategy in strategies.items():
        start = time.perf_counter()
        runs[name] = [curve(strategy, data, seed, batch, budget, until=TARGET * full, cap=cap)
                      for seed in range(seeds)]
        if name == "random":
            cap = extended_labels_to(runs[name], TARGET * full)
        seconds[name] = round(time.perf_counter() - start, 1)
        finals = [acc[budget // batch - 1] for _, acc in runs[name]]
        print(f"  {name:>18}: at {budget} labels {np.mean(finals):.3f} ± {np.std(finals):.3f} "
              f"({time.perf_counter() - start:.0f}s)", flush=True)
    return {"pool_size": len(x), "test_size": len(xt), "classes": data["classes"], "seconds": seconds,
            **summarize(runs, batch, budget, full)}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(7 * len(results), 5), squeeze=False)
    for ax, (name, r) in zip(axes[0], results.items()):
        sizes = np.array(r["sizes"])
        colours = plt.cm.tab20(np.linspace(0, 1, 20))
        for j, (s, v) in enumerate(r["strategies"].items()):
            mean, std = np.array(v["mean"]), np.array(v["std"])
            style = {"color": "black", "lw": 2.5} if s == "random" else \
                {"color": colours[j % 20], "lw": 2.5 if s == registry.DEFAULT else 1.1}
            tag = " (default)" if s == registry.DEFAULT else ""
            ax.plot(sizes, mean, label=f"{s}{tag} (AUC {v['auc_minus_random']:+.3f})", **style)
            if s == "random":
                ax.fill_between(sizes, mean - std, mean + std, color="black", alpha=0.12)
        ax.axhline(r["target_accuracy"], color="grey", ls="--", lw=1, label="95 % of full-pool accuracy")
        ax.set_title(f"{name}: pool {r['pool_size']}, test {r['test_size']}")
        ax.set_xlabel("labels")
        ax.set_ylabel("test accuracy (logistic regression on MiniLM)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    shared = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--weights-dir", type=Path, default=Path(os.environ.get("WEIGHTS_DIR", shared / "models")))
    parser.add_argument("--datasets-dir", type=Path, default=shared / "datasets")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "bench" / ".cache")
    parser.add_argument("--data", nargs="+", default=["trec6", "sst2"], choices=["trec6", "sst2"])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--strategies", nargs="+", help="default: all of selection's, plus hybrid variants")
    args = parser.parse_args(argv)

    strategies = {name: STRATEGIES[name] for name in (args.strategies or STRATEGIES) if name in STRATEGIES}
    if not args.strategies:
        for cold in (20, 60):
            strategies[f"hybrid_cold{cold}"] = hybrid_variant(cold)
        strategies["hybrid_kcenter"] = hybrid_variant(registry.COLD_START_LABELS, kcenter, "hybrid_kcenter")
    strategies = {"random": STRATEGIES["random"], **strategies}
    results = {}
    started = time.perf_counter()
    for name in args.data:
        print(name, flush=True)
        data = load(args.datasets_dir, name)
        data["x"] = embed(data["pool"][0], args.weights_dir, args.cache_dir)
        data["xt"] = embed(data["test"][0], args.weights_dir, args.cache_dir)
        # one BLAS/OpenMP thread: k-means and the fits are many small calls, which threads only slow down
        with threadpool_limits(1):
            results[name] = study(data, strategies, args.seeds, args.batch, args.budget)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "setup": {"model": "sklearn LogisticRegression(C=%g) on all-MiniLM-L6-v2 mean-pooled embeddings" % C,
                  "seeds": args.seeds, "batch": args.batch, "budget": args.budget, "auc_range": AUC_RANGE,
                  "target": f"{TARGET:.0%} of the full-pool accuracy", "sst2_pool": SST2_POOL,
                  "sst2_min_words": SST2_MIN_WORDS, "pool_share_per_seed": POOL_SHARE,
                  "cold_start_labels": registry.COLD_START_LABELS,
                  "default_strategy": registry.DEFAULT, "seconds": round(time.perf_counter() - started, 1)},
        "strategies": {name: s.summary for name, s in strategies.items()},
        "results": results,
    }
    (args.out / "selection.json").write_text(json.dumps(report, indent=1))
    plot(results, args.out / "selection.png")
    for name, r in results.items():
        print(f"{name}: full {r['full_pool_accuracy']}, random needs {r['random_labels_to_95']} labels for 95 %")
        for s, v in sorted(r["strategies"].items(), key=lambda kv: -kv[1]["auc_20_200"]):
            print(f"  {s:>18}: AUC {v['auc_20_200']:.4f} ({v['auc_minus_random']:+.4f}), to 95 % "
                  f"{v['labels_to_95']} ({v['labels_to_95_ratio']}), worse at {v['worse_than_random_at']}")
    print(f"wrote {args.out / 'selection.json'} and {args.out / 'selection.png'}")


if __name__ == "__main__":
    main()
