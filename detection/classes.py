"""A YOLO checkpoint with another class list: known classes keep their learned classification rows, new classes
start fresh, so that fine-tuning starts from a model that already predicts the classes it knew."""
from __future__ import annotations

import logging
import math
import os
import shutil
from copy import deepcopy
from datetime import datetime
from pathlib import Path

import detection.runtime  # noqa: F401  (configures Ultralytics before it is imported)

import torch
from torch import nn
from ultralytics import __version__ as ULTRALYTICS_VERSION
from ultralytics.nn.modules.head import Detect
from ultralytics.nn.tasks import DetectionModel, SegmentationModel, load_checkpoint

log = logging.getLogger(__name__)

TASK_MODELS = {"detect": DetectionModel, "segment": SegmentationModel}


def _model_names(model) -> list[str]:
    names = model.names
    if isinstance(names, dict):
        return [str(names[i]) for i in range(len(names))]
    return [str(n) for n in names]


def _class_convs(head: nn.Module, nc: int) -> list[tuple[nn.Sequential, int]]:
    """(branch, stride level) of every classification branch of a Detect/Segment head whose last layer is the
    per-class 1x1 conv (`cv3`, and `one2one_cv3` of end-to-end heads)."""
    found = []
    for attr in ("cv3", "one2one_cv3"):
        branches = getattr(head, attr, None)
        if branches is None:
            continue
        for level, branch in enumerate(branches):
            last = branch[-1]
            if not (isinstance(last, nn.Conv2d) and last.out_channels == nc):
                raise TypeError(f"unexpected classification layer {attr}[{level}][-1]: {last}")
            found.append((attr, level))
    return found


def extend_classes(weights: str | Path, class_names: list[str], out: Path) -> Path:
    """Write a trainable checkpoint at `out` whose classes are exactly `class_names`, starting from `weights`.

    The new model is built from the base model's YAML (`DetectionModel` / `SegmentationModel`, nc=len(class_names))
    and gets every base tensor unchanged, except the last 1x1 conv of each classification branch (`cv3[i][-1]`, also
    `one2one_cv3` for end-to-end heads): a class the base model knows by the same name gets its output-channel row
    (weight and bias) copied into its new index; a new class gets a freshly initialised row (PyTorch's default conv
    init, bias from Ultralytics' `Detect.bias_init` prior). The classification branches keep the base model's
    hidden width (Ultralytics sizes it from nc, so a fresh build for a different nc would be narrower or wider), so
    known classes score exactly as they did in the base model. Fresh rows are deterministic (seeded).

    When `class_names` equals the base model's names in order, the file is simply copied.

    The checkpoint follows Ultralytics' format (``{"model": half-precision model, "train_args": ..., "epoch": -1,
    ...}``) plus a ``"labelloop"`` entry recording the base file and which classes came from it: `YOLO(out)`
    predicts with it and `.train()`s it.

    Args:
        weights: base .pt checkpoint (detect or segment).
        class_names: the new class list, in index order; no duplicates.
        out: file to write (its folder is created).

    Returns:
        `out`.
    """
    weights, out = Path(weights), Path(out)
    names = [str(n) for n in class_names]
    if not names:
        raise ValueError("class_names is empty")
    if len(set(names)) != len(names):
        raise ValueError(f"class_names has duplicates: {names}")
    if weights.suffix.lower() != ".pt":
        raise ValueError(f"extend_classes needs a trainable .pt checkpoint, got {weights}")
    if not weights.is_file():
        raise FileNotFoundError(weights)
    base, ckpt = load_checkpoint(weights)  # FP32, eval mode
    base_names = _model_names(base)
    out.parent.mkdir(parents=True, exist_ok=True)
    if names == base_names:
        if weights.resolve() != out.resolve():
            shutil.copyfile(weights, out)
        return out
    new = _rebuilt(base, names, weights)
    known = {n: base_names.index(n) for n in names if n in base_names}
    _save(new, getattr(base, "task", None), ckpt, {"base": str(weights), "class_names": names, "from_base": known},
          out)
    log.info("extended %s to %d classes (%d from the base model, new: %s) -> %s", weights.name, len(names),
             len(known), [n for n in names if n not in base_names], out)
    return out


