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
import logging
import time
from dataclasses import dataclass
from typing import Any

from proxy_ext.agent.envelope import Envelope, RunMetrics, StoppedReason
from proxy_ext.agent.events import Escalated, EventStream, FellBack, RunFinished, RunStarted
from proxy_ext.agent.model_client import ModelClient
from proxy_ext.agent.request import RunSpec
from proxy_ext.agent.state import AwaitApproval, Decision, InputFilter, RunSettings, RunState
from proxy_ext.agent.usage import Usage
from proxy_ext.exceptions import ModelCallError, ModelRefused
from proxy_ext.tools.base import ToolBackend, ToolContext, ToolSpec

__all__ = ["Decision", "InputFilter", "RunResult", "RunSettings", "run_agent"]

logger = logging.getLogger("proxy_ext.agent")

@dataclass
class RunResult:
    """What :func:`run_agent` returns: the envelope, the run's usage (with the cost split) and,
    for a run that paused for approvals, the checkpoint to continue from."""

    envelope: Envelope
    usage: Usage
    checkpoint: dict[str, Any] | None = None


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


def _check_limits(run: RunState) -> None:
    problem = run.spec.limits.exceeded(run.usage)
    if problem:
        raise _BudgetExceeded(problem)


def _stop_if_cancelled() -> None:
    """Raise the run's cancellation if someone swallowed it. Code the run awaits but does not own
    (LiteLLM's, a tool backend's) may catch a ``CancelledError`` and carry on; the task still
    counts the request (``cancelling()``), so a cancelled run stops at its next step, never
    starting another model or tool call."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def _on_model(run: RunState, model: str) -> str:
    """Turns on ``model`` (continuing where the state is); the final answer, or raise
    _Escalate/_BudgetExceeded/_Refused/_HandBack/AwaitApproval."""
    while True:
        _stop_if_cancelled()
        calls = run.open_calls()
        if calls:
            await run.run_tools(calls)
            run.close_batch(calls)
            if run.tool_errors >= run.settings.tool_error_escalation:
                raise _Escalate("tool_errors", f"{run.tool_errors} consecutive tool errors")
            continue
        if run.model_iterations >= run.spec.limits.max_iterations:
            raise _Escalate("max_iterations", f"no final answer after {run.spec.limits.max_iterations} iterations")
        _check_limits(run)
        try:
            turn = await run.model_turn(model, with_tools=True)
        except ModelCallError as exc:
            if exc.is_auth_error:
                raise _Refused(exc) from None
            raise _Escalate("model_error", str(exc)) from None
        run.model_iterations += 1
        calls = turn.message.get("tool_calls") or []
        handed = [c for c in calls if c["function"]["name"] in run.client_tool_names]
        if handed:
            # The client runs these; calls of the run's own tools from the same turn are not
            # executed (the client's conversation holds only what it is handed back).
            run.append({**turn.message, "tool_calls": handed})
            raise _HandBack()
        run.append(turn.message)
        run.save()
        if not calls:
            return turn.message.get("content") or ""


async def run_agent(*, spec: RunSpec, settings: RunSettings, client: ModelClient, backend: ToolBackend,
                    tools: list[ToolSpec], tool_ctx: ToolContext, trace_id: str, events: EventStream | None = None,
                    stream_text: bool = False, resume: dict[str, Any] | None = None,
                    decisions: dict[str, Decision] | None = None) -> RunResult:
    """Run the agent with ``tools`` (already chosen from ``backend``), publishing its events on
    ``events``; return the envelope and usage. The last event is :class:`RunFinished`.

    With ``stream_text``, model calls are streamed and each content delta is published as an
    :class:`AnswerDelta` as it arrives (text a model writes before calling tools included).
    Cancellation (client disconnect) propagates: in-flight model and tool calls are cancelled.

    ``resume`` continues a run from a checkpoint (its :class:`Checkpointed` state), with the
    ``decisions`` on calls that awaited approval. A run that reaches calls needing approval stops
    with ``awaiting_approval`` and returns its checkpoint.

    Raises :class:`ModelRefused` when the proxy refused the caller's key for the first model call
    (after publishing :class:`RunFinished`): nothing was done, and the caller gets that 401/403.
    """
    started = time.perf_counter()
    events = events or EventStream()
    metrics = RunMetrics(trace_id=trace_id)
    run = RunState(spec, settings, client, backend, tools, tool_ctx, events, stream_text, time.monotonic() + spec.limits.timeout_s, metrics,
                   conversation=[dict(m) for m in spec.messages], decisions=dict(decisions or {}))
    if resume is not None:
        run.restore(resume)
        metrics = run.metrics
    events.publish(RunStarted(trace_id, list(spec.ladder), spec.backend, [t.name for t in tools], spec.profile))
    refused: ModelCallError | None = None
    answer: str | None = None
    checkpoint: dict[str, Any] | None = None
    try:
        async with asyncio.timeout(spec.limits.timeout_s):
            reason, answer, error = await _walk(run)
    except AwaitApproval as exc:
        reason, error, checkpoint = "awaiting_approval", f"{len(exc.calls)} tool call(s) await a person's approval", run.checkpoint()
        metrics.pending_approvals = exc.calls
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
    metrics.duration_ms += int((time.perf_counter() - started) * 1000)
    ok = reason in ("final_answer", "fallback", "tool_calls")
    metrics.error = None if ok else error
    envelope = Envelope(ok=ok, final_answer=answer if ok else None, stopped_reason=reason, messages=run.added, metrics=metrics)
    events.publish(RunFinished(envelope))
    if refused is not None:
        raise ModelRefused(refused.status, refused.message, envelope=envelope)
    return RunResult(envelope, usage, checkpoint)


async def _walk(run: RunState) -> tuple[StoppedReason, str | None, str | None]:
    spec, metrics = run.spec, run.metrics
    if spec.backend == "echo":
        return _echo(run)
    last: _Escalate | None = None
    while run.model_index < len(spec.ladder):
        index, model = run.model_index, spec.ladder[run.model_index]
        if len(metrics.models_tried) <= index or metrics.models_tried[index] != model:
            metrics.models_tried.append(model)
        metrics.used_model = model
        if index > 0:
            metrics.escalated = True
        try:
            return "final_answer", await _on_model(run, model), None
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
            run.model_index, run.model_iterations, run.tool_errors = index + 1, 0, 0
    return await _exhausted(run, last)


async def _exhausted(run: RunState, last: _Escalate | None) -> tuple[StoppedReason, str | None, str | None]:
    """The ladder is exhausted: the one-shot fallback completion, if allowed."""
    _stop_if_cancelled()
    spec, metrics = run.spec, run.metrics
    exhausted: StoppedReason = "max_iterations" if last and last.reason == "max_iterations" else "error"
    detail = last.error if last else "no model to run"
    if not run.settings.fallback or not spec.ladder:
        return exhausted, None, detail
    try:
        _check_limits(run)
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


def _echo(run: RunState) -> tuple[StoppedReason, str | None, str | None]:
    """The hermetic ``echo`` backend without a model: answer with the last user message's text."""
    from proxy_ext.response_utils import content_text

    text = next((content_text(m.get("content"), " ") for m in reversed(run.spec.messages) if m.get("role") == "user"), "")
    run.append({"role": "assistant", "content": text})
    run.metrics.iterations = 1
    run.metrics.used_model = "echo"
    return "final_answer", text, None
