"""The start-up heap out of the cyclic garbage collector's way (``scale.gc_freeze_after_s``).

A LiteLLM proxy holds ~800,000 objects once started (its modules, the model cost map, the router)
that live as long as the process. CPython's full collections walk all of them: ~0.5 s of CPU, and
of stopped event loop, every few hundred requests under load. ``gc.freeze()`` moves the objects
alive at that moment into a permanent generation no collection walks; a full collection then
walks only what was created since. Objects frozen are still freed by reference counting as usual;
only reference cycles among them are never collected (one full collection runs first, so nothing
already garbage is frozen)."""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import time
from collections.abc import Callable
from typing import Any

__all__ = ["FullCollectionTimer", "freeze_startup_heap", "schedule_freeze"]

logger = logging.getLogger("proxy_ext")
_frozen = False


def schedule_freeze(delay_s: float | None, on_frozen: Callable[[int], object] | None = None) -> bool:
    """Freeze the heap ``delay_s`` seconds from now on the running event loop (once per process),
    then call ``on_frozen`` with the number of objects frozen; False when ``delay_s`` is None,
    there is no running loop, or it was done already."""
    if delay_s is None or _frozen:
        return False
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    def freeze() -> None:
        frozen = freeze_startup_heap()
        if frozen and on_frozen is not None:
            on_frozen(frozen)

    loop.call_later(delay_s, freeze)
    return True


def freeze_startup_heap() -> int:
    """One full collection, then ``gc.freeze()``; returns the number of objects now frozen (0 if
    this process did it already)."""
    global _frozen
    if _frozen:
        return 0
    _frozen = True
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    logger.info("proxy_ext: %d start-up objects moved out of the garbage collector's way in %.0f ms (scale.gc_freeze_after_s)",
                frozen, (time.perf_counter() - started) * 1000)
    return frozen


class FullCollectionTimer:
    """Times the process's full (generation 2) collections: each stops every thread, the event loop
    included, for as long as it walks the heap.

    The ``gc`` callback only appends to a deque (no lock: a collection may start while any lock of
    this thread is held, e.g. a metric's own); :meth:`drain` hands the durations to ``observe``
    from ordinary code — every ``drain_every_s`` on the running loop, and whenever a scrape asks.
    """

    def __init__(self, observe: Callable[[float], object]) -> None:
        self._observe = observe
        self._started = 0.0
        self._done: collections.deque[float] = collections.deque(maxlen=10_000)

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started:
            self._done.append(time.perf_counter() - self._started)
            self._started = 0.0

    def install(self, drain_every_s: float = 1.0) -> "FullCollectionTimer":
        """Register the ``gc`` callback (once) and drain on the running loop, if there is one."""
        if self not in gc.callbacks:
            gc.callbacks.append(self)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return self

        def tick() -> None:
            self.drain()
            loop.call_later(drain_every_s, tick)

        loop.call_later(drain_every_s, tick)
        return self

    def drain(self) -> int:
        """Pass the durations recorded so far to ``observe``; returns how many there were."""
        count = 0
        while self._done:
            self._observe(self._done.popleft())
            count += 1
        return count
