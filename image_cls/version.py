"""A trained version of a project's image classification: an `ImageClassifier` per control, each in a folder of
its own, and a manifest naming them."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .classifier import ImageClassifier

MANIFEST = "image_cls.json"


@dataclass
class ImageClsModel:
    """A served version: a trained classifier per control name (none: base predictions only)."""

    classifiers: dict[str, ImageClassifier] = field(default_factory=dict)

    @classmethod
    def load(cls, version_dir: str | Path) -> ImageClsModel:
        """Raises OSError, ValueError or KeyError for a folder that holds no version."""
        manifest = json.loads((Path(version_dir) / MANIFEST).read_text())
        return cls({name: ImageClassifier.load(Path(version_dir) / sub) for name, sub in manifest.items()})

    def save(self, version_dir: str | Path) -> None:
        """Each classifier into `control-<n>`, then the manifest (its presence marks a complete version)."""
        manifest = {}
        for n, (name, clf) in enumerate(self.classifiers.items()):
            clf.save(Path(version_dir) / f"control-{n}")
            manifest[name] = f"control-{n}"
        (Path(version_dir) / MANIFEST).write_text(json.dumps(manifest))

    def classifier(self, name: str, classes: list[str], multi: bool) -> ImageClassifier:
        """The trained classifier of a control when its classes are still `classes`, else base predictions."""
        found = self.classifiers.get(name)
        if found is not None and found.classes == classes:
            return found
        return ImageClassifier(list(classes), multi)
