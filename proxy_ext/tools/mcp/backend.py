"""McpToolBackend: the MCP servers of LiteLLM's gateway (``mcp_servers:``) as agent tools.

Everything MCP-specific is LiteLLM's (through :mod:`proxy_ext.litellm_adapter`): the servers and
their transports, auth headers and aliases, the ``<server>-<tool>`` names, which servers and tools
a key may use (the rules of LiteLLM's own MCP routes), and its MCP client. What this module adds:
persistent sessions (a stdio server's process and an HTTP server's session stay up across calls,
a few per server so parallel calls run in parallel; a broken one is replaced, i.e. a crashed
server is restarted for the next call), a cached tool catalog, timeouts that close the session
of a call that does not answer (the server sees the cancellation), and results as text.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from proxy_ext import litellm_adapter as adapter
from proxy_ext.config import McpToolConfig
from proxy_ext.tools.base import ToolContext, ToolResult, ToolSpec, cap_text
from proxy_ext.tools.mcp.results import result_text
from proxy_ext.metrics import counter
from proxy_ext.tools.metrics import observe_call

__all__ = ["McpToolBackend", "ServerState"]

logger = logging.getLogger("proxy_ext.tools.mcp")

MCP_CALLS = counter("mcp_tool_calls", "MCP tool calls of agent runs, by server, tool and outcome.", ("server", "tool", "outcome"))
_NAME = re.compile(r"[^a-zA-Z0-9_-]")


@dataclass
class ServerState:
    """What the backend last saw of one server (for /ready and doctor)."""

    label: str
    ok: bool | None = None
    """None: not contacted yet."""
    reason: str = ""
    checked_at: float = 0.0
    tools: int = 0


@dataclass
class _Pool:
    """Persistent sessions of one server: at most ``size``, opened on demand, replaced when broken."""

    server: Any
    size: int
    timeout_s: float
    idle: list[tuple[Any, Any]] = field(default_factory=list)
    open: int = 0
    changed: asyncio.Condition | None = None

    async def acquire(self) -> tuple[Any, Any]:
        if self.changed is None:
            self.changed = asyncio.Condition()
        async with self.changed:
            while True:
                while self.idle:
                    pair = self.idle.pop()
                    if pair[1].reusable:
                        return pair
                    self._discard(pair)  # it ended while idle (its server went away): its slot is free again
                    self.open -= 1
                if self.open < self.size:
                    self.open += 1
                    break
                await self.changed.wait()
        try:
            return await adapter.mcp_open(self.server, self.timeout_s)
        except BaseException:
            await self._gone()
            raise

    async def release(self, pair: tuple[Any, Any], broken: bool) -> None:
        if broken or not pair[1].reusable:
            self._discard(pair)
            await self._gone()
            return
        assert self.changed is not None
        async with self.changed:
            self.idle.append(pair)
            self.changed.notify()

    def _discard(self, pair: tuple[Any, Any]) -> None:
        pair[1].close()  # stdio: the server process ends; HTTP: the session is closed

    async def _gone(self) -> None:
        assert self.changed is not None
        async with self.changed:
            self.open -= 1
            self.changed.notify()

    def close(self) -> None:
        for pair in self.idle:
            self._discard(pair)
        self.idle.clear()


class McpToolBackend:
    """Offers the tools of the configured MCP servers the caller's key may use."""

    def __init__(self, config: McpToolConfig) -> None:
        self.config = config
        self._pools: dict[str, _Pool] = {}
        self._catalog: dict[str, tuple[float, list[Any]]] = {}
        self._names: dict[str, tuple[str, str]] = {}  # tool name → (server id, the server's own tool name)
        self.states: dict[str, ServerState] = {}

    # ------------------------------------------------------------------------------ servers

    def servers(self) -> list[Any]:
        """LiteLLM's MCP servers this backend serves (``tools.mcp.servers``, default all)."""
        wanted = set(self.config.servers) if self.config.servers is not None else None
        return [s for s in adapter.mcp_servers() if wanted is None or adapter.mcp_server_label(s) in wanted
                or getattr(s, "server_name", None) in wanted or getattr(s, "name", None) in wanted]

    def _pool(self, server: Any) -> _Pool:
        pool = self._pools.get(server.server_id)
        if pool is None:
            pool = self._pools[server.server_id] = _Pool(server, self.config.sessions_per_server, self.config.timeout_s)
        return pool

    def _state(self, server: Any) -> ServerState:
        label = adapter.mcp_server_label(server)
        return self.states.setdefault(server.server_id, ServerState(label))

    async def server_tools(self, server: Any, max_age_s: float | None = None) -> list[Any]:
        """The server's tools with LiteLLM's prefixed names (cached ``tools_cache_ttl_s``)."""
        max_age = self.config.tools_cache_ttl_s if max_age_s is None else max_age_s
        cached = self._catalog.get(server.server_id)
        if cached is not None and time.monotonic() - cached[0] < max_age:
            return cached[1]
        state = self._state(server)
        pool = self._pool(server)
        pair = await pool.acquire()
        broken = True
        try:
            async with asyncio.timeout(self.config.timeout_s):
                tools = await adapter.mcp_list_tools(pair[1], self.config.timeout_s)
            broken = False
        except BaseException as exc:
            state.ok, state.reason, state.checked_at = False, _failure(exc), time.time()
            raise
        finally:
            await pool.release(pair, broken)
        prefixed = [tool.model_copy(update={"name": adapter.mcp_tool_name(server, tool.name)}) for tool in tools]
        for original, renamed in zip(tools, prefixed, strict=True):
            self._names[_model_name(renamed.name)] = (server.server_id, original.name)
        self._catalog[server.server_id] = (time.monotonic(), prefixed)
        state.ok, state.reason, state.checked_at, state.tools = True, "", time.time(), len(prefixed)
        return prefixed

    # ------------------------------------------------------------------------------ backend

    async def list_tools(self, ctx: ToolContext) -> list[ToolSpec]:
        """The tools of every server the caller's key may use (a server that cannot be reached
        contributes none: its calls would fail anyway; /ready shows it)."""
        servers = self.servers()
        if not servers:
            return []
        allowed = await adapter.mcp_allowed_server_ids(ctx.identity)
        specs: list[ToolSpec] = []
        for server in servers:
            if server.server_id not in allowed:
                continue
            try:
                tools = await self.server_tools(server)
            except Exception as exc:  # noqa: BLE001 - one broken server must not break the run
                logger.warning("proxy_ext: MCP server %s unavailable: %s", adapter.mcp_server_label(server), _failure(exc))
                continue
            for tool in await adapter.mcp_permitted_tools(tools, server, ctx.identity):
                specs.append(ToolSpec(name=_model_name(tool.name), description=tool.description or tool.title or "",
                                      parameters=_schema(getattr(tool, "input_schema", None) or getattr(tool, "inputSchema", None))))
        return specs

    async def invoke(self, name: str, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        started = time.perf_counter()
        target = self._names.get(name)
        if target is None:
            return ToolResult(ok=False, error=f"unknown MCP tool {name!r}")
        server_id, tool = target
        pool = self._pools.get(server_id)
        if pool is None:
            return ToolResult(ok=False, error=f"unknown MCP tool {name!r}")
        label = self._state(pool.server).label
        timeout = min(self.config.timeout_s, ctx.timeout_s) if ctx.timeout_s is not None else self.config.timeout_s
        outcome, result = await self._call(pool, tool, arguments, timeout, name)
        seconds = time.perf_counter() - started
        MCP_CALLS.labels(label, name, outcome).inc()
        observe_call("mcp", name, outcome, seconds)
        return ToolResult(ok=result.ok, content=result.content, error=result.error, duration_ms=seconds * 1000)

    async def _call(self, pool: _Pool, tool: str, arguments: dict[str, Any], timeout: float, name: str) -> tuple[str, ToolResult]:
        try:
            async with asyncio.timeout(timeout):
                pair = await pool.acquire()
        except TimeoutError:
            return "timeout", ToolResult(ok=False, error=f"MCP tool {name} did not start within {timeout:g} s")
        except Exception as exc:  # noqa: BLE001 - e.g. the server does not start
            return "error", ToolResult(ok=False, error=f"MCP server unavailable: {_failure(exc)}")
        broken = True
        try:
            async with asyncio.timeout(timeout):
                result = await adapter.mcp_call_tool(pair[0], pair[1], tool, arguments)
            broken = False
        except TimeoutError:  # the session is closed below: the server sees the call cancelled
            return "timeout", ToolResult(ok=False, error=f"MCP tool {name} did not answer within {timeout:g} s")
        except Exception as exc:  # noqa: BLE001 - a crashed server: the next call gets a new session
            return "error", ToolResult(ok=False, error=f"MCP tool {name} failed: {_failure(exc)}")
        finally:
            await pool.release(pair, broken)
        text = cap_text(result_text(result), self.config.max_output_bytes)
        if getattr(result, "is_error", None) or getattr(result, "isError", None):
            return "tool_error", ToolResult(ok=False, error=f"MCP tool {name}: {text or 'the tool reported an error'}")
        return "ok", ToolResult(ok=True, content=text)

    def close(self) -> None:
        """Close every session (stdio server processes end)."""
        for pool in self._pools.values():
            pool.close()


def _model_name(name: str) -> str:
    """A function name every model API accepts (``[a-zA-Z0-9_-]{1,64}``)."""
    return _NAME.sub("_", name)[:64]


def _schema(schema: Any) -> dict[str, Any]:
    if isinstance(schema, dict) and schema.get("type") == "object":
        return {k: v for k, v in schema.items() if k != "$schema"}
    return {"type": "object", "properties": {}}


def _failure(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
