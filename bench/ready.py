"""GET /ready vs the stock GET /health/liveliness on one proxy, alternating: a load balancer can
call /ready every second. Checks are cached for ready.cache_s, so most calls are a dict lookup."""

from __future__ import annotations

import statistics
import time

import httpx

from tests.harness import FakeUpstream, ProxyProcess, fake_model_entry

N = 300


def _config(upstream: FakeUpstream) -> dict:
    return {
        "model_list": [fake_model_entry("fake/*", upstream.base_url, "*")],
        "litellm_settings": {"callbacks": ["proxy_ext.extension"]},
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
        "proxy_ext": {"ready": {"cache_s": 1.0}},
    }


def main() -> None:
    with FakeUpstream() as upstream, ProxyProcess(_config(upstream)) as proxy, httpx.Client(base_url=proxy.base_url) as client:
        timings: dict[str, list[float]] = {"/ready": [], "/health/liveliness": []}
        for _ in range(20):  # warm-up
            client.get("/ready"), client.get("/health/liveliness")
        for _ in range(N):
            for path in timings:
                started = time.perf_counter()
                assert client.get(path).status_code == 200
                timings[path].append((time.perf_counter() - started) * 1000)
        p50 = {path: statistics.median(values) for path, values in timings.items()}
        p95 = {path: statistics.quantiles(values, n=20)[18] for path, values in timings.items()}
        for path in timings:
            print(f"{path:<20} p50 {p50[path]:.2f} ms  p95 {p95[path]:.2f} ms  (n={N})")
        print(f"ratio /ready : /health/liveliness p50 = {p50['/ready'] / p50['/health/liveliness']:.2f}")
