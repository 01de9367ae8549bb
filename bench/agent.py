"""Agent turns vs a client looping itself, measured side by side in one run (issue 13's targets).

Every figure is the median of ROUNDS interleaved rounds (the arms alternate within a round, and
their order flips between rounds, so drift on a shared machine hits each alike). Proxy CPU comes
from /proc of the proxy's process group, independent of the machine's load.

- P1: /v1/chat/completions through the proxy with the extension vs the stock proxy: p50 ratio
  (target <= 1.02).
- P2: an N-turn /agent/run (N-1 calls of the local ``current_time`` tool, then an answer) vs the
  same N calls sent by the client itself through the proxy, N = 2 and 4: wall p50 ratio and proxy
  CPU per turn (target: ratio <= 1.0).
- P3: 100 concurrent 2-turn runs with 200 ms upstream latency per turn vs one run alone (target
  <= 2.0), interleaved with 100 clients making the same calls themselves (what the same work costs
  without the agent) and with the runs on a proxy whose start-up heap is not frozen
  (``scale.gc_freeze_after_s: null``), with the full garbage collections each arm cost the proxy
  (its ``proxy_ext_gc_full_collection_seconds``); then again on a proxy with ``--num_workers 2``.
- P6: 200 concurrent echo runs (no model call): runs per second (target >= 200).
- P2 (N=2) and P3 again with ``agent.model_transport: asgi`` (each turn through the proxy's ASGI
  app, the previous default), for comparison.
- The floor: LiteLLM's ``Router.acompletion`` alone in a process of its own, CPU per call — what
  a turn cannot cost less than, whatever the proxy around it does.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from collections.abc import Awaitable, Callable

import httpx

from bench._common import orders
from proxy_ext.agent.local_tools import BUILTIN_TOOLS, current_time, spec_from_callable
from tests.harness import FakeUpstream, ProxyProcess, Reply, call, fake_model_entry

TOOLS = [spec_from_callable(fn, name).openai_tool() for name, fn in BUILTIN_TOOLS.items()]

ROUNDS = 5
PER_ROUND = 20
CONCURRENT = 100
ECHO_CONCURRENT = 200
LATENCY_S = 0.2


def _config(upstream: FakeUpstream, extension: bool = True) -> dict:
    config: dict = {
        "model_list": [fake_model_entry("fake/*", upstream.base_url, "*")],
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
    }
    if extension:
        config["litellm_settings"] = {"callbacks": ["proxy_ext.extension"]}
        config["proxy_ext"] = {"agent": {"default_model": "fake/bench-2", "max_iterations": 16,
                                         "limits": {"max_concurrent_runs": 256}},
                               "cost": {"enabled": False}}
    return config


def _turns(k: int, latency_s: float) -> Callable[[dict], Reply]:
    def responder(body: dict) -> Reply:
        done = sum(1 for m in body.get("messages", []) if m.get("role") == "tool")
        if done < k - 1:
            return Reply(tool_calls=[call("current_time", {})], latency_s=latency_s)
        return Reply(text="done", latency_s=latency_s)
    return responder


async def _agent_run(client: httpx.AsyncClient, model: str, turns: int) -> float:
    started = time.perf_counter()
    response = await client.post("/agent/run", json={"input": "go", "model": model})
    body = response.json()
    assert response.status_code == 200 and body["ok"] and body["metrics"]["iterations"] == turns, body
    return time.perf_counter() - started


async def _direct_turns(client: httpx.AsyncClient, model: str) -> float:
    """The turns as the agent makes them: same tools offered, same replies, the client running the
    tool and sending the growing conversation back."""
    started = time.perf_counter()
    messages: list[dict] = [{"role": "user", "content": "go"}]
    while True:
        response = await client.post("/v1/chat/completions", json={"model": model, "messages": messages, "tools": TOOLS})
        assert response.status_code == 200, response.text
        message = response.json()["choices"][0]["message"]
        if not message.get("tool_calls"):
            break
        messages.append({"role": "assistant", "content": None, "tool_calls": message["tool_calls"]})
        for tool_call in message["tool_calls"]:
            messages.append({"role": "tool", "tool_call_id": tool_call["id"], "content": current_time()})
    return time.perf_counter() - started


async def _echo(client: httpx.AsyncClient) -> float:
    started = time.perf_counter()
    try:
        response = await client.post("/agent/run", json={"input": "go", "backend": "echo"})
    except httpx.ReadError:  # the stock proxy resets a few of 200 fresh keep-alive connections too: once more
        response = await client.post("/agent/run", json={"input": "go", "backend": "echo"})
    assert response.status_code == 200, response.text
    return time.perf_counter() - started


async def _arm(proxy: ProxyProcess, fn: Callable[[], Awaitable[float]], n: int) -> tuple[float, float]:
    """p50 wall (ms) of ``n`` sequential calls, and proxy CPU (ms) per call."""
    before = proxy.cpu_seconds()
    walls = [await fn() for _ in range(n)]
    return statistics.median(walls) * 1000, (proxy.cpu_seconds() - before) * 1000 / n


def _client(proxy: ProxyProcess, connections: int = 16) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=proxy.base_url, headers=proxy.headers, timeout=120, limits=limits)


async def _p1(ext: ProxyProcess, stock: ProxyProcess) -> None:
    body = {"model": "fake/bench-chat", "messages": [{"role": "user", "content": "hi"}]}
    async with _client(ext) as e, _client(stock) as s:
        clients = {"extension": (ext, e), "stock": (stock, s)}

        async def one(c: httpx.AsyncClient) -> float:
            started = time.perf_counter()
            assert (await c.post("/v1/chat/completions", json=body)).status_code == 200
            return time.perf_counter() - started

        for c in (e, s):
            for _ in range(20):
                await one(c)
        ratios, cpu = [], []
        for names in orders(list(clients), ROUNDS):
            arms = {n: await _arm(clients[n][0], lambda c=clients[n][1]: one(c), 4 * PER_ROUND) for n in names}
            ratios.append(arms["extension"][0] / arms["stock"][0])
            cpu.append(arms["extension"][1] / arms["stock"][1])
        print(f"P1 /v1/chat/completions p50 extension / stock: {statistics.median(ratios):.3f} "
              f"(rounds {', '.join(f'{r:.3f}' for r in ratios)}; target <= 1.02); proxy CPU ratio {statistics.median(cpu):.3f}")


async def _p2(proxy: ProxyProcess, turns: int, label: str = "") -> None:
    async with _client(proxy) as client:
        arms = {"agent": lambda: _agent_run(client, f"fake/bench-{turns}", turns),
                "direct": lambda: _direct_turns(client, f"fake/bench-{turns}")}
        for fn in arms.values():
            for _ in range(5):
                await fn()
        rounds: list[dict[str, tuple[float, float]]] = []
        for names in orders(list(arms), ROUNDS):
            rounds.append({name: await _arm(proxy, arms[name], PER_ROUND) for name in names})
        wall = {n: statistics.median(r[n][0] for r in rounds) for n in arms}
        cpu = {n: statistics.median(r[n][1] for r in rounds) for n in arms}
        ratio = statistics.median(r["agent"][0] / r["direct"][0] for r in rounds)
        cpu_ratio = statistics.median(r["agent"][1] / r["direct"][1] for r in rounds)
        print(f"P2 N={turns}{f' ({label})' if label else ''}: /agent/run p50 {wall['agent']:6.2f} ms, proxy CPU {cpu['agent'] / turns:5.2f} ms/turn | "
              f"{turns} direct calls p50 {wall['direct']:6.2f} ms, proxy CPU {cpu['direct'] / turns:5.2f} ms/turn | "
              f"wall ratio {ratio:.3f}, CPU ratio {cpu_ratio:.3f} (target <= 1.0)")


_P3Arm = tuple[str, ProxyProcess, Callable[[httpx.AsyncClient], Awaitable[float]]]


def _run_arm(client: httpx.AsyncClient) -> Awaitable[float]:
    return _agent_run(client, "fake/bench-slow", 2)


def _clients_arm(client: httpx.AsyncClient) -> Awaitable[float]:
    return _direct_turns(client, "fake/bench-slow")


async def _full_collections(client: httpx.AsyncClient) -> tuple[float, float]:
    """(count, seconds) of the proxy's full garbage collections so far, from its /metrics."""
    await asyncio.sleep(1.1)  # other workers hand theirs over every second
    text = (await client.get("/metrics")).text
    found = {m.group(1): float(m.group(2)) for m in re.finditer(r"^proxy_ext_gc_full_collection_seconds_(count|sum) (\S+)$", text, re.M)}
    return found.get("count", 0.0), found.get("sum", 0.0)


