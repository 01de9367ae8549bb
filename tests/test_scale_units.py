"""Run slots across processes and instances, and multiprocess metrics, without a proxy.

Real parts: worker processes are real forked processes (one is killed with SIGKILL), the global
limit runs against a real ``redis-server``, the metrics against prometheus_client's own
multiprocess files in real subprocesses.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from proxy_ext.config import ConfigError, parse_config
from proxy_ext.exceptions import ProxyExtError, RequestError
from proxy_ext.scale import instance_dir, is_alive, process_start
from proxy_ext.scale.slots import RunSlots, SharedCounts, owner_of
from tests.harness.redis_server import RedisServer, redis_available

needs_redis = pytest.mark.skipif(redis_available() is not None, reason=str(redis_available()))


def _shared(path, per_key=None) -> RunSlots:
    slots = RunSlots()
    slots.configure(shared_path=path, per_key=per_key)
    return slots


def test_one_worker_counts_in_process_and_release_without_a_slot_still_works():
    slots = RunSlots()
    slots.configure(per_key=1)
    first = slots.acquire(2, owner="a")
    with pytest.raises(RequestError) as error:
        slots.acquire(2, owner="a")
    assert error.value.status == 429 and "max_concurrent_runs_per_key" in error.value.message
    slots.acquire(2)  # no owner: only the instance limit
    assert not slots.free(2) and slots.active == 2
    with pytest.raises(RequestError, match="max_concurrent_runs"):
        slots.check(2)
    slots.release()  # the caller-keeps-nothing shape gives back the ownerless slot
    slots.release(first)
    slots.release(first)  # twice: no effect
    assert slots.active == 0 and slots.free(2, owner="a")


def test_the_scope_is_chosen_once_when_a_thread_and_the_loop_meet_on_first_use(monkeypatch):
    """The durable-run tick checks free slots in a thread while a run takes one on the event loop:
    both chose the scope (first use), and the slot taken in the first scope was lost with it."""
    slots = RunSlots()
    chosen = []
    configure = slots.configure

    def slow_configure(**kwargs):
        chosen.append(kwargs)
        time.sleep(0.05)  # widens the window between "no scope yet" and "scope chosen"
        configure(**kwargs)

    monkeypatch.setattr(slots, "configure", slow_configure)
    monkeypatch.setattr("proxy_ext.scale.slots.multi_worker", lambda: False)
    taker = threading.Thread(target=slots.acquire, args=(1,))
    taker.start()
    time.sleep(0.01)
    checker = threading.Thread(target=slots.free, args=(1,))
    checker.start()
    taker.join()
    checker.join()
    assert len(chosen) == 1 and slots.active == 1 and not slots.free(1)


def test_owner_is_a_hash_of_the_key_never_the_key():
    owner = owner_of({"Authorization": "Bearer sk-secret"})
    assert owner == owner_of({"x-litellm-api-key": "sk-secret"}) and "secret" not in owner
    assert owner_of({"content-type": "application/json"}) is None


def _hold(path: str, count: int, ready) -> None:
    slots = _shared(path)
    for _ in range(count):
        slots.acquire(3)
    ready.set()
    time.sleep(60)  # until killed


def test_workers_share_the_instance_limit_and_a_killed_workers_slots_come_back(tmp_path):
    path = str(tmp_path / "slots.json")
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    worker = context.Process(target=_hold, args=(path, 2, ready))
    worker.start()
    try:
        assert ready.wait(20)
        mine = _shared(path)
        mine.acquire(3)
        with pytest.raises(RequestError) as error:  # 2 in the other worker + 1 here
            mine.acquire(3)
        assert error.value.status == 429
        os.kill(worker.pid, signal.SIGKILL)
        worker.join(10)
        second = mine.acquire(3)  # the dead worker's two slots are reclaimed
        mine.acquire(3)
        assert mine.active == 3
        assert set(SharedCounts(path).snapshot()) == {str(os.getpid())}
        mine.release(second)
    finally:
        if worker.is_alive():
            worker.kill()


def test_per_key_limit_holds_across_workers(tmp_path):
    path = str(tmp_path / "slots.json")
    one, two = _shared(path, per_key=2), _shared(path, per_key=2)
    one.acquire(10, owner="k")
    two.acquire(10, owner="k")
    with pytest.raises(RequestError, match="max_concurrent_runs_per_key"):
        one.acquire(10, owner="k")
    one.acquire(10, owner="other")


def test_liveness_uses_the_start_time_against_pid_reuse():
    me = os.getpid()
    assert is_alive(me, process_start(me)) and not is_alive(me, (process_start(me) or 0) + 1)


def test_instance_dir_is_per_supervisor_and_dead_instances_are_removed(tmp_path, monkeypatch):
    stale = tmp_path / "proxy_ext-instance-999999999-5"
    stale.mkdir()
    monkeypatch.setenv("NUM_WORKERS", "2")
    path = instance_dir(tmp_path)
    assert path.name.startswith(f"proxy_ext-instance-{os.getppid()}-") and path.is_dir()
    assert not stale.exists()


def test_global_limit_needs_redis():
    with pytest.raises(ConfigError, match="global_max_concurrent_runs needs Redis"):
        parse_config({"scale": {"global_max_concurrent_runs": 4}}, env={})
    assert parse_config({"scale": {"global_max_concurrent_runs": 4, "redis_url": "redis://127.0.0.1:1/0"}}, env={}).scale.lease_ttl_s == 30


_INSTANCES: list[RunSlots] = []


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    if redis_available() is not None:
        pytest.skip(redis_available())
    with RedisServer() as server:
        yield server.url
        for slots in _INSTANCES:  # give every lease back while Redis still runs: no renewer outlives it
            while slots._held:
                slots.release(slots._held[-1])


def _instance(url: str, limit: int, prefix: str, ttl_s: float = 30.0, per_key: int | None = None, **kwargs) -> RunSlots:
    from proxy_ext.scale.leases import RedisLeases

    slots = RunSlots()
    _INSTANCES.append(slots)
    slots.configure(per_key=per_key, leases=RedisLeases(url, limit, prefix=prefix, ttl_s=ttl_s, **kwargs))
    return slots


@needs_redis
def test_global_limit_holds_across_instances(redis_url):
    east, west = _instance(redis_url, 3, "t:global"), _instance(redis_url, 3, "t:global")
    held = [east.acquire(100), west.acquire(100), west.acquire(100)]
    with pytest.raises(RequestError) as error:
        east.acquire(100)
    assert error.value.status == 429 and "global_max_concurrent_runs" in error.value.message
    assert not east.free(100) and east.active == 1  # a refusal takes nothing locally either
    west.release(held[1])
    east.acquire(100)
    assert east._leases.count() == 3


@needs_redis
def test_per_key_limit_across_instances(redis_url):
    east, west = _instance(redis_url, 10, "t:key", per_key=1), _instance(redis_url, 10, "t:key", per_key=1)
    east.acquire(100, owner="k")
    with pytest.raises(RequestError, match="max_concurrent_runs_per_key"):
        west.acquire(100, owner="k")
    west.acquire(100, owner="j")


@needs_redis
def test_a_dead_instances_leases_expire_and_live_ones_are_renewed(redis_url):
    dead = _instance(redis_url, 2, "t:ttl", ttl_s=0.6)
    dead.acquire(100)
    dead._leases.renew = lambda: None  # the instance stops renewing (as if killed)
    live = _instance(redis_url, 2, "t:ttl", ttl_s=0.6)
    live.acquire(100)
    time.sleep(1.5)  # longer than the TTL: the renewed lease stays, the other expired
    assert live._leases.count() == 1
    live.acquire(100)


@needs_redis
def test_unreachable_redis_is_a_503_or_allowed_as_configured(redis_url):
    from tests.harness import free_port

    gone = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(ProxyExtError) as error:  # not the client's fault: not a RequestError
        _instance(gone, 2, "t:gone", timeout_s=0.2).acquire(100)
    assert error.value.status == 503 and "Redis" in error.value.message and error.value.retry_after_s == 2
    lenient = _instance(gone, 2, "t:gone", timeout_s=0.2, on_error="allow")
    lenient.release(lenient.acquire(100))
    assert lenient.active == 0


_WORKER = textwrap.dedent("""
    import os, sys
    from proxy_ext import metrics
    from proxy_ext.agent import metrics as agent_metrics
    agent_metrics.RUNS.labels("final_answer").inc(int(sys.argv[1]))
    agent_metrics.watch_runs(lambda: int(sys.argv[2]), lambda: 0)
    metrics.refresh()
    if sys.argv[3] == "scrape":
        sys.stdout.write(metrics.render().decode())
""")


def test_multiprocess_metrics_add_up_workers_and_drop_dead_workers_gauges(tmp_path):
    from proxy_ext import metrics_multiproc

    env = {**os.environ, "NUM_WORKERS": "2", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for runs, in_progress in ((3, 2), (4, 1)):  # two workers that exit (their pids are then dead)
        subprocess.run([sys.executable, "-c", _WORKER, str(runs), str(in_progress), "-"], env=env, check=True)
    text = subprocess.run([sys.executable, "-c", _WORKER, "5", "0", "scrape"], env=env, check=True,
                          capture_output=True, text=True).stdout
    assert 'proxy_ext_agent_runs_total{stopped_reason="final_answer"} 12.0' in text  # counters of dead workers stay
    assert "proxy_ext_agent_runs_in_progress 0.0" in text  # their live gauges are gone
    assert len(metrics_multiproc.collect_dead_workers(str(tmp_path))) == 1  # the scraper's own, now it has exited
