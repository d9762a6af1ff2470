"""Label Studio's transcript controls: a `<TextArea>` on an `<Audio>` for the whole transcript, or `<Labels>` regions
on the audio with a per-region `<TextArea perRegion="true">` (one region per segment). Which of the two a config
asks for (`transcript_layout`), a transcript as result items (`transcript_regions`), and the corrected transcript
an annotation holds (`reference_text`)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import lru_cache

from asr.engine import Transcript

from .exceptions import UnsupportedConfig
from .labels import Control, find_controls

TRUE = ("true", "1", "yes")


@dataclass(frozen=True)
class Layout:
    """What a config asks for: the transcript box, and for segment-level configs the Labels and the label."""

    textarea: Control
    labels: Control | None = None
    label: str | None = None
    language: str | None = None

    @property
    def per_region(self) -> bool:
        return self.labels is not None


@lru_cache(maxsize=64)
def transcript_layout(label_config: str) -> Layout:
    """The layout of a config's transcript.

    Raises:
        UnsupportedConfig: no `<TextArea>` on an `<Audio>`, or a per-region one without `<Labels>` to make regions.
    """
    controls = find_controls(label_config, ("textarea", "labels"), ("audio", "audioplus"), backend="asr")
    areas = [c for c in controls if c.tag == "textarea"]
    if not areas:
        raise UnsupportedConfig("asr needs a <TextArea toName=...> on the <Audio> for the transcript")
    area = areas[0]
    language = (area.attrs.get("language") or area.object_attrs.get("language") or "").strip() or None
    if area.attrs.get("perRegion", "").lower() not in TRUE:
        return Layout(area, language=language)
    labels = next((c for c in controls if c.tag == "labels" and c.to_name == area.to_name), None)
    if labels is None or not labels.labels:
        raise UnsupportedConfig(f'<TextArea name={area.name!r} perRegion="true"> needs a <Labels toName='
                                f'{area.to_name!r}> with at least one <Label> to make the regions')
    # the label for speech regions: a "Speech" label when there is one, else the first
    label = next((lb for lb in labels.labels if lb.lower() in ("speech", "transcript", "segment")), labels.labels[0])
    return Layout(area, labels, label, language)


def transcript_regions(layout: Layout, transcript: Transcript) -> list[dict]:
    """The result items of a transcript: one TextArea item, or per segment a Labels region with its text."""
    area = layout.textarea
    if not layout.per_region:
        return [{"id": uuid.uuid4().hex[:10], "from_name": area.name, "to_name": area.to_name,
                 "type": "textarea", "value": {"text": [transcript.text]}, "score": transcript.confidence}]
    out = []
    for s in transcript.segments:
        rid = uuid.uuid4().hex[:10]  # the Labels region and its text share one id: that makes them one region
        span = {"start": s.start, "end": s.end, "channel": 0}
        out.append({"id": rid, "from_name": layout.labels.name, "to_name": area.to_name, "type": "labels",
                    "value": {**span, "labels": [layout.label]}, "score": s.confidence})
        out.append({"id": rid, "from_name": area.name, "to_name": area.to_name, "type": "textarea",
                    "value": {**span, "text": [s.text]}, "score": s.confidence})
    return out


def reference_text(layout: Layout, result: list[dict]) -> str | None:
    """The corrected transcript in an annotation: the TextArea's text, regions joined in time order (None when
    the annotation has no TextArea item)."""
    items = [r for r in result if r.get("from_name") == layout.textarea.name and r.get("type") == "textarea"]
    if not items:
        return None
    items.sort(key=lambda r: float((r.get("value") or {}).get("start") or 0.0))
    texts = [t for r in items for t in ((r.get("value") or {}).get("text") or []) if isinstance(t, str)]
    return " ".join(t.strip() for t in texts if t.strip())
