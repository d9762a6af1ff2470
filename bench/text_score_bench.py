"""Does the text backend's task score say where the model is wrong?

For N = 24, 40, 100, 200, 300 random labels (5 seeds), on TREC-6 and SST-2, the served text model (`text_cls.TextClassifier`
as the backend trains it: from 40 labels on a fine-tuned transformer where `text_cls.finetune_check` finds it not
worse on a held-out fold, self-trained on the open texts it is surest of (`text_cls.self_training`; the open texts
are the training texts not labeled, at most self_training_pool, as a project's open tasks), a single-choice head's
product with its labels' centroid classifier, `text_cls.centroids.served_product`; zero-shot where the publish guard
rejects it) predicts the held-out texts; so do the same fit without self-training (`without_self_training`, the
default before) and without fine-tuning (`frozen`). The
task score the backend writes is the confidence of the served choice under an uncertainty measure
(`selection.MEASURES`: least confidence, margin, entropy) taken on that same served distribution; a useful score is
low where the prediction is wrong. Reported: the AUROC of (1 - score) for "the prediction is wrong" (0.5 is a random
score, 1.0 puts every wrong prediction below every right one; the issue asks for at least 0.75) on the held-out
texts, and on the open texts (`open_*`: what a project ranks; the self-trained model has seen some of them with its
own choices, never their labels), side by side with
what was served before (`former_*`: the head alone served, its score the measure on the head x centroids product, 0
where the two disagree on the choice; same fit and guard verdict), a plain logistic regression's max probability on
the same embeddings and labels, and the candidates tried on the way (`tried`, see bench/text_score_explore.py; they
score the served choice).

Run by hand (not part of CI; ~2.5 hours on 2 CPU cores, most of it fine-tuning; --sizes and --many run only the
label counts named and keep the other blocks from the JSON already in --out; `runs` lists which run measured what):

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
from bench.text_score_explore import tried
from selection import MEASURES
from text_cls import DEFAULT_PARAMS, ControlSpec, TextClassifier, get_encoder
from text_cls.centroids import agreeing_confidence, centroid_proba, combine

ROOT = Path(__file__).resolve().parent.parent
SIZES = (24, 40, 100, 200, 300)
SEEDS = (0, 1, 2, 3, 4)
MANY = ("1000", "all")


TRIED = {
    "max_prob": "the served head's max probability (the former least-confidence ranking)",
    "trust_nn1/3/5": "Jiang et al. 2018 trust score: distance to the nearest (mean of k nearest) labeled text of "
                     "another class over the distance to the predicted class's, as d_other / (d_pred + d_other)",
    "trust_centroid": "the same ratio with distances to the classes' mean labeled embedding",
    "knn_agree10(_weighted)": "share of the 10 nearest labeled texts with the predicted label (weighted by "
                              "exp(cos / 0.05))",
    "nearest_labeled_sim": "cosine similarity to the nearest labeled text (novelty)",
    "zero_shot_prob_of_pred": "zero-shot's probability of the served choice",
    "laplace_x10": "last-layer Laplace approximation: logits / sqrt(1 + 10 pi v / 8), v = x' Sigma x, "
                   "Sigma^-1 = I + C X' diag(p(1-p)) X",
    "head_C1_prob_of_pred": "a smoother head's (C = 1) probability of the served choice",
    "centroid_prob_of_pred": "the centroid classifier's probability of the served choice, alone",
    "max_prob_x_centroid_prob": "max probability times the centroid classifier's probability of the choice "
                                "(unnormalised product, no margin/entropy)",
    "max_prob_x_trust_nn1": "max probability times trust_nn1",
    "product_with_zero_shot": "the served product times zero-shot's probabilities to the power of the head's "
                              "zero-shot weight (a third expert)",
    "rank_average_*": "mean rank of max probability and another signal: depends on the batch scored together",
    "least_confidence_*_agrees": "least confidence on the served product, 0 where the head alone's (head_agrees) "
                                 "or the centroid classifier's (centroid_agrees) choice is another",
    "learned combiner": "logistic regression on out-of-fold [log max prob, log centroid prob, log zero-shot "
                        "prob, agreement, log product max] of the labeled texts, by hand (/tmp script, not kept): "
                        "TREC-6 0.587/0.707/0.741/0.791, SST-2 0.529/0.696/0.720/0.734 at 24/40/100/200 labels "
                        "(too few wrong out-of-fold labels to learn from)",
    "SetFit fine-tune": "not SetFit's contrastive pairs: text_cls.finetune's cross-entropy fine-tune (heads started "
                        "from the prototypes), now served from 40 labels: the `served` columns, against `frozen`",
    "ensemble_with_frozen": "by hand (scratch script): the mean (or normalised geometric mean) of the fine-tuned and "
                            "the frozen fit's probabilities, SST-2, 100 labels, seed 0: AUROC 0.686 (0.697) against "
                            "0.737 for the fine-tuned alone; dropped",
    "finetune_epochs 5": "by hand (scratch script): SST-2 at 100/200 labels, 3 seeds, against 3 epochs: accuracy "
                         "+0.007/+0.005, AUROC +0.010/+0.000: within the seed spread, at 1.7x the time",
    "mc_dropout_8": "by hand (scratch script, before self-training): the mean of 8 forward passes with dropout on, "
                    "SST-2, 100 labels, seeds 0/1: AUROC 0.736/0.743 against 0.737/0.736 for one pass; 8x the "
                    "serving time for nothing",
    "seed_ensemble_2/3": "by hand (same script): the mean of 2 or 3 fine-tunes with other seeds: 0.735/0.731 and "
                         "0.738/0.730 against 0.737/0.736 (the fine-tunes hardly differ)",
    "self_training_x10": "by hand: 10 pseudo-labels per answer (2,000) instead of 5, SST-2, 200 labels, seed 2: "
                         "accuracy 0.796 against 0.794, AUROC 0.686 against 0.702; 2x the time",
}


def wrong_auroc(wrong: np.ndarray, confidence: np.ndarray) -> float:
    """AUROC of low confidence for wrong predictions (nan when all are right or all wrong)."""
    if wrong.all() or not wrong.any():
        return float("nan")
    return float(roc_auc_score(wrong, 1.0 - confidence))


def served_run(encoder, labels: list[str], train, test, rows: np.ndarray, params: dict | None = None,
               pool: np.ndarray | None = None) -> tuple[dict, dict]:
    """Accuracy and the AUROC of every measure for the served model trained on `rows` (the served score and the
    former one), and the AUROC of each tried candidate; without fine-tuning (params finetune False) only: the
    tried candidates mix the head's space with zero-shot's, which a fine-tune moves apart. `pool`: the training
    texts left open (as a project's open tasks: a fine-tune self-trains on them), whose own AUROC is reported too
    (`open_*`: the score ranking the tasks a project would label next)."""
    clf = TextClassifier(encoder, [ControlSpec("label", labels)], params)
    started = time.perf_counter()
    texts = [train[0][i] for i in rows]
    unlabeled = [train[0][i] for i in pool] if pool is not None else []
    metrics = clf.fit(texts, {"label": [[train[1][i]] for i in rows]}, unlabeled=unlabeled)["label"]
    fit_s = round(time.perf_counter() - started, 2)
    rejected = bool((metrics.get("guard") or {}).get("worse"))
    zero_shot = TextClassifier(encoder, [ControlSpec("label", labels)])
    served = zero_shot if rejected else clf
    probs = served.predict_proba(test[0])["label"]
    wrong = np.array([labels[p] != y for p, y in zip(probs.argmax(axis=1), test[1])])
    st = clf.finetune_info.get("self_training") or {}
    out = {"accuracy": round(float(1 - wrong.mean()), 4), "rejected": rejected, "finetuned": clf.finetuned,
           "self_trained": int(st.get("pseudo_labeled", 0)), "finetune_examples": clf.finetune_info.get("examples"),
           "fit_s": fit_s}
    out.update({name: round(wrong_auroc(wrong, measure(probs)), 4) for name, measure in MEASURES.items()})
    if pool is not None:
        open_probs = served.predict_proba(unlabeled)["label"]
        open_wrong = np.array([labels[p] != train[1][i] for p, i in zip(open_probs.argmax(axis=1), pool)])
        out["open_accuracy"] = round(float(1 - open_wrong.mean()), 4)
        out["open_least_confidence"] = round(wrong_auroc(open_wrong, MEASURES["least_confidence"](open_probs)), 4)
    if clf.finetuned:
        return out, {}
    head, former_score = former(clf, zero_shot, test[0], rejected)
    former_wrong = np.array([labels[p] != y for p, y in zip(head.argmax(axis=1), test[1])])
    out["former_accuracy"] = round(float(1 - former_wrong.mean()), 4)
    out.update({f"former_{name}": round(wrong_auroc(former_wrong, agreeing_confidence(measure, head, former_score)), 4)
                for name, measure in MEASURES.items()})
    return out, tried_run(clf, zero_shot, served, labels, train, test, rows, probs, head, wrong, rejected)


def former(clf, zero_shot, texts: list[str], rejected: bool) -> tuple[np.ndarray, np.ndarray]:
    """What was served before the product: the head alone, and the product its score was measured on."""
    if rejected:
        proba = zero_shot.predict_proba(texts)["label"]
        return proba, proba
    E = clf.encoder.encode(texts)
    head = clf.heads["label"].proba(E, clf._zero_shot_logits(clf.controls[0], E))
    return head, combine(head, centroid_proba(E, clf.centroids["label"]))


def tried_run(clf, zero_shot, served, labels, train, test, rows, probs, head_probs, wrong, rejected) -> dict:
    """AUROC of each candidate score of bench.text_score_explore for the served choice."""
    spec = clf.controls[0]
    E_l = clf.encoder.encode([train[0][i] for i in rows])
    y_l = np.array([labels.index(train[1][i]) for i in rows])
    E = clf.encoder.encode(test[0])
    zs_test, zs_l = zero_shot._zero_shot_logits(spec, E), zero_shot._zero_shot_logits(spec, E_l)
    head = None if rejected else clf.heads["label"]
    m = clf.metrics["label"]
    found = tried(E, zs_test, probs, E_l, y_l, zs_l, zero_shot.prototypes["label"], head, m["C"],
                  m["zero_shot_weight"])
    out = {name: round(wrong_auroc(wrong, conf), 4) for name, conf in found.items()}
    measure = MEASURES["least_confidence"]
    centroid_probs = probs if rejected else centroid_proba(E, clf.centroids["label"])
    for name, other in (("head_agrees", head_probs), ("centroid_agrees", centroid_probs)):
        out[f"least_confidence_{name}"] = round(wrong_auroc(wrong, agreeing_confidence(measure, other, probs)), 4)
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


def open_pool(n_train: int, rows: np.ndarray, seed: int) -> np.ndarray:
    """The training texts not labeled, as the open tasks a training run reads: at most self_training_pool of them
    (a uniform sample, as `backends.ls_client` takes)."""
    rest = np.setdiff1d(np.arange(n_train), rows)
    limit = int(DEFAULT_PARAMS["self_training_pool"])
    return rest if len(rest) <= limit else np.sort(np.random.default_rng(seed).choice(rest, limit, replace=False))


def counts(runs: list[dict]) -> dict:
    """In how many runs the candidate was rejected, fine-tuned, self-trained."""
    return {k: sum(bool(r[k]) for r in runs) for k in ("rejected", "finetuned", "self_trained")}


def score_curves(encoder, data: dict, sizes=SIZES, seeds=SEEDS, many=MANY) -> dict:
    labels, train, test = data["labels"], data["train"], data["test"]
    out: dict = {"sizes": {}}
    zs = TextClassifier(encoder, [ControlSpec("label", labels)]).predict_proba(test[0])["label"]
    zs_wrong = np.array([labels[p] != y for p, y in zip(zs.argmax(axis=1), test[1])])
    out["zero_shot"] = {"accuracy": round(float(1 - zs_wrong.mean()), 4),
                        **{n: round(wrong_auroc(zs_wrong, m(zs)), 4) for n, m in MEASURES.items()}}
    for n in sizes:
        served, tuned, frozen, plain, candidates = [], [], [], [], []
        for seed in seeds:
            rows = sample(np.array(train[1]), n, seed)
            pool = open_pool(len(train[1]), rows, seed)
            served.append({"seed": seed, **served_run(encoder, labels, train, test, rows, pool=pool)[0]})
            run = served_run(encoder, labels, train, test, rows, {"self_training": False}, pool=pool)[0]
            tuned.append({"seed": seed, **run})
            run, found = served_run(encoder, labels, train, test, rows, {"finetune": False})
            frozen.append({"seed": seed, **run})
            candidates.append(found)
            plain.append({"seed": seed, **plain_lr_run(encoder, train, test, rows)})
        keys = ["accuracy", *MEASURES, "open_accuracy", "open_least_confidence", "fit_s"]
        former_keys = ["former_accuracy", *(f"former_{m}" for m in MEASURES)]
        frozen_keys = ["accuracy", *MEASURES, "fit_s"]
        out["sizes"][str(n)] = {"served": {**summarize(served, keys), **counts(served), "runs": served},
                                "without_self_training": {**summarize(tuned, keys), **counts(tuned), "runs": tuned},
                                "frozen": {**summarize(frozen, frozen_keys + former_keys), **counts(frozen),
                                           "runs": frozen},
                                "plain_lr": {**summarize(plain, ["accuracy", "max_prob"]), "runs": plain},
                                "tried": summarize(candidates, list(candidates[0]))}
        s, t, f, p = (out["sizes"][str(n)][k] for k in ("served", "without_self_training", "frozen", "plain_lr"))
        print(f"  N={n}: served acc {s['accuracy']:.3f} AUROC " + " ".join(f"{m} {s[m]:.3f}" for m in MEASURES)
              + f" open {s['open_least_confidence']:.3f} ({s['finetuned']} fine-tuned, {s['self_trained']} "
              + f"self-trained) | without self-training acc {t['accuracy']:.3f} AUROC {t['least_confidence']:.3f} "
              + f"open {t['open_least_confidence']:.3f} | frozen acc {f['accuracy']:.3f} AUROC "
              + f"{f['least_confidence']:.3f} | plain LR acc {p['accuracy']:.3f} AUROC {p['max_prob']:.3f}",
              flush=True)
    out["many_labels"] = many_labels(encoder, labels, train, test, many)
    return out


def many_labels(encoder, labels: list[str], train, test, counts=MANY) -> dict:
    """Seed 0 with 1,000 labels (served, frozen, plain LR) and with every training text labeled (plain LR, and the
    served fit with its fine-tune capped at 2,000 answered texts by `finetune_max_examples` and without a cap; no
    open texts are left to self-train on)."""
    out: dict = {}
    for count in counts:
        n = len(train[1]) if count == "all" else int(count)
        rows = sample(np.array(train[1]), n, 0) if n < len(train[1]) else np.arange(n)
        block = out[str(n)] = {"plain_lr": plain_lr_run(encoder, train, test, rows)}
        if n < len(train[1]):
            block["served"] = served_run(encoder, labels, train, test, rows, pool=open_pool(len(train[1]), rows, 0))[0]
            block["frozen"] = served_run(encoder, labels, train, test, rows, {"finetune": False})[0]
        else:
            for name, cap in (("max_2000", 2000), ("uncapped", 10**7)):
                block[name] = served_run(encoder, labels, train, test, rows, {"finetune_max_examples": cap})[0]
        print(f"  N={n}: {block}", flush=True)
    return out


def keep_blocks(fresh: dict, kept: dict, sizes: list[int], many: list[str], n_train: int) -> None:
    """The blocks not run this time (sizes, many-label counts), from the earlier JSON, ordered by size."""
    run = {"sizes": {str(n) for n in sizes}, "many_labels": {str(n_train) if c == "all" else c for c in many}}
    for key, done in run.items():
        note = {"note": kept[key]["note"]} if "note" in kept.get(key, {}) else {}  # said of the kept blocks
        blocks = {**{n: {**b, **note} for n, b in kept.get(key, {}).items() if n not in done and n != "note"},
                  **fresh[key]}
        fresh[key] = {n: blocks[n] for n in sorted(blocks, key=int)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "text")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES),
                        help="run these label counts only (5 seeds); the other sizes' blocks are kept from the JSON "
                             "in --out")
    parser.add_argument("--many", nargs="*", default=list(MANY), choices=MANY,
                        help="the seed-0 runs with many labels: 1000, all (every training text); the others' blocks "
                             "are kept from the JSON in --out")
    parser.add_argument("--no-many", dest="many", action="store_const", const=[], help="--many with none")
    args = parser.parse_args()
    encoder = get_encoder()
    started = time.perf_counter()
    before = args.out / "text_score.json"
    partial = sorted(args.sizes) != sorted(SIZES) or sorted(args.many) != sorted(MANY)
    kept = json.loads(before.read_text()) if partial and before.exists() else {"datasets": {}}
    results: dict = {"model": encoder.name_or_path.rsplit("/", 1)[-1], "sizes": list(SIZES), "seeds": list(SEEDS),
                     "metric": "AUROC of (1 - task score) for wrong predictions on the held-out texts",
                     "served_score": "the measure on the served distribution, a single-choice head's product "
                                     "with its labels' centroid classifier (text_cls.centroids.served_product); "
                                     "former_*: the head alone served, the measure on its product with the "
                                     "centroids, 0 where the two disagree on the choice",
                     "served": "from 40 labels the transformer fine-tuned and self-trained on the open texts (the "
                               "training texts not labeled, at most self_training_pool); "
                               "without_self_training: the same without self-training (served before); "
                               "open_*: on those open texts, which a project ranks",
                     "tried": TRIED,
                     "plain_lr": "sklearn LogisticRegression() on the same embeddings and labels, 1 - max probability",
                     "sampling": "uniformly random training texts per seed", "datasets": {},
                     "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}}
    for name, data in load_datasets(args.data).items():
        print(name, flush=True)
        cached = CachedEncoder(encoder, cached_vectors(encoder, data["train"][0] + data["test"][0]))
        results["datasets"][name] = {"labels": data["labels"], "test_texts": len(data["test"][0]),
                                     **score_curves(cached, data, sizes=args.sizes, many=args.many)}
        keep_blocks(results["datasets"][name], kept["datasets"].get(name, {}), args.sizes, args.many,
                    len(data["train"][1]))
    results["total_s"] = round(time.perf_counter() - started, 1)
    results["runs"] = kept.get("runs", []) + [{"sizes": args.sizes, "many": args.many, "finished": time.strftime("%Y-%m-%d"),
                                  "total_s": results["total_s"]}]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "text_score.json").write_text(json.dumps(results, indent=1))
    print("wrote", args.out / "text_score.json", flush=True)


if __name__ == "__main__":
    main()
