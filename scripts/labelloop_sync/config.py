"""The project file of `setup` (YAML), read into typed settings with clear errors for every mistake.

    title: Support tickets                  # the project is found by this title
    description: ...
    instructions: <p>Shown to annotators before they start.</p>
    template: text_cls                      # or label_config: <View>...</View>
    labels: [Billing, Bug, Question]
    data_key: text                          # optional: the task field the template reads
    overlap: {maximum_annotations: 2, overlap_cohort_percentage: 100}
    predictions: {show: true, model_version: auto}
    ml_backends:
      - url: http://127.0.0.1:9090
        title: labelloop text_cls
        auth: {user: label-studio, password: ${BACKEND_PASS}}
        interactive: false
        extra_params: {uncertainty: margin}
    views: {most_uncertain: true, tiers: {hard_below: 0.5, easy_from: 0.8}}

`${VAR}` and `${VAR:-default}` are replaced from the environment, so secrets stay out of the file.
"""
from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import selection

from . import templates
from .errors import ConfigError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
TOP_KEYS = {"title", "description", "instructions", "template", "template_options", "labels", "data_key", "choice",
            "label_config", "overlap", "predictions", "ml_backends", "views", "settings"}
# what `template_options` may pass on to templates.render
TEMPLATE_OPTIONS = {"name": str, "header": str, "mask": str, "smart": bool, "shape": str, "box": str}


@dataclass
class BackendConfig:
    """One ML backend to connect."""

    url: str
    title: str
    user: str | None = None
    password: str | None = None
    interactive: bool = False
    extra_params: dict | None = None
    timeout: float | None = None

    @property
    def auth(self) -> tuple[str, str] | None:
        return (self.user, self.password or "") if self.user else None

    def auth_header(self) -> str | None:
        """`Basic ...` for the webhook Label Studio calls (it does not send the model's credentials there)."""
        if not self.user:
            return None
        return "Basic " + base64.b64encode(f"{self.user}:{self.password or ''}".encode()).decode()


@dataclass
class Tiers:
    """Difficulty by prediction score: hard below `hard_below`, easy from `easy_from`, medium between."""

    hard_below: float = 0.5
    easy_from: float = 0.8


