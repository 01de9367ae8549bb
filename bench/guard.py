"""The request guard's cost on stock traffic: the extension with ``guard.enabled`` true vs false,
same fake upstream, requests alternating between the two proxies (order reversed every round).

/v1/chat/completions, sequential: p50 latency ratio guard on / off (target <= 1.01), and each
proxy's own CPU time per request (from /proc) next to it. A third proxy has the guard on and one of
the extension's own models in its model list: the guard then reads each body whole and looks for
that model's name in it (:mod:`proxy_ext.providers.request_check`); its ratio to "off" is printed too.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from bench._common import Cpu, orders
from tests.harness import FakeUpstream, ProxyProcess, Reply, fake_model_entry

ROUNDS = 800
TARGET = 1.01
CHAT = {"model": "bench-guard", "messages": [{"role": "user", "content": "hi"}]}


def _config(upstream: FakeUpstream, guard: bool, own_model: bool = False) -> dict:
    own = [{"model_name": "echo", "litellm_params": {"model": "echo/echo-1"}}] if own_model else []
    return {
        "model_list": [fake_model_entry("bench-guard", upstream.base_url, "bench-guard"), *own],
        "litellm_settings": {"callbacks": ["proxy_ext.extension"]},
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
        "proxy_ext": {"guard": {"enabled": guard}},
    }


def main() -> None:
    with FakeUpstream() as upstream:
        upstream.script("bench-guard", Reply(text="the quick brown fox", prompt_tokens=9, completion_tokens=4))
        proxies = {"on": ProxyProcess(_config(upstream, True)), "off": ProxyProcess(_config(upstream, False)),
                   "on+own": ProxyProcess(_config(upstream, True, own_model=True))}
        with ThreadPoolExecutor(len(proxies)) as pool:
            list(pool.map(lambda p: p.start(), proxies.values()))
        try:
            clients = {name: httpx.Client(base_url=p.base_url, headers=p.headers, timeout=60) for name, p in proxies.items()}
            for _ in range(30):
                for client in clients.values():
                    client.post("/v1/chat/completions", json=CHAT)
            timings: dict[str, list[float]] = {name: [] for name in proxies}
            cpu = Cpu(proxies)
            for order in orders(list(proxies), ROUNDS):
                for name in order:
                    started = time.perf_counter()
                    response = clients[name].post("/v1/chat/completions", json=CHAT)
                    timings[name].append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200, response.text
            cpu_ms = cpu.per_request_ms(ROUNDS)
            p50 = {name: statistics.median(values) for name, values in timings.items()}
            for name in proxies:
                print(f"  guard {name:<6} p50 {p50[name]:6.2f} ms  p95 {statistics.quantiles(timings[name], n=20)[18]:6.2f} ms  "
                      f"proxy CPU {cpu_ms[name]:5.2f} ms/req (n={ROUNDS})")
            ratio = p50["on"] / p50["off"]
            print(f"p50 latency ratio guard on / off  {ratio:.3f}  (target <= {TARGET})  {'OK' if ratio <= TARGET else 'OVER TARGET'}")
            print(f"proxy CPU ratio guard on / off    {cpu_ms['on'] / cpu_ms['off']:.3f}")
            print(f"with an own model in the config: p50 ratio {p50['on+own'] / p50['off']:.3f}, proxy CPU ratio {cpu_ms['on+own'] / cpu_ms['off']:.3f}")
        finally:
            for proxy in proxies.values():
                proxy.stop()
