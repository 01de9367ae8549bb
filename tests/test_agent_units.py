"""Unit and property tests of the agent's pure parts: history pruning, request resolution, local tools."""

from __future__ import annotations

import asyncio
import json
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy_ext.agent.errors import AgentRequestError
from proxy_ext.agent.history import estimate_tokens, prune_history
from proxy_ext.agent.local_tools import LocalToolRegistry, spec_from_callable
from proxy_ext.agent.request import AgentRunRequest, resolve
from proxy_ext.agent.traces import REDACTED, Redactor
from proxy_ext.config import parse_config
from proxy_ext.tools.base import ToolContext

# ------------------------------------------------------------------------------------ pruning

text = st.text(alphabet="abcdefghij ", min_size=0, max_size=400)


@st.composite
def conversations(draw) -> list[dict]:
    messages: list[dict] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(text)})
    messages.append({"role": "user", "content": draw(text)})
    counter = 0
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["user", "assistant", "tools"]))
        if kind == "tools":
            ids = []
            for _ in range(draw(st.integers(1, 4))):
                counter += 1
                ids.append(f"call_{counter}")
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": i, "type": "function", "function": {"name": "f", "arguments": json.dumps({"x": draw(text)})}} for i in ids]})
            messages.extend({"role": "tool", "tool_call_id": i, "content": draw(text)} for i in ids)
        else:
            messages.append({"role": kind, "content": draw(text)})
    return messages


def _size(messages: list[dict]) -> int:
    return sum(estimate_tokens(m) for m in messages)


@settings(max_examples=300, deadline=None)
@given(conversations(), st.integers(min_value=10, max_value=2000))
def test_pruning_invariants(messages, budget):
    kept = prune_history(messages, budget)
    ids = [id(m) for m in kept]
    # Kept messages are the originals, in their original order.
    positions = [next(i for i, m in enumerate(messages) if id(m) == k) for k in ids]
    assert positions == sorted(positions)
    # System messages and the first user message are always kept.
    first_user = next(m for m in messages if m["role"] == "user")
    assert any(m is first_user for m in kept)
    assert all(any(k is m for k in kept) for m in messages if m["role"] == "system")
    # An assistant tool_calls message and its results are kept or dropped together.
    kept_tool_ids = {m["tool_call_id"] for m in kept if m["role"] == "tool"}
    for m in messages:
        if m.get("tool_calls"):
            call_ids = {c["id"] for c in m["tool_calls"]}
            present = any(k is m for k in kept)
            assert (call_ids <= kept_tool_ids) if present else not (call_ids & kept_tool_ids)
    # Under budget whenever that is possible at all: protected messages plus the newest message's unit.
    if _size(messages) <= budget:
        assert kept == messages
    else:
        protected = [m for m in messages if m["role"] == "system" or m is first_user]
        newest_unit = []
        for m in reversed(messages):
            newest_unit.insert(0, m)
            if m["role"] != "tool":
                break
        if _size(protected) + _size([m for m in newest_unit if not any(m is p for p in protected)]) <= budget:
            assert _size(kept) <= budget
    # The newest message is never dropped.
    assert kept[-1] is messages[-1]


def test_pruning_drops_oldest_units_first():
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "first"}]
    messages += [{"role": "assistant", "content": "x" * 400}, {"role": "user", "content": "y" * 400}, {"role": "assistant", "content": "latest"}]
    kept = prune_history(messages, 120)
    assert [m["content"] for m in kept] == ["s", "first", "y" * 400, "latest"]


# ----------------------------------------------------------------------------------- requests


def agent_config(**agent):
    return parse_config({"agent": agent}, env={}).agent


def test_resolve_applies_defaults_profiles_and_ladder():
    agent = agent_config(default_model="a", escalation=["cheap", "mid", "strong"], max_iterations=5,
                         profiles={"p": {"escalation": ["x", "y"], "system_prompt": "be brief", "tools": ["calculator"]}})
    spec = resolve(AgentRunRequest(input="hi"), agent)
    assert spec.ladder == ["cheap", "mid", "strong"] and spec.max_iterations == 5 and spec.timeout_s == 120
    assert resolve(AgentRunRequest(input="hi", model="mid"), agent).ladder == ["mid", "strong"]
    assert resolve(AgentRunRequest(input="hi", model="other"), agent).ladder == ["other"]
    spec = resolve(AgentRunRequest(input="hi", profile="p"), agent)
    assert spec.ladder == ["x", "y"] and spec.tool_names == ["calculator"]
    assert spec.messages[0] == {"role": "system", "content": "be brief"}


@pytest.mark.parametrize("body, needle", [
    ({"input": "x", "max_iterations": 33}, "max_iterations = 33 exceeds"),
    ({"input": "x", "budget": {"max_cost_usd": 6}}, "budget.max_cost_usd = 6.0 exceeds"),
    ({"input": "x", "budget": {"timeout_s": 601}}, "budget.timeout_s = 601.0 exceeds"),
    ({"input": "x", "profile": "missing"}, "unknown profile"),
])
def test_resolve_rejects_over_cap_values(body, needle):
    with pytest.raises(AgentRequestError) as error:
        resolve(AgentRunRequest.model_validate(body), agent_config(default_model="m"))
    assert needle in error.value.message and error.value.status == 400


def test_request_without_a_model_anywhere_is_rejected():
    with pytest.raises(AgentRequestError, match="default_model"):
        resolve(AgentRunRequest(input="x"), agent_config())


def test_too_many_messages():
    agent = agent_config(default_model="m", limits={"max_messages": 2})
    with pytest.raises(AgentRequestError, match="max_messages"):
        resolve(AgentRunRequest(messages=[{"role": "user", "content": "x"}] * 3), agent)


