"""MCP tool call overhead: one call through the agent's MCP backend vs the same server called directly.

The same reference server (`@modelcontextprotocol/server-everything`, stdio and streamable HTTP)
answers ``get-sum`` both ways, alternating call by call:

- **backend**: ``McpToolBackend.invoke`` (the agent's code path for a tool call: name lookup,
  session from the pool, LiteLLM's MCP client over a persistent session, result conversion,
  metrics), in this process with LiteLLM's MCP server manager loaded from the same config;
- **direct**: the ``mcp`` SDK's ``Client`` with one open session. Target: at most 2 ms added at p50.

Then the same inside live proxy runs (for context, no target):

- **agent**: a proxy run whose scripted model calls the MCP tool 20 times; the time of each call
  is its ``duration_ms`` in the run's trace record (the backend's whole invoke: lookup, session
  from the pool, LiteLLM's MCP client, result conversion, metrics);
- **direct**: the ``mcp`` SDK's ``Client`` with one open session calling the same tool, in
  between the agent runs (rounds alternate, so drift on a shared machine hits both alike).

In a live run the loop also does the proxy's own work for the model call just made (LiteLLM's
success logging and spend tracking run as background tasks), which delays the tool call that
follows; that per-turn cost is the agent's, not MCP's (see bench/agent.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.harness import FakeUpstream, ProxyProcess, Reply, call, fake_model_entry
from tests.harness.fake_upstream import free_port

REPO = Path(__file__).resolve().parents[1]
EVERYTHING = REPO / "tests" / "mcp_everything" / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
CALLS_PER_RUN = 20
RUNS = 8
TARGET_MS = 2.0


def _responder(server: str):
    def reply(body: dict) -> Reply:
        done = sum(1 for m in body.get("messages") or [] if m.get("role") == "tool")
        if done >= CALLS_PER_RUN:
            return Reply(text="done")
        return Reply(tool_calls=[call(f"{server}-get-sum", {"a": done, "b": 1})])
    return reply


async def _agent_run_ms(http: httpx.AsyncClient, proxy: ProxyProcess, model: str, traces: Path) -> list[float]:
    """The ``duration_ms`` of every MCP call of one agent run (from its trace record)."""
    response = await http.post(f"{proxy.base_url}/agent/run", headers=proxy.headers, timeout=120,
                               json={"input": "sum", "model": model, "max_iterations": CALLS_PER_RUN + 1})
    trace_id = response.json()["metrics"]["trace_id"]
    for line in reversed(traces.read_text().splitlines()):
        record = json.loads(line)
        if record["trace_id"] == trace_id:
            steps = [s for s in record["steps"] if s["type"] == "tool_call"]
            assert len(steps) == CALLS_PER_RUN and all(s["ok"] for s in steps), steps
            return [s["duration_ms"] for s in steps]
    raise AssertionError("no trace record for the run")


async def _side_by_side(proxy: ProxyProcess, model: str, target: object, traces: Path) -> tuple[list[float], list[float]]:
    """Alternate one agent run (CALLS_PER_RUN calls) and as many direct calls, RUNS times; the
    first round of each warms up (session pools, caches) and is not counted."""
    from mcp import Client

    agent: list[float] = []
    direct: list[float] = []
    async with httpx.AsyncClient() as http, Client(target) as client:  # type: ignore[arg-type]
        for round_ in range(RUNS + 1):
            run = await _agent_run_ms(http, proxy, model, traces)
            calls = []
            for i in range(CALLS_PER_RUN):
                started = time.perf_counter()
                result = await client.call_tool("get-sum", {"a": i, "b": 1})
                calls.append((time.perf_counter() - started) * 1000)
                assert not result.is_error
            if round_:
                agent += run
                direct += calls
    return agent, direct


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the MCP HTTP server did not start")


def _report(name: str, agent: list[float], direct: list[float], target: bool = True) -> None:
    a, d = statistics.median(agent), statistics.median(direct)
    verdict = ("OK" if a - d <= TARGET_MS else "OVER TARGET") if target else "(no target)"
    print(f"  {name:<22} agent p50 {a:6.2f} ms  direct p50 {d:6.2f} ms  added {a - d:+.2f} ms "
          f"{f'(target <= {TARGET_MS} ms) ' if target else ''}{verdict}   [n={len(agent)}/{len(direct)}]")


async def _isolated(servers: dict, target: object) -> tuple[list[float], list[float]]:
    """The backend's invoke and the SDK client, call by call, in this process."""
    from litellm.proxy._experimental.mcp_server.mcp_server_manager import global_mcp_server_manager
    from litellm.proxy._types import LitellmUserRoles, UserAPIKeyAuth
    from mcp import Client

    from proxy_ext.config import McpToolConfig
    from proxy_ext.tools.base import ToolContext
    from proxy_ext.tools.mcp import McpToolBackend

    await global_mcp_server_manager.load_servers_from_config(servers)
    backend = McpToolBackend(McpToolConfig(servers=list(servers)))
    name = next(iter(servers))
    listed = await backend.list_tools(ToolContext(identity=UserAPIKeyAuth(user_role=LitellmUserRoles.PROXY_ADMIN)))
    assert f"{name}-get-sum" in {t.name for t in listed}
    ours: list[float] = []
    theirs: list[float] = []
    try:
        async with Client(target) as client:  # type: ignore[arg-type]
            for i in range(CALLS_PER_RUN * (RUNS + 1)):
                started = time.perf_counter()
                result = await backend.invoke(f"{name}-get-sum", {"a": i, "b": 1}, ToolContext())
                ours.append((time.perf_counter() - started) * 1000)
                assert result.ok, result
                started = time.perf_counter()
                await client.call_tool("get-sum", {"a": i, "b": 1})
                theirs.append((time.perf_counter() - started) * 1000)
    finally:
        backend.close()
    return ours[CALLS_PER_RUN:], theirs[CALLS_PER_RUN:]


