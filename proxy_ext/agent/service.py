"""Preparing a run against this proxy: models, tools, the model client, run slots, trace writers.

Used by the run facade (:mod:`proxy_ext.agent.facade`), the one way every entry point starts a run.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from proxy_ext.agent import metrics as agent_metrics
from proxy_ext.agent.backends import backend_for
from proxy_ext.agent.errors import AgentRequestError, quoted
from proxy_ext.agent.model_client import ModelClient, forwardable_headers
from proxy_ext.agent.request import RunSpec
from proxy_ext.agent.runner import RunSettings
from proxy_ext.agent.traces import Redactor, TraceWriter, environment_secrets
from proxy_ext.config import agent_model_names
from proxy_ext.credentials import CREDENTIAL_HEADERS
from proxy_ext.scale.slots import RunSlots
from proxy_ext.state import Runtime
from proxy_ext.tools.base import ToolContext, ToolSpec

__all__ = ["PreparedRun", "RUN_TASK_PREFIX", "TASK_PREFIX", "check", "model_transport", "prepare", "proxy_base_url", "run_slots", "trace_writer"]


logger = logging.getLogger("proxy_ext.agent")

_clients: dict[tuple[int, str], httpx.AsyncClient] = {}
_clients_lock = threading.Lock()


def _http_client(transport: str) -> httpx.AsyncClient:
    """One client per event loop (per proxy worker) and transport for the agent's model calls.

    ``asgi`` hands each request straight to the proxy's own ASGI app in this process: the same
    middleware, auth, hooks and spend logging as a network request, without a socket and without
    HTTP parsing on both ends. ``http`` uses a pooled keep-alive connection to ``proxy_base_url``.
    """
    loop = asyncio.get_running_loop()
    key = (id(loop), transport)
    with _clients_lock:
        client = _clients.get(key)
        if client is None or client.is_closed:
            if transport == "asgi-stream":
                from proxy_ext import litellm_adapter as adapter
                from proxy_ext.agent.asgi_stream import StreamingASGITransport

                client = httpx.AsyncClient(transport=StreamingASGITransport(adapter.proxy_app()))
            elif transport == "asgi":
                from proxy_ext import litellm_adapter as adapter

                # An exception escaping the app becomes a 500 the loop handles as a model error.
                client = httpx.AsyncClient(transport=httpx.ASGITransport(app=adapter.proxy_app(), client=("127.0.0.1", 0), raise_app_exceptions=False))
            else:
                client = httpx.AsyncClient(limits=httpx.Limits(max_connections=512, max_keepalive_connections=128), trust_env=False)
            _clients[key] = client
        return client


_direct_problem: list[str | None] = []


def model_transport(configured: str) -> str:
    """The transport the agent's model calls use: ``direct`` falls back to ``asgi`` (warned once)
    when this LiteLLM's chat route cannot be called in process."""
    if configured != "direct":
        return configured
    if not _direct_problem:
        from proxy_ext import litellm_adapter as adapter

        _direct_problem.append(adapter.direct_chat_problem())
        if _direct_problem[0]:
            logger.warning("proxy_ext: agent model calls go through the ASGI app instead of direct calls: %s", _direct_problem[0])
    return "asgi" if _direct_problem[0] else "direct"


run_slots = RunSlots()
TASK_PREFIX = "proxy_ext."
"""Name prefix of every asyncio task proxy_ext starts for a run (runs, streamed model calls,
disconnect watchers), counted by the ``proxy_ext_agent_tasks`` gauge: 0 when the worker is idle."""
RUN_TASK_PREFIX = TASK_PREFIX + "run:"


def _live_run_tasks() -> int:
    try:
        return sum(1 for task in asyncio.all_tasks() if task.get_name().startswith(TASK_PREFIX))
    except RuntimeError:  # scraped outside the event loop
        return 0


agent_metrics.watch_runs(lambda: run_slots.active, _live_run_tasks)
run_slots.on_change = agent_metrics.runs_changed


@dataclass
class PreparedRun:
    """A validated run, ready to execute."""

    spec: RunSpec
    settings: RunSettings
    client: ModelClient
    backend: Any
    tools: list[ToolSpec]
    tool_ctx: ToolContext
    trace_id: str
    traces: TraceWriter | None
    """Where the run's trace record goes (None: traces are off)."""
    headers: dict[str, str]
    """The caller's headers, lower-case names."""


def proxy_base_url(server: tuple[str, int] | None, scheme: str, configured: str | None) -> str:
    """Where the agent reaches this proxy over HTTP: ``configured`` (``agent.proxy_base_url``), else
    the address the request arrived on, with wildcard bind addresses made callable."""
    if configured:
        return configured.rstrip("/")
    host, port = server or ("127.0.0.1", 4000)
    if host in ("0.0.0.0", "", None):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if scheme == 'https' else 'http'}://{host}:{port}"


def _model_problem(name: str, agent_models: set[str]) -> str | None:
    from proxy_ext import litellm_adapter as adapter

    if name.startswith("mini-agent/") or name in agent_models:
        return f"model {quoted(name)} is an agent profile; an agent run must name a model of the model_list"
    if not adapter.model_is_served(name):
        return f"unknown model {quoted(name)}: it is not in this proxy's model_list"
    return None


def trace_writer(runtime: Runtime, headers: Mapping[str, str]) -> TraceWriter | None:
    """The trace writer of a run (None: traces are off), redacting the caller's keys, the master
    key and secret-looking environment values."""
    traces = runtime.settings.traces
    if not traces.enabled:
        return None
    literals = list(environment_secrets())
    master_key = ((runtime.document.get("general_settings") or {}).get("master_key") or "")
    if isinstance(master_key, str) and not master_key.startswith("os.environ/"):
        literals.append(master_key)
    for name in CREDENTIAL_HEADERS:
        value = headers.get(name, "")
        literals.append(value.split(" ", 1)[-1] if value.lower().startswith("bearer ") else value)
    return TraceWriter(runtime.resolve_path(traces.path), Redactor(traces.redact_patterns, literals))


