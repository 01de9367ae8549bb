"""When the run store cannot be reached: one error (503 with ``Retry-After``) and its breaker.

The breaker (:class:`proxy_ext.outage.Breaker`) fails the store's calls at once after the first
one that could not reach it, while a thread pings the store off the event loop until it answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from proxy_ext.exceptions import Unavailable
from proxy_ext.outage import Breaker

__all__ = ["StoreBreaker", "StoreUnavailable"]


class StoreUnavailable(Unavailable):
    """The durable run store cannot be reached right now (503 with ``Retry-After``, retry shortly)."""


class StoreBreaker(Breaker):
    """The breaker of the durable run store's connection."""

    def __init__(self, where: str, unreachable: tuple[type[BaseException], ...], ping: Callable[[], Any]) -> None:
        super().__init__(where, unreachable, ping, what="the durable run store (Redis)",
                         while_down="/agent/runs answers 503")

    def error(self, reason: str) -> StoreUnavailable:
        return StoreUnavailable(f"the durable run store (Redis at {self.where}) is unreachable ({reason}); retry in a few seconds. "
                                "Runs in progress go on, and their results are stored when it answers again.")