@dataclass
class ProjectConfig:
    title: str
    label_config: str
    description: str = ""
    instructions: str = ""
    maximum_annotations: int = 1
    overlap_cohort_percentage: int = 100
    show_predictions: bool = True
    model_version: str = "auto"
    backends: list[BackendConfig] = field(default_factory=list)
    most_uncertain_view: bool = True
    tiers: Tiers | None = field(default_factory=Tiers)
    settings: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def _expand(value: Any, where: str) -> Any:
    if isinstance(value, str):
        def sub(m: re.Match) -> str:
            name, default = m.group(1), m.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            raise ConfigError(f"{where}: environment variable {name} is not set")
        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [_expand(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _expand(v, f"{where}.{k}") for k, v in value.items()}
    return value


def _typed(raw: dict, key: str, kind: type | tuple, default: Any, where: str = "") -> Any:
    value = raw.get(key, default)
    if value is default:
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ConfigError(f"{where}{key} must be a {name}, got {value!r}")
    return value


def _backend(raw: Any, i: int) -> BackendConfig:
    where = f"ml_backends[{i}]."
    if not isinstance(raw, dict):
        raise ConfigError(f"ml_backends[{i}] must be a mapping with at least 'url'")
    unknown = set(raw) - {"url", "title", "auth", "interactive", "extra_params", "timeout"}
    if unknown:
        raise ConfigError(f"{where[:-1]}: unknown keys {sorted(unknown)}")
    url = _typed(raw, "url", str, None, where)
    if not url or not re.match(r"^https?://", url):
        raise ConfigError(f"{where}url must be an http(s) URL, got {url!r}")
    auth = raw.get("auth")
    user = password = None
    if auth is not None:
        if not isinstance(auth, dict) or not auth.get("user"):
            raise ConfigError(f"{where}auth must be {{user: ..., password: ...}}")
        user, password = str(auth["user"]), str(auth.get("password") or "")
        if not password:  # `password: "${BACKEND_PASS:-}"` with no password set: a backend without basic auth
            user = password = None
    extra = raw.get("extra_params")
    if extra is not None and not isinstance(extra, dict):
        raise ConfigError(f"{where}extra_params must be a mapping")
    if extra and "uncertainty" in extra:
        try:  # the backend would answer every prediction with a 400: say so before the project is set up
            selection.get(str(extra["uncertainty"]))
        except selection.UnknownStrategy as e:
            raise ConfigError(f"{where}extra_params.uncertainty: {e}") from None
    timeout = raw.get("timeout")
    return BackendConfig(url=url.rstrip("/"), title=_typed(raw, "title", str, f"labelloop {i + 1}", where),
                         user=user, password=password, interactive=_typed(raw, "interactive", bool, False, where),
                         extra_params=extra, timeout=float(timeout) if timeout is not None else None)


def parse(raw: Any, path: Path | None = None) -> ProjectConfig:
    """A `ProjectConfig` from the YAML document `raw`, or `ConfigError` saying what is wrong."""
    if not isinstance(raw, dict):
        raise ConfigError("the file must be a YAML mapping (title: ..., template: ..., ...)")
    raw = _expand(raw, "config")
    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise ConfigError(f"unknown keys {sorted(unknown)}; known: {sorted(TOP_KEYS)}")
    title = _typed(raw, "title", str, None)
    if not title or len(title.strip()) < 3:
        raise ConfigError("'title' is required (at least 3 characters): the project is found by it")
    if bool(raw.get("template")) == bool(raw.get("label_config")):
        raise ConfigError("give exactly one of 'template' (text_cls, detection, segmentation, asr) or 'label_config'")
    if raw.get("label_config"):
        label_config = _typed(raw, "label_config", str, "")
        if "<View" not in label_config:
            raise ConfigError("label_config must be Label Studio XML starting with <View>")
    else:
        labels = _typed(raw, "labels", list, [])
        options = _typed(raw, "template_options", dict, {})
        for key, value in options.items():
            if key not in TEMPLATE_OPTIONS or not isinstance(value, TEMPLATE_OPTIONS[key]):
                raise ConfigError(f"template_options.{key}: known options are "
                                  + ", ".join(f"{k} ({t.__name__})" for k, t in TEMPLATE_OPTIONS.items()))
        label_config = templates.render(_typed(raw, "template", str, ""), [str(x) for x in labels],
                                        _typed(raw, "data_key", str, None), _typed(raw, "choice", str, "single"),
                                        **options)
    overlap = _typed(raw, "overlap", dict, {})
    if set(overlap) - {"maximum_annotations", "overlap_cohort_percentage"}:
        raise ConfigError("overlap takes maximum_annotations and overlap_cohort_percentage")
    max_ann = _typed(overlap, "maximum_annotations", int, 1, "overlap.")
    cohort = _typed(overlap, "overlap_cohort_percentage", int, 100, "overlap.")
    if max_ann < 1 or not 0 <= cohort <= 100:
        raise ConfigError("overlap.maximum_annotations must be >= 1 and overlap_cohort_percentage in 0..100")
    predictions = _typed(raw, "predictions", dict, {})
    if set(predictions) - {"show", "model_version"}:
        raise ConfigError("predictions takes show and model_version")
    backends = _typed(raw, "ml_backends", list, [])
    views = _typed(raw, "views", dict, {})
    if set(views) - {"most_uncertain", "tiers"}:
        raise ConfigError("views takes most_uncertain and tiers")
    tiers: Tiers | None = Tiers()
    raw_tiers = views.get("tiers", {})
    if raw_tiers is False:
        tiers = None
    elif isinstance(raw_tiers, dict):
        tiers = Tiers(float(raw_tiers.get("hard_below", 0.5)), float(raw_tiers.get("easy_from", 0.8)))
        if not 0 <= tiers.hard_below <= tiers.easy_from <= 1:
            raise ConfigError("views.tiers needs 0 <= hard_below <= easy_from <= 1")
    else:
        raise ConfigError("views.tiers must be a mapping {hard_below, easy_from} or false")
    return ProjectConfig(
        title=title.strip(), label_config=label_config.strip(),
        description=_typed(raw, "description", str, ""), instructions=_typed(raw, "instructions", str, ""),
        maximum_annotations=max_ann, overlap_cohort_percentage=cohort,
        show_predictions=_typed(predictions, "show", bool, True, "predictions."),
        model_version=str(predictions.get("model_version", "auto") or "auto"),
        backends=[_backend(b, i) for i, b in enumerate(backends)],
        most_uncertain_view=_typed(views, "most_uncertain", bool, True, "views."), tiers=tiers,
        settings=_typed(raw, "settings", dict, {}), path=path)


def load(path: str | Path) -> ProjectConfig:
    """Read and check a project file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path} is not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    return parse(raw, path)
