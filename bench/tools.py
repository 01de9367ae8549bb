"""Agent tool call overhead, side by side in one run.

- exec_python / exec_shell through the sandbox (fork server, subreaper, rlimits, privilege drop,
  temp cwd, output capture) vs starting the bare process (``python3 -I -S -c pass``, ``sh -c true``)
  from the same event loop. Target: at most +5 ms at p50.
- HttpToolBackend.invoke (cached listing, schema validation, header merge, retry policy) vs a raw
  httpx POST /invoke to the same reference tool host. Target: at most +1 ms at p50.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable

import httpx

from proxy_ext.config import ExecToolConfig, HttpToolConfig
from proxy_ext.tools.base import ToolContext
from proxy_ext.tools.exec import ExecToolBackend
from proxy_ext.tools.http import HttpToolBackend
from tests.harness.tool_host import ToolHostProcess

N_EXEC = 200
N_HTTP = 400
CTX = ToolContext()


def _p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000


async def _alternate(n: int, cases: dict[str, Callable[[], Awaitable[object]]], warmup: int = 10) -> dict[str, list[float]]:
    for _ in range(warmup):
        for case in cases.values():
            await case()
    timings: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(n):
        for name, case in cases.items():
            started = time.perf_counter()
            await case()
            timings[name].append(time.perf_counter() - started)
    return timings


def _report(timings: dict[str, list[float]], pairs: list[tuple[str, str, float]]) -> None:
    for name, values in timings.items():
        print(f"  {name:<34} p50 {_p(values, 50):7.2f} ms   p95 {_p(values, 95):7.2f} ms   (n={len(values)})")
    for tool, bare, budget in pairs:
        delta = _p(timings[tool], 50) - _p(timings[bare], 50)
        # Each iteration ran both back to back: the median of the paired differences is less
        # sensitive to other load on the machine drifting during the run.
        paired = statistics.median(t - b for t, b in zip(timings[tool], timings[bare])) * 1000
        verdict = "OK" if min(delta, paired) <= budget else "OVER"
        print(f"  overhead {tool} vs {bare}: {delta:+.2f} ms at p50, {paired:+.2f} ms median of paired runs "
              f"(budget {budget:g} ms) {verdict}")


async def _bare(argv: list[str]) -> None:
    process = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    await process.communicate()


async def bench_exec() -> None:
    backend = ExecToolBackend(ExecToolConfig(enabled=True, isolation="none"))
    isolated = ExecToolBackend(ExecToolConfig(enabled=True, isolation="auto"))
    try:
        _user, python = backend._resolve()
        assert python is not None

        async def tool(name: str, args: dict) -> None:
            result = await backend.invoke(name, args, CTX)
            assert result.ok and result.content["rc"] == 0, result

        async def isolated_tool(name: str, args: dict) -> None:
            result = await isolated.invoke(name, args, CTX)
            assert result.ok and result.content["rc"] == 0, result

        cases = {
            "bare sh -c true": lambda: _bare(["/bin/sh", "-c", "true"]),
            "exec_shell 'true'": lambda: tool("exec_shell", {"command": "true"}),
            f"bare python3 -I -S -c pass": lambda: _bare([python, "-I", "-S", "-c", "pass"]),
            "exec_python 'pass'": lambda: tool("exec_python", {"code": "pass"}),
        }
        mode = (await asyncio.to_thread(isolated.isolation)).describe()
        if mode.startswith("bwrap"):
            cases["exec_shell 'true' (bwrap)"] = lambda: isolated_tool("exec_shell", {"command": "true"})
            cases["exec_python 'pass' (bwrap)"] = lambda: isolated_tool("exec_python", {"code": "pass"})
        print(f"exec tools (sandbox user: {backend._user.name if backend._user else '?'}, python: {python}, isolation auto: {mode})")
        timings = await _alternate(N_EXEC, cases)
        pairs = [("exec_shell 'true'", "bare sh -c true", 5.0), ("exec_python 'pass'", "bare python3 -I -S -c pass", 5.0)]
        if mode.startswith("bwrap"):
            pairs += [("exec_shell 'true' (bwrap)", "exec_shell 'true'", 5.0), ("exec_python 'pass' (bwrap)", "exec_python 'pass'", 5.0)]
        _report(timings, pairs)
    finally:
        backend.close()
        isolated.close()


async def bench_http(host: ToolHostProcess) -> None:
    backend = HttpToolBackend(HttpToolConfig(base_url=host.base_url))
    body = {"name": "add", "arguments": {"a": 2, "b": 3}}
    async with httpx.AsyncClient(base_url=host.base_url, timeout=10) as raw:

        async def plain() -> None:
            response = await raw.post("/invoke", json=body)
            assert response.json()["result"] == 5

        async def tool() -> None:
            result = await backend.invoke("add", {"a": 2, "b": 3}, CTX)
            assert result.ok and result.content == 5, result

        print("tool host (reference host, POST /invoke add)")
        timings = await _alternate(N_HTTP, {"raw httpx POST /invoke": plain, "HttpToolBackend.invoke": tool}, warmup=30)
        _report(timings, [("HttpToolBackend.invoke", "raw httpx POST /invoke", 1.0)])
    await backend.aclose()


def main() -> None:
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (other load skews these numbers)")
    asyncio.run(bench_exec())
    with ToolHostProcess() as host:
        asyncio.run(bench_http(host))
