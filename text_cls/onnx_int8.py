"""The sentence encoder's transformer as an int8 ONNX Runtime session, exported from the weights at first use.

On 2 CPU cores the dynamically quantized MiniLM embeds 3-5x more texts per second than PyTorch float32, at a mean
cosine of ~0.996 to the float32 embeddings (bench/text_speed_bench.py measures both and the accuracy of the heads
trained on them). The export (torch.onnx) and the quantization (onnxruntime.quantization, weights int8 per output
channel) take ~15 s once; the result is cached under a folder keyed by the SHA-256 of the source weights, the
config and the recipe, so new weights or a new recipe never reuse a stale file.

Only the transformer is exported (input ids, attention mask, token types -> last hidden state): the encoder pools
and normalises its output exactly as it does PyTorch's.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from export_cache import build_once, sources_digest

log = logging.getLogger(__name__)

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
MODEL_FILE = "model-int8.onnx"
# The FFN output projections (1536 -> 384) take GELU outputs whose range int8 activations cover badly: kept in
# float32 they raise the mean cosine to float32's embeddings from 0.994 to 0.996 (TREC questions) for a few % of speed.
KEEP_FLOAT = ("/output/dense/",)
KEEP_FLOAT_UNLESS = "/attention/"
# Part of the cache key: changing how the file is made must not reuse files made the old way.
RECIPE = "torch.onnx opset 17 -> quantize_dynamic QInt8 per-channel, FFN output float32; v1"
_SOURCE_FILES = ("config.json", "model.safetensors", "pytorch_model.bin")


def source_digest(model_dir: str | Path) -> str | None:
    """SHA-256 of a Hugging Face folder's config and weights and of `RECIPE`, or None when it holds no weights."""
    model_dir = Path(model_dir)
    files = [model_dir / name for name in _SOURCE_FILES if (model_dir / name).is_file()]
    if not any(f.name != "config.json" for f in files):
        return None
    return sources_digest(files, RECIPE)


def cached_model_path(model_dir: str | Path, cache_dir: str | Path) -> Path | None:
    """Where the int8 model of `model_dir` is (or would be) cached; None when the folder holds no weights."""
    digest = source_digest(model_dir)
    if digest is None:
        return None
    return Path(cache_dir) / f"{Path(model_dir).name}-{digest[:16]}" / MODEL_FILE


def export_int8(model_dir: str | Path, cache_dir: str | Path) -> Path:
    """The cached int8 ONNX model of a Hugging Face encoder folder, exported and quantized when not cached yet.

    Args:
        model_dir: Local Hugging Face folder (config and weights).
        cache_dir: Folder of exported models (created); each export lives in `<name>-<digest>/`.

    Returns:
        Path of the .onnx file.

    Raises:
        ValueError: `model_dir` holds no weights.
    """
    target = cached_model_path(model_dir, cache_dir)
    if target is None:
        raise ValueError(f"{model_dir} holds no model weights to export")
    if not target.is_file():
        # one export at a time per cache folder, built aside and renamed into place (export_cache.build_once)
        build_once(target.parent, lambda work: _export_into(Path(model_dir), work))
    return target


def _export_into(model_dir: Path, work: Path) -> None:
    log.info("exporting %s to int8 ONNX (once; cached in %s)", model_dir, work.parent)
    _export_float(model_dir, work / "float.onnx")
    _quantize(work / "float.onnx", work / MODEL_FILE)
    (work / "float.onnx").unlink()
    (work / "SOURCE").write_text(f"{model_dir.resolve()}\n{RECIPE}\n")


def _export_float(model_dir: Path, path: Path) -> None:
    import torch
    from transformers import AutoModel

    class LastHidden(torch.nn.Module):
        """The transformer with positional inputs and one output, as the ONNX graph takes them."""

        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    model = AutoModel.from_pretrained(str(model_dir)).eval()
    # Two rows of different lengths: the traced graph must handle padding, and every axis named below is dynamic.
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]])
    mask = (ids != 0).long()
    axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "last_hidden_state")}
    # The tracer warns about the attention mask's Python-side checks: the two-length example above covers them, and
    # tests compare the export with PyTorch on padded batches.
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(LastHidden(model), (ids, mask, torch.zeros_like(ids)), str(path), input_names=list(INPUTS),
                          output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17, dynamo=False)


def _quantize(source: Path, path: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source), load_external_data=False).graph
    keep = [node.name for node in graph.node if node.op_type == "MatMul"
            and any(part in node.name for part in KEEP_FLOAT) and KEEP_FLOAT_UNLESS not in node.name]
    quantize_dynamic(str(source), str(path), weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=keep)


class OnnxTransformer:
    """An ONNX Runtime CPU session of an exported transformer: token arrays in, last hidden state out.

    Args:
        path: The .onnx file.
        threads: intra-op threads (the process's CPU budget); inter-op stays 1, the graph is one chain.
    """

    def __init__(self, path: str | Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = Path(path)
        self.threads = options.intra_op_num_threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """(batch, tokens, dim) float32 hidden states of int64 token arrays named as `INPUTS`."""
        feed = {name: batch[name].astype(np.int64, copy=False) for name in self.input_names}
        return self.session.run(None, feed)[0]
