"""Exploration (scratch): candidate task scores for the text backend, as AUROC for wrong predictions.

Same data, splits, seeds and N as `text_score_bench`. Phase 1 trains the served model of every (data set, N, seed)
once and keeps what a candidate may use (the labeled embeddings and labels, the head's recipe, zero-shot logits,
the served probabilities on the held-out texts) in bench/.cache/text_score_runs.pkl (delete it to retrain); phase 2
scores candidates on them in seconds. `tried` is what text_score_bench reports under "tried".

    .venv/bin/python -m bench.text_score_explore
"""
from __future__ import annotations

import argparse
import pickle
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from bench.text_learning_bench import CACHE, CachedEncoder, cached_vectors, load_datasets, sample
from selection import MEASURES
from text_cls import ControlSpec, TextClassifier, get_encoder
from text_cls import centroids as cz
from text_cls import heads
from text_cls.zero_shot import softmax

ROOT = Path(__file__).resolve().parent.parent
RUNS = CACHE / "text_score_runs.pkl"
SIZES = (24, 40, 100, 200)  # as text_score_bench's
SEEDS = (0, 1, 2, 3, 4)


def collect(data_dir: Path) -> dict:
    """data set -> held-out embeddings, labels, zero-shot logits, prototypes, and per (N, seed) the served run."""
    encoder = get_encoder()
    out: dict = {}
    for name, data in load_datasets(data_dir).items():
        labels, train, test = data["labels"], data["train"], data["test"]
        cached = CachedEncoder(encoder, cached_vectors(encoder, train[0] + test[0]))
        E_test = cached.encode(test[0])
        y_test = np.array([labels.index(y) for y in test[1]])
        zs_clf = TextClassifier(cached, [ControlSpec("label", labels)])
        spec = zs_clf.controls[0]
        out[name] = {"labels": labels, "E_test": E_test, "y_test": y_test,
                     "zs_logits_test": zs_clf._zero_shot_logits(spec, E_test),
                     "prototypes": zs_clf.prototypes["label"], "runs": {}}
        for n in SIZES:
            for seed in SEEDS:
                rows = sample(np.array(train[1]), n, seed)
                clf = TextClassifier(cached, [ControlSpec("label", labels)])
                m = clf.fit([train[0][i] for i in rows], {"label": [[train[1][i]] for i in rows]})["label"]
                rejected = bool((m.get("guard") or {}).get("worse"))
                served = zs_clf if rejected else clf
                E_l = cached.encode([train[0][i] for i in rows])
                y_l = np.array([labels.index(train[1][i]) for i in rows])
                out[name]["runs"][(n, seed)] = {
                    "rows": rows, "E_l": E_l, "y_l": y_l, "C": m["C"], "weight": m["zero_shot_weight"],
                    "rejected": rejected, "zs_logits_l": zs_clf._zero_shot_logits(spec, E_l),
                    "P_test": served.predict_proba(test[0])["label"],
                    "head": None if rejected else clf.heads["label"]}
                print(name, n, seed, "acc", round(float((out[name]["runs"][(n, seed)]["P_test"].argmax(1)
                                                         == y_test).mean()), 3), flush=True)
    return out


def auroc(wrong: np.ndarray, confidence: np.ndarray) -> float:
    """AUROC of low confidence for wrong predictions (nan when all are right or all wrong)."""
    if wrong.all() or not wrong.any():
        return float("nan")
    return float(roc_auc_score(wrong, -confidence))


def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks scaled to [0, 1]."""
    return np.argsort(np.argsort(x)) / max(len(x) - 1, 1)


def class_distances(E: np.ndarray, E_l: np.ndarray, y_l: np.ndarray, k_labels: int, k: int = 1,
                    how: str = "nn") -> np.ndarray:
    """(n, k_labels) distance of each row to each class's labeled texts (inf for a class without any)."""
    D = np.sqrt(np.maximum(2.0 - 2.0 * (E @ E_l.T), 0.0))
    out = np.full((len(E), k_labels), np.inf)
    for c in range(k_labels):
        cols = np.flatnonzero(y_l == c)
        if not len(cols):
            continue
        if how == "centroid":
            mu = E_l[cols].mean(axis=0)
            out[:, c] = np.linalg.norm(E - mu, axis=1)
        else:
            d = np.sort(D[:, cols], axis=1)[:, :k]
            out[:, c] = d.mean(axis=1)
    return out


def trust(E, E_l, y_l, pred, k_labels, k=1, how="nn") -> np.ndarray:
    """Jiang et al.'s trust score as d_other / (d_pred + d_other), in [0, 1]."""
    D = class_distances(E, E_l, y_l, k_labels, k, how)
    rows = np.arange(len(E))
    d_pred = D[rows, pred]
    D_other = D.copy()
    D_other[rows, pred] = np.inf
    d_other = D_other.min(axis=1)
    t = np.where(np.isinf(d_pred), 0.0, d_other / (d_pred + np.where(np.isinf(d_other), 0, d_other) + 1e-12))
    return np.where(np.isinf(d_other) & ~np.isinf(d_pred), 1.0, t)


def knn_agree(E, E_l, y_l, pred, k=5, weighted=False) -> np.ndarray:
    S = E @ E_l.T
    idx = np.argsort(-S, axis=1)[:, :k]
    same = (y_l[idx] == pred[:, None]).astype(float)
    if weighted:
        w = np.exp(np.take_along_axis(S, idx, axis=1) / 0.05)
        return (same * w).sum(1) / w.sum(1)
    return same.mean(axis=1)


