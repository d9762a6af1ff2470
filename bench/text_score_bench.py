"""Does the text backend's task score say where the model is wrong?

For N = 24, 40, 100, 200 random labels (5 seeds), on TREC-6 and SST-2, the served text model (`text_cls.TextClassifier`
as the backend trains it; zero-shot where the publish guard rejects the head) predicts the held-out texts. The task
score the backend writes is the confidence of the prediction under an uncertainty measure (`selection.MEASURES`:
least confidence, margin, entropy); a useful score is low where the prediction is wrong. Reported: the AUROC of
(1 - score) for "the prediction is wrong" (0.5 is a random score, 1.0 puts every wrong prediction below every right
one; the issue asks for at least 0.75), against the same AUROC of a plain logistic regression's max probability on the
same embeddings and labels.

Run by hand (not part of CI; a few minutes on 2 CPU cores once the embeddings are cached by text_learning_bench):

    .venv/bin/python -m bench.text_score_bench --out bench/results

Writes `text_score.json` into --out.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from bench.text_learning_bench import CachedEncoder, cached_vectors, load_datasets, sample
from selection import MEASURES
from text_cls import ControlSpec, TextClassifier, get_encoder

ROOT = Path(__file__).resolve().parent.parent
SIZES = (24, 40, 100, 200)
SEEDS = (0, 1, 2, 3, 4)


def wrong_auroc(wrong: np.ndarray, confidence: np.ndarray) -> float:
    """AUROC of low confidence for wrong predictions (nan when all are right or all wrong)."""
    if wrong.all() or not wrong.any():
        return float("nan")
    return float(roc_auc_score(wrong, 1.0 - confidence))


def served_run(encoder, labels: list[str], train, test, rows: np.ndarray) -> dict:
    """Accuracy and the AUROC of every measure for the served model trained on `rows`."""
    clf = TextClassifier(encoder, [ControlSpec("label", labels)])
    metrics = clf.fit([train[0][i] for i in rows], {"label": [[train[1][i]] for i in rows]})["label"]
    rejected = bool((metrics.get("guard") or {}).get("worse"))
    served = TextClassifier(encoder, [ControlSpec("label", labels)]) if rejected else clf
    probs = served.predict_proba(test[0])["label"]
    wrong = np.array([labels[p] != y for p, y in zip(probs.argmax(axis=1), test[1])])
    out = {"accuracy": round(float(1 - wrong.mean()), 4), "rejected": rejected}
    out.update({name: round(wrong_auroc(wrong, measure(probs)), 4) for name, measure in MEASURES.items()})
    return out


def plain_lr_run(encoder, train, test, rows: np.ndarray) -> dict:
    y = [train[1][i] for i in rows]
    model = LogisticRegression().fit(encoder.encode([train[0][i] for i in rows]), y)
    probs = model.predict_proba(encoder.encode(test[0]))
    wrong = model.classes_[probs.argmax(axis=1)] != np.array(test[1])
    return {"accuracy": round(float(1 - wrong.mean()), 4), "max_prob": round(wrong_auroc(wrong, probs.max(axis=1)), 4)}


def summarize(runs: list[dict], keys: list[str]) -> dict:
    out = {}
    for key in keys:
        values = [r[key] for r in runs]
        out[key] = round(float(np.nanmean(values)), 4)
        out[f"{key}_std"] = round(float(np.nanstd(values)), 4)
    return out


def score_curves(encoder, data: dict) -> dict:
    labels, train, test = data["labels"], data["train"], data["test"]
    out: dict = {"sizes": {}}
    zs = TextClassifier(encoder, [ControlSpec("label", labels)]).predict_proba(test[0])["label"]
    zs_wrong = np.array([labels[p] != y for p, y in zip(zs.argmax(axis=1), test[1])])
    out["zero_shot"] = {"accuracy": round(float(1 - zs_wrong.mean()), 4),
                        **{n: round(wrong_auroc(zs_wrong, m(zs)), 4) for n, m in MEASURES.items()}}
    for n in SIZES:
        served, plain = [], []
        for seed in SEEDS:
            rows = sample(np.array(train[1]), n, seed)
            served.append({"seed": seed, **served_run(encoder, labels, train, test, rows)})
            plain.append({"seed": seed, **plain_lr_run(encoder, train, test, rows)})
        out["sizes"][str(n)] = {"served": {**summarize(served, ["accuracy", *MEASURES]),
                                           "rejected": sum(r["rejected"] for r in served), "runs": served},
                                "plain_lr": {**summarize(plain, ["accuracy", "max_prob"]), "runs": plain}}
        s, p = out["sizes"][str(n)]["served"], out["sizes"][str(n)]["plain_lr"]
        print(f"  N={n}: served acc {s['accuracy']:.3f} AUROC " + " ".join(f"{m} {s[m]:.3f}" for m in MEASURES)
              + f" | plain LR acc {p['accuracy']:.3f} AUROC {p['max_prob']:.3f}", flush=True)
    out["many_labels"] = {}
    for n in (1000, len(train[1])):
        rows = sample(np.array(train[1]), n, 0) if n < len(train[1]) else np.arange(n)
        out["many_labels"][str(n)] = {"plain_lr": plain_lr_run(encoder, train, test, rows)}
        print(f"  N={n}: plain LR {out['many_labels'][str(n)]['plain_lr']}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "text")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    encoder = get_encoder()
    started = time.perf_counter()
    results: dict = {"model": encoder.name_or_path.rsplit("/", 1)[-1], "sizes": list(SIZES), "seeds": list(SEEDS),
                     "metric": "AUROC of (1 - task score) for wrong predictions on the held-out texts",
                     "plain_lr": "sklearn LogisticRegression() on the same embeddings and labels, 1 - max probability",
                     "sampling": "uniformly random training texts per seed", "datasets": {},
                     "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}}
    for name, data in load_datasets(args.data).items():
        print(name, flush=True)
        cached = CachedEncoder(encoder, cached_vectors(encoder, data["train"][0] + data["test"][0]))
        results["datasets"][name] = {"labels": data["labels"], "test_texts": len(data["test"][0]),
                                     **score_curves(cached, data)}
    results["total_s"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "text_score.json").write_text(json.dumps(results, indent=1))
    print("wrote", args.out / "text_score.json", flush=True)


if __name__ == "__main__":
    main()
