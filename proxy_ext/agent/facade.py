"""The run facade: the one way to start an agent run, for every entry point.

``POST /agent/run`` (JSON and SSE) and the ``mini-agent/<profile>`` provider (plain and streamed)
all call :func:`start`: a request and the caller go in; an :class:`AgentRun` comes out, with the
run's typed event stream (:mod:`proxy_ext.agent.events`) and its result. Refusals are
:class:`proxy_ext.exceptions.ProxyExtError` subclasses (4xx), mapped to HTTP by each entry point
in one line.

A run is a task of its own. It holds a run slot for exactly its lifetime (given back by the
task's done callback, however it ends) and belongs to the client that asked for it: when that
client hangs up, the run is cancelled with its model and tool calls (see
:mod:`proxy_ext.request_context`). The consumers of its events — Prometheus, the JSONL trace,
OpenTelemetry — are subscribed here, once for every entry point.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from proxy_ext.agent import metrics as agent_metrics
from proxy_ext.agent import otel, service
from proxy_ext.agent.events import EventStream, RunFinished
from proxy_ext.agent.request import AgentRunRequest, RunSpec, resolve
from proxy_ext.agent.runner import RunResult, run_agent
from proxy_ext.agent.state import Decision
from proxy_ext.agent.traces import TraceRecorder
from proxy_ext.exceptions import ClientDisconnected
from proxy_ext.scale.slots import owner_of
from proxy_ext.request_context import cancel_on_disconnect, watch_client
from proxy_ext.state import Runtime, get_runtime

__all__ = ["AgentRun", "Caller", "start"]


@dataclass(frozen=True)
class Caller:
    """Who asked for the run: the agent's model calls are made as this caller."""

    headers: Mapping[str, str]
    """The caller's request headers (their key: the model calls carry the same identity)."""
    server: tuple[str, int] | None = None
    """Address the request arrived on (for ``agent.model_transport: http``)."""
    scheme: str = "http"
    """``http`` or ``https``."""
    identity: Any = None
    """The caller's identity as the proxy's auth resolved it (LiteLLM's ``UserAPIKeyAuth``), for
    tool backends that apply the proxy's own permissions (MCP servers)."""
    client: tuple[str, int] | None = None
    """The caller's address: the proxy's checks of the run's model calls see it (IP allowlists)."""


class AgentRun:
    """A started run: its id, its events and its result."""

    def __init__(self, prepared: service.PreparedRun, events: EventStream, task: "asyncio.Task[RunResult]") -> None:
        self.prepared = prepared
        self.events = events
        self.task = task

    @property
    def trace_id(self) -> str:
        return self.prepared.trace_id

    @property
    def spec(self) -> RunSpec:
        return self.prepared.spec

    async def result(self) -> RunResult:
        """Wait for the run. Raises what the run raised (e.g. :class:`ModelRefused`), and
        :class:`ClientDisconnected` (499) when it was cancelled because its client hung up —
        unless the waiting coroutine was cancelled itself (then the run is cancelled too)."""
        try:
            return await self.task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self.task.cancelled() and current is not None and not current.cancelling():
                raise ClientDisconnected("the client disconnected; the agent run was cancelled") from None
            raise

    def cancel(self) -> None:
        """Cancel the run (no-op once it ended); its task cleans up and frees its slot."""
        self.task.cancel()


def _trace_request(prepared: service.PreparedRun) -> dict[str, Any]:
    spec = prepared.spec
    limits = spec.limits
    return {
        "models": spec.ladder, "backend": spec.backend, "tools": [t.name for t in prepared.tools],
        "max_iterations": limits.max_iterations,
        "budget": {"max_cost_usd": limits.max_cost_usd, "max_tokens": limits.max_tokens, "timeout_s": limits.timeout_s},
        "stream": spec.stream, "profile": spec.profile, "metadata": spec.metadata, "messages": spec.messages,
        "headers": prepared.headers,
    }