def nearest_sim(E, E_l, k=1) -> np.ndarray:
    return np.sort(E @ E_l.T, axis=1)[:, -k:].mean(axis=1)


def laplace_var(E, E_l, C, P_l) -> np.ndarray:
    """x^T Sigma x with Sigma^-1 = I + C * X^T diag(sum p(1-p)) X (a shared last-layer Laplace precision)."""
    s = (P_l * (1 - P_l)).sum(axis=1)
    H = np.eye(E_l.shape[1]) + C * (E_l.T * s) @ E_l
    return np.einsum("nd,de,ne->n", E, np.linalg.inv(H), E)


def tried(E: np.ndarray, zs_logits: np.ndarray, P: np.ndarray, E_l: np.ndarray, y_l: np.ndarray,
          zs_logits_l: np.ndarray, prototypes: np.ndarray, head, C: float | None, weight: float | None
          ) -> dict[str, np.ndarray]:
    """Candidate confidences of the served prediction (argmax of P) on the held-out texts E; higher = surer.

    E_l, y_l: the labeled embeddings and labels; head, C, weight: the served head and its recipe (None when the
    guard rejected it and zero-shot is served).
    """
    k_labels = P.shape[1]
    pred = P.argmax(axis=1)
    rows = np.arange(len(E))
    lc = P.max(axis=1)
    out = {"max_prob": lc}
    for k in (1, 3, 5):  # Jiang et al.'s ratio, to the k nearest labeled texts of each class
        out[f"trust_nn{k}"] = trust(E, E_l, y_l, pred, k_labels, k)
    out["trust_centroid"] = trust(E, E_l, y_l, pred, k_labels, how="centroid")
    out["knn_agree10"] = knn_agree(E, E_l, y_l, pred, 10)
    out["knn_agree10_weighted"] = knn_agree(E, E_l, y_l, pred, 10, True)
    out["nearest_labeled_sim"] = nearest_sim(E, E_l)
    out["zero_shot_prob_of_pred"] = softmax(zs_logits)[rows, pred]
    if head is not None:
        v = laplace_var(E, E_l, C, head.proba(E_l, zs_logits_l))
        Z = np.log(np.clip(P, 1e-12, 1)) / np.sqrt(1 + 10 * np.pi * v / 8)[:, None]
        out["laplace_x10"] = softmax(Z).max(axis=1)
        # A smoother head's probability of the served prediction.
        out["head_C1_prob_of_pred"] = heads.fit_single(E_l, y_l, zs_logits_l, 1.0, weight).proba(E, zs_logits)[
            rows, pred]
    else:
        out["laplace_x10"] = out["head_C1_prob_of_pred"] = lc
    Pc = cz.centroid_proba(E, cz.class_centroids(E_l, y_l, prototypes))
    out["centroid_prob_of_pred"] = Pc[rows, pred]
    out["max_prob_x_centroid_prob"] = lc * Pc[rows, pred]
    # Zero-shot as a third expert in the product, weighted by the head's zero-shot weight.
    Q3 = cz.combine(cz.combine(P, Pc), softmax(zs_logits) ** (weight or 0.0))
    out["product_with_zero_shot"] = np.where(Q3.argmax(axis=1) == pred, Q3.max(axis=1), 0.0)
    out["max_prob_x_trust_nn1"] = lc * out["trust_nn1"]
    # Rank averages depend on the batch of tasks scored together: measured, but not something a backend can serve.
    out["rank_average_max_prob_trust_centroid"] = ranks(lc) + ranks(out["trust_centroid"])
    out["rank_average_max_prob_knn_agree10_weighted"] = ranks(lc) + ranks(out["knn_agree10_weighted"])
    return out


def candidates(d: dict, run: dict) -> dict[str, np.ndarray]:
    out = tried(d["E_test"], d["zs_logits_test"], run["P_test"], run["E_l"], run["y_l"], run["zs_logits_l"],
                d["prototypes"], run["head"], run["C"], run["weight"])
    P = run["P_test"]
    Q = cz.combine(P, cz.centroid_proba(d["E_test"], cz.class_centroids(run["E_l"], run["y_l"], d["prototypes"])))
    if run["head"] is None:
        Q = P
    for mname, measure in MEASURES.items():
        out[mname] = measure(P)
        out[f"{mname}_served"] = cz.agreeing_confidence(measure, P, Q)
    return out


def score_all(runs: dict) -> dict:
    table: dict = {}
    for name, d in runs.items():
        for (n, seed), run in d["runs"].items():
            wrong = run["P_test"].argmax(axis=1) != d["y_test"]
            for key, conf in candidates(d, run).items():
                table.setdefault(key, {}).setdefault(name, {}).setdefault(n, []).append(auroc(wrong, conf))
    return table


def show(table: dict) -> None:
    names = list(next(iter(table.values())))
    head = " ".join(f"{nm[:5]}{n:>4}" for nm in names for n in SIZES)
    print(f"{'candidate':28s} {head}")
    for key, per in table.items():
        cells = []
        for nm in names:
            for n in SIZES:
                cells.append(f"{np.nanmean(per[nm][n]):.3f}")
        print(f"{key:28s} " + " ".join(f"{c:>9s}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "text")
    args = parser.parse_args()
    if not RUNS.exists():
        t = time.perf_counter()
        runs = collect(args.data)
        RUNS.write_bytes(pickle.dumps(runs))
        print("collected in", round(time.perf_counter() - t, 1), "s")
    runs = pickle.loads(RUNS.read_bytes())
    show(score_all(runs))


if __name__ == "__main__":
    main()
