"""The proxy when its Redis goes away: restarted empty (no persistence), unreachable, or hung.

A real ``redis-server`` (tests/harness/redis_server.py) is killed, started again on its port and
stopped with SIGSTOP under real proxies; nothing is mocked.
"""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import pytest

from proxy_ext.exceptions import ProxyExtError, RequestError
from proxy_ext.scale.leases import RedisLeases
from tests.harness import ProxyProcess, Reply
from tests.harness.redis_server import RedisServer, redis_available

pytestmark = pytest.mark.skipif(redis_available() is not None, reason=str(redis_available()))


def _until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


# ----------------------------------------------------------------------------------- leases

def test_leases_lost_in_a_redis_restart_are_added_again():
    """A Redis without persistence comes back empty: the instance's renewal puts its leases back,
    so the global limit still counts the runs in progress (and a given-back lease stays gone)."""
    with RedisServer() as server:
        leases = RedisLeases(server.url, 2, ttl_s=3)
        held = [leases.take("key-a", 2), leases.take("key-a", 2)]
        assert leases.count() == 2
        server.restart()
        _until(lambda: leases.count() == 2, 5, "the leases were not added again after the restart")
        with pytest.raises(RequestError) as refused:
            leases.take("key-b", None)
        assert refused.value.status == 429
        for lease in held:
            leases.give(lease, "key-a")
        time.sleep(1.5)  # a renewal later: what was given back is not re-added
        assert leases.count() == 0


@pytest.mark.parametrize("on_error", ["reject", "allow"])
def test_a_hung_limit_redis_costs_one_timeout_not_one_per_run(on_error):
    """Leases are taken on the event loop: after the first timeout the breaker answers at once
    (503 with Retry-After, or no limit with ``allow``) until Redis answers again."""
    with RedisServer() as server:
        leases = RedisLeases(server.url, 5, timeout_s=0.5, on_error=on_error)
        leases.give(leases.take("key-a", None) or "", "key-a")
        server.pause()  # SIGSTOP: connections are accepted, nothing ever answers
        try:
            started = time.monotonic()
            for _ in range(8):
                if on_error == "allow":
                    assert leases.take("key-a", None) is None
                else:
                    with pytest.raises(ProxyExtError) as refused:
                        leases.take("key-a", None)
                    assert refused.value.status == 503 and refused.value.retry_after_s, refused.value
                    assert "global_max_concurrent_runs" in refused.value.message
            assert time.monotonic() - started < 2.0, "each take waited for its own timeout (8 x 0.5 s)"
        finally:
            server.resume()
        _until(lambda: not leases.breaker.down, 5, "the breaker did not close once Redis answered")
        lease = leases.take("key-a", None)
        assert lease is not None and leases.count() == 1
        leases.give(lease, "key-a")
        assert leases.count() == 0


# ----------------------------------------------------------------------------------- the run store

@pytest.fixture(scope="module")
def store_redis():
    if redis_available():
        pytest.skip(str(redis_available()))
    with RedisServer(persist=True) as server:  # it comes back with its data, as a Redis with an append-only file does
        yield server


@pytest.fixture(scope="module")
def runs_proxy(upstream, store_redis):
    from tests.conftest import base_config

    config = base_config(upstream, {"agent": {"default_model": "echo"},
                                    "runs": {"store": "redis", "redis_url": store_redis.url, "poll_interval_s": 0.05, "redis_timeout_s": 1.5}})
    with ProxyProcess(config) as proxy:
        yield proxy


@pytest.fixture
def redis_back(store_redis):
    """Whatever a test did to the Redis, it answers again afterwards."""
    yield store_redis
    store_redis.resume()
    if store_redis.process is None or store_redis.process.poll() is not None:
        store_redis.start()


def _get(proxy, path: str, **kwargs) -> httpx.Response:
    return httpx.get(f"{proxy.base_url}{path}", headers=proxy.headers, timeout=30, **kwargs)


def _background(proxy, model: str) -> str:
    created = httpx.post(f"{proxy.base_url}/agent/run", headers=proxy.headers, timeout=30,
                         json={"input": "x", "model": model, "background": True})
    assert created.status_code == 202, created.text
    return created.json()["run_id"]


def _status(proxy, run_id: str, wanted: set[str], timeout_s: float = 30) -> dict:
    seen: list = []
    _until(lambda: seen.append(_get(proxy, f"/agent/runs/{run_id}")) or (seen[-1].status_code == 200 and seen[-1].json()["status"] in wanted),
           timeout_s, f"run {run_id} never became {wanted}: {seen[-1].text if seen else ''}")
    return seen[-1].json()


