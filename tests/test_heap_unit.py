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
