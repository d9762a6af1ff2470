"""How fast the text backend embeds new texts, and what its int8 encoder costs in accuracy (issue #16, "Text").

Throughput of 1,000 new texts (TREC training questions, the same as bench/text_cls_bench.py), alternated over
several rounds on the same cores, each side in turn first:

- `plain`: plain transformers MiniLM, batches of 64 in input order, mean pooling (the issue's baseline);
- `torch`: labelloop's `Encoder`, PyTorch float32, length-bucketed batches of 64;
- `onnx_int8`: labelloop's `Encoder`, the int8 ONNX Runtime export, length-bucketed batches of 64.

The cores are shared, so the result is the ratios (per round, and of the medians), with the load average at start
and end. Then the accuracy of the served head (`TextClassifier.fit`, as the backend trains it) on the same labels
with each engine (500 labels, 5 label samples), on TREC-6 test and SST-2 dev, and of zero-shot; the cold start of
the export; and cached texts per second through the backend's `/predict` (Flask test client, one request of 1,000
texts already embedded, the engines alternated).

    .venv/bin/python -m bench.text_speed_bench --out bench/results     # ~10 min on 2 busy cores

Writes `text_speed.json` into --out.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from backends.threads import apply_threads, thread_budget
from bench.text_learning_bench import load_datasets, sample, served_accuracy
from ops.sample_data import read_trec
from text_cls import ControlSpec, Encoder, TextClassifier, resolve_model

ROOT = Path(__file__).resolve().parent.parent
BATCH = 64


class PlainMiniLM:
    """The baseline: transformers' AutoModel in input order, batches of 64, mean pooling, L2 normalisation."""

    def __init__(self, path: str) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()

    def encode(self, texts: list[str]) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), BATCH):
                batch = self.tokenizer(texts[start:start + BATCH], padding=True, truncation=True, max_length=256,
                                       return_tensors="pt")
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).float()
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out)


def throughput(sides: dict, texts: list[str], rounds: int) -> dict:
    """Texts/s of each side per round (the order rotates each round), medians and ratios."""
    names = list(sides)
    per_round: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            sides[name](texts)
            per_round[name].append(round(len(texts) / (time.perf_counter() - start), 1))
            print(f"round {r}: {name} {per_round[name][-1]} texts/s", flush=True)
    median = {name: statistics.median(v) for name, v in per_round.items()}
    pairs = {"onnx_int8_vs_plain": ("onnx_int8", "plain"), "onnx_int8_vs_torch": ("onnx_int8", "torch"),
             "torch_vs_plain": ("torch", "plain")}
    # Within a round the sides ran back to back under about the same load: the ratio of a round is the steadier one.
    in_rounds = {key: [round(a / b, 2) for a, b in zip(per_round[x], per_round[y])] for key, (x, y) in pairs.items()}
    return {"texts": len(texts), "rounds": rounds, "texts_per_s": per_round, "median_texts_per_s": median,
            "ratios_of_medians": {key: round(median[x] / median[y], 2) for key, (x, y) in pairs.items()},
            "ratios_per_round": in_rounds,
            "median_ratio_per_round": {key: statistics.median(v) for key, v in in_rounds.items()}}


def accuracy(engines: dict[str, Encoder], data: dict, n_labels: int, seeds: tuple[int, ...]) -> dict:
    """Per dataset: the served head's test accuracy with each engine on the same labels (each seed draws other
    labels), its mean difference, and zero-shot's."""
    out = {}
    for name, d in data.items():
        labels, train, test = d["labels"], d["train"], d["test"]
        result: dict = {"labels": n_labels, "test_texts": len(test[0]), "seeds": list(seeds)}
        for engine, encoder in engines.items():
            runs = [served_accuracy(encoder, labels, train, test, sample(np.array(train[1]), n_labels, seed))
                    for seed in seeds]
            runs = [(acc["product"], m) for acc, m in runs]  # what the backend serves
            zero = TextClassifier(encoder, [ControlSpec("label", labels)]).predict_proba(test[0])["label"]
            result[engine] = {"served_head": [round(acc, 4) for acc, _ in runs],
                              "served_head_mean": round(float(np.mean([acc for acc, _ in runs])), 4),
                              "guard_rejected": [bool((m.get("guard") or {}).get("worse")) for _, m in runs],
                              "zero_shot": round(float(np.mean([labels[p] == y for p, y in
                                                               zip(zero.argmax(axis=1), test[1])])), 4)}
            print(f"{name} {engine}: {result[engine]}", flush=True)
        int8, full = result["onnx_int8"], result["torch"]
        result["difference_int8_minus_torch"] = {
            "served_head_mean": round(int8["served_head_mean"] - full["served_head_mean"], 4),
            "served_head_per_seed": [round(a - b, 4) for a, b in zip(int8["served_head"], full["served_head"])],
            "zero_shot": round(int8["zero_shot"] - full["zero_shot"], 4)}
        out[name] = result
    return out


def embedding_agreement(torch_enc: Encoder, int8: Encoder, texts: list[str]) -> dict:
    """Cosine of the int8 embeddings to PyTorch's on the same texts."""
    cos = (torch_enc.encode(texts) * int8.encode(texts)).sum(axis=1)
    return {"texts": len(texts), "mean": round(float(cos.mean()), 4), "p01": round(float(np.quantile(cos, 0.01)), 4),
            "min": round(float(cos.min()), 4)}


