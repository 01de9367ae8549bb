"""The state of one agent run, as the loop (:mod:`proxy_ext.agent.runner`) advances it.

Everything a run needs to continue is here and serialisable (:meth:`RunState.checkpoint`): the
messages it added, its usage and metrics, where it is on the model ladder, the results of the
tool calls of the current turn so far. The loop publishes a :class:`Checkpointed` event after every
model turn and every tool result; a durable run store saves it, and a run whose worker died is
continued from it (:meth:`RunState.restore`) — completed tool calls are never run again, calls that
were running when the worker died are reported to the model as interrupted, not repeated.

Approvals: a tool call whose name matches ``RunSettings.requires_approval`` does not run until a
person decided; the loop stops at that point (``awaiting_approval``, with the pending calls) and a
later continuation brings the decisions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fnmatch
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from proxy_ext.agent.envelope import RunMetrics
from proxy_ext.agent.events import (AnswerDelta, ApprovalRequested, Checkpointed, EventStream, ModelTurnFinished, ModelTurnStarted,
                                    ToolCallFinished, ToolCallStarted)
from proxy_ext.agent.history import prune_history
from proxy_ext.agent.model_client import ModelClient, ModelTurn
from proxy_ext.agent.request import RunSpec
from proxy_ext.agent.usage import Usage
from proxy_ext.exceptions import ModelCallError
from proxy_ext.tools.base import ToolBackend, ToolContext, ToolResult, ToolSpec, cap_text

__all__ = ["AwaitApproval", "Decision", "InputFilter", "RunSettings", "RunState"]

InputFilter = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
"""Turns the conversation into the prompt of one model call (default: history pruning)."""

INTERRUPTED = "the worker running this call stopped before it finished; it was not run again"


@dataclass(frozen=True)
class RunSettings:
    """Operator settings the loop needs beyond the request (from ``proxy_ext.agent``)."""

    max_history_tokens: int = 24_000
    """Prompt budget of the default input filter (history pruning)."""
    tool_error_escalation: int = 3
    """Consecutive failing tool results that make the run escalate."""
    fallback: bool = True
    """Try a one-shot completion when the ladder is exhausted."""
    fallback_model: str | None = None
    """Model of that completion (None: the ladder's last model)."""
    max_concurrent_tool_calls: int = 8
    """Tool calls of one turn running at once."""
    max_tool_result_bytes: int = 65_536
    """Longest tool result shown to the model."""
    input_filter: InputFilter | None = None
    """Prompt of each model call from the conversation (None: prune to ``max_history_tokens``)."""
    requires_approval: tuple[str, ...] = ()
    """Tool names (or patterns like ``exec_*``) that run only after a person approved the call."""


@dataclass(frozen=True)
class Decision:
    """A person's decision on one pending tool call."""

    approve: bool
    reason: str | None = None
    """Shown to the model when the call is denied."""


class AwaitApproval(Exception):
    """The run stops here until the pending calls are decided."""

    def __init__(self, calls: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(calls)} tool call(s) await approval")
        self.calls = calls


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


@dataclass
class RunState:
    spec: RunSpec
    settings: RunSettings
    client: ModelClient
    backend: ToolBackend
    tools: list[ToolSpec]
    tool_ctx: ToolContext
    events: EventStream
    stream_text: bool
    deadline: float
    metrics: RunMetrics
    usage: Usage = field(default_factory=Usage)
    added: list[dict[str, Any]] = field(default_factory=list)
    conversation: list[dict[str, Any]] = field(default_factory=list)
    model_index: int = 0
    """Position on the ladder."""
    model_iterations: int = 0
    """Model turns taken on the current model."""
    tool_errors: int = 0
    """Consecutive failing tool results."""
    batch: dict[str, str] = field(default_factory=dict)
    """Results (text) of the current turn's tool calls that finished, by call id."""
    batch_ok: dict[str, bool] = field(default_factory=dict)
    interrupted: set[str | None] = field(default_factory=set)
    """Calls that were running when a previous worker died (not run again)."""
    decisions: dict[str, Decision] = field(default_factory=dict)
    """Approval decisions, by call id."""
    awaiting: list[str] = field(default_factory=list)
    """Calls of the current turn that wait for a decision (never started: not interrupted)."""

    def __post_init__(self) -> None:
        # The same for every turn of the run: the run's own tools, then the client's.
        self.tool_payload = [t.openai_tool() for t in self.tools] + list(self.spec.client_tools)
        self.client_tool_names = {t["function"]["name"] for t in self.spec.client_tools}
        self.allowed = {t.name for t in self.tools}
        self.input_filter = self.settings.input_filter or (lambda messages: prune_history(messages, self.settings.max_history_tokens))

    # ------------------------------------------------------------------------------ state

    def checkpoint(self) -> dict[str, Any]:
        """Everything needed to continue the run (JSON-serialisable)."""
        return {"model_index": self.model_index, "model_iterations": self.model_iterations, "tool_errors": self.tool_errors,
                "added": self.added, "usage": dataclasses.asdict(self.usage), "metrics": dataclasses.asdict(self.metrics),
                "batch": self.batch, "batch_ok": self.batch_ok, "awaiting": self.awaiting}

    def save(self) -> None:
        self.events.publish(Checkpointed(self.checkpoint()))

    def restore(self, saved: dict[str, Any]) -> None:
        """Continue from ``saved``: calls of the last turn without a saved result are interrupted."""
        self.model_index, self.model_iterations, self.tool_errors = saved["model_index"], saved["model_iterations"], saved["tool_errors"]
        self.added = list(saved["added"])
        self.conversation = [dict(m) for m in self.spec.messages] + self.added
        self.usage = Usage(**saved["usage"])
        self.metrics = RunMetrics(**{**saved["metrics"], "trace_id": self.metrics.trace_id})
        self.batch, self.batch_ok = dict(saved.get("batch") or {}), dict(saved.get("batch_ok") or {})
        waited = set(saved.get("awaiting") or [])
        self.interrupted = {c.get("id") for c in self.open_calls() if c.get("id") not in self.batch and c.get("id") not in waited}

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def append(self, message: dict[str, Any]) -> None:
        self.conversation.append(message)
        self.added.append(message)

    def open_calls(self) -> list[dict[str, Any]]:
        """Tool calls of the last assistant message that have no tool result yet."""
        if not self.added or self.added[-1].get("role") != "assistant":
            return []
        return list(self.added[-1].get("tool_calls") or [])

    def needs_approval(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.settings.requires_approval)

    # ------------------------------------------------------------------------------ model turns

    async def _answer_delta(self, text: str) -> None:
        self.events.publish(AnswerDelta(text))

    async def model_turn(self, model: str, with_tools: bool, messages: list[dict[str, Any]] | None = None) -> ModelTurn:
        iteration = self.usage.requests + 1
        prompt = self.input_filter(messages if messages is not None else self.conversation)
        self.events.publish(ModelTurnStarted(model, iteration, with_tools, prompt))
        started = time.perf_counter()
        timeout = max(self.remaining(), 0.001)
        tools = self.tool_payload if with_tools and self.tool_payload else None
        try:
            if self.stream_text:
                turn = await self.client.complete_streaming(model, prompt, tools, timeout, self._answer_delta)
            else:
                turn = await self.client.complete(model, prompt, tools, timeout)
        except ModelCallError as exc:
            self.events.publish(ModelTurnFinished(model, iteration, False, _ms(started), status=exc.status, error=exc.message))
            raise
        self.usage.add(turn.prompt_tokens, turn.completion_tokens, turn.cost_usd, turn.input_cost_usd, turn.output_cost_usd)
        self.events.publish(ModelTurnFinished(model, iteration, True, _ms(started), turn.prompt_tokens, turn.completion_tokens,
                                              turn.cost_usd, turn.message, finish_reason=turn.finish_reason))
        return turn

    # ------------------------------------------------------------------------------ tool calls

    async def _invoke(self, call: dict[str, Any], semaphore: asyncio.Semaphore) -> ToolResult:
        name = call["function"]["name"]
        decision = self.decisions.get(call.get("id") or "")
        if call.get("id") in self.interrupted:
            return ToolResult(ok=False, error=INTERRUPTED)
        if decision is not None and not decision.approve:
            return ToolResult(ok=False, error="a person denied this call" + (f": {decision.reason}" if decision.reason else ""))
        if name not in self.allowed:
            return ToolResult(ok=False, error=f"unknown tool {name!r}; available: {', '.join(sorted(self.allowed)) or 'none'}")
        try:
            arguments = json.loads(call["function"]["arguments"] or "{}")
            if not isinstance(arguments, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            return ToolResult(ok=False, error=f"arguments must be a JSON object ({exc})")
        async with semaphore:
            ctx = dataclasses.replace(self.tool_ctx, timeout_s=max(self.remaining(), 0.001))
            try:
                return await self.backend.invoke(name, arguments, ctx)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a backend bug must not kill the run: the model sees it
                return ToolResult(ok=False, error=f"tool failed: {type(exc).__name__}: {exc}")

    def pending_approval(self, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Calls not yet run that need a decision nobody made yet."""
        return [c for c in calls if c.get("id") not in self.batch and c.get("id") not in self.interrupted
                and self.needs_approval(c["function"]["name"]) and c.get("id") not in self.decisions]

    async def run_tools(self, calls: list[dict[str, Any]]) -> None:
        """Run the turn's calls that have no result yet, concurrently (each result is saved as it
        comes); raise :class:`AwaitApproval` first when some still need a decision."""
        pending = self.pending_approval(calls)
        if pending:
            # Nothing of this turn runs before every decision is in: the whole turn waits.
            self.awaiting = [c.get("id") or "" for c in calls if (c.get("id") or "") not in self.batch]
            self.events.publish(ApprovalRequested(pending))
            raise AwaitApproval(pending)
        self.awaiting = []
        semaphore = asyncio.Semaphore(self.settings.max_concurrent_tool_calls)

        async def one(call: dict[str, Any]) -> None:
            name = call["function"]["name"]
            self.events.publish(ToolCallStarted(call.get("id"), name, call["function"]["arguments"]))
            started = time.perf_counter()
            result = await self._invoke(call, semaphore)
            text = cap_text(result.model_text(), self.settings.max_tool_result_bytes)
            self.batch[call.get("id") or ""] = text
            self.batch_ok[call.get("id") or ""] = result.ok
            self.events.publish(ToolCallFinished(call.get("id"), name, result.ok, text, _ms(started), None if result.ok else result.error))
            self.save()

        await asyncio.gather(*(one(c) for c in calls if (c.get("id") or "") not in self.batch))

    def close_batch(self, calls: list[dict[str, Any]]) -> None:
        """Append the turn's tool results in the order the model asked for them."""
        self.metrics.tool_calls += len(calls)
        for call in calls:
            key = call.get("id") or ""
            self.append({"role": "tool", "tool_call_id": call.get("id"), "content": self.batch[key]})
            self.tool_errors = 0 if self.batch_ok.get(key) else self.tool_errors + 1
        self.batch, self.batch_ok, self.interrupted, self.awaiting = {}, {}, set(), []
        self.save()
