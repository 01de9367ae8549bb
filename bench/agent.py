"""/agent/run overhead, measured side by side in one run against one proxy and one fake upstream.

1. An /agent/run of k model turns (k-1 tool calls of the local ``current_time`` tool, then an
   answer) vs the same k turns as direct /v1/chat/completions calls through the proxy, alternating.
   Target: overhead <= 1 ms per turn (ratio <= 1.05).
2. 100 concurrent runs with 200 ms upstream latency per turn vs one run alone.
   Target: the 100 finish within 1.3x one run's wall time.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import httpx

from proxy_ext.agent.local_tools import BUILTIN_TOOLS, current_time, spec_from_callable
from tests.harness import FakeUpstream, ProxyProcess, Reply, call, fake_model_entry

TOOLS = [spec_from_callable(fn, name).openai_tool() for name, fn in BUILTIN_TOOLS.items()]

K = 4
ROUNDS = 60
CONCURRENT = 100
LATENCY_S = 0.2


def _config(upstream: FakeUpstream) -> dict:
    return {
        "model_list": [fake_model_entry("fake/*", upstream.base_url, "*")],
        "litellm_settings": {"callbacks": ["proxy_ext.extension"]},
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
        "proxy_ext": {"agent": {"default_model": "fake/bench-agent", "max_iterations": 16},
                      "cost": {"enabled": False}},
    }


def _k_turns(latency_s: float):
    def responder(body: dict) -> Reply:
        done = sum(1 for m in body.get("messages", []) if m.get("role") == "tool")
        if done < K - 1:
            return Reply(tool_calls=[call("current_time", {})], latency_s=latency_s)
        return Reply(text="done", latency_s=latency_s)
    return responder


async def _agent_run(client: httpx.AsyncClient, model: str) -> float:
    started = time.perf_counter()
    response = await client.post("/agent/run", json={"input": "go", "model": model})
    body = response.json()
    assert response.status_code == 200 and body["ok"] and body["metrics"]["iterations"] == K, body
    return time.perf_counter() - started


async def _direct_turns(client: httpx.AsyncClient, model: str = "fake/bench-direct") -> float:
    """The same k turns as the agent makes them: same tools offered, same replies, the client
    running the tool and sending the growing conversation back."""
    started = time.perf_counter()
    messages: list[dict] = [{"role": "user", "content": "go"}]
    for _ in range(K):
        response = await client.post("/v1/chat/completions", json={"model": model, "messages": messages, "tools": TOOLS})
        assert response.status_code == 200, response.text
        message = response.json()["choices"][0]["message"]
        if not message.get("tool_calls"):
            break
        messages.append({"role": "assistant", "content": None, "tool_calls": message["tool_calls"]})
        for tool_call in message["tool_calls"]:
            messages.append({"role": "tool", "tool_call_id": tool_call["id"], "content": current_time()})
    return time.perf_counter() - started


async def _measure(proxy: ProxyProcess) -> None:
    limits = httpx.Limits(max_connections=CONCURRENT + 10, max_keepalive_connections=CONCURRENT + 10)
    async with httpx.AsyncClient(base_url=proxy.base_url, headers=proxy.headers, timeout=120, limits=limits) as client:
        for _ in range(5):  # warm-up: connections, caches, first-call imports
            await _agent_run(client, "fake/bench-agent")
            await _direct_turns(client)
        agent, direct = [], []
        cpu = {"agent": 0.0, "direct": 0.0}
        for _ in range(ROUNDS):
            before = proxy.cpu_seconds()
            agent.append(await _agent_run(client, "fake/bench-agent"))
            middle = proxy.cpu_seconds()
            direct.append(await _direct_turns(client))
            cpu["agent"] += middle - before
            cpu["direct"] += proxy.cpu_seconds() - middle
        a50, d50 = statistics.median(agent) * 1000, statistics.median(direct) * 1000
        a_cpu, d_cpu = (cpu[k] * 1000 / ROUNDS for k in ("agent", "direct"))
        print(f"{K}-turn /agent/run           p50 {a50:7.2f} ms   proxy CPU {a_cpu:6.2f} ms/run")
        print(f"{K} direct chat completions   p50 {d50:7.2f} ms   proxy CPU {d_cpu:6.2f} ms/run")
        print(f"wall: overhead per turn {(a50 - d50) / K:+.2f} ms, ratio {a50 / d50:.3f}; proxy CPU: overhead per turn "
              f"{(a_cpu - d_cpu) / K:+.2f} ms, ratio {a_cpu / d_cpu:.3f} (target <= 1 ms per turn, ratio <= 1.05)")
        print("  (the direct client does its JSON and HTTP work in its own process; the agent does it inside the proxy)")
        # The fixed part: one authenticated /agent/run request that makes no model call (echo backend).
        fixed_wall, before = [], proxy.cpu_seconds()
        for _ in range(ROUNDS):
            started = time.perf_counter()
            response = await client.post("/agent/run", json={"input": "go", "backend": "echo"})
            assert response.status_code == 200, response.text
            fixed_wall.append(time.perf_counter() - started)
        fixed_cpu = (proxy.cpu_seconds() - before) * 1000 / ROUNDS
        f50 = statistics.median(fixed_wall) * 1000
        print(f"fixed per run (auth + envelope, echo backend): p50 {f50:.2f} ms, proxy CPU {fixed_cpu:.2f} ms; "
              f"per model turn beyond it: wall {(a50 - d50 - f50) / K:+.2f} ms, CPU {(a_cpu - d_cpu - fixed_cpu) / K:+.2f} ms")

        single = min([await _agent_run(client, "fake/bench-slow") for _ in range(3)])
        started, cpu_before = time.perf_counter(), proxy.cpu_seconds()
        await asyncio.gather(*(_agent_run(client, "fake/bench-slow") for _ in range(CONCURRENT)))
        together, busy = time.perf_counter() - started, proxy.cpu_seconds() - cpu_before
        print(f"one {K}-turn run at {LATENCY_S * 1000:.0f} ms/turn: {single * 1000:.0f} ms; "
              f"{CONCURRENT} concurrent: {together * 1000:.0f} ms; ratio {together / single:.2f} (target <= 1.3)")
        print(f"  proxy CPU during the concurrent runs: {busy * 1000:.0f} ms ({busy / together:.0%} of one core; "
              f"{busy * 1000 / CONCURRENT:.1f} ms per run)")
        started = time.perf_counter()
        await asyncio.gather(*(_direct_turns(client, "fake/bench-direct-slow") for _ in range(CONCURRENT)))
        direct_together = time.perf_counter() - started
        print(f"the same {CONCURRENT} x {K} turns as concurrent direct chat completions: {direct_together * 1000:.0f} ms; "
              f"agent : direct = {together / direct_together:.2f}")


def main() -> None:
    with FakeUpstream() as upstream:
        upstream.respond("bench-agent", _k_turns(0.0))
        upstream.respond("bench-slow", _k_turns(LATENCY_S))
        upstream.respond("bench-direct", _k_turns(0.0))
        upstream.respond("bench-direct-slow", _k_turns(LATENCY_S))
        with ProxyProcess(_config(upstream)) as proxy:
            asyncio.run(_measure(proxy))


if __name__ == "__main__":
    main()
