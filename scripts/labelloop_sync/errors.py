"""The one error type commands raise: its message is printed as one line and its code is the exit status."""
from __future__ import annotations


class SyncError(Exception):
    """A failure the user can act on; `code` is the process exit status."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


class ConfigError(SyncError):
    """The project file is missing, unreadable or invalid."""

    def __init__(self, message: str):
        super().__init__(f"invalid config: {message}", code=2)