def test_an_unreachable_store_is_a_503_and_the_runs_are_back_with_it(runs_proxy, upstream, redis_back):
    upstream.script("outage-done", Reply(text="stored"))
    run_id = _background(runs_proxy, "fake/outage-done")
    _status(runs_proxy, run_id, {"completed"})
    redis_back.stop()
    for path in (f"/agent/runs/{run_id}", "/agent/runs", f"/agent/runs/{run_id}/events"):
        down = _get(runs_proxy, path)
        assert down.status_code == 503, (path, down.text)
        assert int(down.headers["retry-after"]) >= 1 and "run store" in down.json()["error"]["message"]
        assert "unreachable" in down.json()["error"]["message"]
    refused = httpx.post(f"{runs_proxy.base_url}/agent/run", headers=runs_proxy.headers, timeout=30,
                         json={"input": "x", "background": True})
    assert refused.status_code == 503 and "retry-after" in refused.headers, refused.text
    assert _get(runs_proxy, "/agent/runs", params={"before": "nan:x"}).status_code == 400  # a bad cursor stays a 400
    ready = httpx.get(f"{runs_proxy.base_url}/ready", timeout=10)
    assert ready.status_code == 200 and ready.json()["checks"]["runs"]["ok"] is False  # degraded: foreground runs work
    redis_back.start()
    assert _status(runs_proxy, run_id, {"completed"}, timeout_s=10)["envelope"]["final_answer"] == "stored"


def test_a_run_that_ends_during_the_outage_keeps_its_result(runs_proxy, upstream, redis_back):
    upstream.script("outage-late", Reply(text="finished while Redis was away", latency_s=2))
    run_id = _background(runs_proxy, "fake/outage-late")
    _status(runs_proxy, run_id, {"running"})
    redis_back.stop()
    time.sleep(3.5)  # the model answers, the run ends: nowhere to write its result
    redis_back.start()
    done = _status(runs_proxy, run_id, {"completed", "failed"}, timeout_s=15)
    assert done["status"] == "completed" and done["envelope"]["final_answer"] == "finished while Redis was away", done
    events = _get(runs_proxy, f"/agent/runs/{run_id}/events").text
    assert "event: run_completed" in events


def test_a_hung_store_does_not_stall_the_worker(runs_proxy, upstream, redis_back):
    upstream.script("hung-fg", Reply(text="foreground"))
    run_id = _background(runs_proxy, "fake/hung-fg")
    _status(runs_proxy, run_id, {"completed"})
    redis_back.pause()  # SIGSTOP: connections are accepted, nothing ever answers
    worst: dict[str, float] = {}
    deadline = time.monotonic() + 4
    with httpx.Client(base_url=runs_proxy.base_url, headers=runs_proxy.headers, timeout=30) as client:
        while time.monotonic() < deadline:
            for method, path, body in (("GET", "/ready", None),
                                       ("POST", "/v1/chat/completions", {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}),
                                       ("POST", "/agent/run", {"input": "hi", "backend": "echo"})):
                started = time.monotonic()
                answer = client.request(method, path, json=body)
                worst[path] = max(worst.get(path, 0.0), time.monotonic() - started)
                assert answer.status_code == 200, (path, answer.text)
        stalled = client.get(f"/agent/runs/{run_id}")
    assert stalled.status_code == 503 and "retry-after" in stalled.headers, stalled.text
    # /ready waits for its checks up to ready.check_timeout_s (1 s) once; nothing waits for the 1.5 s store timeout
    assert worst["/ready"] < 1.4 and max(worst.values()) < 1.4, worst
    assert worst["/v1/chat/completions"] < 0.8 and worst["/agent/run"] < 0.8, worst
    redis_back.resume()
    assert _status(runs_proxy, run_id, {"completed"}, timeout_s=10)["envelope"]["final_answer"] == "foreground"


def test_leases_come_back_under_a_proxy_after_a_restart(upstream):
    """The global limit through a real proxy: a run in progress keeps its lease across a Redis restart."""
    from tests.conftest import base_config

    with RedisServer() as server:
        config = base_config(upstream, {"agent": {"default_model": "echo"},
                                        "scale": {"global_max_concurrent_runs": 1, "redis_url": server.url, "lease_ttl_s": 3}})
        upstream.script("lease-slow", Reply(text="late", latency_s=6))
        with ProxyProcess(config) as proxy, concurrent.futures.ThreadPoolExecutor(1) as pool:
            held = pool.submit(httpx.post, f"{proxy.base_url}/agent/run", headers=proxy.headers, timeout=60,
                               json={"input": "x", "model": "fake/lease-slow"})
            leases = RedisLeases(server.url, 1, ttl_s=3)
            _until(lambda: leases.count() == 1, 10, "the run took no lease")
            server.restart()
            _until(lambda: leases.count() == 1, 5, "the run's lease was not added again")
            refused = httpx.post(f"{proxy.base_url}/agent/run", headers=proxy.headers, timeout=30, json={"input": "x", "backend": "echo"})
            assert refused.status_code == 429, refused.text
            assert held.result().status_code == 200  # the run was not killed
            server.pause()
            try:
                hung = httpx.post(f"{proxy.base_url}/agent/run", headers=proxy.headers, timeout=30, json={"input": "x", "backend": "echo"})
            finally:
                server.resume()
            assert hung.status_code == 503 and hung.headers.get("retry-after") == "2", (hung.status_code, hung.headers, hung.text)