async def _p3(label: str, arms: list[_P3Arm]) -> None:
    """Each arm: ``CONCURRENT`` at once vs one alone, the arms interleaved round by round. The first
    arm is the target's; the others (the same calls made by clients looping themselves, another
    proxy's settings) are printed for comparison. Also the full garbage collections the batches
    cost the proxy (each stops its event loop)."""
    ratios: dict[str, list[float]] = {}
    cpu_per_run: dict[str, list[float]] = {}
    collections: dict[str, list[tuple[float, float]]] = {}
    for order in orders(list(range(len(arms))), ROUNDS):
        for index in order:
            name, proxy, fn = arms[index]
            async with _client(proxy, CONCURRENT + 10) as client:  # fresh connections per round (see _p6)
                single = min([await fn(client) for _ in range(3)])
                gc_before = await _full_collections(client)
                started, before = time.perf_counter(), proxy.cpu_seconds()
                await asyncio.gather(*(fn(client) for _ in range(CONCURRENT)))
                ratios.setdefault(name, []).append((time.perf_counter() - started) / single)
                cpu_per_run.setdefault(name, []).append((proxy.cpu_seconds() - before) * 1000 / CONCURRENT)
                gc_after = await _full_collections(client)
                collections.setdefault(name, []).append((gc_after[0] - gc_before[0], gc_after[1] - gc_before[1]))
    for index, (name, _, _) in enumerate(arms):
        count, seconds = (sum(c[i] for c in collections[name]) for i in (0, 1))
        pauses = f"{count:.0f} full collections in {ROUNDS * CONCURRENT} runs, {seconds * 1000:.0f} ms" + (f" ({seconds * 1000 / count:.0f} ms each)" if count else "")
        print(f"P3 {label}, {name} at {LATENCY_S * 1000:.0f} ms/turn vs one: ratio {statistics.median(ratios[name]):.2f} "
              f"(rounds {', '.join(f'{r:.2f}' for r in ratios[name])}; {'target <= 2.0' if index == 0 else 'for comparison'}); "
              f"proxy CPU {statistics.median(cpu_per_run[name]):.1f} ms per 2 calls; {pauses}")