async def _execute(prepared: service.PreparedRun, events: EventStream, recorder: TraceRecorder | None, stream_text: bool,
                   resume: dict[str, Any] | None, decisions: dict[str, Decision] | None) -> RunResult:
    try:
        return await run_agent(spec=prepared.spec, settings=prepared.settings, client=prepared.client, backend=prepared.backend,
                               tools=prepared.tools, tool_ctx=prepared.tool_ctx, trace_id=prepared.trace_id, events=events,
                               stream_text=stream_text, resume=resume, decisions=decisions)
    except asyncio.CancelledError:
        if not events.closed:
            events.publish(RunFinished(None))  # cancelled: every consumer still closes its record
        raise
    finally:
        if recorder is not None:
            await recorder.flush()  # a cancelled run still leaves its trace record


def _launch(prepared: service.PreparedRun, events: EventStream, recorder: TraceRecorder | None, limit: int, stream_text: bool,
            detached: bool, resume: dict[str, Any] | None, decisions: dict[str, Decision] | None) -> "asyncio.Task[RunResult]":
    slot = service.run_slots.acquire(limit, owner=owner_of(prepared.headers))
    if not detached:
        watch_client()  # before the task exists: a client that already left cancels it before it starts
    try:
        task = asyncio.get_running_loop().create_task(_execute(prepared, events, recorder, stream_text, resume, decisions),
                                                      name=service.RUN_TASK_PREFIX + prepared.trace_id)
    except BaseException:
        service.run_slots.release(slot)
        raise
    unregister = (lambda: None) if detached else cancel_on_disconnect(task)

    def finished(_: "asyncio.Task[RunResult]") -> None:
        service.run_slots.release(slot)
        unregister()
        events.close()  # readers end even if the run died before it could say so

    task.add_done_callback(finished)
    return task


async def start(request: AgentRunRequest, caller: Caller, *, client_tools: tuple[dict[str, Any], ...] = (),
                model_params: Mapping[str, Any] | None = None, stream_text: bool = False, runtime: Runtime | None = None,
                run_id: str | None = None, detached: bool = False,
                resume: dict[str, Any] | None = None, decisions: dict[str, Decision] | None = None,
                consumers: tuple[Any, ...] = ()) -> AgentRun:
    """Resolve ``request`` against the config, check it against this proxy and start the run.

    Raises a 4xx :class:`~proxy_ext.exceptions.RequestError` for anything the caller must fix
    (unknown model, profile or tool, a value over a cap), 429 when ``max_concurrent_runs`` runs are
    in progress, 503 when the tool backend is down. ``client_tools`` are function tools the client
    runs itself (a call to one ends the run, ``tool_calls``); ``model_params`` are chat-completion
    fields every model call of the run carries (the client's ``response_format``). With
    ``stream_text`` the model calls are streamed and answer text is published as it is written.

    A ``detached`` run (a background run) does not belong to the current HTTP request: its
    client leaving does not cancel it. ``run_id`` names the run (default: a new random id);
    ``resume`` continues it from a checkpoint with the approval ``decisions``; ``consumers`` are
    extra event subscribers (e.g. the durable run store).

    The returned run has not run a step yet: take :meth:`EventStream.reader` now to see every event.
    """
    runtime = runtime or get_runtime()
    agent = runtime.settings.agent
    spec = resolve(request, agent)
    if client_tools or model_params:
        spec = dataclasses.replace(spec, client_tools=tuple(client_tools), model_params=dict(model_params or {}))
    base_url = service.proxy_base_url(caller.server, caller.scheme, agent.proxy_base_url)
    prepared = await service.prepare(runtime, spec, caller.headers, base_url, caller.identity, run_id, caller.client)
    events = EventStream([agent_metrics.RunObserver(), *consumers])
    recorder = None
    if prepared.traces is not None:
        recorder = TraceRecorder(prepared.traces, _trace_request(prepared), prepared.trace_id)
        events.subscribe(recorder)
    spans = otel.attach(runtime.settings.traces.otel, prepared, events, caller.identity)  # None: OpenTelemetry off
    task = _launch(prepared, events, recorder, agent.limits.max_concurrent_runs, stream_text, detached, resume, decisions)
    if spans is not None:
        task.add_done_callback(spans.close)  # every span ends, however the task ends
    return AgentRun(prepared, events, task)
