"""Results of durable runs that ended during a Redis outage, when Redis answers again but refuses
some writes (``OOM``, ``WRONGTYPE``): a real ``redis-server``, the executor's tick without a proxy.

A refused write must not fail every later tick (claims, lease renewals and the other runs' results
all stop then): it is logged, tried again with backoff, and dropped after a bounded number of tries.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
import redis

from proxy_ext.config import parse_config
from proxy_ext.runs import unwritten
from proxy_ext.runs.recorder import StoreRecorder
from proxy_ext.runs.redis_store import RedisRunStore
from proxy_ext.runs.service import DurableRuns, _Local
from proxy_ext.runs.store import RunRecord
from proxy_ext.state import Runtime
from tests.harness.redis_server import RedisServer, redis_available

pytestmark = pytest.mark.skipif(redis_available() is not None, reason=str(redis_available()))
ENVELOPE = {"ok": True, "final_answer": "done", "stopped_reason": "final_answer", "messages": [], "metrics": {"trace_id": "x"}}


@pytest.fixture
def server():
    with RedisServer(persist=True) as started:  # back with its data after the outage
        yield started


@pytest.fixture
def runs(server, monkeypatch):
    monkeypatch.setattr(unwritten, "FIRST_RETRY_S", 0.05)
    runtime = Runtime(settings=parse_config({"runs": {"store": "redis", "redis_url": server.url, "lease_s": 60, "redis_timeout_s": 0.5}}))
    service = DurableRuns(runtime, RedisRunStore(server.url, timeout_s=0.5))
    yield service
    service.store.close()


def _running(runs: DurableRuns, run_id: str) -> _Local:
    runs.store.create(RunRecord(id=run_id, owner="o", team_id=None, status="running", request={"input": "x"}, caller="sealed",
                                lease_owner=runs.worker, lease_until=time.time() + 60, attempts=1))
    local = _Local(StoreRecorder(runs.store, run_id, runs.worker, runs.bell))
    local.recorder.unsent = [("run_started", {"trace_id": run_id}), ("run_completed", ENVELOPE)]  # kept during the outage
    local.recorder.finished = True
    return local


def _end_during_outage(runs: DurableRuns, server: RedisServer, run_ids: list[str]) -> None:
    locals_ = {run_id: _running(runs, run_id) for run_id in run_ids}
    server.stop()
    for run_id, local in locals_.items():
        asyncio.run(runs._off(run_id, lambda run_id=run_id, local=local: runs._finish(run_id, "completed", ENVELOPE, local)))
    server.start()
    deadline = time.monotonic() + 10
    while runs.store.breaker.down:  # its probe sees Redis answer again
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _ticks_until(runs: DurableRuns, done, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        runs._tick_store(time.time(), [], 10**6)  # raises when a refused result wedges the tick
        assert time.monotonic() < deadline, "the held results were never written"
        time.sleep(0.02)


def test_results_refused_while_redis_is_out_of_memory_are_written_once_it_has_room(runs, server, caplog):
    a, b = "a" * 32, "b" * 32
    _end_during_outage(runs, server, [a, b])
    admin = redis.Redis.from_url(server.url)
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", 1)  # every write: OOM command not allowed
    with caplog.at_level(logging.WARNING, logger="proxy_ext.runs"):
        for _ in range(3):
            runs._tick_store(time.time(), [], 10**6)
            time.sleep(0.06)
    assert "OutOfMemoryError" in caplog.text and "sealed" not in caplog.text and "Traceback" not in caplog.text
    assert {runs.store.get(r).status for r in (a, b)} == {"running"}
    admin.config_set("maxmemory", 0)
    _ticks_until(runs, lambda: {runs.store.get(r).status for r in (a, b)} == {"completed"})
    assert [kind for _, kind, _ in runs.store.events(a, 0)] == ["run_started", "run_completed"]
    assert a not in runs._unwritten and b not in runs._unwritten


def test_one_result_redis_refuses_for_good_never_stops_the_others(runs, server, caplog):
    poisoned, fine = "c" * 32, "d" * 32
    _end_during_outage(runs, server, [poisoned, fine])
    redis.Redis.from_url(server.url).set(f"proxy_ext:durable:events:{poisoned}", "not a list")  # rpush: WRONGTYPE
    with caplog.at_level(logging.WARNING, logger="proxy_ext.runs"):
        _ticks_until(runs, lambda: runs.store.get(fine).status == "completed" and poisoned not in runs._unwritten)
    assert "WRONGTYPE" in caplog.text
    # its events could not be stored and were dropped after a bounded number of tries; its status was stored
    assert runs.store.get(poisoned).status == "completed" and runs.store.get(poisoned).envelope == ENVELOPE
    assert [kind for _, kind, _ in runs.store.events(fine, 0)] == ["run_started", "run_completed"]
