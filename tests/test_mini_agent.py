"""Agent profiles as models: ``mini-agent/<profile>`` through /v1/chat/completions with the openai client."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import openai
import pytest
from pydantic import BaseModel

from tests.conftest import base_config
from tests.harness import REPO_ROOT, ProxyProcess, Reply, call, fake_model_entry

PRICED = "ma-priced"
PRICE_IN, PRICE_OUT = 1e-6, 2e-6
TURN = 11 * PRICE_IN + 7 * PRICE_OUT  # one model turn of the fake upstream (11 prompt + 7 completion tokens)


def _config(upstream, profiles: dict) -> dict:
    models = [{"model_name": f"mini-agent/{name}", "litellm_params": {"model": f"mini-agent/{name}"}} for name in profiles]
    config = base_config(upstream, {"agent": {"default_model": "echo", "profiles": profiles}}, models=models)
    config["litellm_settings"]["custom_provider_map"].append(
        {"provider": "mini-agent", "custom_handler": "proxy_ext.providers.mini_agent.handler"})
    return config


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory):
    return tmp_path_factory.mktemp("mini-agent-traces") / "runs.jsonl"


@pytest.fixture(scope="module")
def spend_file(tmp_path_factory):
    return tmp_path_factory.mktemp("mini-agent-spend") / "spend.jsonl"


@pytest.fixture(scope="module")
def agent_models(upstream, trace_file, spend_file):
    config = _config(upstream, {
        "calc": {"escalation": ["fake/ma-cheap", "fake/ma-strong"], "tools": ["calculator"], "max_iterations": 3},
        "ghost": {"model": "fake/ma-ghost"},
        "priced": {"model": PRICED, "tools": ["calculator"], "max_iterations": 4},
        "slow": {"model": "fake/ma-slow"},
    })
    config["model_list"] += [
        {"model_name": "mini-agent/unconfigured", "litellm_params": {"model": "mini-agent/unconfigured"}},
        fake_model_entry(PRICED, upstream.base_url, PRICED, input_cost_per_token=PRICE_IN, output_cost_per_token=PRICE_OUT),
        {"model_name": "agent-priced", "litellm_params": {"model": "mini-agent/priced"}},
        {"model_name": "agent-slow", "litellm_params": {"model": "mini-agent/slow", "keepalive_seconds": 0.5}},
    ]
    config["proxy_ext"]["traces"] = {"enabled": True, "path": str(trace_file)}
    config["general_settings"]["custom_auth"] = "tests.support.custom_auth.user_api_key_auth"
    config["general_settings"]["custom_auth_run_common_checks"] = True
    config["litellm_settings"]["enable_post_custom_auth_checks"] = True
    config["litellm_settings"]["callbacks"].append("tests.support.spend_recorder.recorder")
    env = {"PYTHONPATH": str(REPO_ROOT), "SPEND_RECORD_PATH": str(spend_file)}
    with ProxyProcess(config, env=env) as process:
        yield process


def test_profile_model_runs_the_agent(agent_models, upstream):
    upstream.script("ma-cheap", Reply(tool_calls=[call("calculator", {"expression": "6*7"})]), Reply(text="It is 42."))
    reply = agent_models.openai().chat.completions.create(model="mini-agent/calc", messages=[{"role": "user", "content": "6 times 7?"}])
    assert reply.choices[0].message.content == "It is 42."
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (22, 14)
    metrics = reply.choices[0].message.provider_specific_fields["mini_agent"]
    assert metrics["stopped_reason"] == "final_answer"
    assert metrics["iterations"] == 2 and metrics["tool_calls"] == 1 and metrics["used_model"] == "fake/ma-cheap"
    # The agent offered only the profile's tools to its model.
    first = upstream.requests_for("ma-cheap")[-2]["body"]
    assert [t["function"]["name"] for t in first["tools"]] == ["calculator"]


def test_profile_model_streams_the_answer_as_it_is_produced(agent_models, upstream):
    upstream.script("ma-cheap", Reply(tool_calls=[call("calculator", {"expression": "2+2"})]),
                    Reply(text="the answer is four", chunk_delay_s=0.4, prompt_tokens=5, completion_tokens=4))
    started = time.monotonic()
    arrivals = []
    stream = agent_models.openai().chat.completions.create(
        model="mini-agent/calc", messages=[{"role": "user", "content": "2+2?"}], stream=True, stream_options={"include_usage": True})
    chunks = []
    for chunk in stream:
        chunks.append(chunk)
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - started)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "the answer is four"
    # Four words 0.4 s apart: the first reached the client well before the last was produced.
    assert len(arrivals) >= 3 and arrivals[-1] - arrivals[0] > 0.8
    usage = next(c.usage for c in chunks if c.usage)
    assert (usage.prompt_tokens, usage.completion_tokens) == (16, 11)  # the tool turn (11+7) plus the answer turn (5+4)
    # The agent's model calls were streamed through the proxy with usage requested.
    sent = upstream.requests_for("ma-cheap")[-1]["body"]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_client_disconnect_mid_stream_cancels_the_run(agent_models, upstream, trace_file):
    upstream.script("ma-cheap", Reply(text=" ".join(["word"] * 40), chunk_delay_s=0.25))
    stream = agent_models.openai().chat.completions.create(
        model="mini-agent/calc", messages=[{"role": "user", "content": "talk"}], stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    stream.close()
    # The run was cancelled (its trace record says so) long before the model would have finished.
    record, deadline = None, time.monotonic() + 5
    while record is None and time.monotonic() < deadline:
        lines = trace_file.read_text().splitlines() if trace_file.exists() else []
        record = next((r for r in map(json.loads, lines) if r["request"]["messages"][-1]["content"] == "talk"), None)
        time.sleep(0.1)
    assert record is not None and record["cancelled"] is True
    assert record["finished_at"] - record["started_at"] < 5  # 40 words at 0.25 s would take 10 s
    # The proxy stays responsive and serves the next run.
    upstream.script("ma-cheap", Reply(text="still here"))
    reply = agent_models.openai().chat.completions.create(model="mini-agent/calc", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "still here"


def test_escalation_inside_a_profile(agent_models, upstream):
    upstream.script("ma-cheap", Reply(status=500))
    upstream.script("ma-strong", Reply(text="strong"))
    reply = agent_models.openai().chat.completions.create(model="mini-agent/calc", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "strong"
    assert reply.choices[0].message.provider_specific_fields["mini_agent"]["escalated"] is True


def test_a_key_that_may_not_use_the_profile_gets_403(agent_models, upstream):
    before = len(upstream.requests_for("ma-cheap"))
    client = agent_models.openai(api_key="sk-test-limited")
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="mini-agent/calc", messages=[{"role": "user", "content": "hi"}])
    assert len(upstream.requests_for("ma-cheap")) == before


def test_the_agents_model_calls_use_the_callers_identity(agent_models, upstream):
    # The key may call the profile model but not the models the agent calls: refused, nothing sent upstream.
    before = len(upstream.requests_for("ma-cheap"))
    client = agent_models.openai(api_key="sk-test-agent-only")
    with pytest.raises(openai.PermissionDeniedError) as error:
        client.chat.completions.create(model="mini-agent/calc", messages=[{"role": "user", "content": "hi"}])
    assert "fake/ma-cheap" in str(error.value)
    assert len(upstream.requests_for("ma-cheap")) == before


def test_failed_runs_and_unknown_profiles_are_clear_400s(agent_models, upstream):
    client = agent_models.openai()
    with pytest.raises(openai.BadRequestError, match="no agent profile 'unconfigured'"):
        client.chat.completions.create(model="mini-agent/unconfigured", messages=[{"role": "user", "content": "hi"}])
    upstream.script("ma-ghost", Reply(tool_calls=[call("current_time", {})]))
    with pytest.raises(openai.BadRequestError, match="agent run stopped: max_iterations"):
        client.chat.completions.create(model="mini-agent/ghost", messages=[{"role": "user", "content": "hi"}])


def test_a_profile_naming_a_mini_agent_model_is_rejected_at_startup(upstream):
    process = ProxyProcess(_config(upstream, {"loop": {"escalation": ["fake/x", "mini-agent/loop"]}}))
    process.spawn()
    assert process.wait_exit(timeout_s=90) != 0
    assert "agent.profiles.loop names the model 'mini-agent/loop'" in process.log(None)


# ------------------------------------------------- cost of the run, as the client and the spend logs see it

QUESTION = [{"role": "user", "content": "6 times 7?"}]
WEATHER = {"type": "function", "function": {"name": "weather", "description": "The weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def _two_turns(upstream) -> None:
    upstream.script(PRICED, Reply(tool_calls=[call("calculator", {"expression": "6*7"})]), Reply(text="It is 42."))


def _spend_records(path, wanted: Callable[[list[dict]], bool]) -> list[dict]:
    deadline = time.monotonic() + 10
    while True:
        records = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        if wanted(records) or time.monotonic() > deadline:
            return records
        time.sleep(0.1)


def test_usage_cost_is_the_runs_cost_and_spend_counts_it_once(agent_models, upstream, spend_file):
    before = _spend_records(spend_file, lambda r: True)
    _two_turns(upstream)
    raw = agent_models.openai().chat.completions.with_raw_response.create(model="agent-priced", messages=QUESTION)
    reply = raw.parse()
    metrics = reply.choices[0].message.provider_specific_fields["mini_agent"]
    assert reply.choices[0].message.content == "It is 42."
    assert reply.usage.cost == metrics["cost_usd"] == pytest.approx(2 * TURN)
    assert reply.usage.cost_details == {"input_cost": pytest.approx(22 * PRICE_IN), "output_cost": pytest.approx(14 * PRICE_OUT)}
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (22, 14, 36)
    # LiteLLM has no figure of its own for the outer call (no cost header; 0 in its spend log below).
    assert "x-litellm-response-cost" not in raw.headers

    def complete(records: list[dict]) -> bool:
        new = records[len(before):]
        return sum(r["model"] == PRICED for r in new) >= 2 and any(r["model"] == "agent-priced" for r in new)

    new = _spend_records(spend_file, complete)[len(before):]
    inner = [r["cost"] for r in new if r["model"] == PRICED]
    outer = [r["cost"] for r in new if r["model"] == "agent-priced"]
    assert len(inner) == 2 and sum(inner) == pytest.approx(reply.usage.cost)
    assert outer == [0.0]


def test_streamed_reply_carries_the_runs_cost_and_only_standard_chunks(agent_models, upstream):
    _two_turns(upstream)
    response = httpx.post(f"{agent_models.base_url}/v1/chat/completions", headers=agent_models.headers, timeout=30, json={
        "model": "agent-priced", "messages": QUESTION, "stream": True, "stream_options": {"include_usage": True}})
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ") and line != "data: [DONE]"]
    usages = [e["usage"] for e in events if e.get("usage")]
    assert len(usages) == 1 and usages[0]["cost"] == pytest.approx(2 * TURN) and usages[0]["total_tokens"] == 36
    assert usages[0]["cost_details"] == {"input_cost": pytest.approx(22 * PRICE_IN), "output_cost": pytest.approx(14 * PRICE_OUT)}
    choices = [c for e in events for c in e["choices"]]
    assert "".join(c["delta"].get("content") or "" for c in choices) == "It is 42."
    assert [c["finish_reason"] for c in choices if c.get("finish_reason")] == ["stop"]
    # No extra top-level key and no empty-content provider_specific_fields delta.
    assert all(set(e) <= {"id", "object", "created", "model", "choices", "usage", "system_fingerprint"} for e in events), events
    assert not any("provider_specific_fields" in c["delta"] for c in choices)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_responses_api_usage_carries_the_runs_cost(agent_models, upstream, stream):
    _two_turns(upstream)
    client = agent_models.openai()
    if stream:
        events = list(client.responses.create(model="agent-priced", input="6 times 7?", stream=True))
        response = next(e for e in events if e.type == "response.completed").response
    else:
        response = client.responses.create(model="agent-priced", input="6 times 7?")
    assert response.output_text == "It is 42."
    assert response.usage.total_tokens == 36
    assert response.usage.cost == pytest.approx(2 * TURN)


# ------------------------------------------------------------------------------ the client's own tools


def test_client_tools_join_the_run_and_a_call_to_one_is_handed_back(agent_models, upstream):
    upstream.script(PRICED, Reply(tool_calls=[call("calculator", {"expression": "6*7"})]),
                    Reply(text="Checking the weather.", tool_calls=[call("weather", {"city": "Paris"}, "call_w1")]),
                    Reply(text="42, and sunny in Paris."))
    client = agent_models.openai()
    messages: list[dict] = [{"role": "user", "content": "6*7, and the weather in Paris?"}]
    reply = client.chat.completions.create(model="agent-priced", messages=messages, tools=[WEATHER])
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Checking the weather."
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls] == [
        ("call_w1", "weather", {"city": "Paris"})]
    assert choice.message.provider_specific_fields["mini_agent"]["stopped_reason"] == "tool_calls"
    assert reply.usage.cost == pytest.approx(2 * TURN)  # the calculator turn and the turn that called weather
    offered = upstream.requests_for(PRICED)[-1]["body"]["tools"]
    assert [t["function"]["name"] for t in offered] == ["calculator", "weather"]
    # The client runs its tool and continues the conversation, as with any model.
    messages += [{"role": "assistant", "content": choice.message.content,
                  "tool_calls": [c.model_dump(include={"id", "type", "function"}) for c in choice.message.tool_calls]},
                 {"role": "tool", "tool_call_id": "call_w1", "content": "sunny"}]
    final = client.chat.completions.create(model="agent-priced", messages=messages, tools=[WEATHER])
    assert final.choices[0].finish_reason == "stop" and final.choices[0].message.content == "42, and sunny in Paris."
    sent = upstream.requests_for(PRICED)[-1]["body"]["messages"]
    assert sent[-2]["tool_calls"][0]["id"] == "call_w1" and sent[-1] == {"role": "tool", "tool_call_id": "call_w1", "content": "sunny"}


def test_a_streamed_client_tool_call(agent_models, upstream):
    upstream.script(PRICED, Reply(tool_calls=[call("weather", {"city": "Oslo"}, "call_s1")]))
    chunks = list(agent_models.openai().chat.completions.create(
        model="agent-priced", messages=[{"role": "user", "content": "Oslo?"}], tools=[WEATHER], stream=True,
        stream_options={"include_usage": True}))
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [("call_s1", "weather", '{"city": "Oslo"}')]
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    assert next(c.usage for c in chunks if c.usage).cost == pytest.approx(TURN)


def test_a_turn_calling_own_and_client_tools_hands_back_only_the_clients(agent_models, upstream):
    upstream.script(PRICED, Reply(tool_calls=[call("calculator", {"expression": "1+1"}, "call_c"),
                                              call("weather", {"city": "Rome"}, "call_w")]))
    reply = agent_models.openai().chat.completions.create(model="agent-priced", messages=QUESTION, tools=[WEATHER])
    assert [c.id for c in reply.choices[0].message.tool_calls] == ["call_w"]
    assert reply.choices[0].message.provider_specific_fields["mini_agent"]["tool_calls"] == 0  # calculator not run


def test_tool_choice_none_offers_only_the_profiles_tools(agent_models, upstream):
    upstream.script(PRICED, Reply(text="no tools needed"))
    reply = agent_models.openai().chat.completions.create(model="agent-priced", messages=QUESTION, tools=[WEATHER], tool_choice="none")
    assert reply.choices[0].message.content == "no tools needed"
    assert [t["function"]["name"] for t in upstream.requests_for(PRICED)[-1]["body"]["tools"]] == ["calculator"]


class Answer(BaseModel):
    value: int


def test_response_format_reaches_every_model_call_of_the_run(agent_models, upstream):
    # Structured output (the SDK's parse helper): the run's model is asked for the client's format
    # on every turn, so the answer the client parses is one the model was told to write.
    upstream.script(PRICED, Reply(tool_calls=[call("calculator", {"expression": "6*7"})]), Reply(text='{"value": 42}'))
    before = len(upstream.requests_for(PRICED))
    reply = agent_models.openai().chat.completions.parse(model="agent-priced", messages=QUESTION, response_format=Answer)
    assert reply.choices[0].message.parsed == Answer(value=42)
    sent = [r["body"] for r in upstream.requests_for(PRICED)[before:]]
    assert len(sent) == 2 and all(b["response_format"]["type"] == "json_schema" for b in sent)
    assert all(b["response_format"]["json_schema"]["name"] == "Answer" for b in sent) and "tools" in sent[0]


def test_responses_api_text_format_reaches_the_runs_model(agent_models, upstream):
    upstream.script(PRICED, Reply(text='{"value": 7}'))
    schema = {"type": "object", "properties": {"value": {"type": "integer"}}, "required": ["value"], "additionalProperties": False}
    events = list(agent_models.openai().responses.create(
        model="agent-priced", input="seven", stream=True,
        text={"format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}}))
    assert next(e for e in events if e.type == "response.completed").response.output_text == '{"value": 7}'
    sent = upstream.requests_for(PRICED)[-1]["body"]
    assert sent["response_format"]["json_schema"]["schema"] == schema


@pytest.mark.parametrize("extra, needle", [
    ({"tools": [WEATHER], "tool_choice": "required"}, "agent profile 'priced' runs its own tool loop"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "weather"}}}, "a named function"),
    ({"tools": [{"type": "function", "function": {"name": "calculator"}}]}, "names of tools agent profile 'priced' runs itself"),
    ({"tools": [WEATHER, WEATHER]}, "repeated: ['weather']"),
    ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "function.name must be"),
    ({"tools": [{"type": "custom", "custom": {"name": "grep"}}]}, "accepts only function tools from the client; tools[0] has type 'custom'"),
    ({"n": 2}, "gives one answer per request: n=2"),
    ({"response_format": {"type": "xml"}}, "response_format must be an object with type one of"),
    ({"functions": [WEATHER["function"]]}, "takes the client's functions as tools: send functions as tools=["),
], ids=["required", "named", "clash", "duplicate", "bad-name", "custom", "n", "bad-format", "legacy-functions"])
def test_client_tools_the_agent_cannot_honour_are_400s_naming_the_profile(agent_models, upstream, extra, needle):
    before = len(upstream.requests_for(PRICED))
    with pytest.raises(openai.BadRequestError) as error:
        agent_models.openai().chat.completions.create(model="agent-priced", messages=QUESTION, **extra)
    assert needle in str(error.value)
    assert len(upstream.requests_for(PRICED)) == before


def test_agent_runs_may_not_use_a_model_routed_to_an_agent_profile(agent_models):
    response = httpx.post(f"{agent_models.base_url}/agent/run", headers=agent_models.headers, timeout=30,
                          json={"input": "hi", "model": "agent-priced"})
    assert response.status_code == 400 and "is an agent profile" in response.json()["error"]["message"]


def test_keepalive_pings_hold_a_stream_open_while_the_agent_works(agent_models, upstream):
    # A mini-agent stream has no bytes to send until the first answer text; behind a proxy with an
    # idle timeout, LiteLLM's SSE keepalive (docs/agent.md) fills the wait with comments. Here it is
    # the model's own `keepalive_seconds` (the global switch is litellm_settings'); same mechanism.
    upstream.respond("ma-slow", lambda body: Reply(text="done at last", latency_s=2.5))
    body = {"model": "agent-slow", "stream": True, "messages": [{"role": "user", "content": "take your time"}]}
    with httpx.stream("POST", f"{agent_models.base_url}/v1/chat/completions", json=body, headers=agent_models.headers, timeout=30) as response:
        lines = [line for line in response.iter_lines() if line]
    first_data = next(i for i, line in enumerate(lines) if line.startswith("data:"))
    assert response.status_code == 200 and first_data >= 2 and all(line.startswith(":") for line in lines[:first_data]), lines[:6]
    chunks = [json.loads(line[5:]) for line in lines[first_data:] if line.startswith("data:") and line != "data: [DONE]"]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")) == "done at last"


@pytest.mark.parametrize("path, body", [
    ("/v1/chat/completions", {"model": "agent-priced", "messages": [{"role": "user", "content": "a" * 1_100_000}]}),
    ("/v1/responses", {"model": "mini-agent/calc", "input": "a" * 1_100_000}),
])
def test_an_agent_model_takes_the_body_limit_of_an_agent_run(agent_models, upstream, path, body):
    # A mini-agent request is an agent run: its conversation is copied into the run's history, its
    # checkpoints and its trace, so it gets /agent/run's body limit (1 MiB by default), not the
    # guard's 32 MiB (a 31 MB prompt left 250 MB behind per request, and a 32 MB trace record).
    before = len(upstream.requests)
    response = httpx.post(f"{agent_models.base_url}{path}", json=body, headers=agent_models.headers, timeout=30)
    assert response.status_code == 413, response.text
    assert "limit of 1048576 bytes of an agent run" in response.json()["error"]["message"]
    assert len(upstream.requests) == before
    small = httpx.post(f"{agent_models.base_url}/v1/chat/completions", headers=agent_models.headers, timeout=30,
                       json={"model": "echo", "messages": [{"role": "user", "content": "a" * 1_100_000}]})
    assert small.status_code == 200, small.text[:300]  # other models keep the guard's limit


@pytest.fixture(scope="module")
def limit_redis_gone(upstream):
    from tests.harness.fake_upstream import free_port

    config = _config(upstream, {"plain": {}})
    config["proxy_ext"]["scale"] = {"global_max_concurrent_runs": 4, "redis_url": f"redis://127.0.0.1:{free_port()}/0"}
    with ProxyProcess(config) as proxy:
        yield proxy


@pytest.mark.parametrize("stream", [False, True])
def test_an_open_breaker_is_a_503_with_retry_after_the_router_does_not_retry(limit_redis_gone, stream):
    # The global limit's Redis is unreachable: /agent/run answers 503 + Retry-After at once, and so
    # must a mini-agent model. LiteLLM's Router used to retry the 503 twice with backoff (4-5 s),
    # each retry refused again by the same open breaker, and the answer lost its Retry-After.
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as refused:
        answer = limit_redis_gone.openai().chat.completions.create(model="mini-agent/plain", messages=QUESTION, stream=stream)
        list(answer) if stream else None
    elapsed = time.monotonic() - started
    assert refused.value.status_code == 503 and "global_max_concurrent_runs" in str(refused.value)
    assert refused.value.response.headers.get("retry-after") == "2"
    assert elapsed < 2.0, f"{elapsed:.1f} s: retried while the breaker was open"


def test_a_reply_appended_to_the_conversation_does_not_send_the_runs_metrics_upstream(agent_models, upstream):
    upstream.script(PRICED, Reply(text="Hello Ann."), Reply(text="You are Ann."))
    client = agent_models.openai()
    messages: list = [{"role": "user", "content": "I am Ann."}]
    reply = client.chat.completions.create(model="agent-priced", messages=messages)
    assert "mini_agent" in reply.choices[0].message.provider_specific_fields
    messages += [reply.choices[0].message, {"role": "user", "content": "Who am I?"}]  # the openai client's idiom
    assert client.chat.completions.create(model="agent-priced", messages=messages).choices[0].message.content == "You are Ann."
    sent = upstream.requests_for(PRICED)[-1]["body"]["messages"]
    assert sent == [{"role": "user", "content": "I am Ann."}, {"role": "assistant", "content": "Hello Ann."},
                    {"role": "user", "content": "Who am I?"}]  # an earlier run's trace id and cost are not the model's business


def test_an_item_reference_in_responses_input_is_a_400_not_a_dropped_turn(agent_models, upstream):
    # LiteLLM's bridge from the Responses API to chat completions drops item_reference items: the
    # run answered "and the weather there?" without the message the reference pointed at.
    before = len(upstream.requests_for(PRICED))
    with pytest.raises(openai.BadRequestError) as error:
        agent_models.openai().responses.create(model="agent-priced", input=[
            {"type": "item_reference", "id": "msg_earlier"}, {"role": "user", "content": "and the weather there?"}])
    assert "input[0] is an item_reference" in str(error.value) and "Send the item itself" in str(error.value)
    assert len(upstream.requests_for(PRICED)) == before
