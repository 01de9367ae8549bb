"""Results of runs the store did not take, kept in this worker's memory and written later.

A result the store cannot take because it is unreachable (:class:`StoreUnavailable`) is kept for as
long as the outage lasts and tried again every executor tick. A result it *refuses* — an error answer
such as Redis' ``OOM`` or ``WRONGTYPE``, a record that cannot be serialized — is tried again with
backoff (:data:`FIRST_RETRY_S`, doubling) and dropped after :data:`WRITE_TRIES` tries, logged each
time: it never stops the tick, and the results of other runs are written on their own. A dropped
result leaves its run ``running`` until its lease (``runs.lease_s``) runs out; then a worker
continues it from its last checkpoint, as after a worker that died.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from proxy_ext.runs.outage import StoreUnavailable

__all__ = ["FIRST_RETRY_S", "MAX_RETRY_S", "WRITE_TRIES", "Unwritten", "refusal", "retry_delay"]

logger = logging.getLogger("proxy_ext.runs")
WRITE_TRIES = 5
"""Tries of a write the store refuses (not unreachable) before it is dropped."""
FIRST_RETRY_S = 1.0
"""Wait before the second try of a refused write; doubled after every try, up to :data:`MAX_RETRY_S`."""
MAX_RETRY_S = 30.0


def refusal(exc: BaseException) -> str:
    """What a refused write logs: the error's type and the start of its message (never the data)."""
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def retry_delay(tries: int) -> float:
    """The wait after the ``tries``-th refused try."""
    return float(min(MAX_RETRY_S, FIRST_RETRY_S * 2 ** (tries - 1)))


@dataclass
class _Held:
    write: Callable[[], None]
    tries: int = 0
    """Refused tries so far (tries while the store was unreachable do not count)."""
    due: float = 0.0
    """Not before (``time.monotonic()``)."""


class Unwritten:
    """The results of this worker's runs that are not in the store yet, by run id (thread-safe: results
    are written by threads of their own while the tick's thread retries the held ones)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._held: dict[str, _Held] = {}

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._held

    def __len__(self) -> int:
        return len(self._held)

    def write(self, run_id: str, write: Callable[[], None]) -> None:
        """``write()`` the run's result now, else hold it (never raises an ``Exception``)."""
        try:
            write()
        except StoreUnavailable:
            with self._lock:
                held = self._held.get(run_id)
                if held is None:
                    self._held[run_id] = _Held(write)
                else:
                    held.write = write
            if held is None:
                logger.warning("proxy_ext: run %s ended while the run store is unreachable; its result is kept here until it answers", run_id)
        except Exception as exc:  # noqa: BLE001 - refused: retried with backoff, then dropped (logged)
            self._refused(run_id, write, exc)
        else:
            with self._lock:
                self._held.pop(run_id, None)

    def _refused(self, run_id: str, write: Callable[[], None], exc: Exception) -> None:
        with self._lock:
            held = self._held.setdefault(run_id, _Held(write))
            held.write, held.tries = write, held.tries + 1
            tries = held.tries
            if tries >= WRITE_TRIES:
                del self._held[run_id]
            else:
                held.due = self._clock() + retry_delay(tries)
        if tries >= WRITE_TRIES:
            logger.error("proxy_ext: the run store refused the result of run %s %d times (%s); dropped: the run is continued "
                         "from its last checkpoint once its lease runs out", run_id, tries, refusal(exc))
        else:
            logger.warning("proxy_ext: the run store refused the result of run %s (%s); tried again in %.0f s (try %d of %d)",
                           run_id, refusal(exc), retry_delay(tries), tries, WRITE_TRIES)

    def retry(self) -> None:
        """Write the held results that are due, each on its own."""
        now = self._clock()
        with self._lock:
            due = [(run_id, held.write) for run_id, held in self._held.items() if held.due <= now]
        for run_id, write in due:
            self.write(run_id, write)
