"""The OpenTelemetry consumer of run events, with the real run loop, a scripted model client and an
in-memory span exporter (no proxy): span kinds, parent links, attributes, content capture,
cancellation, and the export settings read from config and the standard OTEL_* variables."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from proxy_ext.agent import otel, otel_export
from proxy_ext.agent.events import EventStream, RunFinished
from proxy_ext.agent.model_client import ModelClient, ModelTurn
from proxy_ext.agent.request import AgentRunRequest, resolve
from proxy_ext.agent.runner import RunSettings, run_agent
from proxy_ext.config import OtelConfig, parse_config
from proxy_ext.exceptions import ModelCallError
from proxy_ext.tools.base import ToolContext, ToolResult, ToolSpec

KEY = "sk-unit-caller-key-0123456789"
HEADERS = {"authorization": f"Bearer {KEY}"}


class ScriptedClient:
    """A model client answering from a list of ModelTurns (or raising ModelCallErrors)."""

    def __init__(self, *turns: Any, hold: asyncio.Event | None = None) -> None:
        self.turns = list(turns)
        self.hold = hold
        self.trace_headers: Any = None
        self.seen_headers: list[dict[str, str]] = []

    async def complete(self, model: str, messages: list[dict[str, Any]], tools: Any, timeout_s: float) -> ModelTurn:
        self.seen_headers.append(dict(self.trace_headers() if self.trace_headers else {}))
        if self.hold is not None:
            await self.hold.wait()
        turn = self.turns.pop(0)
        if isinstance(turn, Exception):
            raise turn
        return turn


class Backend:
    async def invoke(self, name: str, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        if name == "broken":
            return ToolResult(ok=False, error=f"it broke, key {KEY}")
        return ToolResult(ok=True, content={"sum": arguments["a"] + arguments["b"], "echo": f"Bearer {KEY}"})


def tool_turn(*names: str) -> ModelTurn:
    calls = [{"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": json.dumps({"a": 1, "b": 2})}}
             for i, n in enumerate(names)]
    return ModelTurn({"role": "assistant", "content": None, "tool_calls": calls}, 10, 5, 0.001, finish_reason="tool_calls")


ANSWER = ModelTurn({"role": "assistant", "content": "the answer is 3"}, 20, 4, 0.002, finish_reason="stop")


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def recorder_for(exporter: InMemorySpanExporter, headers: dict[str, str] | None = None, **config: Any) -> otel.OtelRecorder:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    headers = {**HEADERS, **(headers or {})}
    return otel.OtelRecorder(provider.get_tracer("test"), trace_id="run-1", profile=config.pop("profile", None),
                             parent=otel.parent_context(headers), config=OtelConfig(**config), headers=headers,
                             messages=[{"role": "user", "content": "add 1 and 2"}])


async def run(recorder: otel.OtelRecorder, client: ScriptedClient, tools: tuple[str, ...] = ("add",),
              settings: RunSettings = RunSettings(fallback=False), **request: Any) -> Any:
    spec = resolve(AgentRunRequest(input="add 1 and 2", **request), parse_config({"agent": {"default_model": "m1"}}, env={}).agent)
    events = EventStream([recorder])
    client.trace_headers = recorder.trace_headers
    return await run_agent(spec=spec, settings=settings, client=client, backend=Backend(),  # type: ignore[arg-type]
                           tools=[ToolSpec(t) for t in tools], tool_ctx=ToolContext(), trace_id="run-1", events=events)


def by_name(exporter: InMemorySpanExporter) -> dict[str, list[Any]]:
    spans: dict[str, list[Any]] = {}
    for span in exporter.get_finished_spans():
        spans.setdefault(span.name, []).append(span)
    return spans


def everything(exporter: InMemorySpanExporter) -> str:
    return json.dumps([json.loads(s.to_json()) for s in exporter.get_finished_spans()])


async def test_a_tool_using_run_gives_the_three_span_kinds_with_parent_links(exporter):
    recorder = recorder_for(exporter, profile="demo")
    client = ScriptedClient(tool_turn("add"), ANSWER)
    result = await run(recorder, client)
    assert result.envelope.ok
    spans = by_name(exporter)
    assert sorted(spans) == ["chat m1", "execute_tool add", "invoke_agent demo"]
    (agent,), chats, (tool,) = spans["invoke_agent demo"], spans["chat m1"], spans["execute_tool add"]
    assert agent.parent is None and agent.kind == SpanKind.INTERNAL
    assert len(chats) == 2 and all(c.parent.span_id == agent.context.span_id and c.kind == SpanKind.CLIENT for c in chats)
    assert tool.parent.span_id == agent.context.span_id
    assert {s.context.trace_id for s in exporter.get_finished_spans()} == {agent.context.trace_id}
    assert agent.attributes["gen_ai.operation.name"] == "invoke_agent" and agent.attributes["gen_ai.agent.name"] == "demo"
    assert agent.attributes["proxy_ext.trace_id"] == "run-1" and agent.attributes["proxy_ext.stopped_reason"] == "final_answer"
    assert agent.attributes["gen_ai.usage.input_tokens"] == 30 and agent.attributes["gen_ai.usage.output_tokens"] == 9
    assert agent.attributes["proxy_ext.cost_usd"] == pytest.approx(0.003) and agent.status.status_code == StatusCode.UNSET
    first, second = sorted(chats, key=lambda c: c.start_time)
    assert first.attributes["gen_ai.operation.name"] == "chat" and first.attributes["gen_ai.request.model"] == "m1"
    assert first.attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert second.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert second.attributes["gen_ai.usage.input_tokens"] == 20 and second.attributes["proxy_ext.cost_usd"] == 0.002
    assert tool.attributes["gen_ai.tool.name"] == "add" and tool.attributes["gen_ai.tool.call.id"] == "call_0"
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    # Each model call carried the traceparent of its own chat span.
    assert [h["traceparent"].split("-")[2] for h in client.seen_headers] == [format(c.context.span_id, "016x") for c in (first, second)]
    # No content by default, and never the caller's key.
    dump = everything(exporter)
    assert "gen_ai.input.messages" not in dump and "gen_ai.tool.call.arguments" not in dump and "the answer is 3" not in dump
    assert KEY not in dump


async def test_content_capture_records_prompts_answers_and_tool_io_redacted(exporter):
    recorder = recorder_for(exporter, capture_content=True, max_content_chars=64)
    await run(recorder, ScriptedClient(tool_turn("add"), ANSWER))
    spans = by_name(exporter)
    agent, tool = spans["invoke_agent agent"][0], spans["execute_tool add"][0]
    assert "add 1 and 2" in agent.attributes["gen_ai.input.messages"]
    assert "the answer is 3" in agent.attributes["gen_ai.output.messages"]
    assert json.loads(tool.attributes["gen_ai.tool.call.arguments"]) == {"a": 1, "b": 2}
    assert "[REDACTED]" in tool.attributes["gen_ai.tool.call.result"] and '"sum": 3' in tool.attributes["gen_ai.tool.call.result"]
    assert any("the answer is 3" in c.attributes.get("gen_ai.output.messages", "") for c in spans["chat m1"])
    # Each chat span has the prompt it sent (cut to 64 characters here): the second one is longer.
    prompts = [c.attributes["gen_ai.input.messages"] for c in spans["chat m1"]]
    assert all("add 1 and 2" in p for p in prompts) and prompts[0] != prompts[-1]
    assert all(len(v) <= 64 + len("…[truncated]") for s in exporter.get_finished_spans() for v in s.attributes.values() if isinstance(v, str))
    assert KEY not in everything(exporter)


async def test_the_run_span_continues_the_callers_traceparent(exporter):
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    await run(recorder_for(exporter, {"traceparent": parent}), ScriptedClient(ANSWER))
    agent = by_name(exporter)["invoke_agent agent"][0]
    assert format(agent.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert format(agent.parent.span_id, "016x") == "b7ad6b7169203331"


async def test_failures_set_error_status_without_leaking_the_key(exporter):
    error = ModelCallError("m1", 500, f"upstream said no to Bearer {KEY}")
    result = await run(recorder_for(exporter), ScriptedClient(tool_turn("broken"), error), tools=("broken",))
    assert not result.envelope.ok
    spans = by_name(exporter)
    tool, agent = spans["execute_tool broken"][0], spans["invoke_agent agent"][0]
    failed_chat = next(c for c in spans["chat m1"] if c.status.status_code == StatusCode.ERROR)
    assert tool.status.status_code == StatusCode.ERROR and tool.attributes["error.type"] == "tool_error"
    assert failed_chat.attributes["http.response.status_code"] == 500 and failed_chat.attributes["error.type"] == "500"
    assert agent.status.status_code == StatusCode.ERROR and agent.attributes["error.type"] == agent.attributes["proxy_ext.stopped_reason"]
    assert KEY not in everything(exporter)


async def test_a_run_awaiting_approval_ends_its_spans_without_an_error(exporter):
    settings = RunSettings(fallback=False, requires_approval=("add",))
    result = await run(recorder_for(exporter), ScriptedClient(tool_turn("add")), settings=settings)
    assert result.envelope.stopped_reason == "awaiting_approval"
    spans = by_name(exporter)
    assert sorted(spans) == ["chat m1", "invoke_agent agent"]  # the tool did not run
    agent = spans["invoke_agent agent"][0]
    assert agent.status.status_code == StatusCode.UNSET and agent.attributes["proxy_ext.stopped_reason"] == "awaiting_approval"
    (event,) = [e for e in agent.events if e.name == "proxy_ext.approval_requested"]
    assert event.attributes["gen_ai.tool.name"] == ("add",) and event.attributes["gen_ai.tool.call.id"] == ("call_0",)


async def test_a_cancelled_run_still_ends_every_span(exporter):
    recorder = recorder_for(exporter)
    hold = asyncio.Event()
    task = asyncio.get_running_loop().create_task(run(recorder, ScriptedClient(ANSWER, hold=hold)))
    task.add_done_callback(recorder.close)  # as the run facade does
    while recorder.chat is None:
        await asyncio.sleep(0.01)
    assert exporter.get_finished_spans() == ()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    spans = by_name(exporter)
    assert sorted(spans) == ["chat m1", "invoke_agent agent"]
    assert all(s.status.status_code == StatusCode.ERROR and s.attributes["error.type"] == "cancelled" for s in exporter.get_finished_spans())
    assert spans["invoke_agent agent"][0].attributes["proxy_ext.stopped_reason"] == "cancelled"


async def test_run_finished_without_an_envelope_is_a_cancellation(exporter):
    recorder = recorder_for(exporter)
    hold = asyncio.Event()
    task = asyncio.get_running_loop().create_task(run(recorder, ScriptedClient(ANSWER, hold=hold)))
    while recorder.chat is None:
        await asyncio.sleep(0.01)
    recorder(RunFinished(None))  # what the facade publishes for a cancelled run
    recorder.close()
    task.cancel()
    assert {s.attributes["error.type"] for s in exporter.get_finished_spans()} == {"cancelled"}
    assert len(exporter.get_finished_spans()) == 2


def test_model_client_replaces_the_callers_trace_context():
    client = ModelClient("http://proxy", {"Authorization": "Bearer x", "traceparent": "00-caller", "tracestate": "a=b"}, http=None)  # type: ignore[arg-type]
    assert client._headers()["traceparent"] == "00-caller"  # OTel off: forwarded as the caller sent it
    client.trace_headers = lambda: {"traceparent": "00-ours"}
    headers = client._headers()
    assert headers["traceparent"] == "00-ours" and "tracestate" not in headers and headers["Authorization"] == "Bearer x"


# ------------------------------------------------------------------------------- export settings


@pytest.mark.parametrize("env, config, enabled", [
    ({}, {}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, {}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, {}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, {}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, {"enabled": False}, False),
    ({}, {"enabled": True}, True),
])
def test_enabled_by_config_or_the_standard_endpoint_variables(env, config, enabled):
    assert otel_export.is_enabled(OtelConfig(**config), env) is enabled


def test_endpoint_and_headers_from_config_over_the_standard_variables():
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://base:4318/", "OTEL_EXPORTER_OTLP_HEADERS": "x-team=a%20b,x-env=prod"}
    resolved = otel_export.resolve(OtelConfig(), env)
    assert resolved.endpoint == "http://base:4318/v1/traces" and resolved.headers == {"x-team": "a b", "x-env": "prod"}
    env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = "http://traces:4318/custom"
    env["OTEL_EXPORTER_OTLP_TRACES_HEADERS"] = "x-env=staging"
    resolved = otel_export.resolve(OtelConfig(), env)
    assert resolved.endpoint == "http://traces:4318/custom" and resolved.headers["x-env"] == "staging"
    resolved = otel_export.resolve(OtelConfig(endpoint="http://cfg:4318", headers={"X-Env": "cfg"}), env)
    assert resolved.endpoint == "http://cfg:4318/v1/traces" and resolved.headers["x-env"] == "cfg"
    assert otel_export.resolve(OtelConfig(endpoint="http://cfg:9/otlp/v1/traces"), {}).endpoint == "http://cfg:9/otlp/v1/traces"
    assert otel_export.resolve(OtelConfig(), {}).endpoint == "http://localhost:4318/v1/traces"


def test_headers_may_name_environment_variables():
    config = parse_config({"traces": {"otel": {"headers": {"x-api-key": "os.environ/COLLECTOR_KEY"}}}}, env={"COLLECTOR_KEY": "k"})
    assert config.traces.otel.headers == {"x-api-key": "k"}


def test_service_name_precedence(monkeypatch):
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    name = lambda config: otel_export._resource(otel_export.resolve(config, {})).attributes["service.name"]  # noqa: E731
    assert name(OtelConfig()) == "litellm-proxy"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs,deployment.environment=test")
    assert name(OtelConfig()) == "from-attrs"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    assert name(OtelConfig()) == "from-env"
    assert name(OtelConfig(service_name="from-config")) == "from-config"


def test_config_rejects_a_batch_larger_than_the_queue():
    with pytest.raises(Exception, match="max_export_batch_size"):
        parse_config({"traces": {"otel": {"max_queue_size": 10, "max_export_batch_size": 20}}}, env={})


def test_a_failing_exporter_is_recorded_not_raised():
    class Broken:
        def export(self, spans: Any) -> Any:
            raise ConnectionError("collector down")

    state = otel_export.export_state()
    failed = state.failed
    assert otel_export._tracking_exporter(Broken()).export([SimpleNamespace()]) == SpanExportResult.FAILURE
    assert state.failed == failed + 1 and state.last_ok is False


def test_ready_and_doctor_name_the_export_only_when_it_is_on(tmp_path, monkeypatch):
    from proxy_ext import ready
    from proxy_ext.cli import diagnose
    from proxy_ext.state import Runtime

    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-doctor-test-key-0123456789abcdef")
    assert "otel" not in ready.enabled_checks(Runtime(settings=parse_config({}, env={})))
    assert "otel" in ready.enabled_checks(Runtime(settings=parse_config({"traces": {"otel": {"enabled": True}}}, env={})))
    config = tmp_path / "proxy_config.yaml"
    config.write_text("model_list: [{model_name: echo, litellm_params: {model: echo/echo-1}}]\n"
                      "litellm_settings: {callbacks: [proxy_ext.extension]}\n"
                      "general_settings: {master_key: os.environ/LITELLM_MASTER_KEY}\n"
                      "proxy_ext: {traces: {otel: {enabled: true, endpoint: 'http://collector:4318', capture_content: true}}}\n")
    report = diagnose(config)
    assert report.ok, report.problems
    assert report.capabilities["otel traces"] == "on (OTLP/HTTP to http://collector:4318/v1/traces, service litellm-proxy, with content)"
    assert any("capture_content" in warning for warning in report.warnings)


def test_shutdown_flushes_and_is_bounded_when_the_collector_hangs():
    import threading
    import time

    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    release = threading.Event()

    class Hanging(InMemorySpanExporter):
        def export(self, spans: Any) -> Any:
            release.wait(10)
            return super().export(spans)

    for exporter, bound in ((InMemorySpanExporter(), 2.0), (Hanging(), 2.0)):
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
        otel_export.use_provider(provider)
        otel_export.tracer(OtelConfig()).start_span("buffered").end()
        started = time.monotonic()
        otel_export.shutdown(0.3)
        assert time.monotonic() - started < bound
        if not isinstance(exporter, Hanging):
            assert [s.name for s in exporter.get_finished_spans()] == ["buffered"]  # flushed, not lost
    release.set()
    otel_export.use_provider(None)
