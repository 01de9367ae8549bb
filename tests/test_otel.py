"""OpenTelemetry spans of agent runs through the real proxy, exported over OTLP/HTTP to a real
receiver started by the test (tests/harness/otlp_receiver.py decodes the protobuf exports).

The shared proxy runs the documented config of docs/observability.md (its own models and the
receiver's address put in), with LiteLLM's ``otel`` callback on and pointed at the same receiver.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import base_config
from tests.harness import REPO_ROOT, ProxyProcess, Reply, call
from tests.harness.otlp_receiver import OtlpReceiver, ReceivedSpan

DOC = REPO_ROOT / "docs" / "observability.md"
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
CONTENT_KEYS = ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.tool.call.arguments", "gen_ai.tool.call.result")


def documented_config() -> dict[str, Any]:
    """The complete config of docs/observability.md (the YAML block with a model_list and traces.otel)."""
    for text in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S):
        document = yaml.safe_load(text)
        if "model_list" in document and "otel" in (document.get("proxy_ext") or {}).get("traces", {}):
            return document
    raise AssertionError("docs/observability.md has no complete config with traces.otel")


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as server:
        yield server


@pytest.fixture(scope="module")
def otel_proxy(upstream, receiver, tmp_path_factory) -> Iterator[ProxyProcess]:
    config = documented_config()
    config["model_list"] = base_config(upstream)["model_list"]  # the fake upstream instead of OpenAI
    config["proxy_ext"]["agent"]["default_model"] = "fake/otel-default"
    config["proxy_ext"]["agent"]["profiles"] = {"calc": {"model": "fake/otel-profile", "tools": ["calculator"]}}
    config["model_list"].append({"model_name": "agent-calc", "litellm_params": {"model": "mini-agent/calc"}})
    config["proxy_ext"]["traces"]["path"] = str(tmp_path_factory.mktemp("otel") / "runs.jsonl")
    otel = config["proxy_ext"]["traces"]["otel"]
    otel.update(endpoint=receiver.endpoint, schedule_delay_s=0.1, timeout_s=1)  # the test's collector; export quickly
    env = {"OTEL_EXPORTER": "otlp_http", "OTEL_ENDPOINT": receiver.traces_url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    with ProxyProcess(config, env=env) as process:
        yield process


def ours(spans: list[ReceivedSpan], trace_id: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.scope == "proxy_ext" and s.attributes.get("proxy_ext.trace_id") == trace_id]


def run_finished(trace_id: str, chats: int = 1) -> Any:
    def done(spans: list[ReceivedSpan]) -> bool:
        mine = ours(spans, trace_id)
        return any(s.name.startswith("invoke_agent") for s in mine) and sum(s.name.startswith("chat ") for s in mine) >= chats
    return done


def by_name(spans: list[ReceivedSpan]) -> dict[str, list[ReceivedSpan]]:
    named: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        named.setdefault(span.name, []).append(span)
    return named


def test_a_tool_using_run_exports_the_three_span_kinds_nested_with_litellms(otel_proxy, upstream, receiver):
    upstream.script("otel-tools", Reply(tool_calls=[call("calculator", {"expression": "6 * 7"}, "call_otel_1")]),
                    Reply(text="it is 42"))
    headers = {**otel_proxy.headers, "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}
    response = httpx.post(f"{otel_proxy.base_url}/agent/run", headers=headers, timeout=60,
                          json={"input": "what is 6 * 7? secret question", "model": "fake/otel-tools"})
    assert response.status_code == 200 and response.json()["ok"], response.text
    trace_id = response.json()["metrics"]["trace_id"]

    def complete(spans: list[ReceivedSpan]) -> bool:  # ours, LiteLLM's spans of both model calls and of /agent/run
        chats = {s.span_id for s in ours(spans, trace_id) if s.name.startswith("chat ")}
        parents = {s.parent_span_id for s in ours(spans, trace_id) if s.name.startswith("invoke_agent")}
        return (run_finished(trace_id, 2)(spans) and len({s.parent_span_id for s in spans if s.parent_span_id in chats}) == 2
                and any(s.span_id in parents for s in spans))

    spans = receiver.wait_for(complete)
    mine = by_name(ours(spans, trace_id))
    assert sorted(mine) == ["chat fake/otel-tools", "execute_tool calculator", "invoke_agent agent"]
    (agent,), chats, (tool,) = mine["invoke_agent agent"], mine["chat fake/otel-tools"], mine["execute_tool calculator"]
    everything = {s.span_id: s for s in spans}
    # One trace, the caller's: caller -> LiteLLM's span of /agent/run -> invoke_agent -> chat / execute_tool.
    assert {s.trace_id for s in ours(spans, trace_id)} == {CALLER_TRACE}
    server = everything[agent.parent_span_id]
    assert server.name == "Received Proxy Server Request" and server.parent_span_id == CALLER_SPAN and server.kind == "SERVER"
    assert all(c.parent_span_id == agent.span_id and c.kind == "CLIENT" for c in chats) and len(chats) == 2
    assert tool.parent_span_id == agent.span_id and tool.kind == "INTERNAL" and agent.kind == "INTERNAL"
    # LiteLLM's spans of each model call the agent made are children of that turn's chat span.
    for chat in chats:
        children = [s for s in spans if s.parent_span_id == chat.span_id]
        assert children and all(s.scope != "proxy_ext" for s in children), chat.name
    # Attributes.
    assert agent.attributes["gen_ai.operation.name"] == "invoke_agent" and agent.attributes["proxy_ext.stopped_reason"] == "final_answer"
    assert agent.attributes["gen_ai.request.model"] == "fake/otel-tools" and agent.attributes["gen_ai.usage.input_tokens"] == 22
    assert agent.attributes["gen_ai.usage.output_tokens"] == 14 and "proxy_ext.cost_usd" in agent.attributes
    first, second = sorted(chats, key=lambda s: s.start_ns)
    assert first.attributes["gen_ai.operation.name"] == "chat" and first.attributes["gen_ai.request.model"] == "fake/otel-tools"
    assert first.attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert second.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert first.attributes["gen_ai.usage.input_tokens"] == 11 and first.attributes["gen_ai.usage.output_tokens"] == 7
    assert tool.attributes["gen_ai.tool.name"] == "calculator" and tool.attributes["gen_ai.tool.call.id"] == "call_otel_1"
    assert agent.resource["service.name"] == "litellm-proxy" and all(s.status == "UNSET" for s in (agent, *chats, tool))
    # No content by default on our spans.
    for span in ours(spans, trace_id):
        assert not set(CONTENT_KEYS) & set(span.attributes), span.name
        assert "secret question" not in json.dumps(span.attributes) and "it is 42" not in json.dumps(span.attributes)
    # LiteLLM's span of /agent/run is ended (it used to stay open: never exported).
    assert server.end_ns >= agent.end_ns > 0


def test_an_agent_profile_used_as_a_model_is_traced_under_litellms_span_of_the_chat_call(otel_proxy, upstream, receiver):
    upstream.script("otel-profile", Reply(tool_calls=[call("calculator", {"expression": "2 + 2"}, "call_p1")]), Reply(text="four"))
    reply = otel_proxy.openai().chat.completions.create(model="agent-calc", messages=[{"role": "user", "content": "2 + 2?"}])
    assert reply.choices[0].message.content == "four"
    spans = receiver.wait_for(lambda spans: any(s.name == "invoke_agent calc" and s.attributes.get("gen_ai.request.model") == "fake/otel-profile"
                                                and any(p.span_id == s.parent_span_id for p in spans) for s in spans))
    agent = next(s for s in spans if s.name == "invoke_agent calc")
    server = next(s for s in spans if s.span_id == agent.parent_span_id)
    assert server.name == "Received Proxy Server Request" and server.trace_id == agent.trace_id
    trace_id = agent.attributes["proxy_ext.trace_id"]
    mine = by_name(ours(receiver.wait_for(run_finished(trace_id, 2)), trace_id))
    assert sorted(mine) == ["chat fake/otel-profile", "execute_tool calculator", "invoke_agent calc"]


def test_a_background_run_is_traced_with_its_run_id(otel_proxy, upstream, receiver):
    upstream.script("otel-bg", Reply(tool_calls=[call("calculator", {"expression": "1 + 1"}, "call_bg")]), Reply(text="two"))
    headers = {**otel_proxy.headers, "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}
    response = httpx.post(f"{otel_proxy.base_url}/agent/run", headers=headers, timeout=60,
                          json={"input": "1 + 1?", "model": "fake/otel-bg", "background": True})
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    mine = by_name(ours(receiver.wait_for(run_finished(run_id, 2)), run_id))
    assert sorted(mine) == ["chat fake/otel-bg", "execute_tool calculator", "invoke_agent agent"]
    (agent,) = mine["invoke_agent agent"]
    assert agent.attributes["proxy_ext.stopped_reason"] == "final_answer"
    assert all(s.parent_span_id == agent.span_id for s in [*mine["chat fake/otel-bg"], *mine["execute_tool calculator"]])


def test_no_key_or_authorization_header_in_any_exported_span(otel_proxy, upstream, receiver):
    upstream.script("otel-keys", Reply(text="fine"))
    response = httpx.post(f"{otel_proxy.base_url}/agent/run", headers=otel_proxy.headers, timeout=60,
                          json={"input": "hello", "model": "fake/otel-keys"})
    trace_id = response.json()["metrics"]["trace_id"]
    receiver.wait_for(run_finished(trace_id))
    bodies = b"".join(request["body"] for request in receiver.requests)
    assert otel_proxy.master_key.encode() not in bodies
    assert otel_proxy.master_key[3:].encode() not in bodies and b"sk-fake-upstream-key" not in bodies
    assert not any(key.lower() == "authorization" for span in receiver.snapshot() for key in span.attributes)


def test_a_streamed_run_whose_client_disconnects_still_ends_its_spans(otel_proxy, upstream, receiver):
    upstream.script("otel-hang", Reply(text="too late", latency_s=8))
    with httpx.stream("POST", f"{otel_proxy.base_url}/agent/run", headers=otel_proxy.headers, timeout=30,
                      json={"input": "hang", "model": "fake/otel-hang", "stream": True}) as response:
        trace_id = response.headers["x-proxy-ext-trace-id"]
        for line in response.iter_lines():
            if line.startswith("event: run_started"):
                break
    left = time.monotonic()
    spans = receiver.wait_for(run_finished(trace_id), timeout_s=7)  # the model would answer after 8 s
    assert time.monotonic() - left < 7
    mine = by_name(ours(spans, trace_id))
    (agent,), (chat,) = mine["invoke_agent agent"], mine["chat fake/otel-hang"]
    assert agent.status == "ERROR" and agent.attributes["proxy_ext.stopped_reason"] == "cancelled"
    assert chat.status == "ERROR" and chat.attributes["error.type"] == "cancelled"
    assert (agent.end_ns - agent.start_ns) / 1e9 < 5
    # LiteLLM's span of the streamed /agent/run request is ended too, once the stream closed.
    server = receiver.wait_for(lambda spans: any(s.span_id == agent.parent_span_id for s in spans), timeout_s=5)
    assert next(s for s in server if s.span_id == agent.parent_span_id).name == "Received Proxy Server Request"


def test_ready_reports_the_export_and_a_refusing_collector_never_breaks_a_run(otel_proxy, upstream, receiver):
    ready = httpx.get(f"{otel_proxy.base_url}/ready", params={"capability": "otel"}).json()
    assert ready["ready"] is True and ready["check"] == {"ok": True}
    receiver.status = 503
    try:
        upstream.script("otel-down", Reply(text="still answered"))
        response = httpx.post(f"{otel_proxy.base_url}/agent/run", headers=otel_proxy.headers, timeout=60,
                              json={"input": "x", "model": "fake/otel-down"})
        assert response.status_code == 200 and response.json()["final_answer"] == "still answered"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            body = httpx.get(f"{otel_proxy.base_url}/ready").json()
            if not body["checks"]["otel"]["ok"]:
                break
            time.sleep(0.2)
        assert body["status"] == "degraded" and body["failing"] == ["otel"] and "export failed" in body["checks"]["otel"]["reason"]
    finally:
        receiver.status = 200


def test_content_capture_env_configuration_and_flush_on_shutdown(upstream, receiver):
    """A second proxy: export configured by the standard OTEL_* variables alone, content capture
    on, a 60 s batch delay — the spans arrive because the proxy flushes them as it stops."""
    receiver.clear()
    config = base_config(upstream, {"agent": {"default_model": "fake/otel-default"}, "traces": {"otel": {"capture_content": True, "schedule_delay_s": 60}}})
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SERVICE_NAME": "otel-env-test",
           "OTEL_EXPORTER_OTLP_HEADERS": "x-collector-token=tok-123"}
    upstream.script("otel-content", Reply(tool_calls=[call("calculator", {"expression": "6 * 7"}, "call_c1")]), Reply(text="it is 42"))
    with ProxyProcess(config, env=env) as process:
        response = httpx.post(f"{process.base_url}/agent/run", headers=process.headers, timeout=60,
                              json={"input": f"what is 6 * 7? my key is {process.master_key}", "model": "fake/otel-content"})
        trace_id = response.json()["metrics"]["trace_id"]
        time.sleep(0.5)
        assert ours(receiver.snapshot(), trace_id) == []  # still buffered (schedule_delay_s: 60)
    spans = receiver.wait_for(run_finished(trace_id, 2), timeout_s=5)
    mine = by_name(ours(spans, trace_id))
    agent, tool = mine["invoke_agent agent"][0], mine["execute_tool calculator"][0]
    assert "what is 6 * 7?" in agent.attributes["gen_ai.input.messages"] and "it is 42" in agent.attributes["gen_ai.output.messages"]
    assert process.master_key not in agent.attributes["gen_ai.input.messages"] and "[REDACTED]" in agent.attributes["gen_ai.input.messages"]
    chats = mine["chat fake/otel-content"]
    assert all("what is 6 * 7?" in c.attributes["gen_ai.input.messages"] for c in chats)
    assert all(process.master_key not in c.attributes["gen_ai.input.messages"] for c in chats)
    assert json.loads(tool.attributes["gen_ai.tool.call.arguments"]) == {"expression": "6 * 7"}
    assert tool.attributes["gen_ai.tool.call.result"] == "42"
    assert agent.resource["service.name"] == "otel-env-test"
    carrying = [r for r in receiver.requests if trace_id.encode() in r["body"]]  # the first proxy exports here too
    assert carrying and all(r["headers"].get("x-collector-token") == "tok-123" for r in carrying)