class _RawConnection:
    """A keep-alive HTTP/1.1 connection that sends one prepared request and reads the answer: a
    client costing ~0.1 ms of CPU per request, so that 200 at once measure the proxy, not httpx."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def post(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
        await self.reader.readexactly(length)
        return status


async def _p6(proxy: ProxyProcess) -> None:
    body = json.dumps({"input": "go", "backend": "echo"}).encode()
    request = (f"POST /agent/run HTTP/1.1\r\nHost: 127.0.0.1:{proxy.port}\r\nAuthorization: Bearer {proxy.master_key}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    connections = [_RawConnection(*await asyncio.open_connection("127.0.0.1", proxy.port)) for _ in range(ECHO_CONCURRENT)]
    try:
        rates, cpu = [], []
        for index in range(ROUNDS + 2):
            started, before = time.perf_counter(), proxy.cpu_seconds()
            statuses = await asyncio.gather(*(c.post(request) for c in connections))
            assert set(statuses) == {200}, statuses
            if index >= 2:  # two warm-up rounds
                rates.append(ECHO_CONCURRENT / (time.perf_counter() - started))
                cpu.append((proxy.cpu_seconds() - before) * 1000 / ECHO_CONCURRENT)
    finally:
        for c in connections:
            c.writer.close()
    print(f"P6 {ECHO_CONCURRENT} concurrent echo runs: {statistics.median(rates):.0f} runs/s "
          f"(rounds {', '.join(f'{r:.0f}' for r in rates)}; target >= 200); proxy CPU {statistics.median(cpu):.2f} ms per run")


def _floor(upstream: FakeUpstream) -> None:
    script = Path(__file__).with_name("_router_floor.py")
    out = subprocess.run([sys.executable, str(script), upstream.base_url], capture_output=True, text=True, timeout=300, check=True)
    sequential, concurrent = (float(x) for x in out.stdout.split()[-2:])
    print(f"floor: Router.acompletion alone, in a process of its own: {sequential:.2f} ms CPU per call "
          f"({concurrent:.2f} ms at 100 concurrent calls)")


def main() -> None:
    with FakeUpstream() as upstream:
        for turns in (2, 4):
            upstream.respond(f"bench-{turns}", _turns(turns, 0.0))
        upstream.respond("bench-slow", _turns(2, LATENCY_S))
        upstream.respond("bench-chat", lambda body: Reply(text="hello"))
        with ProxyProcess(_config(upstream)) as ext, ProxyProcess(_config(upstream, extension=False)) as stock:
            asyncio.run(_p1(ext, stock))
        unfrozen = _config(upstream)
        unfrozen["proxy_ext"]["scale"] = {"gc_freeze_after_s": None}  # CPython's default collector, for comparison
        with ProxyProcess(_config(upstream)) as ext, ProxyProcess(unfrozen) as ext_unfrozen:
            for turns in (2, 4):
                asyncio.run(_p2(ext, turns))
            asyncio.run(_p3("one worker", [("100 concurrent 2-turn runs", ext, _run_arm),
                                           ("100 clients making the same 2 calls themselves", ext, _clients_arm),
                                           ("the runs with scale.gc_freeze_after_s: null", ext_unfrozen, _run_arm)]))
            asyncio.run(_p6(ext))
        with ProxyProcess(_config(upstream), args=["--num_workers", "2"]) as ext2:
            asyncio.run(_p3("--num_workers 2", [("100 concurrent 2-turn runs", ext2, _run_arm)]))
        asgi = _config(upstream)
        asgi["proxy_ext"]["agent"]["model_transport"] = "asgi"  # the previous default, for comparison
        with ProxyProcess(asgi) as through_asgi:
            asyncio.run(_p2(through_asgi, 2, "model_transport: asgi"))
            asyncio.run(_p3("model_transport: asgi", [("100 concurrent 2-turn runs", through_asgi, _run_arm)]))
        _floor(upstream)


if __name__ == "__main__":
    main()
