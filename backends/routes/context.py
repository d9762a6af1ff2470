"""What the routes of one app share: the backend, its settings, the model store and cache, the training queue."""
from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app

from .. import metrics
from ..base import Adapter
from ..config import Settings
from ..jobs import TrainingQueue
from ..ls_client import client_for
from ..media import MediaFetcher
from ..params import SERVER_PARAMS, Param
from ..serving import ModelServer
from ..training import trainer
from ..versions import ModelStore

EXTENSION = "labelloop"


@dataclass
class Services:
    """One backend's parts, made once per app (`create_app`) and found by the routes through `services()`."""

    backend: Adapter
    settings: Settings
    store: ModelStore
    queue: TrainingQueue
    server: ModelServer
    state: metrics.StateCollector
    _media: dict[tuple[str, str], MediaFetcher] = field(default_factory=dict)

    @classmethod
    def build(cls, backend: Adapter, settings: Settings) -> Services:
        store = ModelStore(settings.model_dir, backend.name, settings.keep_versions)
        # in-process runs train with this adapter and these settings (no second model in memory)
        queue = TrainingQueue(backend.name, settings, job_func=trainer(backend, settings))
        state = metrics.StateCollector(
            backend.name, queue.outcome_counts,
            lambda: [(p, v.model_version) for p in store.projects() if (v := store.current(p)) is not None],
            queue.result_counts)
        return cls(backend, settings, store, queue, ModelServer(backend, store), state)

    @property
    def adapter_params(self) -> tuple[Param, ...]:
        """The parameters the adapter reads (its `PARAMS`): a request's and a project's are checked against them."""
        return tuple(getattr(self.backend, "PARAMS", ()))

    @property
    def params(self) -> tuple[Param, ...]:
        """What /setup checks a project's extra params against: the server's own and the adapter's."""
        return SERVER_PARAMS + self.adapter_params

    def project_settings(self, project_id: int | None) -> dict:
        """What /setup stored for a project ({} for none)."""
        return self.store.load_project_settings(project_id) if project_id is not None else {}

    def served_version(self, project_id: int) -> str:
        """The model version a project is served now."""
        current = self.store.current(project_id)
        return current.model_version if current else self.backend.base_version()

    def media_for(self, saved: dict) -> MediaFetcher:
        """A fetcher for a project's media, with the env's Label Studio (else the one /setup named)."""
        url = self.settings.label_studio_url or saved.get("hostname", "")
        key = self.settings.api_key or saved.get("access_token", "")
        if (url, key) not in self._media:
            auth = client_for(self.settings, url, key).auth_headers if url and key else None
            self._media[(url, key)] = MediaFetcher(self.settings, ls_url=url or None, auth=auth, credential=key)
        return self._media[(url, key)]


def services() -> Services:
    """The current app's `Services`."""
    return current_app.extensions[EXTENSION]
