"""A served OCR version: the base reader's lines with a project's corrections and calibrated confidences."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .calibration import Calibration
from .corrections import Corrections
from .engine import Line, Reader

FILE = "ocr.json"


@dataclass
class OcrModel:
    """Nothing learned yet (the base version), or what a trained version learned."""

    corrections: Corrections | None = None
    calibration: Calibration | None = None
    metrics: dict = field(default_factory=dict)

    def adjust(self, lines: list[Line]) -> list[Line]:
        """`lines` (the base reader's) with the corrections applied to their text and their confidence calibrated."""
        out = []
        for line in lines:
            text = self.corrections.apply(line.text) if self.corrections else line.text
            conf = self.calibration(line.confidence) if self.calibration else line.confidence
            out.append(replace(line, text=text, confidence=conf))
        return out

    def read(self, reader: Reader, image: np.ndarray) -> list[Line]:
        return self.adjust(reader.read(image))

    def save(self, folder: str | Path) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        raw = {"corrections": self.corrections.to_json() if self.corrections else None,
               "calibration": self.calibration.to_json() if self.calibration else None, "metrics": self.metrics}
        (Path(folder) / FILE).write_text(json.dumps(raw, indent=1, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path) -> OcrModel:
        """Raises OSError or ValueError for a folder without a readable version."""
        raw = json.loads((Path(folder) / FILE).read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError(f"{folder}/{FILE} holds no OCR version")
        corr, cal = raw.get("corrections"), raw.get("calibration")
        return cls(Corrections.from_json(corr) if corr else None, Calibration(**cal) if cal else None,
                   raw.get("metrics") or {})
