"""A breaker for a service that may go away (a Redis): one timeout per outage, not one per call.

Only a failure to reach the service counts (the ``unreachable`` exception types: for Redis a
connection error or a timeout); any other error is a bug and propagates as one. After the first
such failure the breaker is open: calls fail at once with the breaker's :meth:`Breaker.error`,
without waiting for another timeout (on the event loop, that wait stops every request of the
worker), while a daemon thread pings the service until it answers; then calls go through again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from proxy_ext.exceptions import Unavailable

__all__ = ["Breaker"]

logger = logging.getLogger("proxy_ext")
PROBE_EVERY_S = 0.5

T = TypeVar("T")


class Breaker:
    """Guards the calls to one service at ``where`` (its address, without credentials).

    ``what`` names the service in logs and errors; ``while_down`` says what callers get meanwhile
    (for the log line of an outage)."""

    def __init__(self, where: str, unreachable: tuple[type[BaseException], ...], ping: Callable[[], Any], *,
                 what: str = "Redis", while_down: str = "calls fail at once") -> None:
        self.where, self.unreachable, self._ping = where, unreachable, ping
        self.what, self.while_down = what, while_down
        self._lock = threading.Lock()
        self._down: str | None = None
        """Why the service is unreachable (None: it answers)."""
        self._since = 0.0

    @property
    def down(self) -> bool:
        return self._down is not None

    def call(self, operation: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``operation(*args)``, or :meth:`error` at once while the service is down."""
        reason = self._down
        if reason is not None:
            raise self.error(reason)
        try:
            return operation(*args, **kwargs)
        except self.unreachable as exc:
            reason = f"{type(exc).__name__}: {str(exc)[:200]}"
            self._open(reason)
            raise self.error(reason) from None

    def error(self, reason: str) -> Exception:
        """What a call gets while the service is down (subclasses say more)."""
        return Unavailable(f"{self.what} at {self.where} is unreachable ({reason}); retry in a few seconds")

    def _open(self, reason: str) -> None:
        with self._lock:
            if self._down is not None:
                return
            self._down, self._since = reason, time.monotonic()
        logger.warning("proxy_ext: %s at %s is unreachable (%s); %s until it is back", self.what, self.where, reason, self.while_down)
        threading.Thread(target=self._probe, name="proxy_ext-breaker-probe", daemon=True).start()

    def _probe(self) -> None:
        while True:
            time.sleep(PROBE_EVERY_S)
            try:
                self._ping()
            except self.unreachable:
                continue
            except Exception as exc:  # noqa: BLE001 - it answers, with an error: the calls report it
                logger.warning("proxy_ext: %s at %s answers with an error: %s", self.what, self.where, exc)
            with self._lock:
                down_for = time.monotonic() - self._since
                self._down = None
            logger.warning("proxy_ext: %s at %s answers again (after %.1f s)", self.what, self.where, down_for)
            return
