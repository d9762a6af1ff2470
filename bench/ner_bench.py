"""How well does the ner backend find CoNLL-2003's entities, before and after annotators label sentences?

On CoNLL-2003 (`../shared/datasets/text/conll2003`: sentences of train.txt as the pool annotators label, of dev.txt
to measure on), exact-match span F1 (micro, PER/ORG/LOC/MISC) of:

- zero-shot: spaCy's `en_core_web_sm` entities mapped onto the labels by name (`ner.mapping`: PER<-PERSON,
  LOC<-GPE/LOC/FAC, MISC<-NORP/EVENT/PRODUCT/WORK_OF_ART/LANGUAGE/LAW, ORG<-ORG); also without MISC;
- the learned model (`ner.train.fit_model`: spaCy's entities relabeled in context by `ner.relabel`, then the
  BIO-constrained tagger's spans where no relabeled entity is) from N = 25, 50, 100, 200 random annotated
  sentences (several seeds), and its parts alone: the relabeler, the tagger;
- what the backend serves after training on those N sentences (`ner.train.train_tagger`: per label both parts,
  the relabeler or spaCy's fixed mapping, chosen on a held-out quarter, then the publish guard; an unpublished
  version leaves spaCy's mapping);
- the active-learning curve: from 25 random sentences, each next batch of 25 picked by the served model's task
  score (least confident first, as the backend scores tasks) against random batches.

Run by hand (not part of CI; 19 minutes on 2 CPU cores shared at a load average of 11-14):

    .venv/bin/python -m bench.ner_bench --out bench/results

Writes `ner.json` into --out.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

import selection
from ner import conll, pipeline
from ner.features import encoder as load_encoder, token_features
from ner.mapping import label_types
from ner.model import NerModel
from ner.spans import span_f1
from ner.tagger import DEFAULT_C
from ner.train import Sample, fit_model, train_tagger

ROOT = Path(__file__).resolve().parent.parent
LABELS = ["PER", "ORG", "LOC", "MISC"]
SIZES = (25, 50, 100, 200)
SEEDS = (0, 1, 2)
PARTS = ("learned", "relabeler", "tagger")
STEP = 25  # active learning batch


def prepare(sentences, enc):
    texts = [t for t, _ in sentences]
    analyses = pipeline.analyse(texts)
    return {"texts": texts, "gold": [s for _, s in sentences], "analyses": analyses,
            "features": token_features(enc, texts, analyses)}


def evaluate(model: NerModel, data: dict, mapping: dict, labels=LABELS) -> tuple:
    measure = selection.get_measure("least_confidence")
    pred = model.predict(data["analyses"], data["features"], mapping, LABELS, measure)
    micro, per = span_f1(data["gold"], [p.spans for p in pred], labels)
    return micro, per, pred


def fit(pool: dict, rows, c: float) -> NerModel:
    mapping = label_types(LABELS, {}, pipeline.entity_types())
    samples = [Sample(pool["texts"][i], pool["gold"][i]) for i in rows]
    return fit_model([pool["features"][i] for i in rows], [pool["analyses"][i] for i in rows], samples, mapping,
                     LABELS, c)


def part(model: NerModel, name: str) -> NerModel:
    """The learned model, or one of its parts alone."""
    if name == "relabeler":
        return NerModel(None, model.relabeler)
    return NerModel(model.tagger) if name == "tagger" else model


def summary(scores: list[float]) -> dict:
    return {"mean": round(float(np.mean(scores)), 4), "std": round(float(np.std(scores)), 4),
            "per_seed": [round(s, 4) for s in scores]}


def per_label(per: list[dict]) -> dict:
    """Per-label F1 over seeds: mean and spread."""
    return {lb: summary([p[lb].f1 if lb in p else 0.0 for p in per]) for lb in LABELS}


def served_curve(pool, dev, mapping, enc, c: float) -> dict:
    """What the backend serves after training on N sentences: `ner.train.train_tagger` (per-label choice between
    both parts, the relabeler and spaCy's mapping on a held-out quarter, then the publish guard)."""
    measure = selection.get_measure("least_confidence")
    rows = {}
    for n in SIZES:
        scores, per, published, choices = [], [], 0, []
        for seed in SEEDS:
            pick = np.random.default_rng(seed).choice(len(pool["texts"]), n, replace=False)
            samples = [Sample(pool["texts"][i], pool["gold"][i], str(i)) for i in pick]
            model, metrics, publish, _ = train_tagger(samples, LABELS, mapping, None, enc, measure, c=c,
                                                      analyses=[pool["analyses"][i] for i in pick],
                                                      features=[pool["features"][i] for i in pick])
            published += publish
            choices.append(metrics["served_by"] if publish else "spacy mapping (not published)")
            micro, by_label, _ = evaluate(model if publish else NerModel(), dev, mapping)
            scores.append(micro.f1)
            per.append(by_label)
        rows[str(n)] = {**summary(scores), "published": published, "served_by": choices,
                        "per_label": per_label(per)}
        print(f"served n={n}: {rows[str(n)]['mean']:.3f} ± {rows[str(n)]['std']:.3f} ({published} published)",
              flush=True)
    return rows


def learning_curve(pool, dev, mapping, c: float) -> dict:
    """Span F1 of the learned model and of each part alone, per number of annotated sentences."""
    out = {name: {} for name in PARTS}
    for n in SIZES:
        scores = {name: [] for name in PARTS}
        per = {name: [] for name in PARTS}
        for seed in SEEDS:
            pick = np.random.default_rng(seed).choice(len(pool["texts"]), n, replace=False)
            model = fit(pool, pick, c)
            for name in PARTS:
                micro, by_label, _ = evaluate(part(model, name), dev, mapping)
                scores[name].append(micro.f1)
                per[name].append(by_label)
        for name in PARTS:
            out[name][str(n)] = {**summary(scores[name]), "per_label": per_label(per[name])}
        print(f"n={n}: " + ", ".join(f"{name} {out[name][str(n)]['mean']:.3f} ± {out[name][str(n)]['std']:.3f}"
                                     for name in PARTS), flush=True)
    return out


def active_curve(pool, dev, mapping, c: float) -> dict:
    """Least-confident-first batches of STEP against random ones, from the same STEP random sentences."""
    measure = selection.get_measure("least_confidence")
    curves = {"least_confidence": [], "random": []}
    for seed in SEEDS:
        rng = np.random.default_rng(100 + seed)
        start = list(rng.choice(len(pool["texts"]), STEP, replace=False))
        for name in curves:
            chosen, points = list(start), []
            while True:
                model = fit(pool, chosen, c)
                points.append(round(evaluate(model, dev, mapping)[0].f1, 4))
                if len(chosen) >= max(SIZES):
                    break
                left = np.setdiff1d(np.arange(len(pool["texts"])), chosen)
                if name == "random":
                    chosen += list(rng.choice(left, STEP, replace=False))
                else:
                    pred = model.predict([pool["analyses"][i] for i in left], [pool["features"][i] for i in left],
                                         mapping, LABELS, measure)
                    scores = np.array([1.0 if p.score is None else p.score for p in pred])
                    chosen += list(left[np.argsort(scores, kind="stable")[:STEP]])
            curves[name].append(points)
    sizes = list(range(STEP, max(SIZES) + 1, STEP))
    return {"sizes": sizes, **{name: {"mean": [round(float(x), 4) for x in np.mean(v, axis=0)], "per_seed": v}
                               for name, v in curves.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "text" / "conll2003")
    parser.add_argument("--weights", type=Path, default=ROOT.parent / "shared" / "models")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--pool", type=int, default=1000, help="train sentences annotators may label")
    parser.add_argument("--dev", type=int, default=800, help="dev sentences measured on")
    args = parser.parse_args()
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    train = conll.read(args.data / "train.txt")
    dev_all = conll.read(args.data / "dev.txt")
    pool_s = [train[i] for i in rng.choice(len(train), args.pool, replace=False)]
    dev_s = [dev_all[i] for i in rng.choice(len(dev_all), min(args.dev, len(dev_all)), replace=False)]
    enc = load_encoder(args.weights if args.weights.is_dir() else None)
    pool, dev = prepare(pool_s, enc), prepare(dev_s, enc)
    mapping = label_types(LABELS, {}, pipeline.entity_types())
    micro, per, _ = evaluate(NerModel(), dev, mapping)
    no_misc = evaluate(NerModel(), dev, mapping, ["PER", "ORG", "LOC"])[0]
    print(f"zero-shot: {micro.f1:.3f} (without MISC {no_misc.f1:.3f})", flush=True)
    results = {"dataset": "CoNLL-2003", "pool_sentences": len(pool_s), "dev_sentences": len(dev_s),
               "labels": LABELS, "spacy_model": pipeline.model_name(), "encoder": enc.name_or_path.rsplit("/", 1)[-1],
               "mapping": mapping, "measure": "exact-match span F1, micro",
               "zero_shot": {**micro.as_dict(), "per_label": {k: v.as_dict() for k, v in sorted(per.items())},
                             "f1_without_misc": round(no_misc.f1, 4)},
               "seeds": list(SEEDS), "tagger_c": DEFAULT_C}
    results["learned"] = learning_curve(pool, dev, mapping, DEFAULT_C)
    results["served"] = served_curve(pool, dev, mapping, enc, DEFAULT_C)
    results["active_learning"] = active_curve(pool, dev, mapping, DEFAULT_C)
    results["machine"] = {"platform": platform.platform(), "cpus": __import__("os").cpu_count()}
    results["total_s"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ner.json").write_text(json.dumps(results, indent=1))
    print(json.dumps({k: results[k] for k in ("zero_shot", "served", "total_s")}, indent=1))


if __name__ == "__main__":
    main()
