"""The agent loop: one entry point, :func:`run_agent`.

A run walks the model ladder. On each model it alternates model turns and tool calls until the
model answers without tool calls (``final_answer``). It moves to the next model on a model error,
on ``max_iterations`` turns without an answer, and after ``tool_error_escalation`` consecutive
failing tool results. When the ladder is exhausted, one plain completion without tools is tried
(``fallback``). Limits (tokens, USD, wall time) are checked before every turn; ``budget_exceeded``
and ``timeout`` never escalate and never fall back: both would spend more than the caller allowed.

Everything that happens is published as a typed event (:mod:`proxy_ext.agent.events`); the loop
itself keeps only what the envelope needs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from proxy_ext.agent.envelope import Envelope, RunMetrics, StoppedReason
from proxy_ext.agent.events import (AnswerDelta, Escalated, EventStream, FellBack, ModelTurnFinished, ModelTurnStarted,
                                    RunFinished, RunStarted, ToolCallFinished, ToolCallStarted)
from proxy_ext.agent.history import prune_history
from proxy_ext.agent.model_client import ModelClient, ModelTurn
from proxy_ext.agent.request import RunSpec
from proxy_ext.agent.usage import Usage
from proxy_ext.exceptions import ModelCallError, ModelRefused
from proxy_ext.tools.base import ToolBackend, ToolContext, ToolResult, ToolSpec, cap_text

__all__ = ["InputFilter", "RunResult", "RunSettings", "run_agent"]

logger = logging.getLogger("proxy_ext.agent")

InputFilter = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
"""Turns the conversation into the prompt of one model call (default: history pruning)."""


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


@dataclass
class RunResult:
    """What :func:`run_agent` returns: the envelope and the run's usage (with the cost split)."""

    envelope: Envelope
    usage: Usage


class _BudgetExceeded(Exception):
    pass


class _Escalate(Exception):
    def __init__(self, reason: str, error: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


class _HandBack(Exception):
    """The model called a client tool: the run ends and hands the calls to the client."""


class _Refused(Exception):
    """The proxy refused the caller's key for a model (401/403): never escalate around it."""

    def __init__(self, error: ModelCallError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass
class _Run:
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

    def __post_init__(self) -> None:
        # The same for every turn of the run: the run's own tools, then the client's.
        self.tool_payload = [t.openai_tool() for t in self.tools] + list(self.spec.client_tools)
        self.client_tool_names = {t["function"]["name"] for t in self.spec.client_tools}
        self.allowed = {t.name for t in self.tools}
        self.input_filter = self.settings.input_filter or (lambda messages: prune_history(messages, self.settings.max_history_tokens))

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def append(self, message: dict[str, Any]) -> None:
        self.conversation.append(message)
        self.added.append(message)

    def check_limits(self) -> None:
        problem = self.spec.limits.exceeded(self.usage)
        if problem:
            raise _BudgetExceeded(problem)

    async def _answer_delta(self, text: str) -> None:
        self.events.publish(AnswerDelta(text))

    async def model_turn(self, model: str, with_tools: bool, messages: list[dict[str, Any]] | None = None) -> ModelTurn:
        iteration = self.usage.requests + 1
        self.events.publish(ModelTurnStarted(model, iteration, with_tools))
        prompt = self.input_filter(messages if messages is not None else self.conversation)
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
                                              turn.cost_usd, turn.message))
        return turn

    async def _invoke(self, call: dict[str, Any], semaphore: asyncio.Semaphore) -> ToolResult:
        name = call["function"]["name"]
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

    async def run_tools(self, calls: list[dict[str, Any]]) -> list[tuple[ToolResult, str]]:
        """Run one turn's calls concurrently; (result, text the model sees) in the asked order."""
        semaphore = asyncio.Semaphore(self.settings.max_concurrent_tool_calls)

        async def one(call: dict[str, Any]) -> tuple[ToolResult, str]:
            name = call["function"]["name"]
            self.events.publish(ToolCallStarted(call.get("id"), name, call["function"]["arguments"]))
            started = time.perf_counter()
            result = await self._invoke(call, semaphore)
            text = self.tool_text(result)
            self.events.publish(ToolCallFinished(call.get("id"), name, result.ok, text, _ms(started), None if result.ok else result.error))
            return result, text

        return list(await asyncio.gather(*(one(call) for call in calls)))

    def tool_text(self, result: ToolResult) -> str:
        return cap_text(result.model_text(), self.settings.max_tool_result_bytes)

    async def on_model(self, model: str) -> str:
        """Run turns on ``model``; return the final answer or raise _Escalate/_BudgetExceeded/_Refused/_HandBack."""
        tool_errors = 0
        for _ in range(self.spec.limits.max_iterations):
            self.check_limits()
            try:
                turn = await self.model_turn(model, with_tools=True)
            except ModelCallError as exc:
                if exc.is_auth_error:
                    raise _Refused(exc) from None
                raise _Escalate("model_error", str(exc)) from None
            calls = turn.message.get("tool_calls") or []
            handed = [c for c in calls if c["function"]["name"] in self.client_tool_names]
            if handed:
                # The client runs these; calls of the run's own tools from the same turn are not
                # executed (the client's conversation holds only what it is handed back).
                self.append({**turn.message, "tool_calls": handed})
                raise _HandBack()
            self.append(turn.message)
            if not calls:
                return turn.message.get("content") or ""
            results = await self.run_tools(calls)
            self.metrics.tool_calls += len(calls)
            for call, (result, text) in zip(calls, results):
                self.append({"role": "tool", "tool_call_id": call.get("id"), "content": text})
                tool_errors = 0 if result.ok else tool_errors + 1
            if tool_errors >= self.settings.tool_error_escalation:
                raise _Escalate("tool_errors", f"{tool_errors} consecutive tool errors")
        raise _Escalate("max_iterations", f"no final answer after {self.spec.limits.max_iterations} iterations")


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


