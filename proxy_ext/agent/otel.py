"""The OpenTelemetry consumer of a run's events: spans following the GenAI semantic conventions.

One run gives one span tree::

    invoke_agent <profile | agent>      the run (INTERNAL)
    ├── chat <model>                    one per model turn (CLIENT)
    │   └── (LiteLLM's spans of that call, when its ``otel`` callback is on)
    └── execute_tool <name>             one per tool call (INTERNAL)

The run span is a child of the span LiteLLM opened for the HTTP request (its ``otel`` callback),
else of the caller's W3C ``traceparent``, else a root. Each model call the agent makes through
the proxy carries the ``chat`` span's ``traceparent`` (:attr:`ModelClient.trace_headers`), so
LiteLLM's spans of that call nest under it.

Attributes: ``gen_ai.operation.name``, ``gen_ai.request.model``, ``gen_ai.usage.input_tokens`` /
``output_tokens``, ``gen_ai.response.finish_reasons``, ``gen_ai.tool.name`` / ``call.id``, plus
``proxy_ext.trace_id`` (the run's id, as in the envelope and the JSONL trace),
``proxy_ext.cost_usd`` and, on the run, ``proxy_ext.stopped_reason``. Failures, budget stops and
cancellation (the client hung up) set the span status to ERROR. Prompts, answers and tool
arguments/results are recorded only with ``traces.otel.capture_content`` (redacted, cut to
``max_content_chars``); request headers never are.

Every span ends however the run ends: on :class:`RunFinished`, and as a backstop when the run's
task is done (:meth:`OtelRecorder.close`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from proxy_ext.agent import events as ev
from proxy_ext.agent import otel_export
from proxy_ext.agent.traces import Redactor, environment_secrets
from proxy_ext.config import OtelConfig

__all__ = ["OtelRecorder", "attach", "parent_context"]

logger = logging.getLogger("proxy_ext.otel")

_CREDENTIAL_HEADERS = ("authorization", "x-litellm-api-key", "api-key", "x-api-key")
_MAX_ERROR_CHARS = 512


def _ns(at: float) -> int:
    return int(at * 1_000_000_000)


def parent_context(headers: Mapping[str, str], server_span: Any = None) -> Any:
    """The context the run span starts in: LiteLLM's span of this request, else the caller's
    ``traceparent``, else an empty context (the run span is a root)."""
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if server_span is not None:
        return trace.set_span_in_context(server_span, Context())
    carrier = {k: v for k, v in headers.items() if k.lower() in ("traceparent", "tracestate")}
    if carrier:
        return TraceContextTextMapPropagator().extract({k.lower(): v for k, v in carrier.items()}, context=Context())
    return Context()


def _secrets(headers: Mapping[str, str]) -> list[str]:
    literals = list(environment_secrets())
    for name in _CREDENTIAL_HEADERS:
        value = headers.get(name, "")
        literals.append(value.split(" ", 1)[-1] if value.lower().startswith("bearer ") else value)
    return literals


class OtelRecorder:
    """Spans of one run, from its events (subscribe the instance to the run's event stream)."""

    def __init__(self, tracer: Any, *, trace_id: str, profile: str | None, parent: Any, config: OtelConfig,
                 headers: Mapping[str, str], messages: list[dict[str, Any]] | None = None) -> None:
        from opentelemetry import trace

        self._trace = trace
        self.tracer = tracer
        self.trace_id = trace_id
        self.profile = profile
        self.parent = parent
        self.capture = config.capture_content
        self.max_chars = config.max_content_chars
        self.redact = Redactor([], _secrets(headers))
        self.messages = messages or []
        self.run: Any = None
        self.chat: Any = None
        self.tools: dict[str, Any] = {}
        self.closed = False

    # ----------------------------------------------------------------------------- helpers

    def _text(self, value: Any) -> str:
        text = value if isinstance(value, str) else json.dumps(value, default=str, separators=(",", ":"))
        text = self.redact.text(text)
        return text if len(text) <= self.max_chars else text[: self.max_chars] + "…[truncated]"

    def _fail(self, span: Any, error_type: str, description: str | None) -> None:
        from opentelemetry.trace import Status, StatusCode

        text = self.redact.text(description or error_type)[:_MAX_ERROR_CHARS]
        span.set_status(Status(StatusCode.ERROR, text))
        span.set_attribute("error.type", error_type)

    def _child(self, name: str, kind: Any, at: float, attributes: dict[str, Any]) -> Any:
        context = self._trace.set_span_in_context(self.run) if self.run is not None else self.parent
        return self.tracer.start_span(name, context=context, kind=kind, start_time=_ns(at),
                                      attributes={"proxy_ext.trace_id": self.trace_id, **attributes})

    def trace_headers(self) -> dict[str, str]:
        """W3C trace context of the current model turn (for the agent's model call)."""
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        span = self.chat or self.run
        carrier: dict[str, str] = {}
        if span is not None:
            TraceContextTextMapPropagator().inject(carrier, context=self._trace.set_span_in_context(span))
        return carrier

    # ----------------------------------------------------------------------------- events

    def __call__(self, event: ev.RunEvent) -> None:
        handler = _HANDLERS.get(type(event))
        if handler is not None and not self.closed:
            handler(self, event)

    def _run_started(self, event: ev.RunStarted) -> None:
        name = self.profile or "agent"
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": name, "proxy_ext.trace_id": self.trace_id,
            "proxy_ext.backend": event.backend, "proxy_ext.models": list(event.models), "proxy_ext.tools": list(event.tools)}
        if event.models:
            attributes["gen_ai.request.model"] = event.models[0]
        if self.capture and self.messages:
            attributes["gen_ai.input.messages"] = self._text(self.messages)
        self.run = self.tracer.start_span(f"invoke_agent {name}", context=self.parent, kind=self._trace.SpanKind.INTERNAL,
                                          start_time=_ns(event.at), attributes=attributes)

    def _model_started(self, event: ev.ModelTurnStarted) -> None:
        if self.chat is not None:  # never two open turns
            self.chat.end(end_time=_ns(event.at))
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "litellm", "gen_ai.request.model": event.model,
            "proxy_ext.iteration": event.iteration, "proxy_ext.with_tools": event.with_tools}
        if self.capture and event.messages:
            attributes["gen_ai.input.messages"] = self._text(event.messages)
        self.chat = self._child(f"chat {event.model}", self._trace.SpanKind.CLIENT, event.at, attributes)

    def _model_finished(self, event: ev.ModelTurnFinished) -> None:
        span, self.chat = self.chat, None
        if span is None:
            return
        if event.ok:
            span.set_attributes({"gen_ai.response.model": event.model, "gen_ai.usage.input_tokens": event.prompt_tokens,
                                 "gen_ai.usage.output_tokens": event.completion_tokens, "proxy_ext.cost_usd": event.cost_usd})
            reason = event.finish_reason or ("tool_calls" if event.tool_calls else None)
            if reason:
                span.set_attribute("gen_ai.response.finish_reasons", [reason])
            if self.capture and event.message is not None:
                span.set_attribute("gen_ai.output.messages", self._text([event.message]))
        else:
            if event.status:
                span.set_attribute("http.response.status_code", event.status)
            self._fail(span, str(event.status) if event.status else "model_call_error", event.error)
        span.end(end_time=_ns(event.at))

    def _tool_started(self, event: ev.ToolCallStarted) -> None:
        attributes: dict[str, Any] = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": event.name, "gen_ai.tool.type": "function"}
        if event.id:
            attributes["gen_ai.tool.call.id"] = event.id
        if self.capture:
            attributes["gen_ai.tool.call.arguments"] = self._text(event.arguments)
        self.tools[event.id or event.name] = self._child(f"execute_tool {event.name}", self._trace.SpanKind.INTERNAL, event.at, attributes)

    def _tool_finished(self, event: ev.ToolCallFinished) -> None:
        span = self.tools.pop(event.id or event.name, None)
        if span is None:
            return
        if self.capture:
            span.set_attribute("gen_ai.tool.call.result", self._text(event.content))
        if not event.ok:
            self._fail(span, "tool_error", event.error)
        span.end(end_time=_ns(event.at))

    def _note(self, event: Any) -> None:
        if self.run is None:
            return
        if isinstance(event, ev.Escalated):
            attributes = {"proxy_ext.from_model": event.from_model, "proxy_ext.to_model": event.to_model or "", "proxy_ext.reason": event.reason}
            self.run.add_event("proxy_ext.escalated", attributes, timestamp=_ns(event.at))
        elif isinstance(event, ev.FellBack):
            self.run.add_event("proxy_ext.fallback", {"proxy_ext.model": event.model, "proxy_ext.reason": event.reason or ""}, timestamp=_ns(event.at))
        elif isinstance(event, ev.ApprovalRequested):
            calls = [c for c in event.calls if isinstance(c, dict)]
            self.run.add_event("proxy_ext.approval_requested", {
                "gen_ai.tool.name": [str((c.get("function") or {}).get("name", "")) for c in calls],
                "gen_ai.tool.call.id": [str(c.get("id") or "") for c in calls]}, timestamp=_ns(event.at))

    def _run_finished(self, event: ev.RunFinished) -> None:
        run = self.run
        if run is not None and event.envelope is not None:
            envelope, metrics = event.envelope, event.envelope.metrics
            run.set_attributes({
                "proxy_ext.stopped_reason": envelope.stopped_reason, "proxy_ext.ok": envelope.ok,
                "gen_ai.usage.input_tokens": metrics.prompt_tokens, "gen_ai.usage.output_tokens": metrics.completion_tokens,
                "proxy_ext.cost_usd": metrics.cost_usd, "proxy_ext.iterations": metrics.iterations,
                "proxy_ext.tool_calls": metrics.tool_calls, "proxy_ext.escalated": metrics.escalated})
            if metrics.used_model:
                run.set_attribute("gen_ai.response.model", metrics.used_model)
            if self.capture and envelope.final_answer is not None:
                run.set_attribute("gen_ai.output.messages", self._text([{"role": "assistant", "content": envelope.final_answer}]))
            if not envelope.ok and envelope.stopped_reason != "awaiting_approval":
                self._fail(run, envelope.stopped_reason, metrics.error)
        self.close(at=event.at, cancelled=event.envelope is None)

    def close(self, *_: Any, at: float | None = None, cancelled: bool = True) -> None:
        """End every open span (once). ``cancelled``: the run did not answer (its client hung up,
        or its task died): the open spans are marked so."""
        if self.closed:
            return
        self.closed = True
        end = _ns(at) if at is not None else None
        for span in [*([self.chat] if self.chat is not None else []), *self.tools.values()]:
            if cancelled:
                self._fail(span, "cancelled", "the run ended before this finished")
            span.end(end_time=end)
        self.chat, self.tools = None, {}
        if self.run is not None:
            if cancelled:
                self.run.set_attribute("proxy_ext.stopped_reason", "cancelled")
                self._fail(self.run, "cancelled", "the run was cancelled before it answered (the client disconnected)")
            self.run.end(end_time=end)