# -------------------------------------------------------------------------------- local tools


def lookup(city: str, unit: Literal["c", "f"] = "c", days: int | None = None) -> dict:
    """Weather for a city.

    More text that is not the description.

    Args:
        city: Name of the city.
        unit: Temperature unit.
    """
    return {"city": city, "unit": unit, "days": days}


def test_schema_from_type_hints_and_docstring():
    spec = spec_from_callable(lookup)
    assert spec.description == "Weather for a city."
    assert spec.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "Name of the city."},
            "unit": {"enum": ["c", "f"], "description": "Temperature unit."},
            "days": {"type": "integer"},
        },
        "required": ["city"],
        "additionalProperties": False,
    }


def test_operator_tools_by_dotted_path_and_argument_checks():
    registry = LocalToolRegistry.from_dotted_paths(["tests.test_agent_units.lookup"])
    ctx = ToolContext()
    names = {s.name for s in asyncio.run(registry.list_tools(ctx))}
    assert {"lookup", "calculator", "current_time"} <= names
    ok = asyncio.run(registry.invoke("lookup", {"city": "Oslo"}, ctx))
    assert ok.ok and ok.content == {"city": "Oslo", "unit": "c", "days": None}
    bad = asyncio.run(registry.invoke("lookup", {"town": "Oslo"}, ctx))
    assert not bad.ok and "unknown argument(s) ['town']" in bad.error and "missing argument(s) ['city']" in bad.error
    boom = asyncio.run(registry.invoke("calculator", {"expression": "__import__('os')"}, ctx))
    assert not boom.ok and "only numbers" in boom.error


def test_calculator_refuses_huge_exponents():
    from proxy_ext.agent.local_tools import calculator

    assert calculator("2 ** 10") == 1024
    for expression in ("9 ** 99999", "(9 ** 999) ** 999", "((9 ** 999) ** 999) ** 999"):
        with pytest.raises(ValueError, match="exponent"):
            calculator(expression)  # refused at once, not computed


# ------------------------------------------------------------------------------------ redaction


def test_redactor_hides_keys_headers_and_patterns():
    redact = Redactor(["internal-[0-9]+"], literals=["supersecretvalue"])
    record = {"headers": {"authorization": "Bearer abc", "x-request-id": "r1"}, "api_key": "k-123456",
              "text": "use sk-abcdefgh12345 and internal-42 and supersecretvalue", "n": 3}
    out = redact(record)
    assert out["headers"] == {"authorization": REDACTED, "x-request-id": "r1"}
    assert out["api_key"] == REDACTED
    assert out["text"] == f"use {REDACTED} and {REDACTED} and {REDACTED}"
    assert out["n"] == 3
    assert record["api_key"] == "k-123456"  # not mutated


# ----------------------------------------------------------------------- streamed model calls


def test_streamed_model_call_assembles_text_tool_calls_usage_and_cost():
    import httpx

    from proxy_ext.agent.model_client import ModelClient

    def sse(*chunks: dict) -> bytes:
        return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"

    body = sse(
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Let me "}}]},
        {"choices": [{"index": 0, "delta": {"content": "check."}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "calc", "arguments": "{\"a\""}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}}]},
        {"choices": [{"index": 0, "delta": {"content": " (after)"}}]},
        {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 5, "cost": 0.00042}},
    )
    seen = []

    async def go():
        transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body, headers={"content-type": "text/event-stream"}))
        async with httpx.AsyncClient(transport=transport) as http:
            client = ModelClient("http://proxy", {"authorization": "Bearer k"}, http)

            async def on_text(text):
                seen.append(text)

            return await client.complete_streaming("m", [{"role": "user", "content": "x"}], None, 5.0, on_text)

    turn = asyncio.run(go())
    assert seen == ["Let me ", "check."]  # text after a tool call started is not streamed as answer text
    assert turn.message == {"role": "assistant", "content": "Let me check. (after)", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "calc", "arguments": "{\"a\": 1}"}}]}
    assert (turn.prompt_tokens, turn.completion_tokens, turn.cost_usd) == (12, 5, 0.00042)


def test_streamed_model_call_errors_become_model_call_errors():
    import httpx

    from proxy_ext.agent.errors import ModelCallError
    from proxy_ext.agent.model_client import ModelClient

    async def go(response):
        async with httpx.AsyncClient(transport=httpx.MockTransport(lambda request: response)) as http:
            async def ignore(text):
                pass
            return await ModelClient("http://proxy", {}, http).complete_streaming("m", [], None, 5.0, ignore)

    with pytest.raises(ModelCallError) as error:
        asyncio.run(go(httpx.Response(403, json={"error": {"message": "not allowed"}})))
    assert error.value.status == 403 and error.value.message == "not allowed"
    midway = b'data: {"choices": [{"index": 0, "delta": {"content": "a"}}]}\n\ndata: {"error": {"message": "upstream died", "code": "503"}}\n\n'
    with pytest.raises(ModelCallError) as error:
        asyncio.run(go(httpx.Response(200, content=midway)))
    assert error.value.status == 503 and "upstream died" in error.value.message


def test_run_slots_refuse_beyond_the_limit_with_429():
    from proxy_ext.agent.service import RunSlots

    slots = RunSlots()
    slots.acquire(2)
    slots.acquire(2)
    with pytest.raises(AgentRequestError) as error:
        slots.acquire(2)
    assert error.value.status == 429 and "max_concurrent_runs" in error.value.message
    slots.release()
    slots.acquire(2)