def approval_patterns(agent: Any, profile: str | None) -> list[str]:
    """The tools whose calls need approval in a run of ``profile`` (its own list, else the agent's)."""
    chosen = agent.profiles.get(profile) if profile else None
    if chosen is not None and chosen.requires_approval is not None:
        return list(chosen.requires_approval)
    return list(agent.requires_approval)


def select_tools(tools: list[ToolSpec], wanted: list[str], backend: str) -> list[ToolSpec]:
    """The tools named in ``wanted`` (names, or patterns such as ``everything-*`` for all tools of
    one MCP server); a name or pattern that matches no tool the caller may use is a 400."""
    available = [t.name for t in tools]
    unknown = [w for w in wanted if not fnmatch.filter(available, w)]
    if unknown:
        raise AgentRequestError(f"unknown tool(s) [{', '.join(map(quoted, unknown))}] for backend {backend!r}; available: {sorted(available)}")
    return [t for t in tools if any(fnmatch.fnmatchcase(t.name, w) for w in wanted)]


async def _checked(runtime: Runtime, spec: RunSpec, lower: dict[str, str], trace_id: str,
                   identity: Any) -> tuple[Any, ToolContext, list[ToolSpec]]:
    """Models, backend and tools of ``spec`` checked against this proxy: its backend, tool context and tools."""
    agent = runtime.settings.agent
    if spec.backend != "echo":
        agent_models = agent_model_names(runtime.document)
        for model in dict.fromkeys([*spec.ladder, *([agent.fallback_model] if agent.fallback and agent.fallback_model else [])]):
            problem = _model_problem(model, agent_models)
            if problem:
                raise AgentRequestError(problem)
    backend = backend_for(runtime.settings, spec.backend)
    tool_ctx = ToolContext(request_headers=lower, run_id=trace_id, timeout_s=spec.limits.timeout_s, identity=identity)
    tools: list[ToolSpec] = []
    if spec.backend != "echo":
        try:
            tools = await asyncio.wait_for(backend.list_tools(tool_ctx), timeout=min(spec.limits.timeout_s, 30.0))
        except AgentRequestError:
            raise
        except Exception as exc:  # e.g. the tool host is down: a dependency problem, said plainly
            raise AgentRequestError(f"tool backend {spec.backend!r} is unavailable: {type(exc).__name__}: {exc}", status=503) from None
        if spec.tool_names is not None:
            tools = select_tools(tools, spec.tool_names, spec.backend)
        clash = sorted({t.name for t in tools} & {c["function"]["name"] for c in spec.client_tools})
        if clash:
            raise AgentRequestError(f"client tool(s) {clash} have the names of tools agent profile {spec.profile!r} runs itself; "
                                    "rename the client's tools")
    return backend, tool_ctx, tools


async def check(runtime: Runtime, spec: RunSpec, headers: Mapping[str, str], identity: Any = None, run_id: str | None = None,
                caller_address: tuple[str, int] | None = None) -> None:
    """Refuse what :func:`prepare` would refuse (unknown model or tool, a backend without its
    config, ...) without preparing a run, and what LiteLLM's auth would refuse the run's first
    model call (a key without access to the model, a blocked key, a spent budget): a background
    run is checked so when it is submitted, not at its first turn."""
    await _checked(runtime, spec, {k.lower(): v for k, v in headers.items()}, run_id or uuid.uuid4().hex, identity)
    if spec.backend == "echo" or not spec.ladder:
        return
    from proxy_ext import litellm_adapter as adapter

    if adapter.direct_chat_problem() is not None:  # a LiteLLM whose auth we cannot call: the first turn decides
        return
    refusal = await adapter.direct_auth_refusal(spec.ladder[0], forwardable_headers(headers), caller_address)
    if refusal is not None:
        status = refusal.status if 400 <= refusal.status < 500 else 503
        raise AgentRequestError(f"model {quoted(spec.ladder[0])}: {refusal.error or 'refused by the proxy'}", status=status)


async def prepare(runtime: Runtime, spec: RunSpec, headers: Mapping[str, str], base_url: str, identity: Any = None,
                  run_id: str | None = None, caller_address: tuple[str, int] | None = None) -> PreparedRun:
    """Check models, backend and tools against this proxy; raise AgentRequestError (4xx) on problems."""
    agent = runtime.settings.agent
    lower = {k.lower(): v for k, v in headers.items()}
    trace_id = run_id or uuid.uuid4().hex
    backend, tool_ctx, tools = await _checked(runtime, spec, lower, trace_id, identity)
    settings = RunSettings(
        max_history_tokens=agent.max_history_tokens,
        tool_error_escalation=agent.tool_error_escalation,
        fallback=agent.fallback,
        fallback_model=agent.fallback_model,
        max_concurrent_tool_calls=agent.limits.max_concurrent_tool_calls,
        max_tool_result_bytes=agent.limits.max_tool_result_bytes,
        requires_approval=tuple(approval_patterns(agent, spec.profile)),
    )
    transport = model_transport(agent.model_transport)
    if transport == "direct":
        client = ModelClient("http://proxy.internal", forwardable_headers(headers), client=caller_address)
    else:
        client = ModelClient(base_url if transport == "http" else "http://proxy.internal", forwardable_headers(headers),
                             _http_client(transport), _http_client("asgi-stream" if transport == "asgi" else transport))
    client.params = dict(spec.model_params)
    return PreparedRun(spec, settings, client, backend, tools, tool_ctx, trace_id, trace_writer(runtime, lower), lower)