def cold_start(model_dir: str, threads: int) -> dict:
    """Seconds to a ready int8 encoder with an empty export folder (export + quantization) and with the cache."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        Encoder(model_dir, engine="onnx-int8", onnx_dir=tmp, threads=threads)
        first = time.perf_counter() - start
        start = time.perf_counter()
        Encoder(model_dir, engine="onnx-int8", onnx_dir=tmp, threads=threads)
        cached = time.perf_counter() - start
    start = time.perf_counter()
    Encoder(model_dir, engine="torch")
    return {"onnx_int8_first_use_s": round(first, 2), "onnx_int8_cached_s": round(cached, 2),
            "torch_s": round(time.perf_counter() - start, 2)}


def cached_predict(texts: list[str], weights_dir: Path | None, onnx_dir: str, repeats: int) -> dict:
    """Texts/s of /predict (Flask test client) for a request whose texts are all in the embedding cache, per engine,
    the engines' requests alternated."""
    from backends.app import create_app
    from backends.config import Settings

    labels = ["Abbreviation", "Description", "Entity", "Human", "Location", "Numeric"]
    config = ('<View><Text name="text" value="$text"/><Choices name="label" toName="text">'
              + "".join(f'<Choice value="{v}"/>' for v in labels) + "</Choices></View>")
    body = {"tasks": [{"id": i + 1, "data": {"text": t}} for i, t in enumerate(texts)], "project": "1.1700000000",
            "label_config": config}
    times: dict[str, list[float]] = {"onnx-int8": [], "torch": []}
    with tempfile.TemporaryDirectory() as tmp:
        clients = {}
        for engine in times:
            settings = Settings(model_dir=Path(tmp) / "models", media_cache_dir=Path(tmp) / "media",
                                weights_dir=weights_dir, text_encoder=engine, text_onnx_dir=Path(onnx_dir),
                                cpu_threads=thread_budget())
            clients[engine] = create_app("text_cls", settings).test_client()
            first = clients[engine].post("/predict", json=body)  # embeds them (and the label prototypes)
            assert first.status_code == 200, first.get_data(as_text=True)[:300]
        for _ in range(repeats):
            for engine, client in clients.items():
                start = time.perf_counter()
                response = client.post("/predict", json=body)
                times[engine].append(time.perf_counter() - start)
                assert response.status_code == 200 and len(response.json["results"]) == len(texts)
    return {engine: {"texts_per_request": len(texts), "repeats": repeats,
                     "median_texts_per_s": round(len(texts) / statistics.median(t)),
                     "best_texts_per_s": round(len(texts) / min(t))} for engine, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "text")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--labels", type=int, default=500, help="training labels of the accuracy comparison")
    parser.add_argument("--seeds", type=int, default=5, help="label samples of the accuracy comparison")
    args = parser.parse_args()
    threads = apply_threads(thread_budget())
    weights_env = os.environ.get("WEIGHTS_DIR", "").strip()
    weights_dir = Path(weights_env) if weights_env else None
    model_dir = resolve_model(None, weights_dir)
    load_start = os.getloadavg()
    texts = read_trec(args.data / "trec" / "train_5500.label")[0][-args.texts:]

    cold = cold_start(model_dir, threads)
    onnx_dir = tempfile.mkdtemp(prefix="text-onnx-")
    torch_enc = Encoder(model_dir, cache_bytes=0)
    int8 = Encoder(model_dir, engine="onnx-int8", onnx_dir=onnx_dir, threads=threads, cache_bytes=0)
    plain = PlainMiniLM(model_dir)
    for side in (plain, torch_enc, int8):
        side.encode(texts[:64])  # warm-up: first calls allocate
    speed = throughput({"plain": plain.encode, "torch": torch_enc.encode, "onnx_int8": int8.encode}, texts,
                       args.rounds)
    agreement = embedding_agreement(torch_enc, int8, texts)
    # The heads are compared on cached encoders: each text is embedded once per engine.
    engines = {"torch": Encoder(model_dir), "onnx_int8": Encoder(model_dir, engine="onnx-int8", onnx_dir=onnx_dir,
                                                                   threads=threads)}
    acc = accuracy(engines, load_datasets(args.data), args.labels, tuple(range(args.seeds)))
    predict = cached_predict(texts, weights_dir, onnx_dir, repeats=7)
    shutil.rmtree(onnx_dir, ignore_errors=True)
    result = {
        "what": "texts/s of 1,000 new TREC questions: plain transformers MiniLM (batch 64) vs labelloop's encoder "
                "in PyTorch and int8 ONNX Runtime (length-bucketed batches of 64), alternated; accuracy of the "
                "served head trained on the same labels with each engine; cached texts/s through /predict",
        "machine": {"cpus": os.cpu_count(), "threads": threads, "platform": platform.platform(),
                    "load_average_start": [round(x, 2) for x in load_start]},
        "throughput": speed,
        "embedding_cosine_int8_vs_torch": agreement,
        "accuracy": acc,
        "cold_start": cold,
        "cached_predict": predict,
    }
    result["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "text_speed.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
