"""proxy_ext.heap: the start-up heap frozen once per process, on the running loop, only when asked."""

from __future__ import annotations

import asyncio
import gc

import pytest

from proxy_ext import heap


@pytest.fixture(autouse=True)
def _thawed(monkeypatch):
    monkeypatch.setattr(heap, "_frozen", False)
    yield
    gc.unfreeze()


def test_nothing_is_frozen_when_switched_off_or_without_a_loop():
    assert heap.schedule_freeze(None) is False
    assert heap.schedule_freeze(0.0) is False  # no running event loop
    assert gc.get_freeze_count() == 0


def test_frozen_once_on_the_loop_after_the_delay():
    seen: list[int] = []

    async def scenario() -> None:
        assert heap.schedule_freeze(0.05, seen.append) is True
        await asyncio.sleep(0.01)
        assert seen == [] and gc.get_freeze_count() == 0  # not before the delay
        await asyncio.sleep(0.2)
        assert heap.schedule_freeze(0.0, seen.append) is False  # once per process

    asyncio.run(scenario())
    assert len(seen) == 1 and seen[0] > 1000 and gc.get_freeze_count() > 1000
    assert heap.freeze_startup_heap() == 0


def test_garbage_is_collected_before_the_freeze():
    class Cycle:
        pass

    cycle = Cycle()
    cycle.me = cycle  # type: ignore[attr-defined]
    del cycle
    heap.freeze_startup_heap()
    assert not [o for o in gc.get_objects() if type(o).__name__ == "Cycle"]


def test_full_collections_are_timed_and_handed_over_outside_the_collector():
    seen: list[float] = []
    timer = heap.FullCollectionTimer(seen.append)
    try:
        timer.install()  # no running loop: drained on demand only
        timer.install()
        assert gc.callbacks.count(timer) == 1
        gc.collect(0)
        gc.collect(1)
        assert timer.drain() == 0  # only full collections count
        gc.collect()
        gc.collect()
        assert seen == [] and timer.drain() == 2
        assert len(seen) == 2 and all(0 < s < 10 for s in seen)
        assert timer.drain() == 0
    finally:
        gc.callbacks.remove(timer)


def test_full_collections_are_drained_on_the_loop():
    seen: list[float] = []

    async def scenario() -> None:
        timer = heap.FullCollectionTimer(seen.append).install(drain_every_s=0.02)
        try:
            gc.collect()
            await asyncio.sleep(0.1)
        finally:
            gc.callbacks.remove(timer)

    asyncio.run(scenario())
    assert len(seen) == 1
