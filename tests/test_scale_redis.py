"""The global run limit across instances, through a real ``redis-server``, and LiteLLM's own
``prometheus`` callback next to the extension's metrics with several workers.

Instance A runs two workers with LiteLLM's ``prometheus`` callback on (LiteLLM then sets
``PROMETHEUS_MULTIPROC_DIR`` itself and the extension shares it); instance B runs one worker. Both
share ``scale.global_max_concurrent_runs: 2``. B is finally killed with SIGKILL while it holds a
lease: the lease expires and A gets the slot back.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import signal
import time

import httpx
import pytest

from tests.conftest import base_config
from tests.harness import ProxyProcess, Reply
from tests.harness.redis_server import redis_available

pytestmark = pytest.mark.skipif(redis_available() is not None, reason=str(redis_available()))

GLOBAL = 2
TTL_S = 3


def _config(upstream, url: str, prometheus: bool = False) -> dict:
    config = base_config(upstream, {
        "agent": {"default_model": "fake/global-fast", "limits": {"max_concurrent_runs": 10}},
        "scale": {"global_max_concurrent_runs": GLOBAL, "redis_url": url, "lease_ttl_s": TTL_S},
    })
    if prometheus:
        config["litellm_settings"]["callbacks"].append("prometheus")
    return config


@pytest.fixture(scope="module")
def instances(upstream, redis_url):
    upstream.script("global-fast", Reply(text="ok"))
    with ProxyProcess(_config(upstream, redis_url, prometheus=True), args=["--num_workers", "2", "--timeout_worker_healthcheck", "120"],
                      startup_timeout_s=150) as a, ProxyProcess(_config(upstream, redis_url)) as b:
        yield a, b


def _run(proxy, model: str = "fake/global-fast") -> httpx.Response:
    return httpx.post(f"{proxy.base_url}/agent/run", json={"input": "x", "model": model}, headers=proxy.headers, timeout=60)


def _leases(url: str) -> int:
    import redis

    client = redis.Redis.from_url(url)
    seconds, micros = client.time()
    return client.zcount("proxy_ext:runs", f"({int(seconds) * 1000 + micros // 1000}", "+inf")


def _until_leases(url: str, count: int, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while _leases(url) != count:
        assert time.monotonic() < deadline, f"{_leases(url)} leases in Redis, expected {count}"
        time.sleep(0.1)


def test_global_limit_holds_across_instances(instances, upstream, redis_url):
    a, b = instances
    upstream.script("global-slow", *[Reply(text="late", latency_s=3)] * 4)
    with concurrent.futures.ThreadPoolExecutor(GLOBAL) as pool:
        held = [pool.submit(_run, a, "fake/global-slow") for _ in range(GLOBAL)]
        _until_leases(redis_url, GLOBAL)
        refused = _run(b)
        assert refused.status_code == 429, refused.text
        assert "global_max_concurrent_runs" in refused.json()["error"]["message"]
        assert all(f.result().status_code == 200 for f in held)
    _until_leases(redis_url, 0)  # every finished run gave its lease back
    assert _run(b).status_code == 200


def test_ready_reports_the_global_limits_redis(instances):
    _, b = instances
    body = httpx.get(f"{b.base_url}/ready", timeout=10).json()
    assert body["checks"]["global_run_limit"] == {"ok": True}, body


def test_litellm_prometheus_and_the_extension_share_one_scrape_across_workers(instances):
    a, _ = instances
    for _ in range(6):
        assert _run(a).status_code == 200
    totals = set()
    for _ in range(6):
        with httpx.Client(headers=a.headers, timeout=10) as client:  # new connections: either worker
            text = client.get(f"{a.base_url}/metrics").text
        assert re.search(r"^litellm_\w+", text, re.M), "LiteLLM's own metrics are missing"
        totals.add(sum(float(v) for v in re.findall(r"^proxy_ext_agent_runs_total\{[^}]*\} (\S+)$", text, re.M)))
    assert len(totals) == 1 and totals.pop() >= 6 + GLOBAL  # the same instance-wide total on every scrape


def test_a_killed_instances_leases_expire(instances, upstream, redis_url):
    a, b = instances
    upstream.script("global-hang", Reply(text="never", latency_s=60))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(_run, b, "fake/global-hang")
        _until_leases(redis_url, 1)
        os.killpg(b.process.pid, signal.SIGKILL)  # no chance to give the lease back
        with pytest.raises(httpx.HTTPError):
            pending.result(timeout=30)
    upstream.script("global-slow", *[Reply(text="late", latency_s=2)] * 4)
    _until_leases(redis_url, 0, timeout_s=TTL_S + 5)  # not renewed: expired
    with concurrent.futures.ThreadPoolExecutor(GLOBAL) as pool:
        assert [r.status_code for r in pool.map(lambda _: _run(a, "fake/global-slow"), range(GLOBAL))] == [200] * GLOBAL