_HANDLERS: dict[type, Any] = {
    ev.RunStarted: OtelRecorder._run_started, ev.ModelTurnStarted: OtelRecorder._model_started,
    ev.ModelTurnFinished: OtelRecorder._model_finished, ev.ToolCallStarted: OtelRecorder._tool_started,
    ev.ToolCallFinished: OtelRecorder._tool_finished, ev.Escalated: OtelRecorder._note, ev.FellBack: OtelRecorder._note,
    ev.ApprovalRequested: OtelRecorder._note, ev.RunFinished: OtelRecorder._run_finished,
}

_enabled: tuple[OtelConfig | None, bool] = (None, False)


def _is_enabled(config: OtelConfig) -> bool:
    global _enabled
    if _enabled[0] is not config:  # the settings object is the process's: the environment is read once
        _enabled = (config, otel_export.is_enabled(config))
    return _enabled[1]


def attach(config: OtelConfig, prepared: Any, events: ev.EventStream, identity: Any = None) -> OtelRecorder | None:
    """Trace ``prepared``'s run with OpenTelemetry when ``traces.otel`` is on: subscribe a recorder
    to ``events`` and give the run's model client the turn's trace context. None when off (or
    the exporter cannot be set up: the run goes on untraced)."""
    if not _is_enabled(config):
        return None
    tracer = otel_export.tracer(config)
    if tracer is None:
        return None
    from proxy_ext import litellm_adapter as adapter

    headers = prepared.headers
    recorder = OtelRecorder(tracer, trace_id=prepared.trace_id, profile=prepared.spec.profile,
                            parent=parent_context(headers, adapter.proxy_request_span(identity)), config=config,
                            headers=headers, messages=list(prepared.spec.messages) if config.capture_content else None)
    events.subscribe(recorder)
    prepared.client.trace_headers = recorder.trace_headers
    return recorder
