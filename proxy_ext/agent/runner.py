"""The agent loop: one entry point, :func:`run_agent`.

A run walks the model ladder. On each model it alternates model turns and tool calls until the
model answers without tool calls (``final_answer``). It moves to the next model on a model error,
on ``max_iterations`` turns without an answer, and after ``tool_error_escalation`` consecutive
failing tool results. When the ladder is exhausted, one plain completion without tools is tried
(``fallback``). Budgets (tokens, USD, wall time) are checked between steps; ``budget_exceeded`` and
``timeout`` never escalate and never fall back: both would spend more than the caller allowed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from proxy_ext.agent import metrics as agent_metrics
from proxy_ext.agent.envelope import Envelope, RunMetrics, StoppedReason
from proxy_ext.agent.errors import ModelCallError
from proxy_ext.agent.history import prune_history
from proxy_ext.agent.model_client import ModelClient, ModelTurn
from proxy_ext.agent.request import RunSpec
from proxy_ext.tools.base import ToolBackend, ToolContext, ToolResult, ToolSpec

__all__ = ["Emit", "RunOutcome", "RunSettings", "run_agent"]

logger = logging.getLogger("proxy_ext.agent")

Emit = Callable[[str, dict[str, Any]], Awaitable[None]]
"""Progress callback: ``await emit(event_type, data)`` (SSE events when streaming)."""


async def _no_emit(event: str, data: dict[str, Any]) -> None:
    return None


@dataclass(frozen=True)
class RunSettings:
    """Operator settings the loop needs beyond the request (from ``proxy_ext.agent``)."""

    max_history_tokens: int = 24_000
    """Prompt budget for history pruning."""
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


@dataclass
class RunOutcome:
    """What :func:`run_agent` returns."""

    envelope: Envelope
    """The response body."""
    steps: list[dict[str, Any]]
    """Step log for the trace record."""
    refused_status: int = 0
    """401/403 when the proxy refused the caller's key for a model before anything was done: the
    route answers with that status instead of an envelope."""
    input_cost_usd: float | None = None
    """Prompt side of ``metrics.cost_usd`` summed over the model turns (None unless every priced
    turn had LiteLLM's input/output split)."""
    output_cost_usd: float | None = None
    """Completion side of ``metrics.cost_usd``."""


class _BudgetExceeded(Exception):
    pass


class _Escalate(Exception):
    def __init__(self, reason: str, error: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


class _HandBack(Exception):
    """The model called a client tool: the run ends and hands the calls to the client."""


class _Stop(Exception):
    """End the run now with this reason (auth errors: never escalate around a refused model)."""

    def __init__(self, reason: StoppedReason, error: str, status: int = 0) -> None:
        super().__init__(error)
        self.reason = reason
        self.error = error
        self.status = status


@dataclass
class _Run:
    spec: RunSpec
    settings: RunSettings
    client: ModelClient
    backend: ToolBackend
    tools: list[ToolSpec]
    tool_ctx: ToolContext
    emit: Emit
    on_text: "Callable[[str], Awaitable[None]] | None"
    deadline: float
    metrics: RunMetrics
    added: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    conversation: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # The same for every turn of the run: the run's own tools, then the client's.
        self.tool_payload = [t.openai_tool() for t in self.tools] + list(self.spec.client_tools)
        self.client_tool_names = {t["function"]["name"] for t in self.spec.client_tools}
        self.split: list[float] | None = [0.0, 0.0]  # input, output USD; None once a priced turn had no split

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def append(self, message: dict[str, Any]) -> None:
        self.conversation.append(message)
        self.added.append(message)

    def check_budget(self) -> None:
        used_tokens = self.metrics.prompt_tokens + self.metrics.completion_tokens
        if self.spec.max_tokens is not None and used_tokens >= self.spec.max_tokens:
            raise _BudgetExceeded(f"token budget reached: {used_tokens} >= {self.spec.max_tokens}")
        if self.spec.max_cost_usd is not None and self.metrics.cost_usd >= self.spec.max_cost_usd:
            raise _BudgetExceeded(f"cost budget reached: {self.metrics.cost_usd:.6f} >= {self.spec.max_cost_usd} USD")

    async def model_turn(self, model: str, with_tools: bool, messages: list[dict[str, Any]] | None = None) -> ModelTurn:
        prompt = prune_history(messages if messages is not None else self.conversation, self.settings.max_history_tokens)
        started = time.perf_counter()
        timeout = max(self.remaining(), 0.001)
        try:
            tools = self.tool_payload if with_tools and self.tool_payload else None
            if self.on_text is not None:
                turn = await self.client.complete_streaming(model, prompt, tools, timeout, self.on_text)
            else:
                turn = await self.client.complete(model, prompt, tools, timeout)
        except ModelCallError as exc:
            agent_metrics.MODEL_TURN_SECONDS.labels("error").observe(time.perf_counter() - started)
            self.steps.append({"type": "model_turn", "model": model, "ok": False, "status": exc.status,
                               "error": exc.message, "duration_ms": _ms(started)})
            raise
        agent_metrics.MODEL_TURN_SECONDS.labels("ok").observe(time.perf_counter() - started)
        self.metrics.iterations += 1
        self.metrics.prompt_tokens += turn.prompt_tokens
        self.metrics.completion_tokens += turn.completion_tokens
        self.metrics.cost_usd += turn.cost_usd
        self.add_split(turn)
        step = {"type": "model_turn", "model": model, "ok": True, "iteration": self.metrics.iterations,
                "prompt_tokens": turn.prompt_tokens, "completion_tokens": turn.completion_tokens,
                "cost_usd": turn.cost_usd, "duration_ms": _ms(started),
                "tool_calls": [c["function"]["name"] for c in turn.message.get("tool_calls") or []]}
        self.steps.append(step)
        await self.emit("model_turn", {**step, "message": turn.message})
        return turn

    def add_split(self, turn: ModelTurn) -> None:
        if self.split is None:
            return
        if turn.input_cost_usd is None or turn.output_cost_usd is None:
            if turn.cost_usd:
                self.split = None
            return
        self.split[0] += turn.input_cost_usd
        self.split[1] += turn.output_cost_usd

    async def run_tools(self, calls: list[dict[str, Any]]) -> list[ToolResult]:
        allowed = {t.name for t in self.tools}
        semaphore = asyncio.Semaphore(self.settings.max_concurrent_tool_calls)

        async def one(call: dict[str, Any]) -> ToolResult:
            name = call["function"]["name"]
            await self.emit("tool_call", {"id": call.get("id"), "name": name, "arguments": call["function"]["arguments"]})
            started = time.perf_counter()
            if name not in allowed:
                result = ToolResult(ok=False, error=f"unknown tool {name!r}; available: {', '.join(sorted(allowed)) or 'none'}")
            else:
                try:
                    arguments = json.loads(call["function"]["arguments"] or "{}")
                    if not isinstance(arguments, dict):
                        raise ValueError("not a JSON object")
                except ValueError as exc:
                    result = ToolResult(ok=False, error=f"arguments must be a JSON object ({exc})")
                else:
                    async with semaphore:
                        ctx = ToolContext(self.tool_ctx.request_headers, self.tool_ctx.run_id, max(self.remaining(), 0.001))
                        try:
                            result = await self.backend.invoke(name, arguments, ctx)
                        except asyncio.CancelledError:
                            raise
                        except Exception as exc:  # a backend bug must not kill the run: the model sees it
                            result = ToolResult(ok=False, error=f"tool failed: {type(exc).__name__}: {exc}")
            duration = _ms(started)
            self.steps.append({"type": "tool_call", "id": call.get("id"), "name": name, "ok": result.ok,
                               "duration_ms": duration, **({"error": result.error} if not result.ok else {})})
            await self.emit("tool_result", {"id": call.get("id"), "name": name, "ok": result.ok,
                                            "content": self.tool_text(result), "duration_ms": duration})
            return result

        return list(await asyncio.gather(*(one(call) for call in calls)))

    def tool_text(self, result: ToolResult) -> str:
        text = result.model_text()
        limit = self.settings.max_tool_result_bytes
        encoded = text.encode()
        if len(encoded) > limit:
            text = encoded[:limit].decode(errors="ignore") + f"\n[truncated: {len(encoded) - limit} more bytes]"
        return text

    async def on_model(self, model: str) -> str:
        """Run turns on ``model``; return the final answer or raise _Escalate/_BudgetExceeded/_Stop."""
        tool_errors = 0
        for _ in range(self.spec.max_iterations):
            self.check_budget()
            try:
                turn = await self.model_turn(model, with_tools=True)
            except ModelCallError as exc:
                if exc.is_auth_error:
                    raise _Stop("error", exc.message, exc.status) from None
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
            for call, result in zip(calls, results):
                self.append({"role": "tool", "tool_call_id": call.get("id"), "content": self.tool_text(result)})
                tool_errors = 0 if result.ok else tool_errors + 1
            if tool_errors >= self.settings.tool_error_escalation:
                raise _Escalate("tool_errors", f"{tool_errors} consecutive tool errors")
        raise _Escalate("max_iterations", f"no final answer after {self.spec.max_iterations} iterations")


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


async def run_agent(spec: RunSpec, settings: RunSettings, client: ModelClient, backend: ToolBackend,
                    tools: list[ToolSpec], tool_ctx: ToolContext, trace_id: str, emit: Emit | None = None,
                    on_text: Callable[[str], Awaitable[None]] | None = None) -> RunOutcome:
    """Run the agent with ``tools`` (already chosen from ``backend``); return envelope and step log.

    With ``on_text``, model calls are streamed and each content delta is passed on as it arrives
    (text a model writes before calling tools included). Cancellation (client disconnect)
    propagates: in-flight model and tool calls are cancelled.
    """
    started = time.perf_counter()
    metrics = RunMetrics(trace_id=trace_id)
    emit = emit or _no_emit
    run = _Run(spec, settings, client, backend, tools, tool_ctx, emit, on_text, time.monotonic() + spec.timeout_s, metrics,
               conversation=[dict(m) for m in spec.messages])
    await emit("run_started", {"trace_id": trace_id, "models": spec.ladder, "backend": spec.backend,
                               "tools": [t.name for t in tools]})
    reason: StoppedReason
    answer: str | None = None
    error: str | None = None
    refused = 0
    try:
        async with asyncio.timeout(spec.timeout_s):
            reason, answer, error = await _walk(run)
    except _Stop as exc:  # refused before anything was done
        reason, error, refused = exc.reason, exc.error, exc.status
    except TimeoutError:
        reason, error = "timeout", f"run exceeded its time budget of {spec.timeout_s} s"
    except Exception as exc:  # a bug must not cost the caller the transcript: error envelope, logged
        logger.exception("agent run %s failed", trace_id)
        reason, error = "error", f"internal error: {type(exc).__name__}: {exc}"
    metrics.duration_ms = int((time.perf_counter() - started) * 1000)
    metrics.cost_usd = round(metrics.cost_usd, 10)
    ok = reason in ("final_answer", "fallback", "tool_calls")
    metrics.error = None if ok else error
    agent_metrics.RUNS.labels(reason).inc()
    agent_metrics.RUN_SECONDS.observe(metrics.duration_ms / 1000)
    envelope = Envelope(ok=ok, final_answer=answer if ok else None, stopped_reason=reason, messages=run.added, metrics=metrics)
    split = run.split or (None, None)
    return RunOutcome(envelope, run.steps, refused, *(round(v, 10) if v is not None else None for v in split))


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
            agent_metrics.ESCALATIONS.labels(last.reason if last else "unknown").inc()
            await run.emit("escalation", {"to": model, "reason": last.reason if last else None})
        try:
            return "final_answer", await run.on_model(model), None
        except _HandBack:
            return "tool_calls", None, None
        except _BudgetExceeded as exc:
            return "budget_exceeded", None, str(exc)
        except _Stop as exc:
            if metrics.iterations == 0 and metrics.tool_calls == 0:
                raise
            return exc.reason, None, exc.error
        except _Escalate as exc:
            last = exc
            run.steps.append({"type": "escalation", "from": model, "reason": exc.reason, "detail": exc.error})
    # The ladder is exhausted.
    exhausted: StoppedReason = "max_iterations" if last and last.reason == "max_iterations" else "error"
    detail = last.error if last else "no model to run"
    if not run.settings.fallback or not spec.ladder:
        return exhausted, None, detail
    try:
        run.check_budget()
    except _BudgetExceeded as exc:
        return "budget_exceeded", None, str(exc)
    model = run.settings.fallback_model or spec.ladder[-1]
    metrics.models_tried.append(model)
    metrics.used_model = model
    await run.emit("fallback", {"model": model, "reason": last.reason if last else None})
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
    text = ""
    for message in reversed(run.spec.messages):
        if message.get("role") == "user":
            content = message.get("content")
            text = content if isinstance(content, str) else " ".join(
                p.get("text", "") for p in content or [] if isinstance(p, dict) and p.get("type") == "text")
            break
    run.append({"role": "assistant", "content": text})
    run.metrics.iterations = 1
    run.metrics.used_model = "echo"
    return "final_answer", text, None
