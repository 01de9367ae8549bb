"""When the run store cannot be reached: one error (503 with ``Retry-After``) and a breaker.

Only a failure to reach the store counts (for Redis: a connection error or a timeout, the
``unreachable`` exception types the store names); any other error is a bug and propagates as one.
After the first such failure the breaker is open: calls fail at once, without waiting for another
timeout on the event loop, while a daemon thread pings the store (off the event loop) until it
answers; then calls go through again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from proxy_ext.exceptions import ProxyExtError

__all__ = ["Breaker", "StoreUnavailable", "RETRY_AFTER_S"]

logger = logging.getLogger("proxy_ext.runs")
RETRY_AFTER_S = 2
"""What ``Retry-After`` tells clients of a 503 while the store is unreachable."""
PROBE_EVERY_S = 0.5

T = TypeVar("T")


class StoreUnavailable(ProxyExtError):
    """The durable run store cannot be reached right now (503, retry shortly)."""

    status = 503
    retry_after_s = RETRY_AFTER_S


class Breaker:
    """Guards the calls of one store connection (``where``: its address without credentials)."""

    def __init__(self, where: str, unreachable: tuple[type[BaseException], ...], ping: Callable[[], Any]) -> None:
        self.where, self.unreachable, self._ping = where, unreachable, ping
        self._lock = threading.Lock()
        self._down: str | None = None
        """Why the store is unreachable (None: it answers)."""
        self._since = 0.0

    @property
    def down(self) -> bool:
        return self._down is not None

    def call(self, operation: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``operation(*args)``, or :class:`StoreUnavailable` at once while the store is down."""
        reason = self._down
        if reason is not None:
            raise self._error(reason)
        try:
            return operation(*args, **kwargs)
        except self.unreachable as exc:
            reason = f"{type(exc).__name__}: {str(exc)[:200]}"
            self._open(reason)
            raise self._error(reason) from None

    def _error(self, reason: str) -> StoreUnavailable:
        return StoreUnavailable(f"the durable run store (Redis at {self.where}) is unreachable ({reason}); retry in a few seconds. "
                                "Runs in progress go on, and their results are stored when it answers again.")

    def _open(self, reason: str) -> None:
        with self._lock:
            if self._down is not None:
                return
            self._down, self._since = reason, time.monotonic()
        logger.warning("proxy_ext: the durable run store (Redis at %s) is unreachable (%s); /agent/runs answers 503 until it is back",
                       self.where, reason)
        threading.Thread(target=self._probe, name="proxy_ext-runs-store-probe", daemon=True).start()

    def _probe(self) -> None:
        while True:
            time.sleep(PROBE_EVERY_S)
            try:
                self._ping()
            except self.unreachable:
                continue
            except Exception as exc:  # noqa: BLE001 - it answers, with an error: the calls report it
                logger.warning("proxy_ext: the durable run store answers with an error: %s", exc)
            with self._lock:
                down_for = time.monotonic() - self._since
                self._down = None
            logger.warning("proxy_ext: the durable run store (Redis at %s) answers again (after %.1f s)", self.where, down_for)
            return
