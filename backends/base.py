"""The contract between the Label Studio layer and a task package.

A backend adapter (one per task: text_cls, detection, ...) turns Label Studio's shapes into calls on its task
package and back. The server, versions and training jobs only ever talk to this interface.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from selection import MEASURES

from .config import Settings
from .exceptions import NotSupported


@dataclass
class TaskPrediction:
    """One task's answer: Label Studio regions and a confidence in [0, 1], or an error that says why not."""

    result: list[dict] = field(default_factory=list)
    score: float | None = None
    error: str | None = None

    def to_json(self, model_version: str) -> dict:
        # A task that failed is answered without a "result" key: Label Studio then stores no prediction for it
        # (and will ask again), while the other tasks of the batch keep their positions.
        if self.error is not None:
            return {"error": self.error, "model_version": model_version}
        return {"result": self.result, "score": self.score, "model_version": model_version}


@dataclass
class TaskEmbedding:
    """One task's vector, or an error that says why there is none."""

    vector: list[float] | None = None
    error: str | None = None


@dataclass
class LabeledTask:
    """A task with the one annotation training uses (the newest non-cancelled one)."""

    task_id: int
    data: dict
    result: list[dict]
    annotation_id: int | None = None
    updated_at: str | None = None


@dataclass
class TrainResult:
    """What a `fit` produced in its output folder.

    `publish=False` keeps the version as rejected (with `reason`) and the served model stays.
    """

    n_examples: int
    metrics: dict[str, Any] = field(default_factory=dict)
    publish: bool = True
    reason: str = ""


class Adapter(ABC):
    """What a backend serves for one kind of task: the translation between Label Studio's shapes and a task package.

    Names: a *backend* is the server process (`python -m backends serve <name>`, the `backends/` package holds what
    they share); it serves one `Adapter` subclass (`backends/adapters/<name>.py`, e.g. `DetectionAdapter`);
    `scripts/`' `BackendHTTPClient` talks to a running backend over HTTP.
    """

    name: ClassVar[str]
    # The uncertainty measures its scores can follow (selection.MEASURES); /health lists them, so `sync.py rank`
    # knows before it scores. None: all of them.
    MEASURES: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, settings: Settings):
        self.settings = settings

    @abstractmethod
    def check_config(self, label_config: str) -> None:
        """Raise `UnsupportedConfig` saying why, if this backend cannot serve `label_config`."""

    def measures(self, label_config: str | None = None) -> list[str]:
        """The uncertainty measures a project's scores can follow (`label_config` None: this backend's in general)."""
        return list(self.MEASURES or MEASURES)

    def status(self) -> dict[str, Any]:
        """Extra facts for /health (e.g. an optional model that is missing); cheap, never loads anything."""
        return {}

    def base_version(self) -> str:
        """The model version reported before any training."""
        return f"{self.name}-base"

    @abstractmethod
    def load_model(self, version_dir: Path | None) -> Any:
        """Load a trained version from `version_dir`, or the base model when it is None."""

    @abstractmethod
    def predict(self, model: Any, tasks: list[dict], label_config: str, context: dict | None = None,
                params: dict | None = None, media: Any = None) -> list[TaskPrediction]:
        """One `TaskPrediction` per task, in order; a bad task gets an error, never an exception.

        Args:
            media: a `backends.media.MediaFetcher` for task values that are URLs.
        """

    def embed(self, model: Any, tasks: list[dict], label_config: str, params: dict | None = None,
              media: Any = None) -> list[TaskEmbedding]:
        """One vector per task for diversity-aware ranking (k-center greedy and the like)."""
        raise NotSupported(f"the {self.name} backend does not provide embeddings")

    @abstractmethod
    def fit(self, examples: list[LabeledTask], label_config: str, parent: Any, out_dir: Path,
            params: dict | None = None, media: Any = None) -> TrainResult:
        """Train on `examples` starting from `parent` (a loaded model), write the new model into `out_dir`.

        An adapter whose `open_tasks_wanted` is above 0 is also given `open_tasks=`: up to that many tasks nobody
        has annotated ({"id", "data"}), to learn from without labels."""

    def open_tasks_wanted(self, params: dict | None = None) -> int:
        """How many unannotated tasks `fit` can use with these params (0: none, and none are passed)."""
        return 0
