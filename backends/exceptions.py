"""Every error labelloop raises on purpose, in one place.

Each carries an HTTP status so the server can answer with a clear message instead of a traceback.
"""
from __future__ import annotations


class LabelloopError(Exception):
    """Base class: a problem labelloop can explain to its caller."""

    status = 500


class BadRequest(LabelloopError):
    """The request itself is malformed (bad JSON, missing fields)."""

    status = 400


class UnsupportedConfig(BadRequest):
    """The label config holds nothing this backend can serve."""


class NotSupported(LabelloopError):
    """The backend does not offer this operation (e.g. embeddings)."""

    status = 501


class Unauthorized(LabelloopError):
    status = 401


class UnknownBackend(LabelloopError):
    status = 404


class MediaError(LabelloopError):
    """Task data could not be fetched or read (404, not allowed, too large, corrupt)."""

    status = 422


class MediaNotAllowed(MediaError):
    """The URL's host or the local path is outside what this backend may read (SSRF guard)."""

    status = 403


class MediaTooLarge(MediaError):
    status = 413


class TaskDataError(BadRequest):
    """A task lacks the data field the config points at, or holds an unusable value."""


class ModelUnavailable(LabelloopError):
    """The backend's model cannot be loaded (weights missing, download impossible)."""

    status = 503


class LabelStudioUnavailable(LabelloopError):
    """Label Studio could not be reached or refused our token."""

    status = 502


class TrainingError(LabelloopError):
    """A training run failed; the served model stays as it was."""


class NotEnoughData(TrainingError):
    """Too few usable annotations to train; not a failure of the run itself."""

    status = 409


class VersionError(LabelloopError):
    """A model version is missing, broken, or outside the model root."""

    status = 404
