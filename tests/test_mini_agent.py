"""Agent profiles as models: ``mini-agent/<profile>`` through /v1/chat/completions with the openai client."""

from __future__ import annotations

import json
import time

import openai
import pytest

from tests.conftest import base_config
from tests.harness import REPO_ROOT, ProxyProcess, Reply, call


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
def agent_models(upstream, trace_file):
    config = _config(upstream, {
        "calc": {"escalation": ["fake/ma-cheap", "fake/ma-strong"], "tools": ["calculator"], "max_iterations": 3},
        "ghost": {"model": "fake/ma-ghost"},
    })
    config["model_list"].append({"model_name": "mini-agent/unconfigured", "litellm_params": {"model": "mini-agent/unconfigured"}})
    config["proxy_ext"]["traces"] = {"enabled": True, "path": str(trace_file)}
    config["general_settings"]["custom_auth"] = "tests.support.custom_auth.user_api_key_auth"
    config["general_settings"]["custom_auth_run_common_checks"] = True
    config["litellm_settings"]["enable_post_custom_auth_checks"] = True
    with ProxyProcess(config, env={"PYTHONPATH": str(REPO_ROOT)}) as process:
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
