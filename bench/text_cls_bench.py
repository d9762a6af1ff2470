"""Benchmark of text_cls: prediction throughput, training time, and an active-learning curve on TREC-6.

Run by hand (not part of CI):

    .venv/bin/python -m bench.text_cls_bench --out bench/results

Writes `text_cls.json` and `text_cls_active_learning.png` into --out.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

import selection  # noqa: E402
from ops import sample_data as samples  # noqa: E402  (the TREC reader and class descriptions the tests use)
from text_cls import ControlSpec, TextClassifier, get_encoder  # noqa: E402

SPEC = ControlSpec("question", list(samples.TREC_DESCRIPTIONS), descriptions=samples.TREC_DESCRIPTIONS)


def read_trec(path: Path) -> tuple[list[str], np.ndarray]:
    """Questions and coarse label indices (into SPEC.labels) from a TREC file."""
    texts, labels = samples.read_trec(path)
    return texts, np.array([SPEC.labels.index(label) for label in labels])


def accuracy(clf: TextClassifier, texts: list[str], y: np.ndarray) -> float:
    return float((clf.predict_proba(texts)[SPEC.name].argmax(axis=1) == y).mean())


def targets(y: np.ndarray) -> dict[str, list[list[str]]]:
    return {SPEC.name: [[SPEC.labels[i]] for i in y]}


def bench_throughput(encoder, texts: list[str], train: tuple[list[str], np.ndarray], repeats: int = 3) -> dict:
    """Predictions per second of a trained classifier, with the embedding cache empty and then full.

    Best of `repeats`: on a shared machine the fastest run is the one least disturbed by other work.
    """
    clf = TextClassifier(encoder, [SPEC])
    clf.fit(train[0][:200], targets(train[1][:200]))
    cold = warm = float("inf")
    for _ in range(repeats):
        encoder.clear_cache()
        start = time.perf_counter()
        clf.predict_proba(texts)
        cold = min(cold, time.perf_counter() - start)
        start = time.perf_counter()
        clf.predict_proba(texts)
        warm = min(warm, time.perf_counter() - start)
    return {
        "n_texts": len(texts),
        "repeats": repeats,
        "mean_chars": float(np.mean([len(t) for t in texts])),
        "cold_s": round(cold, 4),
        "cold_texts_per_s": round(len(texts) / cold, 1),
        "warm_s": round(warm, 4),
        "warm_texts_per_s": round(len(texts) / warm, 1),
    }


def bench_training(encoder, texts: list[str], y: np.ndarray, sizes: list[int]) -> list[dict]:
    """fit() time per training-set size: cold (embedding included) and warm (cached embeddings: heads + CV)."""
    rows = []
    rng = np.random.default_rng(0)
    for n in sizes:
        idx = rng.permutation(len(texts))[:n]
        sub_texts, sub_targets = [texts[i] for i in idx], targets(y[idx])
        encoder.clear_cache()
        clf = TextClassifier(encoder, [SPEC])
        start = time.perf_counter()
        metrics = clf.fit(sub_texts, sub_targets)[SPEC.name]
        cold = time.perf_counter() - start
        start = time.perf_counter()
        clf.fit(sub_texts, sub_targets)
        warm = time.perf_counter() - start
        rows.append({
            "n_labels": n,
            "cold_s": round(cold, 3),
            "warm_s": round(warm, 3),
            "mode": metrics["mode"],
            "cv_accuracy": metrics["cv_accuracy"],
        })
        print(f"  train n={n}: cold {cold:.2f}s, warm {warm:.2f}s", flush=True)
    return rows


def active_learning(
    encoder,
    pool: tuple[list[str], np.ndarray],
    test: tuple[list[str], np.ndarray],
    strategies: dict[str, Callable | None],
    seeds: list[int],
    start: int,
    batch: int,
    stop: int,
) -> dict:
    """Test accuracy against number of labels for each selection strategy (None = random), per seed.

    All texts are embedded once up front; every later encode is a cache hit, so a round costs one head fit
    and one pass of the head over the pool.
    """
    pool_texts, pool_y = pool
    encoder.encode(pool_texts + test[0])
    # Cross-validation is only reporting: skipped to keep 20 rounds x strategies x seeds quick.
    params = {"cv_folds": 0}
    curves: dict[str, list[list[float]]] = {name: [] for name in strategies}
    sizes = list(range(start, stop + 1, batch))
    for seed in seeds:
        rng = np.random.default_rng(seed)
        first = rng.permutation(len(pool_texts))[:start]
        for name, strategy in strategies.items():
            labeled = list(first)
            accs = []
            t0 = time.perf_counter()
            for n in sizes:
                clf = TextClassifier(encoder, [SPEC], {**params, "seed": seed})
                clf.fit([pool_texts[i] for i in labeled], targets(pool_y[labeled]))
                accs.append(accuracy(clf, *test))
                if n == sizes[-1]:
                    break
                unlabeled = np.setdiff1d(np.arange(len(pool_texts)), labeled)
                if strategy is None:
                    picked = rng.choice(unlabeled, batch, replace=False)
                else:
                    probs = clf.predict_proba([pool_texts[i] for i in unlabeled])[SPEC.name]
                    # Lowest confidence first; ties broken by position, which is deterministic.
                    picked = unlabeled[np.argsort(strategy(probs, multi_label=False), kind="stable")[:batch]]
                labeled.extend(int(i) for i in picked)
            curves[name].append(accs)
            print(f"  AL seed={seed} {name:>16}: {accs[0]:.3f} -> {accs[-1]:.3f} ({time.perf_counter() - t0:.1f}s)",
                  flush=True)
    return {
        "sizes": sizes,
        "seeds": seeds,
        "curves": {
            name: {
                "mean": np.mean(runs, axis=0).round(4).tolist(),
                "std": np.std(runs, axis=0).round(4).tolist(),
                "per_seed": np.round(runs, 4).tolist(),
            }
            for name, runs in curves.items()
        },
    }


def bench_finetune(encoder, train: tuple[list[str], np.ndarray], test: tuple[list[str], np.ndarray],
                   n_labels: int, epochs: int) -> dict:
    """Test accuracy and fit time with and without fine-tuning the transformer, on the same random labels."""
    idx = np.random.default_rng(0).permutation(len(train[0]))[:n_labels]
    texts, answers = [train[0][i] for i in idx], targets(train[1][idx])
    out: dict = {"n_labels": n_labels, "epochs": epochs}
    for finetune in (False, True):
        clf = TextClassifier(encoder, [SPEC], {"finetune": finetune, "finetune_epochs": epochs})
        start = time.perf_counter()
        clf.fit(texts, answers)
        key = "finetuned" if finetune else "head_only"
        out[key] = {"accuracy": round(accuracy(clf, *test), 4), "fit_s": round(time.perf_counter() - start, 1)}
        print(f"  {key}: {out[key]}", flush=True)
    return out


def plot(al: dict, zero_shot: float, full: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    sizes = np.array(al["sizes"])
    for name, curve in al["curves"].items():
        mean, std = np.array(curve["mean"]), np.array(curve["std"])
        ax.plot(sizes, mean, marker="o", ms=3, label=name)
        ax.fill_between(sizes, mean - std, mean + std, alpha=0.15)
    ax.axhline(zero_shot, color="grey", ls=":", label=f"zero-shot ({zero_shot:.2f})")
    ax.axhline(full, color="black", ls="--", label=f"head on all 5,452 ({full:.2f})")
    ax.set_xlabel("labeled questions")
    ax.set_ylabel("TREC-6 test accuracy (500 questions)")
    ax.set_title(f"text_cls active learning, all-MiniLM-L6-v2 + logistic head ({len(al['seeds'])} seeds)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    shared = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--weights-dir", type=Path, default=Path(os.environ.get("WEIGHTS_DIR", shared / "models")))
    parser.add_argument("--datasets-dir", type=Path, default=shared / "datasets")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--start", type=int, default=12)
    parser.add_argument("--batch", type=int, default=12)
    parser.add_argument("--stop", type=int, default=240)
    parser.add_argument("--train-sizes", type=int, nargs="+", default=[10, 50, 200, 1000])
    parser.add_argument("--finetune", type=int, default=0, metavar="N_LABELS",
                        help="also fine-tune the transformer on N random labels (minutes on a CPU); 0: skip")
    parser.add_argument("--finetune-epochs", type=int, default=3)
    args = parser.parse_args(argv)

    import torch

    args.out.mkdir(parents=True, exist_ok=True)
    trec = args.datasets_dir / "text" / "trec"
    train = read_trec(trec / "train_5500.label")
    test = read_trec(trec / "TREC_10.label")

    start = time.perf_counter()
    encoder = get_encoder(None, args.weights_dir)
    load_s = time.perf_counter() - start
    print(f"encoder {encoder} loaded in {load_s:.1f}s", flush=True)

    print("throughput", flush=True)
    throughput = bench_throughput(encoder, train[0][-1000:], train)
    print(f"  {throughput}", flush=True)
    print("training time", flush=True)
    training = bench_training(encoder, *train, args.train_sizes)

    print("references", flush=True)
    encoder.encode(train[0] + test[0])
    clf = TextClassifier(encoder, [SPEC])
    zero_shot = accuracy(clf, *test)
    start = time.perf_counter()
    clf.fit(train[0], targets(train[1]), {"cv_folds": 0})
    full_fit_s = time.perf_counter() - start
    full = accuracy(clf, *test)
    print(f"  zero-shot {zero_shot:.3f}, all {len(train[0])} labels {full:.3f} (fit {full_fit_s:.1f}s)", flush=True)

    print("active learning", flush=True)
    strategies = {
        "random": None,
        "least_confidence": selection.least_confidence,
        "margin": selection.margin,
        "entropy": selection.entropy,
    }
    al = active_learning(encoder, train, test, strategies, list(range(args.seeds)), args.start, args.batch, args.stop)

    finetune = None
    if args.finetune:
        print("fine-tuning", flush=True)
        finetune = bench_finetune(encoder, train, test, args.finetune, args.finetune_epochs)

    result = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "device": encoder.device,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "model": encoder.name_or_path,
        "encoder_load_s": round(load_s, 2),
        "throughput": throughput,
        "training_time": training,
        "trec6": {
            "test_size": len(test[0]),
            "zero_shot_accuracy": round(zero_shot, 4),
            "all_labels_accuracy": round(full, 4),
            "all_labels_fit_s": round(full_fit_s, 2),
            "active_learning": al,
            "finetune": finetune,
        },
    }
    (args.out / "text_cls.json").write_text(json.dumps(result, indent=2))
    plot(al, zero_shot, full, args.out / "text_cls_active_learning.png")
    print(f"wrote {args.out / 'text_cls.json'} and {args.out / 'text_cls_active_learning.png'}")


if __name__ == "__main__":
    main()
