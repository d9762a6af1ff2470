"""Label configs for the labelloop backends, built from a list of labels: the one place labelloop writes
them (the project file's `template:`, the demo projects, the benchmarks)."""
from __future__ import annotations

from xml.sax.saxutils import quoteattr

from .errors import ConfigError

DEFAULT_DATA_KEY = {"text_cls": "text", "detection": "image", "segmentation": "image", "asr": "audio",
                    "ner": "text", "image_cls": "image", "ocr": "image",
                    "keypoints": "image"}
_DEFAULT_NAME = {"text_cls": "label", "detection": "label", "segmentation": "label", "asr": "transcription",
                 "ner": "label", "image_cls": "label", "ocr": "transcription",
                 "keypoints": "keypoint"}
_MASK_TAGS = {"polygon": ("PolygonLabels", ' strokeWidth="2" pointSize="small"'), "brush": ("BrushLabels", "")}


def _options(labels: list[str], tag: str) -> str:
    return "".join(f"\n    <{tag} value={quoteattr(str(label))}/>" for label in labels)


def _labels_tag(tag: str, name: str, to_name: str, labels: list[str], attrs: str = "") -> str:
    return (f"  <{tag} name={quoteattr(name)} toName={quoteattr(to_name)}{attrs}>{_options(labels, 'Label')}\n"
            f"  </{tag}>\n")


def render(template: str, labels: list[str], data_key: str | None = None, choice: str = "single", *,
           name: str | None = None, header: str | None = None, mask: str = "polygon", smart: bool = False,
           model_path: str | None = None, shape: str = "rectangle", box: str | None = None) -> str:
    """The label config of `template` (text_cls, detection, segmentation, asr, ner or image_cls).

    Args:
        labels: class names (not used by asr); for ner the entity labels, spaCy's types mapped onto them by name
            (PER/PERSON, ORG, LOC/GPE, MISC, ...).
        data_key: the task data field ($text, $image, $audio by default).
        choice: text_cls and image_cls only: "single" or "multiple".
        name: the name of the control that holds the labels (the transcript for asr); "label" by default
            ("transcription" for asr).
        header: a line shown above the task.
        mask: segmentation only: "polygon" (PolygonLabels) or "brush" (BrushLabels) for the masks.
        smart: segmentation only: also the smart tools, a click (KeyPointLabels "point") and a box
            (RectangleLabels "box"), whose prompts Label Studio sends to the backend.
        model_path: detection only: the weights file (in the backend's WEIGHTS_DIR) that serves the control.
        shape: ocr only: "rectangle" (rotated rectangles) or "polygon" for the text lines; `labels` are the
            kinds of text (e.g. Text, Handwriting), `name` the per-region TextArea ("transcription").
        box: keypoints only: the label of each instance's rectangle (a RectangleLabels "box" its points belong
            to, e.g. "Face"); None: points only. `labels` are the keypoints ("nose_tip", "left_eye", ...).
    """
    if template not in DEFAULT_DATA_KEY:
        raise ConfigError(f"unknown template {template!r}; choose one of: {', '.join(DEFAULT_DATA_KEY)}")
    key = data_key or DEFAULT_DATA_KEY[template]
    name = name or _DEFAULT_NAME[template]
    if template != "asr" and not labels:
        raise ConfigError(f"template {template!r} needs a non-empty 'labels' list")
    top = f"<View>\n  <Header value={quoteattr(header)}/>\n" if header else "<View>\n"
    if template == "text_cls":
        if choice not in ("single", "multiple"):
            raise ConfigError("'choice' must be 'single' or 'multiple'")
        return (f'{top}  <Text name="text" value="${key}"/>\n'
                f'  <Choices name={quoteattr(name)} toName="text" choice="{choice}" showInline="true">'
                f'{_options(labels, "Choice")}\n  </Choices>\n</View>')
    if template == "ner":
        return f'{top}{_labels_tag("Labels", name, "text", labels)}  <Text name="text" value="${key}"/>\n</View>'
    if template == "asr":
        return (f'{top}  <Audio name="audio" value="${key}"/>\n'
                f'  <TextArea name={quoteattr(name)} toName="audio" rows="4" '
                f'editable="true" maxSubmissions="1"/>\n</View>')
    image = f'{top}  <Image name="image" value="${key}" zoom="true"/>\n'
    if template == "image_cls":
        if choice not in ("single", "multiple"):
            raise ConfigError("'choice' must be 'single' or 'multiple'")
        return (f'{image}  <Choices name={quoteattr(name)} toName="image" choice="{choice}" showInline="true">'
                f'{_options(labels, "Choice")}\n  </Choices>\n</View>')
    if template == "ocr":
        if shape not in ("rectangle", "polygon"):
            raise ConfigError("'shape' must be 'rectangle' or 'polygon'")
        geometry = "Rectangle" if shape == "rectangle" else "Polygon"
        return (f"{image}{_labels_tag('Labels', 'label', 'image', labels)}"
                f'  <{geometry} name="{shape}" toName="image" strokeWidth="2"/>\n'
                f'  <TextArea name={quoteattr(name)} toName="image" editable="true" perRegion="true" '
                f'required="true" maxSubmissions="1" rows="2" displayMode="region-list"/>\n</View>')
    if template == "keypoints":
        boxes = _labels_tag("RectangleLabels", "box", "image", [box]) if box else ""
        points = _labels_tag("KeyPointLabels", name, "image", labels, ' strokeWidth="3"')
        return f"{image}{boxes}{points}</View>"
    if template == "detection":
        attrs = f" model_path={quoteattr(model_path)}" if model_path else ""
        return f"{image}{_labels_tag('RectangleLabels', name, 'image', labels, attrs)}</View>"
    if mask not in _MASK_TAGS:
        raise ConfigError(f"'mask' must be one of: {', '.join(_MASK_TAGS)}")
    tag, attrs = _MASK_TAGS[mask]
    tools = (_labels_tag("KeyPointLabels", "point", "image", labels, ' smart="true"')
             + _labels_tag("RectangleLabels", "box", "image", labels, ' smart="true"')) if smart else ""
    return f"{image}{_labels_tag(tag, name, 'image', labels, attrs)}{tools}</View>"
