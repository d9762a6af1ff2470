"""Label configs for the four labelloop backends, built from a list of labels."""
from __future__ import annotations

from xml.sax.saxutils import quoteattr

from .errors import ConfigError

DEFAULT_DATA_KEY = {"text_cls": "text", "detection": "image", "segmentation": "image", "asr": "audio"}


def _options(labels: list[str], tag: str) -> str:
    return "".join(f"\n    <{tag} value={quoteattr(str(label))}/>" for label in labels)


def render(template: str, labels: list[str], data_key: str | None = None, choice: str = "single") -> str:
    """The label config of `template` (text_cls, detection, segmentation or asr).

    Args:
        labels: class names (not used by asr).
        data_key: the task data field ($text, $image, $audio by default).
        choice: text_cls only: "single" or "multiple".
    """
    if template not in DEFAULT_DATA_KEY:
        raise ConfigError(f"unknown template {template!r}; choose one of: {', '.join(DEFAULT_DATA_KEY)}")
    key = data_key or DEFAULT_DATA_KEY[template]
    if template != "asr" and not labels:
        raise ConfigError(f"template {template!r} needs a non-empty 'labels' list")
    if template == "text_cls":
        if choice not in ("single", "multiple"):
            raise ConfigError("'choice' must be 'single' or 'multiple'")
        return (f'<View>\n  <Text name="text" value="${key}"/>\n'
                f'  <Choices name="label" toName="text" choice="{choice}" showInline="true">'
                f'{_options(labels, "Choice")}\n  </Choices>\n</View>')
    if template == "detection":
        return (f'<View>\n  <Image name="image" value="${key}" zoom="true"/>\n'
                f'  <RectangleLabels name="label" toName="image">{_options(labels, "Label")}\n'
                f'  </RectangleLabels>\n</View>')
    if template == "segmentation":
        return (f'<View>\n  <Image name="image" value="${key}" zoom="true"/>\n'
                f'  <PolygonLabels name="label" toName="image" strokeWidth="2" pointSize="small">'
                f'{_options(labels, "Label")}\n  </PolygonLabels>\n</View>')
    return (f'<View>\n  <Audio name="audio" value="${key}"/>\n'
            f'  <TextArea name="transcription" toName="audio" rows="4" editable="true" maxSubmissions="1"/>\n'
            f'</View>')
