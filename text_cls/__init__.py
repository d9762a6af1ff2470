"""Text classification for Label Studio choice controls: zero-shot from label names, then trained heads.

Pure ML: this package never imports `backends` (the Label Studio layer builds on it, not the other way round).

- `encoder`: the sentence encoder (MiniLM), its model resolution, engines and embedding cache.
- `onnx_int8`: the encoder's transformer exported to int8 ONNX Runtime at first use, cached by the weights' digest.
- `zero_shot`: label prototypes and the zero-shot logits of single and multiple choice.
- `heads`: logistic-regression heads over the zero-shot logits, chosen by cross-validation.
- `controls`: `ControlSpec` (a choice control's labels) and the answers as training targets.
- `params`: `DEFAULT_PARAMS` and the check of overrides.
- `guard`: a new head judged against the served recipe and zero-shot on the same folds.
- `centroids`: the labels' centroid classifier a single-choice head is served with (their product).
- `classifier`: `TextClassifier`, prediction and training of several controls on one encoder.
- `storage`: a classifier's files (JSON + npz, and a fine-tuned transformer).
- `finetune`: fine-tuning the transformer on the annotated texts; `finetune_check`: whether it helps, judged on a
  held-out fold it was not fine-tuned on; `self_training`: a fine-tune learns again from the open texts it is surest
  of.
- `version`: a trained version (a classifier per text field) and its training; `zero_shot_cache`: the zero-shot
  classifiers a server keeps.
"""
from __future__ import annotations

from .classifier import TextClassifier
from .controls import ControlSpec
from .encoder import DEFAULT_MODEL, Encoder, get_encoder, resolve_model
from .params import DEFAULT_PARAMS

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_PARAMS",
    "ControlSpec",
    "Encoder",
    "TextClassifier",
    "get_encoder",
    "resolve_model",
]
