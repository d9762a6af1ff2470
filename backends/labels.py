"""Reading label configs with label-studio-sdk's label interface: which controls a backend serves, what they
label, where the task data is, and how model classes map onto config labels."""
from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from label_studio_sdk.label_interface import LabelInterface

from .exceptions import LabelloopError, TaskDataError, UnsupportedConfig

log = logging.getLogger(__name__)


@dataclass
class Control:
    """One control tag of a config and the object tag it labels."""

    name: str
    tag: str  # lower case, as in a result's "type": "choices", "rectanglelabels", ...
    to_name: str
    object_tag: str  # lower case: "text", "image", "audio", ...
    value_key: str  # the task data key behind `$value`
    labels: list[str]
    attrs: dict[str, str] = field(default_factory=dict)
    label_attrs: dict[str, dict[str, str]] = field(default_factory=dict)
    object_attrs: dict[str, str] = field(default_factory=dict)

    @property
    def multi(self) -> bool:
        """Several labels may be chosen at once (`choice="multiple"`); a Taxonomy is predicted as one path."""
        return self.attrs.get("choice", "single") in ("multiple", "multiple-checkbox")

    def synonyms(self, label: str) -> list[str]:
        """The model class names a config label stands for (its `predicted_values` attribute)."""
        raw = self.label_attrs.get(label, {}).get("predicted_values", "")
        return [p.strip() for p in raw.split(",") if p.strip()]


_PARSED: OrderedDict[str, LabelInterface | str] = OrderedDict()  # sha256 of a config -> parsed, or why not
_PARSED_MAX = 64
_parsed_lock = threading.Lock()


def parse_config(label_config: str) -> LabelInterface:
    """Parse a label config, turning any XML or schema problem into `UnsupportedConfig`.

    A config is parsed once (keyed by its hash; the last 64 are kept): the SDK's parse of a large config takes
    seconds, and every request of a project carries the same one. The result is shared: do not modify it.
    """
    if not isinstance(label_config, str):
        raise UnsupportedConfig(f"the label config must be a string of XML, not {type(label_config).__name__}")
    if not label_config.strip():
        raise UnsupportedConfig("the label config is empty")
    key = hashlib.sha256(label_config.encode("utf-8", "surrogatepass")).hexdigest()
    with _parsed_lock:
        parsed = _PARSED.get(key)
        if parsed is not None:
            _PARSED.move_to_end(key)
    if parsed is None:
        try:
            parsed = LabelInterface(label_config)
        except Exception as e:  # the SDK raises lxml, pydantic and its own errors alike
            parsed = f"the label config could not be parsed: {e}"
        with _parsed_lock:
            _PARSED[key] = parsed
            while len(_PARSED) > _PARSED_MAX:
                _PARSED.popitem(last=False)
    if isinstance(parsed, str):
        raise UnsupportedConfig(parsed)
    return parsed


def check_size(label_config: str, max_labels: int) -> None:
    """Raise `UnsupportedConfig` when the config's controls hold more than `max_labels` labels in all.

    An empty config passes: whether a backend can serve it is `check_config`'s to say.
    """
    if isinstance(label_config, str) and not label_config.strip():
        return
    # A tag count first, so a config of a million labels is refused without parsing it (the SDK takes ~30 µs
    # a label); every label is a tag, and configs hold a few hundred other tags at most.
    tags = label_config.count("<") if isinstance(label_config, str) else 0
    if tags > 2 * max_labels + 1000:
        raise UnsupportedConfig(f"the label config has {tags} tags; at most {max_labels} labels are served "
                                "(MAX_LABELS)")
    n = sum(len(ctrl.labels or []) for ctrl in parse_config(label_config).controls)
    if n > max_labels:
        raise UnsupportedConfig(f"the label config has {n} labels; at most {max_labels} are served (MAX_LABELS)")


