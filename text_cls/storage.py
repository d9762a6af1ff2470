"""A text classifier on disk: a JSON file plus an `.npz` of arrays (no pickle), and the fine-tuned transformer
when there is one."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .controls import ControlSpec
from .encoder import DEFAULT_MODEL, Encoder, get_encoder
from .heads import LinearHead
from .params import DEFAULT_PARAMS, merge_params

if TYPE_CHECKING:
    from .classifier import TextClassifier

FORMAT = "labelloop.text_cls"
FORMAT_VERSION = 1
CONFIG_FILE = "text_classifier.json"
ARRAYS_FILE = "text_classifier.npz"
ENCODER_DIR = "encoder"


@dataclass
class Saved:
    """What `read` found: everything a `TextClassifier` is made of."""

    encoder: Encoder
    base_encoder: Encoder  # the encoder a refit starts from
    controls: list[ControlSpec]
    params: dict[str, Any]
    metrics: dict[str, dict]
    finetuned: bool
    finetune_info: dict[str, Any]
    heads: dict[str, LinearHead]
    prototypes: dict[str, np.ndarray]
    null_prototype: np.ndarray
    # control -> label centroids the head is served with; absent in versions saved before they were kept
    centroids: dict[str, np.ndarray] = field(default_factory=dict)


def write(clf: TextClassifier, directory: str | Path) -> Path:
    """Write the classifier (and a fine-tuned transformer, if any) into a folder; see `TextClassifier.save`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {"null": clf.null_prototype}
    heads: dict[str, Any] = {}
    for i, spec in enumerate(clf.controls):
        arrays[f"prototypes_{i}"] = clf.prototypes[spec.name]
        head = clf.heads.get(spec.name)
        if head is None:
            heads[spec.name] = None
            continue
        arrays[f"coef_{i}"] = head.coef
        arrays[f"intercept_{i}"] = head.intercept
        arrays[f"prior_scale_{i}"] = head.prior_scale
        if spec.name in clf.centroids:
            arrays[f"centroids_{i}"] = clf.centroids[spec.name]
        heads[spec.name] = {"classes": [spec.labels[j] for j in head.classes]}
    encoder = clf.encoder
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "controls": [asdict(spec) for spec in clf.controls],
        "params": clf.params,
        "encoder": {"name_or_path": encoder.name_or_path, "dim": encoder.dim, "max_length": encoder.max_length,
                    "finetuned": clf.finetuned},
        "heads": heads,
        "metrics": clf.metrics,
        "finetune_info": clf.finetune_info,
    }
    if clf.finetuned:
        encoder.model.save_pretrained(directory / ENCODER_DIR)
        encoder.tokenizer.save_pretrained(directory / ENCODER_DIR)
    np.savez(directory / ARRAYS_FILE, **arrays)
    # The JSON last: its presence marks a complete save.
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=_json_default))
    return directory


def read(directory: str | Path, encoder: Encoder | None = None) -> Saved:
    """Read a classifier written by `write`; see `TextClassifier.load`.

    Raises:
        ValueError: the folder holds another format, or the encoder's dimension is not the saved one.
    """
    directory = Path(directory)
    config = json.loads((directory / CONFIG_FILE).read_text())
    if config.get("format") != FORMAT or config.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{directory} does not hold a {FORMAT} v{FORMAT_VERSION} model")
    enc_info = config["encoder"]
    base_encoder = encoder
    if enc_info.get("finetuned"):
        encoder = Encoder(
            str(directory / ENCODER_DIR),
            device=base_encoder.device if base_encoder is not None else None,
            batch_size=base_encoder.batch_size if base_encoder is not None else 64,
            max_length=int(enc_info.get("max_length", 256)),
        )
    elif encoder is None:
        encoder = _encoder_for(enc_info["name_or_path"])
    if encoder.dim != int(enc_info["dim"]):
        raise ValueError(f"encoder dim {encoder.dim} does not match the saved model's {enc_info['dim']}")
    controls = [ControlSpec.from_dict(c) for c in config["controls"]]
    heads: dict[str, LinearHead] = {}
    centroids: dict[str, np.ndarray] = {}
    with np.load(directory / ARRAYS_FILE, allow_pickle=False) as arrays:
        null = arrays["null"]
        prototypes = {spec.name: arrays[f"prototypes_{i}"] for i, spec in enumerate(controls)}
        for i, spec in enumerate(controls):
            info = config["heads"].get(spec.name)
            if info is None:
                continue
            classes = np.array([spec.labels.index(label) for label in info["classes"]], dtype=np.int64)
            heads[spec.name] = LinearHead(
                spec.multi, classes, arrays[f"coef_{i}"], arrays[f"intercept_{i}"], arrays[f"prior_scale_{i}"]
            )
            if f"centroids_{i}" in arrays.files:
                centroids[spec.name] = arrays[f"centroids_{i}"]
    # A refit starts from the encoder passed in (normally the pre-trained one), else from the fine-tune.
    return Saved(encoder, base_encoder if base_encoder is not None else encoder, controls,
                 merge_params(DEFAULT_PARAMS, config["params"]), config.get("metrics") or {},
                 bool(enc_info.get("finetuned")), config.get("finetune_info") or {}, heads, prototypes, null,
                 centroids)


def _encoder_for(name_or_path: str) -> Encoder:
    # A saved absolute path may not exist on this machine (another host, a moved venv): the default model is then
    # found again by name, through weights_dir-free resolution (package, then hub).
    if Path(name_or_path).exists():
        return get_encoder(name_or_path)
    if Path(name_or_path).name == DEFAULT_MODEL.rsplit("/", 1)[-1]:
        return get_encoder(DEFAULT_MODEL)
    return get_encoder(name_or_path)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