def main() -> None:
    if not EVERYTHING.exists():
        print("  skipped: the MCP reference server is not installed (make node-deps)")
        return
    from mcp import StdioServerParameters

    port = free_port()
    http_server = subprocess.Popen(["node", str(EVERYTHING), "streamableHttp"], env={**os.environ, "PORT": str(port)},
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_port(port)
        url = f"http://127.0.0.1:{port}/mcp"
        traces = Path(tempfile.mkdtemp(prefix="bench-mcp-")) / "runs.jsonl"
        with FakeUpstream() as upstream:
            upstream.respond("bench-mcp-stdio", _responder("everything"))
            upstream.respond("bench-mcp-http", _responder("everything_http"))
            config = {
                "model_list": [fake_model_entry("bench-mcp-stdio", upstream.base_url), fake_model_entry("bench-mcp-http", upstream.base_url)],
                "litellm_settings": {"callbacks": ["proxy_ext.extension"]},
                "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
                "mcp_servers": {"everything": {"transport": "stdio", "command": "node", "args": [str(EVERYTHING), "stdio"]},
                                "everything_http": {"transport": "http", "url": url}},
                "proxy_ext": {"agent": {"default_model": "bench-mcp-stdio", "limits": {"max_iterations": 64}},
                              "traces": {"enabled": True, "path": str(traces)}},
            }
            print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
            stdio = StdioServerParameters(command="node", args=[str(EVERYTHING), "stdio"])
            os.environ.setdefault("LITELLM_ENABLE_MCP_STDIO", "true")
            _report("stdio (backend)", *asyncio.run(_isolated({"everything": config["mcp_servers"]["everything"]}, stdio)))
            _report("http (backend)", *asyncio.run(_isolated({"everything_http": config["mcp_servers"]["everything_http"]}, url)))
            with ProxyProcess(config, env={"LITELLM_ENABLE_MCP_STDIO": "true"}) as proxy:
                _report("stdio (in a proxy run)", *asyncio.run(_side_by_side(proxy, "bench-mcp-stdio", stdio, traces)), target=False)
                _report("http (in a proxy run)", *asyncio.run(_side_by_side(proxy, "bench-mcp-http", url, traces)), target=False)
    finally:
        os.killpg(http_server.pid, 9)
        http_server.wait()


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
