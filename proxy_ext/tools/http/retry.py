"""Retry policy of the tool-host invoker: which failures are retried and how long to wait."""

from __future__ import annotations

import datetime
import email.utils
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RetryPolicy", "parse_retry_after"]


def parse_retry_after(value: str | None, now: datetime.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent/invalid."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        seconds = float(value)  # not standard, but some servers send fractions
        return seconds if seconds >= 0 else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return max(0.0, (when - now).total_seconds())


@dataclass
class RetryPolicy:
    """Bounded retries: at most ``max_retries`` retries and ``max_wait_s`` of summed waiting per call.

    The wait is never shorter than the server's ``Retry-After``; jitter (up to 25 % of the wait,
    at most 1 s) is added on top so callers rate-limited together do not come back together.
    """

    max_retries: int
    max_wait_s: float
    backoff_s: float
    random: Callable[[], float]
    retries: int = 0
    waited_s: float = 0.0

    def next_wait(self, retry_after_s: float | None, time_left_s: float | None = None) -> float | None:
        """How long to wait before the next try, or None when no retry is left within the caps
        (``time_left_s``: what remains of the caller's budget; the wait and a try must fit in it)."""
        if self.retries >= self.max_retries:
            return None
        base = retry_after_s if retry_after_s is not None else self.backoff_s * (2 ** self.retries)
        wait = base + self.random() * min(0.25 * base, 1.0)
        if self.waited_s + base > self.max_wait_s or (time_left_s is not None and base >= time_left_s):
            return None
        wait = min(wait, self.max_wait_s - self.waited_s)  # jitter never breaks the cap
        if time_left_s is not None:
            wait = min(wait, max(base, 0.9 * time_left_s))
        self.retries += 1
        self.waited_s += wait
        return wait
