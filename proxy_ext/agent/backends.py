"""Which tools a run gets: the ``local`` (built-in and your Python tools, MCP servers, exec tools),
``http`` and ``echo`` backends, built once per process."""

from __future__ import annotations

import threading
from typing import Any

from proxy_ext.agent.errors import AgentRequestError
from proxy_ext.agent.local_tools import LocalToolRegistry
from proxy_ext.config import ProxyExtConfig
from proxy_ext.tools.base import ToolBackend, ToolContext, ToolResult, ToolSpec

__all__ = ["CompositeBackend", "NoTools", "backend_for", "mcp_backend"]


class NoTools:
    """The ``echo`` backend offers no tools."""

    async def list_tools(self, ctx: ToolContext) -> list[ToolSpec]:
        return []

    async def invoke(self, name: str, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        return ToolResult(ok=False, error=f"unknown tool {name!r}")


class CompositeBackend:
    """Several backends as one; a name is served by the first backend that lists it."""

    def __init__(self, backends: list[ToolBackend]) -> None:
        self.backends = backends
        self._owner: dict[str, ToolBackend] = {}

    async def list_tools(self, ctx: ToolContext) -> list[ToolSpec]:
        specs: list[ToolSpec] = []
        for backend in self.backends:
            for spec in await backend.list_tools(ctx):
                if spec.name not in self._owner or self._owner[spec.name] is backend:
                    self._owner[spec.name] = backend
                    specs.append(spec)
        return specs

    async def invoke(self, name: str, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        backend = self._owner.get(name)
        if backend is None:
            return ToolResult(ok=False, error=f"unknown tool {name!r}")
        return await backend.invoke(name, arguments, ctx)


_lock = threading.Lock()
_cache: dict[tuple[int, str], ToolBackend] = {}


def _build(settings: ProxyExtConfig, name: str) -> ToolBackend:
    if name == "echo":
        return NoTools()
    if name == "http":
        if not settings.tools.http.base_url:
            raise AgentRequestError("backend 'http' needs proxy_ext.tools.http.base_url in the proxy config")
        try:
            from proxy_ext.tools.http import HttpToolBackend  # type: ignore[attr-defined]
        except ImportError:
            raise AgentRequestError("backend 'http' is not available in this build of proxy_ext", status=501) from None
        return HttpToolBackend(settings.tools.http)
    backends: list[ToolBackend] = [LocalToolRegistry.from_dotted_paths(settings.agent.local_tools)]
    if settings.tools.mcp.enabled:
        backends.append(mcp_backend(settings))
    if settings.tools.exec.enabled:
        try:
            from proxy_ext.tools.exec import ExecToolBackend  # type: ignore[attr-defined]
        except ImportError:
            raise AgentRequestError("tools.exec is enabled but the exec tools are not available in this build", status=501) from None
        backends.append(ExecToolBackend(settings.tools.exec))
    return CompositeBackend(backends)


_mcp: dict[int, Any] = {}


def mcp_backend(settings: ProxyExtConfig) -> Any:
    """The process-wide MCP backend for these settings (its sessions and catalog are shared)."""
    from proxy_ext.tools.mcp import McpToolBackend

    backend = _mcp.get(id(settings))
    if backend is None:
        backend = _mcp[id(settings)] = McpToolBackend(settings.tools.mcp)
    return backend


def backend_for(settings: ProxyExtConfig, name: str) -> ToolBackend:
    """The process-wide backend ``name`` for these settings (connection pools and caches are shared)."""
    key = (id(settings), name)
    with _lock:
        backend = _cache.get(key)
        if backend is None:
            backend = _cache[key] = _build(settings, name)
        return backend
