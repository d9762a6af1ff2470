"""Label Studio's text spans (`<Labels>` on `<Text>`) to and from `ner.spans.Span`, in the style of
`regions_writers`: `is_control_matched` picks the class for a control, `create` builds it, `predict_regions` turns
spans into the tag's result items; `read_spans` reads an annotation's items back.

A text span's value is {start, end, text, labels}: `start`/`end` are offsets into the task's text as Label Studio
stores them, which are Python str indices (code points: an emoji is one, "\\r\\n" two).
"""
from __future__ import annotations

import logging
import uuid
from typing import Any, ClassVar

from ner.spans import Span

from .exceptions import UnsupportedConfig
from .labels import Control

log = logging.getLogger(__name__)


class SpanLabels:
    """Writes and reads the spans of one `<Labels>` control on a `<Text>`."""

    tag: ClassVar[str] = "labels"
    objects: ClassVar[tuple[str, ...]] = ("text",)

    def __init__(self, control: Control):
        self.control = control

    @classmethod
    def is_control_matched(cls, control: Control) -> bool:
        return control.tag == cls.tag and control.object_tag in cls.objects

    @classmethod
    def create(cls, control: Control, params: dict[str, Any] | None = None) -> SpanLabels:
        """The writer of `control`.

        Raises:
            UnsupportedConfig: a control without labels.
        """
        if not control.labels:
            raise UnsupportedConfig(f"<Labels name={control.name!r}> has no <Label> entries")
        return cls(control)

    def predict_regions(self, text: str, spans: list[Span]) -> list[dict]:
        """The result items of `spans` over `text`, each with its text and score."""
        return [{"id": uuid.uuid4().hex[:10], "from_name": self.control.name, "to_name": self.control.to_name,
                 "type": self.tag, "score": round(float(s.score), 4),
                 "value": {"start": s.start, "end": s.end, "text": text[s.start:s.end], "labels": [s.label]}}
                for s in spans]

    def read_spans(self, text: str, result: list[dict]) -> list[Span]:
        """The spans an annotation's `result` marks with this control's labels.

        A span whose offsets do not hold its `text` (offsets counted by another convention, or a text edited
        since) is found again by its text nearest to where it said it was; one that cannot be found is skipped.
        """
        spans = []
        for item in result:
            if item.get("from_name") != self.control.name or not isinstance(item.get("value"), dict):
                continue
            value = item["value"]
            for label in value.get("labels") or []:
                if label not in self.control.labels:
                    continue
                span = _locate(text, value)
                if span is None:
                    log.warning("span %r of %r not found in the text: skipped", value.get("text"), label)
                    continue
                spans.append(Span(span[0], span[1], label))
        return spans


def _locate(text: str, value: dict) -> tuple[int, int] | None:
    start, end, said = value.get("start"), value.get("end"), value.get("text")
    if isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text):
        if not isinstance(said, str) or text[start:end] == said:
            return start, end
    if not isinstance(said, str) or not said:
        return None
    hits = [i for i in _find_all(text, said)]
    if not hits:
        return None
    near = min(hits, key=lambda i: abs(i - start) if isinstance(start, int) else i)
    return near, near + len(said)


def _find_all(text: str, needle: str):
    i = text.find(needle)
    while i >= 0:
        yield i
        i = text.find(needle, i + 1)


WRITERS: tuple[type[SpanLabels], ...] = (SpanLabels,)


def span_writer_for(control: Control, params: dict[str, Any] | None = None) -> SpanLabels:
    """The span writer of a control.

    Raises:
        UnsupportedConfig: no span writer for the control's tag and object.
    """
    for cls in WRITERS:
        if cls.is_control_matched(control):
            return cls.create(control, params)
    raise UnsupportedConfig(f"<{control.tag} name={control.name!r}> on <{control.object_tag}> cannot be predicted "
                            "by the ner backend")