async def run_agent(*, spec: RunSpec, settings: RunSettings, client: ModelClient, backend: ToolBackend,
                    tools: list[ToolSpec], tool_ctx: ToolContext, trace_id: str, events: EventStream | None = None,
                    stream_text: bool = False) -> RunResult:
    """Run the agent with ``tools`` (already chosen from ``backend``), publishing its events on
    ``events``; return the envelope and usage. The last event is :class:`RunFinished`.

    With ``stream_text``, model calls are streamed and each content delta is published as an
    :class:`AnswerDelta` as it arrives (text a model writes before calling tools included).
    Cancellation (client disconnect) propagates: in-flight model and tool calls are cancelled.

    Raises :class:`ModelRefused` when the proxy refused the caller's key for the first model call
    (after publishing :class:`RunFinished`): nothing was done, and the caller gets that 401/403.
    """
    started = time.perf_counter()
    events = events or EventStream()
    metrics = RunMetrics(trace_id=trace_id)
    run = _Run(spec, settings, client, backend, tools, tool_ctx, events, stream_text, time.monotonic() + spec.limits.timeout_s, metrics,
               conversation=[dict(m) for m in spec.messages])
    events.publish(RunStarted(trace_id, list(spec.ladder), spec.backend, [t.name for t in tools], spec.profile))
    refused: ModelCallError | None = None
    answer: str | None = None
    try:
        async with asyncio.timeout(spec.limits.timeout_s):
            reason, answer, error = await _walk(run)
    except _Refused as exc:  # refused before anything was done
        refused = exc.error
        reason, error = "error", exc.error.message
    except TimeoutError:
        reason, error = "timeout", f"run exceeded its time budget of {spec.limits.timeout_s} s"
    except Exception as exc:  # a bug must not cost the caller the transcript: error envelope, logged
        logger.exception("agent run %s failed", trace_id)
        reason, error = "error", f"internal error: {type(exc).__name__}: {exc}"
    usage = run.usage.rounded()
    metrics.iterations = max(metrics.iterations, usage.requests)
    metrics.prompt_tokens, metrics.completion_tokens, metrics.cost_usd = usage.prompt_tokens, usage.completion_tokens, usage.cost_usd
    metrics.duration_ms = int((time.perf_counter() - started) * 1000)
    ok = reason in ("final_answer", "fallback", "tool_calls")
    metrics.error = None if ok else error
    envelope = Envelope(ok=ok, final_answer=answer if ok else None, stopped_reason=reason, messages=run.added, metrics=metrics)
    events.publish(RunFinished(envelope))
    if refused is not None:
        raise ModelRefused(refused.status, refused.message, envelope=envelope)
    return RunResult(envelope, usage)


async def _walk(run: _Run) -> tuple[StoppedReason, str | None, str | None]:
    spec, metrics = run.spec, run.metrics
    if spec.backend == "echo":
        return _echo(run)
    last: _Escalate | None = None
    for index, model in enumerate(spec.ladder):
        metrics.models_tried.append(model)
        metrics.used_model = model
        if index > 0:
            metrics.escalated = True
        try:
            return "final_answer", await run.on_model(model), None
        except _HandBack:
            return "tool_calls", None, None
        except _BudgetExceeded as exc:
            return "budget_exceeded", None, str(exc)
        except _Refused as exc:
            if run.usage.requests == 0 and metrics.tool_calls == 0:
                raise
            return "error", None, exc.error.message
        except _Escalate as exc:
            last = exc
            following = spec.ladder[index + 1] if index + 1 < len(spec.ladder) else None
            run.events.publish(Escalated(model, following, exc.reason, exc.error))
    return await _exhausted(run, last)


async def _exhausted(run: _Run, last: _Escalate | None) -> tuple[StoppedReason, str | None, str | None]:
    """The ladder is exhausted: the one-shot fallback completion, if allowed."""
    spec, metrics = run.spec, run.metrics
    exhausted: StoppedReason = "max_iterations" if last and last.reason == "max_iterations" else "error"
    detail = last.error if last else "no model to run"
    if not run.settings.fallback or not spec.ladder:
        return exhausted, None, detail
    try:
        run.check_limits()
    except _BudgetExceeded as exc:
        return "budget_exceeded", None, str(exc)
    model = run.settings.fallback_model or spec.ladder[-1]
    metrics.models_tried.append(model)
    metrics.used_model = model
    run.events.publish(FellBack(model, last.reason if last else None))
    try:
        turn = await run.model_turn(model, with_tools=False, messages=[dict(m) for m in spec.messages])
    except ModelCallError as exc:
        return exhausted, None, f"{detail}; fallback {exc}"
    content = turn.message.get("content")
    if not isinstance(content, str) or not content.strip():  # e.g. it still asked for tools
        return exhausted, None, f"{detail}; the fallback completion gave no answer"
    run.append({"role": "assistant", "content": content})
    return "fallback", content, None


def _echo(run: _Run) -> tuple[StoppedReason, str | None, str | None]:
    """The hermetic ``echo`` backend without a model: answer with the last user message's text."""
    from proxy_ext.response_utils import content_text

    text = next((content_text(m.get("content"), " ") for m in reversed(run.spec.messages) if m.get("role") == "user"), "")
    run.append({"role": "assistant", "content": text})
    run.metrics.iterations = 1
    run.metrics.used_model = "echo"
    return "final_answer", text, None
