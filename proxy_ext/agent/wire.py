"""Run events on the wire: the SSE event names and ``data`` of docs/agent.md "Streaming progress",
shared by ``/agent/run`` streams, durable runs' stored events and ``/agent/runs/{id}/events``."""

from __future__ import annotations

import json
from typing import Any

from proxy_ext.agent import events as ev

__all__ = ["event_payload", "sse"]


def sse(event: str, data: dict[str, Any], event_id: int | None = None) -> bytes:
    """One SSE frame (with ``id:`` when given, for ``Last-Event-ID``)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, default=str, separators=(',', ':'))}\n\n".encode()


def event_payload(event: ev.RunEvent) -> tuple[str, dict[str, Any]] | None:
    """(SSE event name, data) of a run event; None for events that are not on the wire."""
    if isinstance(event, ev.RunStarted):
        return "run_started", {"trace_id": event.trace_id, "models": event.models, "backend": event.backend, "tools": event.tools}
    if isinstance(event, ev.ModelTurnFinished):
        if not event.ok:
            return None
        return "model_turn", {"type": "model_turn", "model": event.model, "ok": True, "iteration": event.iteration,
                              "prompt_tokens": event.prompt_tokens, "completion_tokens": event.completion_tokens,
                              "cost_usd": event.cost_usd, "duration_ms": event.duration_ms, "tool_calls": event.tool_calls,
                              "message": event.message}
    if isinstance(event, ev.AnswerDelta):
        return "answer_delta", {"text": event.text}
    if isinstance(event, ev.ToolCallStarted):
        return "tool_call", {"id": event.id, "name": event.name, "arguments": event.arguments}
    if isinstance(event, ev.ToolCallFinished):
        return "tool_result", {"id": event.id, "name": event.name, "ok": event.ok, "content": event.content, "duration_ms": event.duration_ms}
    if isinstance(event, ev.Escalated):
        return ("escalation", {"to": event.to_model, "reason": event.reason}) if event.to_model else None
    if isinstance(event, ev.FellBack):
        return "fallback", {"model": event.model, "reason": event.reason}
    if isinstance(event, ev.ApprovalRequested):
        return "approval_requested", {"calls": event.calls}
    if isinstance(event, ev.RunFinished):
        if event.envelope is None:
            return "run_failed", {"message": "the run was cancelled"}
        if event.envelope.stopped_reason == "awaiting_approval":  # not over: decisions continue it
            return "run_paused", event.envelope.to_dict()
        return "run_completed", event.envelope.to_dict()
    return None
