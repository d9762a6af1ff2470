"""A model loaded once, on first use, whose failure to load is remembered rather than retried on every request."""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Generic, TypeVar

from .exceptions import ModelUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")


class Lazy(Generic[T]):
    """`load()` run once, thread-safe; after a failure, tried again at most every `retry_s` seconds.

    Args:
        load: makes the value (e.g. loads weights).
        what: how the failure reads, e.g. "the base model of detection cannot be loaded".
        errors: the exceptions that mean "not available"; others propagate.
        retry_s: how long a failure is answered from memory (a missing file is not found again each request).
    """

    def __init__(self, load: Callable[[], T], what: str, errors: tuple[type[BaseException], ...] = (Exception,),
                 retry_s: float = 60.0):
        self._load, self._what, self._errors, self.retry_s = load, what, errors, retry_s
        self._lock = threading.Lock()
        self._value: T | None = None
        self.loaded = False
        self.error: str | None = None
        self._failed_at = 0.0

    def get(self) -> T:
        """The value.

        Raises:
            ModelUnavailable: it could not be loaded (the reason stays in `error`).
        """
        if not self.loaded:
            with self._lock:
                if not self.loaded:
                    if self.error and time.monotonic() - self._failed_at < self.retry_s:
                        raise ModelUnavailable(self.error)
                    try:
                        self._value = self._load()
                    except self._errors as e:
                        self.error, self._failed_at = f"{self._what}: {e}", time.monotonic()
                        log.error("%s", self.error)
                        raise ModelUnavailable(self.error) from None
                    self.loaded, self.error = True, None
        return self._value  # type: ignore[return-value]
