"""Unit tests of the run loop (proxy_ext.agent.runner, proxy_ext.agent.state.RunState): a scripted
fake model client and a fake tool backend, no proxy, no network. The unit tier (make test-fast).

The fakes stand in for the two ports of the loop (``ModelClient.complete``/``complete_streaming``
and the ``ToolBackend`` protocol); everything between them is the real loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from proxy_ext.agent.events import (AnswerDelta, ApprovalRequested, Checkpointed, Escalated, EventStream, FellBack, ModelTurnStarted,
                                    RunFinished, RunStarted, ToolCallFinished)
from proxy_ext.agent.model_client import ModelTurn
from proxy_ext.agent.request import RunSpec
from proxy_ext.agent.runner import RunResult, run_agent
from proxy_ext.agent.state import INTERRUPTED, Decision, RunSettings
from proxy_ext.agent.usage import Limits
from proxy_ext.exceptions import ModelCallError, ModelRefused
from proxy_ext.tools.base import ToolContext, ToolResult, ToolSpec

# ------------------------------------------------------------------------------------------ fakes


def answer(text: str, tokens: tuple[int, int] = (10, 5), cost: float = 0.001) -> ModelTurn:
    return ModelTurn({"role": "assistant", "content": text}, tokens[0], tokens[1], cost)


def calls(*named: tuple[str, str, dict[str, Any]], tokens: tuple[int, int] = (10, 5), cost: float = 0.001) -> ModelTurn:
    """A turn asking for tool calls ``(id, name, arguments)``, in this order."""
    tool_calls = [{"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}} for i, n, a in named]
    return ModelTurn({"role": "assistant", "content": None, "tool_calls": tool_calls}, tokens[0], tokens[1], cost)


Reply = ModelTurn | Exception | Callable[[], Awaitable[ModelTurn]]


class FakeModel:
    """Scripted replies per model, taken in order; records every prompt (after the input filter)."""

    def __init__(self, script: dict[str, list[Reply]]) -> None:
        self.script = {model: list(replies) for model, replies in script.items()}
        self.prompts: list[tuple[str, list[dict[str, Any]], bool]] = []

    async def _next(self, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> ModelTurn:
        self.prompts.append((model, [dict(m) for m in messages], tools is not None))
        replies = self.script.get(model)
        if not replies:
            raise AssertionError(f"unexpected call of {model}: the script has no reply left")
        reply = replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        if callable(reply):
            return await reply()
        return reply

    async def complete(self, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, timeout_s: float) -> ModelTurn:
        return await self._next(model, messages, tools)

    async def complete_streaming(self, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, timeout_s: float,
                                 on_text: Callable[[str], Awaitable[None]]) -> ModelTurn:
        turn = await self._next(model, messages, tools)
        content = turn.message.get("content") or ""
        for word in content.split(" "):
            await on_text(word)
        return turn

    def calls_of(self, model: str) -> int:
        return sum(1 for m, _, _ in self.prompts if m == model)


class FakeTools:
    """Tools ``lookup`` (answers after ``delays[value]`` seconds), ``fail`` (ok=False), ``block``
    (waits until cancelled) and ``danger`` (needs approval in some tests); records every call."""

    def __init__(self, delays: dict[str, float] | None = None) -> None:
        self.delays = delays or {}
        self.invoked: list[tuple[str, dict[str, Any]]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.cancelled: list[str] = []
        self.block_started = asyncio.Event()

    specs = [ToolSpec("lookup"), ToolSpec("fail"), ToolSpec("block"), ToolSpec("danger_delete")]

    async def list_tools(self, ctx: ToolContext) -> list[ToolSpec]:
        return list(self.specs)

    async def invoke(self, name: str, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        self.invoked.append((name, arguments))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if name == "fail":
                return ToolResult(ok=False, error="it broke")
            if name == "block":
                self.block_started.set()
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    self.cancelled.append(name)
                    raise
            value = str(arguments.get("value", ""))
            await asyncio.sleep(self.delays.get(value, 0))
            return ToolResult(ok=True, content=f"result of {name}({value})")
        finally:
            self.in_flight -= 1

    def names(self) -> list[str]:
        return [name for name, _ in self.invoked]


def spec(ladder: list[str], *, max_iterations: int = 4, timeout_s: float = 30.0, max_tokens: int | None = None,
         max_cost_usd: float | None = None, messages: list[dict[str, Any]] | None = None) -> RunSpec:
    return RunSpec(messages=messages or [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}],
                   ladder=ladder, backend="local", tool_names=None,
                   limits=Limits(max_iterations, timeout_s, max_tokens, max_cost_usd), stream=False, metadata={}, profile=None)


async def run(model: FakeModel, tools: FakeTools, run_spec: RunSpec, settings: RunSettings | None = None, *,
              events: list[Any] | None = None, **kwargs: Any) -> RunResult:
    stream = EventStream([events.append] if events is not None else None)
    return await run_agent(spec=run_spec, settings=settings or RunSettings(), client=model, backend=tools,  # type: ignore[arg-type]
                           tools=FakeTools.specs, tool_ctx=ToolContext(), trace_id="t-1", events=stream, **kwargs)


def saved_checkpoints(into: list[dict[str, Any]]) -> Callable[[Any], None]:
    """A subscriber that keeps every checkpoint as a store would: serialised when published."""
    def keep(event: Any) -> None:
        if isinstance(event, Checkpointed):
            into.append(json.loads(json.dumps(event.state)))
    return keep


def tool_messages(result: RunResult) -> list[tuple[str | None, str]]:
    return [(m.get("tool_call_id"), m["content"]) for m in result.envelope.messages if m.get("role") == "tool"]


# ------------------------------------------------------------------------------- answers and usage


async def test_a_final_answer_after_a_tool_call_sums_usage_and_publishes_the_events():
    model = FakeModel({"cheap": [calls(("c1", "lookup", {"value": "x"}), tokens=(100, 20), cost=0.01), answer("done", (150, 10), 0.02)]})
    tools, events = FakeTools(), []
    result = await run(model, tools, spec(["cheap", "strong"]), events=events)
    envelope = result.envelope
    assert (envelope.ok, envelope.stopped_reason, envelope.final_answer) == (True, "final_answer", "done")
    assert tools.invoked == [("lookup", {"value": "x"})]
    assert tool_messages(result) == [("c1", "result of lookup(x)")]
    assert (envelope.metrics.iterations, envelope.metrics.tool_calls, envelope.metrics.escalated) == (2, 1, False)
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (250, 30)
    assert result.usage.cost_usd == pytest.approx(0.03) and envelope.metrics.cost_usd == pytest.approx(0.03)
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunFinished)
    assert events[-1].envelope is envelope
    # the tool result reached the model on its second turn, after the assistant's call
    second_prompt = model.prompts[1][1]
    assert [m["role"] for m in second_prompt] == ["system", "user", "assistant", "tool"]


async def test_streamed_text_is_published_as_answer_deltas():
    events: list[Any] = []
    result = await run(FakeModel({"cheap": [answer("one two three")]}), FakeTools(), spec(["cheap"]), events=events, stream_text=True)
    assert result.envelope.final_answer == "one two three"
    assert [e.text for e in events if isinstance(e, AnswerDelta)] == ["one", "two", "three"]


# ------------------------------------------------------------------------------------------ escalation


async def test_a_model_error_escalates_to_the_next_model():
    model = FakeModel({"cheap": [ModelCallError("cheap", 500, "upstream broke")], "strong": [answer("from strong")]})
    events: list[Any] = []
    result = await run(model, FakeTools(), spec(["cheap", "strong"]), events=events)
    metrics = result.envelope.metrics
    assert (result.envelope.stopped_reason, result.envelope.final_answer) == ("final_answer", "from strong")
    assert (metrics.escalated, metrics.used_model, metrics.models_tried) == (True, "strong", ["cheap", "strong"])
    escalations = [e for e in events if isinstance(e, Escalated)]
    assert [(e.from_model, e.to_model, e.reason) for e in escalations] == [("cheap", "strong", "model_error")]


async def test_max_iterations_without_an_answer_escalates_with_a_fresh_iteration_count():
    looping = [calls((f"c{i}", "lookup", {"value": str(i)})) for i in range(2)]
    model = FakeModel({"cheap": looping, "strong": [calls(("s1", "lookup", {"value": "s"})), answer("ok")]})
    events: list[Any] = []
    result = await run(model, FakeTools(), spec(["cheap", "strong"], max_iterations=2), events=events)
    assert (result.envelope.stopped_reason, result.envelope.final_answer) == ("final_answer", "ok")
    assert (model.calls_of("cheap"), model.calls_of("strong")) == (2, 2)
    assert [e.reason for e in events if isinstance(e, Escalated)] == ["max_iterations"]


async def test_repeated_tool_errors_escalate():
    failing = calls(("f1", "fail", {}), ("f2", "fail", {}), ("f3", "fail", {}))
    model = FakeModel({"cheap": [failing], "strong": [answer("recovered")]})
    events: list[Any] = []
    result = await run(model, FakeTools(), spec(["cheap", "strong"]), RunSettings(tool_error_escalation=3), events=events)
    assert result.envelope.final_answer == "recovered"
    assert [e.reason for e in events if isinstance(e, Escalated)] == ["tool_errors"]
    assert all(json.loads(text) == {"ok": False, "error": "it broke"} for _, text in tool_messages(result))


async def test_an_exhausted_ladder_falls_back_to_one_plain_completion_of_the_original_messages():
    model = FakeModel({"cheap": [ModelCallError("cheap", 500, "x"), answer("plain answer")]})
    events: list[Any] = []
    result = await run(model, FakeTools(), spec(["cheap"]), events=events)
    assert (result.envelope.ok, result.envelope.stopped_reason, result.envelope.final_answer) == (True, "fallback", "plain answer")
    fallback_model, prompt, with_tools = model.prompts[-1]
    assert (fallback_model, with_tools) == ("cheap", False)
    assert prompt == spec(["cheap"]).messages
    assert [e.model for e in events if isinstance(e, FellBack)] == ["cheap"]


async def test_without_fallback_an_exhausted_ladder_reports_max_iterations():
    model = FakeModel({"cheap": [calls(("c1", "lookup", {})), calls(("c2", "lookup", {}))]})
    result = await run(model, FakeTools(), spec(["cheap"], max_iterations=2), RunSettings(fallback=False))
    assert (result.envelope.ok, result.envelope.stopped_reason) == (False, "max_iterations")
    assert model.calls_of("cheap") == 2
    assert "2 iterations" in (result.envelope.metrics.error or "")


async def test_a_refused_first_call_raises_model_refused_and_never_escalates():
    model = FakeModel({"cheap": [ModelCallError("cheap", 403, "key may not use cheap")], "strong": [answer("never")]})
    events: list[Any] = []
    with pytest.raises(ModelRefused) as refused:
        await run(model, FakeTools(), spec(["cheap", "strong"]), events=events)
    assert refused.value.status == 403
    assert model.calls_of("strong") == 0
    assert isinstance(events[-1], RunFinished) and not any(isinstance(e, Escalated) for e in events)


# --------------------------------------------------------------------------------------------- budgets


async def test_the_token_budget_stops_the_run_without_escalation_or_fallback():
    model = FakeModel({"cheap": [calls(("c1", "lookup", {}), tokens=(80, 40)), answer("too late")], "strong": [answer("never")]})
    events: list[Any] = []
    result = await run(model, FakeTools(), spec(["cheap", "strong"], max_tokens=100), events=events)
    assert (result.envelope.ok, result.envelope.stopped_reason) == (False, "budget_exceeded")
    assert "token budget" in (result.envelope.metrics.error or "")
    assert (model.calls_of("cheap"), model.calls_of("strong")) == (1, 0)
    assert not any(isinstance(e, (Escalated, FellBack)) for e in events)


async def test_the_cost_budget_stops_the_run_without_escalation_or_fallback():
    model = FakeModel({"cheap": [calls(("c1", "lookup", {}), cost=0.5), answer("too late")], "strong": [answer("never")]})
    events: list[Any] = []
    result = await run(model, FakeTools(), spec(["cheap", "strong"], max_cost_usd=0.25), events=events)
    assert result.envelope.stopped_reason == "budget_exceeded"
    assert "cost budget" in (result.envelope.metrics.error or "")
    assert result.usage.cost_usd == pytest.approx(0.5)
    assert model.calls_of("strong") == 0 and not any(isinstance(e, (Escalated, FellBack)) for e in events)


async def test_a_budget_reached_on_the_last_model_does_not_fall_back():
    model = FakeModel({"cheap": [calls(("c1", "fail", {}), ("c2", "fail", {}), ("c3", "fail", {}), tokens=(500, 500))]})
    result = await run(model, FakeTools(), spec(["cheap"], max_tokens=100))
    assert result.envelope.stopped_reason == "budget_exceeded"
    assert model.calls_of("cheap") == 1


async def test_the_iteration_limit_counts_model_turns_per_model():
    model = FakeModel({"cheap": [calls((f"c{i}", "lookup", {})) for i in range(3)]})
    result = await run(model, FakeTools(), spec(["cheap"], max_iterations=3), RunSettings(fallback=False))
    assert result.envelope.stopped_reason == "max_iterations"
    assert (result.envelope.metrics.iterations, result.envelope.metrics.tool_calls) == (3, 3)


async def test_the_time_budget_stops_a_slow_model_without_escalation_or_fallback():
    async def slow() -> ModelTurn:
        await asyncio.sleep(10)
        return answer("too late")

    model = FakeModel({"cheap": [slow], "strong": [answer("never")]})
    events: list[Any] = []
    result = await asyncio.wait_for(run(model, FakeTools(), spec(["cheap", "strong"], timeout_s=0.2), events=events), 5)
    assert (result.envelope.ok, result.envelope.stopped_reason) == (False, "timeout")
    assert model.calls_of("strong") == 0 and not any(isinstance(e, (Escalated, FellBack)) for e in events)
    assert isinstance(events[-1], RunFinished)


# ----------------------------------------------------------------------------------- pruning (input filter)


async def test_the_input_filter_shapes_every_prompt_but_not_the_transcript():
    seen: list[int] = []

    def last_two(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seen.append(len(messages))
        return messages[-2:]

    model = FakeModel({"cheap": [calls(("c1", "lookup", {"value": "a"})), answer("done")]})
    result = await run(model, FakeTools(), spec(["cheap"]), RunSettings(input_filter=last_two))
    assert seen == [2, 4]
    assert [[m["role"] for m in prompt] for _, prompt, _ in model.prompts] == [["system", "user"], ["assistant", "tool"]]
    assert [m["role"] for m in result.envelope.messages] == ["assistant", "tool", "assistant"]


async def test_default_pruning_keeps_system_and_first_user_message_and_whole_tool_units():
    history = [{"role": "system", "content": "rules"}, {"role": "user", "content": "first question"}]
    for i in range(6):
        history += [{"role": "assistant", "content": None, "tool_calls": [{"id": f"old{i}", "type": "function",
                                                                           "function": {"name": "lookup", "arguments": "{}"}}]},
                    {"role": "tool", "tool_call_id": f"old{i}", "content": "x" * 400}]
    history.append({"role": "user", "content": "latest"})
    model = FakeModel({"cheap": [answer("ok")]})
    await run(model, FakeTools(), spec(["cheap"], messages=history), RunSettings(max_history_tokens=300))
    prompt = model.prompts[0][1]
    assert prompt[:2] == history[:2] and prompt[-1] == history[-1]
    assert len(prompt) < len(history)
    ids = [m["tool_calls"][0]["id"] for m in prompt if m.get("tool_calls")]
    results = [m["tool_call_id"] for m in prompt if m.get("role") == "tool"]
    assert ids == results  # no assistant call separated from its result


# ----------------------------------------------------------------------------------- parallel tool calls


async def test_parallel_tool_calls_run_concurrently_and_results_keep_the_model_order():
    # the first call is the slowest: results arrive in reverse order
    model = FakeModel({"cheap": [calls(("a", "lookup", {"value": "slow"}), ("b", "lookup", {"value": "mid"}),
                                       ("c", "lookup", {"value": "fast"})), answer("done")]})
    tools = FakeTools({"slow": 0.3, "mid": 0.15, "fast": 0})
    events: list[Any] = []
    result = await run(model, tools, spec(["cheap"]), events=events)
    assert tools.max_in_flight == 3
    assert [e.id for e in events if isinstance(e, ToolCallFinished)] == ["c", "b", "a"]
    assert tool_messages(result) == [("a", "result of lookup(slow)"), ("b", "result of lookup(mid)"), ("c", "result of lookup(fast)")]


async def test_max_concurrent_tool_calls_bounds_a_turn():
    model = FakeModel({"cheap": [calls(*((f"c{i}", "lookup", {"value": "v"}) for i in range(4))), answer("done")]})
    tools = FakeTools({"v": 0.05})
    result = await run(model, tools, spec(["cheap"]), RunSettings(max_concurrent_tool_calls=2))
    assert tools.max_in_flight == 2 and len(tool_messages(result)) == 4


async def test_unknown_tools_and_bad_arguments_are_results_the_model_sees():
    bad = calls(("u", "nope", {}))
    bad.message["tool_calls"].append({"id": "j", "type": "function", "function": {"name": "lookup", "arguments": "[1]"}})
    model = FakeModel({"cheap": [bad, answer("done")]})
    tools = FakeTools()
    result = await run(model, tools, spec(["cheap"]))
    (_, unknown), (_, arguments) = tool_messages(result)
    assert "unknown tool 'nope'" in json.loads(unknown)["error"]
    assert "arguments must be a JSON object" in json.loads(arguments)["error"]
    assert tools.invoked == []


# ------------------------------------------------------------------------------------------- cancellation


async def test_cancelling_a_run_cancels_its_in_flight_tool_calls():
    model = FakeModel({"cheap": [calls(("b", "block", {}), ("l", "lookup", {}))]})
    tools = FakeTools()
    task = asyncio.ensure_future(run(model, tools, spec(["cheap"])))
    await asyncio.wait_for(tools.block_started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert tools.cancelled == ["block"] and tools.in_flight == 0


async def test_cancelling_a_run_cancels_its_model_call():
    cancelled = asyncio.Event()
    started = asyncio.Event()

    async def hanging() -> ModelTurn:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return answer("never")

    task = asyncio.ensure_future(run(FakeModel({"cheap": [hanging]}), FakeTools(), spec(["cheap"])))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()


async def test_a_cancellation_swallowed_by_a_model_call_still_stops_the_run_before_its_tools():
    # LiteLLM awaits some cleanup inside `except BaseException: pass`; a cancel landing there is
    # absorbed and the model call returns normally. The run must stop anyway, running no tool.
    started = asyncio.Event()

    async def swallowing() -> ModelTurn:
        started.set()
        try:
            await asyncio.sleep(3600)
        except BaseException:  # noqa: BLE001  # what the foreign code does
            pass
        return calls(("l", "lookup", {"value": "x"}))

    tools = FakeTools()
    model = FakeModel({"cheap": [swallowing, answer("never")]})
    task = asyncio.ensure_future(run(model, tools, spec(["cheap"])))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert tools.invoked == [] and model.calls_of("cheap") == 1


# ------------------------------------------------------------------------------------------ checkpoints


async def test_resuming_from_a_mid_turn_checkpoint_never_reruns_completed_calls():
    # First worker: call "done1" finishes, "slow" is still running when the checkpoint is taken.
    first_model = FakeModel({"cheap": [calls(("done1", "lookup", {"value": "quick"}), ("slow", "lookup", {"value": "slow"})), answer("x")]})
    checkpoints: list[dict[str, Any]] = []
    await run_agent(spec=spec(["cheap"]), settings=RunSettings(), client=first_model, backend=FakeTools({"slow": 0.2}),  # type: ignore[arg-type]
                    tools=FakeTools.specs, tool_ctx=ToolContext(), trace_id="t-1", events=EventStream([saved_checkpoints(checkpoints)]))
    saved = next(c for c in checkpoints if list(c["batch"]) == ["done1"])

    # Second worker continues from it: nothing of that turn runs again.
    model = FakeModel({"cheap": [answer("finished")]})
    tools = FakeTools()
    result = await run(model, tools, spec(["cheap"]), resume=saved)
    assert tools.invoked == []
    assert result.envelope.final_answer == "finished"
    assert tool_messages(result) == [("done1", "result of lookup(quick)"), ("slow", json.dumps({"ok": False, "error": INTERRUPTED}))]
    assert result.envelope.metrics.tool_calls == 2
    assert result.usage.requests == 2  # the first worker's turn counts, and the one that finished


async def test_resuming_after_a_finished_batch_runs_only_the_new_calls():
    first_model = FakeModel({"cheap": [calls(("a", "lookup", {"value": "1"})), answer("x")]})
    checkpoints: list[dict[str, Any]] = []
    await run_agent(spec=spec(["cheap"]), settings=RunSettings(), client=first_model, backend=FakeTools(),  # type: ignore[arg-type]
                    tools=FakeTools.specs, tool_ctx=ToolContext(), trace_id="t-1", events=EventStream([saved_checkpoints(checkpoints)]))
    after_batch = next(c for c in checkpoints if c["added"][-1].get("role") == "tool")
    model = FakeModel({"cheap": [calls(("b", "lookup", {"value": "2"})), answer("finished")]})
    tools = FakeTools()
    result = await run(model, tools, spec(["cheap"]), resume=after_batch)
    assert tools.invoked == [("lookup", {"value": "2"})]
    assert [i for i, _ in tool_messages(result)] == ["a", "b"]
    assert result.envelope.final_answer == "finished"
    assert [m["role"] for m in model.prompts[0][1]] == ["system", "user", "assistant", "tool"]


async def test_calls_a_dead_worker_may_have_started_are_reported_never_repeated():
    """At most once: a checkpoint taken after the model turn cannot tell whether a call started."""
    first_model = FakeModel({"cheap": [calls(("a", "lookup", {"value": "1"})), answer("x")]})
    checkpoints: list[dict[str, Any]] = []
    await run_agent(spec=spec(["cheap"]), settings=RunSettings(), client=first_model, backend=FakeTools(),  # type: ignore[arg-type]
                    tools=FakeTools.specs, tool_ctx=ToolContext(), trace_id="t-1", events=EventStream([saved_checkpoints(checkpoints)]))
    after_turn = next(c for c in checkpoints if c["added"][-1].get("tool_calls") and not c["batch"])
    tools = FakeTools()
    result = await run(FakeModel({"cheap": [answer("finished")]}), tools, spec(["cheap"]), resume=after_turn)
    assert tools.invoked == []
    assert tool_messages(result) == [("a", json.dumps({"ok": False, "error": INTERRUPTED}))]


# ------------------------------------------------------------------------------------------- approvals


APPROVAL = RunSettings(requires_approval=("danger_*",))


async def test_a_call_that_requires_approval_pauses_the_run_before_anything_runs():
    model = FakeModel({"cheap": [calls(("d1", "danger_delete", {"path": "/x"}), ("l1", "lookup", {"value": "v"}))]})
    tools, events = FakeTools(), []
    result = await run(model, tools, spec(["cheap"]), APPROVAL, events=events)
    assert (result.envelope.ok, result.envelope.stopped_reason) == (False, "awaiting_approval")
    assert [c["id"] for c in result.envelope.metrics.pending_approvals or []] == ["d1"]
    assert tools.invoked == []  # the safe call of the same turn waits too
    assert result.checkpoint is not None
    assert [[c["id"] for c in e.calls] for e in events if isinstance(e, ApprovalRequested)] == [["d1"]]


async def test_an_approved_call_runs_once_when_the_run_continues():
    model = FakeModel({"cheap": [calls(("d1", "danger_delete", {"path": "/x"}))]})
    paused = await run(model, FakeTools(), spec(["cheap"]), APPROVAL)
    model, tools = FakeModel({"cheap": [answer("deleted")]}), FakeTools()
    result = await run(model, tools, spec(["cheap"]), APPROVAL, resume=paused.checkpoint, decisions={"d1": Decision(True)})
    assert tools.invoked == [("danger_delete", {"path": "/x"})]
    assert (result.envelope.stopped_reason, result.envelope.final_answer) == ("final_answer", "deleted")


async def test_a_denied_call_never_runs_and_the_model_sees_the_reason():
    model = FakeModel({"cheap": [calls(("d1", "danger_delete", {"path": "/x"}), ("l1", "lookup", {"value": "v"}))]})
    paused = await run(model, FakeTools(), spec(["cheap"]), APPROVAL)
    model, tools = FakeModel({"cheap": [answer("ok, not deleting")]}), FakeTools()
    result = await run(model, tools, spec(["cheap"]), APPROVAL, resume=paused.checkpoint,
                       decisions={"d1": Decision(False, "not on prod")})
    assert tools.names() == ["lookup"]
    denied = dict(tool_messages(result))["d1"]
    assert json.loads(denied) == {"ok": False, "error": "a person denied this call: not on prod"}
    assert result.envelope.final_answer == "ok, not deleting"


async def test_only_matching_tools_need_approval():
    model = FakeModel({"cheap": [calls(("l1", "lookup", {"value": "v"})), answer("done")]})
    events: list[Any] = []
    result = await run(model, FakeTools(), spec(["cheap"]), APPROVAL, events=events)
    assert result.envelope.stopped_reason == "final_answer"
    assert not any(isinstance(e, ApprovalRequested) for e in events)
    assert [e.iteration for e in events if isinstance(e, ModelTurnStarted)] == [1, 2]
