"""Costs of scaling out (issue 17): run slot acquire+release per scope, a Redis lease, and a
/metrics scrape of a two-worker proxy (multiprocess mode) next to a one-worker one.

Slot costs are taken in this process (the same code the event loop calls); the scrape through
real proxies with a fake upstream, after the same number of agent runs on each.
"""

from __future__ import annotations

import concurrent.futures
import shutil
import statistics
import tempfile
import time

import httpx

from tests.harness import FakeUpstream, ProxyProcess, Reply

N_SLOTS = 5000
N_LEASES = 1000
N_SCRAPES = 100
RUNS = 40


def _per_op_us(slots, n: int) -> float:
    for _ in range(50):
        slots.release(slots.acquire(1000, owner="bench"))
    started = time.perf_counter()
    for _ in range(n):
        slots.release(slots.acquire(1000, owner="bench"))
    return (time.perf_counter() - started) / n * 1e6


def _slots() -> None:
    from proxy_ext.scale.slots import RunSlots

    local = RunSlots()
    local.configure(per_key=100)
    print(f"slot acquire+release, one worker (in-process)   {_per_op_us(local, N_SLOTS):8.1f} us  (n={N_SLOTS})")
    directory = tempfile.mkdtemp(prefix="bench-scale-")
    try:
        shared = RunSlots()
        shared.configure(shared_path=f"{directory}/run_slots.json", per_key=100)
        print(f"slot acquire+release, --num_workers (flock file) {_per_op_us(shared, N_SLOTS):8.1f} us  (n={N_SLOTS})")
        _leases(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _leases(directory: str) -> None:
    from proxy_ext.scale.leases import RedisLeases
    from proxy_ext.scale.slots import RunSlots
    from tests.harness.redis_server import RedisServer, redis_available

    if redis_available() is not None:
        print("slot acquire+release with a Redis lease: skipped (redis-server not installed: make system-deps)")
        return
    with RedisServer() as server:
        slots = RunSlots()
        slots.configure(shared_path=f"{directory}/run_slots.json", per_key=100, leases=RedisLeases(server.url, 1000, prefix="bench"))
        print(f"slot acquire+release, + Redis lease (loopback)   {_per_op_us(slots, N_LEASES):8.1f} us  (n={N_LEASES})")


def _config(upstream: FakeUpstream) -> dict:
    return {
        "model_list": [{"model_name": "echo", "litellm_params": {"model": "echo/echo-1"}}],
        "litellm_settings": {"callbacks": ["proxy_ext.extension"]},
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
        "proxy_ext": {"agent": {"default_model": "echo"}},
    }


def _scrape_ms(proxy: ProxyProcess) -> tuple[float, float, int]:
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: httpx.post(f"{proxy.base_url}/agent/run", json={"input": "x", "backend": "echo"},
                                           headers=proxy.headers, timeout=60), range(RUNS)))
    timings = []
    for _ in range(N_SCRAPES):
        with httpx.Client(headers=proxy.headers, timeout=10) as client:  # a new connection: either worker
            started = time.perf_counter()
            response = client.get(f"{proxy.base_url}/metrics")
            timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return statistics.median(timings), statistics.quantiles(timings, n=20)[18], len(response.content)


def _scrapes() -> None:
    with FakeUpstream() as upstream:
        upstream.script("x", Reply(text="x"))
        for workers in (1, 2):
            args = ["--num_workers", str(workers), "--timeout_worker_healthcheck", "120"] if workers > 1 else []
            with ProxyProcess(_config(upstream), args=args, startup_timeout_s=150) as proxy:
                time.sleep(10 if workers > 1 else 0)  # the second worker finishes starting
                p50, p95, size = _scrape_ms(proxy)
                print(f"/metrics scrape, {workers} worker(s)                 p50 {p50:.2f} ms  p95 {p95:.2f} ms  ({size} bytes, n={N_SCRAPES})")


def main() -> None:
    _slots()
    _scrapes()
