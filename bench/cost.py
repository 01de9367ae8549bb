"""Cost-augmented JSON overhead: a stock proxy (no extension), the extension with cost on, and the
extension with ``cost.enabled: false``; same fake upstream, same run, requests alternating between
them (order reversed every other round) so drift hits all alike.

1. /v1/chat/completions latency, sequential: p50 ratio cost/stock (target <= 1.02).
2. /v1/chat/completions throughput, concurrent rounds alternating: ratio cost/stock (>= 0.98).
3. A 500-chunk chat stream with include_usage (cost on the usage chunk): median time ratio
   cost on / cost off (<= 1.02), and cost on / stock for reference.

Wall times on a shared machine are noisy, so each section also reports the proxies' own CPU time
per request (from /proc): the work the extension adds, independent of what else the machine runs.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from bench._common import Cpu, orders
from tests.harness import FakeUpstream, ProxyProcess, Reply, fake_model_entry

LATENCY_N = 600
THROUGHPUT_ROUNDS, THROUGHPUT_REQUESTS, CONCURRENCY = 8, 100, 8
STREAM_N, STREAM_CHUNKS = 40, 500
TARGETS = {"p50 latency ratio": (1.02, "<="), "throughput ratio": (0.98, ">="), "500-chunk stream time ratio": (1.02, "<=")}


def _config(upstream: FakeUpstream, extension: bool, cost: bool = True) -> dict:
    models = [
        fake_model_entry(name, upstream.base_url, name, input_cost_per_token=1e-6, output_cost_per_token=2e-6)
        for name in ("bench-chat", "bench-stream")
    ]
    config: dict = {"model_list": models, "litellm_settings": {}, "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"}}
    if extension:
        config["litellm_settings"]["callbacks"] = ["proxy_ext.extension"]
        config["proxy_ext"] = {"cost": {"enabled": cost}}
    return config


CHAT = {"model": "bench-chat", "messages": [{"role": "user", "content": "hi"}]}
STREAM = {"model": "bench-stream", "messages": [{"role": "user", "content": "hi"}], "stream": True, "stream_options": {"include_usage": True}}


def _latency(clients: dict[str, httpx.Client], proxies: dict[str, ProxyProcess]) -> dict[str, float]:
    timings: dict[str, list[float]] = {name: [] for name in clients}
    cpu = Cpu(proxies)
    for order in orders(list(clients), LATENCY_N):
        for name in order:
            client = clients[name]
            started = time.perf_counter()
            response = client.post("/v1/chat/completions", json=CHAT)
            timings[name].append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
    cpu_ms = cpu.per_request_ms(LATENCY_N)
    for name, values in timings.items():
        print(f"  latency {name:<6} p50 {statistics.median(values):6.2f} ms  p95 {statistics.quantiles(values, n=20)[18]:6.2f} ms  proxy CPU {cpu_ms[name]:5.2f} ms/req (n={LATENCY_N})")
    return {name: statistics.median(values) for name, values in timings.items()}


async def _round(base_url: str, headers: dict[str, str]) -> float:
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as client:
        queue = iter(range(THROUGHPUT_REQUESTS))

        async def worker() -> None:
            for _ in queue:
                response = await client.post("/v1/chat/completions", json=CHAT)
                assert response.status_code == 200, response.text

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - started


def _throughput(proxies: dict[str, ProxyProcess]) -> dict[str, float]:
    elapsed = {name: 0.0 for name in proxies}
    for order in orders(list(proxies), THROUGHPUT_ROUNDS):
        for name in order:
            proxy = proxies[name]
            elapsed[name] += asyncio.run(_round(proxy.base_url, proxy.headers))
    rates = {name: THROUGHPUT_ROUNDS * THROUGHPUT_REQUESTS / seconds for name, seconds in elapsed.items()}
    for name, rate in rates.items():
        print(f"  throughput {name:<6} {rate:7.1f} req/s ({THROUGHPUT_ROUNDS} rounds x {THROUGHPUT_REQUESTS} requests, concurrency {CONCURRENCY})")
    return rates


def _stream(clients: dict[str, httpx.Client], proxies: dict[str, ProxyProcess]) -> dict[str, float]:
    timings: dict[str, list[float]] = {name: [] for name in clients}
    cpu = Cpu(proxies)
    for order in orders(list(clients), STREAM_N):
        for name in order:
            client = clients[name]
            started = time.perf_counter()
            with client.stream("POST", "/v1/chat/completions", json=STREAM) as response:
                body = b"".join(response.iter_bytes())
            timings[name].append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200 and body.count(b"data: ") >= STREAM_CHUNKS, body[-300:]
            if name == "cost":
                assert b'"cost_details"' in body
    cpu_ms = cpu.per_request_ms(STREAM_N)
    for name, values in timings.items():
        print(f"  stream  {name:<6} median {statistics.median(values):7.1f} ms  proxy CPU {cpu_ms[name]:6.1f} ms/stream (n={STREAM_N}, {STREAM_CHUNKS} chunks)")
    return {name: statistics.median(values) for name, values in timings.items()}


def _verdict(name: str, value: float) -> str:
    target, op = TARGETS[name]
    ok = value <= target if op == "<=" else value >= target
    return f"{name:<28} {value:.3f}  (target {op} {target})  {'OK' if ok else 'OVER TARGET'}"


def main() -> None:
    with FakeUpstream() as upstream:
        upstream.script("bench-chat", Reply(text="the quick brown fox", prompt_tokens=9, completion_tokens=4))
        upstream.script("bench-stream", Reply(text="x" * STREAM_CHUNKS, chunks=STREAM_CHUNKS, prompt_tokens=9, completion_tokens=STREAM_CHUNKS))
        proxies = {
            "stock": ProxyProcess(_config(upstream, False)),
            "cost": ProxyProcess(_config(upstream, True)),
            "off": ProxyProcess(_config(upstream, True, cost=False)),
        }
        with ThreadPoolExecutor(len(proxies)) as pool:
            list(pool.map(lambda p: p.start(), proxies.values()))
        try:
            clients = {name: httpx.Client(base_url=p.base_url, headers=p.headers, timeout=60) for name, p in proxies.items()}
            for _ in range(20):  # warm-up: imports, first-call caches, connection pools
                for client in clients.values():
                    client.post("/v1/chat/completions", json=CHAT)
                    client.post("/v1/chat/completions", json=STREAM)
            pair = ("stock", "cost")
            p50 = _latency({n: clients[n] for n in pair}, {n: proxies[n] for n in pair})
            rates = _throughput({n: proxies[n] for n in pair})
            stream = _stream(clients, proxies)
            print(_verdict("p50 latency ratio", p50["cost"] / p50["stock"]) + "   [cost / stock]")
            print(_verdict("throughput ratio", rates["cost"] / rates["stock"]) + "   [cost / stock]")
            print(_verdict("500-chunk stream time ratio", stream["cost"] / stream["off"]) + "   [cost on / cost off]")
            print(f"{'  (reference) stream cost on / stock':<28} {stream['cost'] / stream['stock']:.3f}")
        finally:
            for proxy in proxies.values():
                proxy.stop()