def find_controls(label_config: str, control_tags: Iterable[str], object_tags: Iterable[str],
                  backend: str = "this backend") -> list[Control]:
    """The controls of `label_config` whose tag is one of `control_tags` and whose object is one of `object_tags`.

    Raises:
        UnsupportedConfig: when there is none, saying what the backend needs.
    """
    wanted = {t.lower() for t in control_tags}
    objects = {t.lower() for t in object_tags}
    interface = parse_config(label_config)
    found: list[Control] = []
    for ctrl in interface.controls:
        tag = ctrl.tag.lower()
        if tag not in wanted:
            continue
        for obj in ctrl.objects:
            if obj.tag.lower() not in objects:
                continue
            value = obj.value or ""
            if not value.startswith("$"):
                continue  # a constant value, nothing to read from the task
            labels = list(ctrl.labels or [])
            label_attrs = {k: dict(v.attr) for k, v in (getattr(ctrl, "labels_attrs", None) or {}).items()}
            found.append(Control(name=ctrl.name, tag=tag, to_name=obj.name, object_tag=obj.tag.lower(),
                                 value_key=value[1:], labels=labels, attrs=dict(ctrl.attr),
                                 label_attrs=label_attrs, object_attrs=dict(obj.attr)))
            break
    if not found:
        raise UnsupportedConfig(
            f"{backend} needs a config with one of <{'>, <'.join(sorted(_pretty(t) for t in wanted))}> "
            f"on <{'>, <'.join(sorted(_pretty(t) for t in objects))}> with a $value; none found")
    return found


def _pretty(tag: str) -> str:
    return {"choices": "Choices", "taxonomy": "Taxonomy", "text": "Text", "hypertext": "HyperText",
            "rectanglelabels": "RectangleLabels", "polygonlabels": "PolygonLabels", "image": "Image",
            "brushlabels": "BrushLabels", "audio": "Audio", "textarea": "TextArea", "labels": "Labels",
            "keypointlabels": "KeyPointLabels"}.get(tag, tag)


def task_value(task: dict, key: str) -> object:
    """The task's data value behind `$key`.

    Raises:
        TaskDataError: when the task has no such field, naming the task and the key.
    """
    data = task.get("data") if isinstance(task, dict) else None
    if not isinstance(data, dict):
        raise TaskDataError(f"task {task.get('id') if isinstance(task, dict) else '?'} has no data")
    if key not in data or data[key] is None:
        have = ", ".join(sorted(map(str, data))) or "nothing"
        raise TaskDataError(f"task {task.get('id', '?')} has no field {key!r} (the config reads ${key}; "
                            f"the task has {have})")
    return data[key]


def task_text(task: dict, control: "Control", media) -> str:
    """The text a control labels: the task's value, or what it links to when the config says the object's value is
    a link (`<Text valueType="url">`, `<HyperText>` alike). A text that merely starts with "http" is text.

    Raises:
        LabelloopError: not text, or a link with no media fetcher; `MediaError`s of the fetch.
    """
    value = task_value(task, control.value_key)
    if not isinstance(value, str):
        raise LabelloopError(f"task {task.get('id', '?')}: ${control.value_key} is not text")
    attrs = {k.lower(): v for k, v in control.object_attrs.items()}
    if str(attrs.get("valuetype", "")).strip().lower() != "url":
        return value
    if media is None:
        raise LabelloopError(f"task {task.get('id', '?')}: ${control.value_key} is a link and no media fetcher is "
                             "available")
    return media.fetch_text(value)


class LabelMap:
    """Maps a model's class names onto one control's config labels.

    A config label claims model classes through its `predicted_values` attribute, then by exact name, then by
    case-insensitive name. Model classes that map to no config label are never predicted; config labels that no
    model class maps to are reported once in the log.
    """

    def __init__(self, control: Control, model_classes: Sequence[str]):
        self.control = control
        self._to_label: dict[str, str] = {}
        for label in control.labels:
            for cls in control.synonyms(label):
                if cls in model_classes:
                    self._to_label.setdefault(cls, label)
        by_lower = {c.lower(): c for c in model_classes}
        for label in control.labels:
            if label in model_classes:
                self._to_label.setdefault(label, label)
            elif label.lower() in by_lower:
                self._to_label.setdefault(by_lower[label.lower()], label)
        mapped = set(self._to_label.values())
        self.unmapped_labels = [lb for lb in control.labels if lb not in mapped]
        if self.unmapped_labels:
            log.info("control %r: labels %s are not known to the model and will not be predicted",
                     control.name, self.unmapped_labels)

    def label(self, model_class: str) -> str | None:
        """The config label for `model_class`, or None when the config does not want it."""
        return self._to_label.get(model_class)

    @property
    def model_classes(self) -> list[str]:
        return list(self._to_label)