def _rebuilt(base, names: list[str], weights: Path):
    """`base` rebuilt from its YAML for `names`, every tensor kept but the per-class rows (see `extend_classes`)."""
    base_names = _model_names(base)
    task = getattr(base, "task", None)
    model_cls = TASK_MODELS.get(task)
    if model_cls is None or type(base) is not model_cls:
        raise ValueError(f"{weights}: only YOLO detect/segment checkpoints are supported (got {type(base).__name__}, "
                         f"task {task!r})")
    head_base = base.model[-1]
    if not isinstance(head_base, Detect) or len(base_names) != head_base.nc:
        raise ValueError(f"{weights}: unexpected head {type(head_base).__name__}")
    cfg = deepcopy(base.yaml)
    new = model_cls(cfg=cfg, ch=cfg.get("channels", 3), nc=len(names), verbose=False)
    head_new = new.model[-1]
    if type(head_new) is not type(head_base):
        raise ValueError(f"{weights}: rebuilding from its YAML gave a {type(head_new).__name__} head, "
                         f"not {type(head_base).__name__}")
    lookup = {n: i for i, n in enumerate(base_names)}
    source = [lookup.get(n, -1) for n in names]  # base index per new class, -1 for new classes
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        replaced = _graft_class_rows(head_base, head_new, source, len(new.model) - 1)
        base_sd = base.state_dict()
        new_sd = new.state_dict()
        keep = {k: v for k, v in base_sd.items() if k not in replaced}
        bad = [k for k, v in keep.items() if k not in new_sd or new_sd[k].shape != v.shape]
        if bad or set(new_sd) != set(base_sd):
            raise ValueError(f"{weights}: its layers do not match a model rebuilt from its YAML "
                             f"(mismatched: {bad[:5]}, keys differ: {sorted(set(new_sd) ^ set(base_sd))[:5]})")
        new.load_state_dict(keep, strict=False)
    new.names = dict(enumerate(names))
    return new.eval()


def _graft_class_rows(head_base: nn.Module, head_new: nn.Module, source: list[int], index: int) -> set[str]:
    """Give `head_new` the base head's classification branches at the base width, with the last 1x1 conv holding
    the base row of each known class (`source`: base index per new class, -1 for a new one) and fresh rows for new
    classes. Returns the state-dict keys it replaced (the head being layer `index`)."""
    nc, replaced = len(source), set()
    for attr, level in _class_convs(head_base, head_base.nc):
        branch = deepcopy(getattr(head_base, attr)[level])  # hidden layers at the base width
        old = branch[-1]
        fresh = nn.Conv2d(old.in_channels, nc, 1).to(old.weight.dtype)
        fresh.bias.fill_(math.log(5 / nc / (640 / float(head_new.stride[level])) ** 2))
        for j, s in enumerate(source):
            if s >= 0:
                fresh.weight[j] = old.weight[s]
                fresh.bias[j] = old.bias[s]
        branch[-1] = fresh
        getattr(head_new, attr)[level] = branch
        replaced.update({f"model.{index}.{attr}.{level}.{len(branch) - 1}.{p}" for p in ("weight", "bias")})
    return replaced


def _save(model, task: str, ckpt: dict, labelloop: dict, out: Path) -> None:
    """Write `model` as an Ultralytics checkpoint (half precision) that `YOLO(out)` predicts with and trains."""
    train_args = {k: v for k, v in (ckpt.get("train_args") or {}).items() if k != "data"}
    train_args["task"] = task
    payload = {
        "date": datetime.now().astimezone().isoformat(),
        "version": ULTRALYTICS_VERSION,
        "license": "AGPL-3.0 License (https://ultralytics.com/license)",
        "docs": "https://docs.ultralytics.com",
        "epoch": -1,
        "best_fitness": None,
        "model": model.half(),
        "ema": None,
        "updates": None,
        "optimizer": None,
        "train_args": train_args,
        "train_metrics": {},
        "train_results": {},
        "labelloop": labelloop,
    }
    tmp = out.with_name(out.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, out)
