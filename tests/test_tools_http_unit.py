"""HttpToolBackend against respx-mocked tool hosts: retries, Retry-After, headers, timeouts, validation."""

from __future__ import annotations

import asyncio
import datetime
import email.utils
from typing import Any

import httpx
import pytest
import respx

from proxy_ext.config import ConfigError, HttpToolConfig, parse_config
from proxy_ext.metrics import render
from proxy_ext.tools.base import ToolContext
from proxy_ext.tools.http import HttpToolBackend, ToolHostError
from proxy_ext.tools.http.retry import RetryPolicy, parse_retry_after

HOST = "http://toolhost.test"
TOOLS = {"tools": [
    {"name": "add", "description": "Add two integers.", "parameters": {
        "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"], "additionalProperties": False}},
    {"name": "ping", "description": "Pong.", "parameters": {"type": "object", "properties": {}}},
]}
CTX = ToolContext(request_headers={"authorization": "Bearer sk-caller", "x-request-id": "req-1", "x-tenant": "t1"})


class Sleeps:
    """Records the waits instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def backend(sleeps: Sleeps | None = None, rng: float = 0.5, **overrides: Any) -> HttpToolBackend:
    config = HttpToolConfig(base_url=HOST, **overrides)
    return HttpToolBackend(config, sleep=sleeps or Sleeps(), rng=lambda: rng)


@pytest.fixture
def host():
    with respx.mock(base_url=HOST, assert_all_called=False) as mock:
        mock.get("/tools").respond(json=TOOLS)
        yield mock


# ------------------------------------------------------------------------------- list / invoke


async def test_lists_tools_and_caches_the_listing(host):
    b = backend(tools_cache_ttl_s=60)
    specs = await b.list_tools(CTX)
    assert [s.name for s in specs] == ["add", "ping"]
    assert specs[0].parameters["required"] == ["a", "b"] and specs[0].description == "Add two integers."
    await b.list_tools(CTX)
    assert host.routes[0].call_count == 1
    uncached = backend(tools_cache_ttl_s=0)
    await uncached.list_tools(CTX)
    await uncached.list_tools(CTX)
    assert host.routes[0].call_count == 3


async def test_invoke_ok_and_tool_error(host):
    route = host.post("/invoke").mock(side_effect=[
        httpx.Response(200, json={"ok": True, "result": {"sum": 5}}),
        httpx.Response(200, json={"ok": False, "error": "division by zero"}),
    ])
    b = backend()
    result = await b.invoke("add", {"a": 2, "b": 3}, CTX)
    assert result.ok and result.content == {"sum": 5}
    assert route.calls[0].request.read() == b'{"name":"add","arguments":{"a":2,"b":3}}'
    failed = await b.invoke("add", {"a": 1, "b": 0}, CTX)
    assert failed.ok is False and failed.error == "division by zero"
    text = render().decode()
    assert 'proxy_ext_tool_calls_total{backend="http",outcome="ok",tool="add"}' in text
    assert 'proxy_ext_tool_call_duration_seconds_count{backend="http",tool="add"}' in text


async def test_arguments_are_validated_against_the_schema_before_invoking(host):
    route = host.post("/invoke").respond(json={"ok": True, "result": 1})
    b = backend()
    wrong_type = await b.invoke("add", {"a": "two", "b": 3}, CTX)
    assert wrong_type.ok is False and "a: 'two' is not of type 'integer'" in wrong_type.error
    missing = await b.invoke("add", {"a": 1}, CTX)
    assert missing.ok is False and "'b' is a required property" in missing.error
    unknown = await b.invoke("nope", {}, CTX)
    assert unknown.ok is False and "unknown tool 'nope'" in unknown.error and "add, ping" in unknown.error
    assert route.call_count == 0


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(500, text="boom"), "tool host answered HTTP 500: boom"),
        (httpx.Response(200, text="not json"), "invalid JSON"),
        (httpx.Response(200, json={"result": 1}), "did not answer"),
        (httpx.Response(200, json={"ok": True, "result": "x" * 5000}), "max_response_bytes"),
        (httpx.Response(302, headers={"location": "http://elsewhere.test/invoke"}), "HTTP 302"),
    ],
)
async def test_bad_responses_become_errors_the_model_sees(host, response, message):
    host.post("/invoke").mock(return_value=response)
    elsewhere = respx.post("http://elsewhere.test/invoke").respond(json={"ok": True})
    result = await backend(max_response_bytes=1024).invoke("ping", {}, CTX)
    assert result.ok is False and message in result.error
    assert elsewhere.call_count == 0  # redirects are not followed: credentials stay with the configured host


# ------------------------------------------------------------------------------------- retries


async def test_429_then_200_honours_retry_after_seconds(host):
    route = host.post("/invoke").mock(side_effect=[
        httpx.Response(429, headers={"Retry-After": "2"}),
        httpx.Response(200, json={"ok": True, "result": "pong"}),
    ])
    sleeps = Sleeps()
    before = _metric('proxy_ext_tool_retries_total{reason="429",tool="ping"}')
    result = await backend(sleeps, rng=0.5).invoke("ping", {}, CTX)
    assert result.ok and result.content == "pong" and route.call_count == 2
    assert sleeps.waits == [pytest.approx(2.25)]  # never earlier than Retry-After; jitter on top
    assert _metric('proxy_ext_tool_retries_total{reason="429",tool="ping"}') == before + 1


async def test_retry_after_as_http_date(host):
    when = email.utils.format_datetime(datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=5), usegmt=True)
    host.post("/invoke").mock(side_effect=[httpx.Response(429, headers={"Retry-After": when}), httpx.Response(200, json={"ok": True, "result": 1})])
    sleeps = Sleeps()
    result = await backend(sleeps, rng=0.0).invoke("ping", {}, CTX)
    assert result.ok and 3.5 <= sleeps.waits[0] <= 5.0


async def test_without_retry_after_the_backoff_doubles_with_jitter(host):
    host.post("/invoke").mock(side_effect=[httpx.Response(429)] * 3 + [httpx.Response(200, json={"ok": True, "result": 1})])
    sleeps = Sleeps()
    result = await backend(sleeps, rng=1.0, retry_backoff_s=0.2).invoke("ping", {}, CTX)
    assert result.ok
    assert sleeps.waits == [pytest.approx(0.25), pytest.approx(0.5), pytest.approx(1.0)]


async def test_429_retries_exhausted_is_an_error_the_run_survives(host):
    route = host.post("/invoke").respond(429, headers={"Retry-After": "1"})
    sleeps = Sleeps()
    result = await backend(sleeps, max_retries=2).invoke("ping", {}, CTX)
    assert result.ok is False and result.error == "tool host rate limit (HTTP 429) after 3 tries; it asked to wait 1 s"
    assert route.call_count == 3 and len(sleeps.waits) == 2
    assert "rate limit" in result.model_text()


async def test_total_wait_cap_stops_retrying(host):
    route = host.post("/invoke").respond(429, headers={"Retry-After": "120"})
    sleeps = Sleeps()
    result = await backend(sleeps, max_retry_wait_s=10).invoke("ping", {}, CTX)
    assert result.ok is False and "429" in result.error and route.call_count == 1 and sleeps.waits == []


async def test_retry_wait_never_outlasts_the_run_budget(host):
    host.post("/invoke").respond(429, headers={"Retry-After": "3"})
    result = await backend(Sleeps()).invoke("ping", {}, ToolContext(timeout_s=2.0))
    assert result.ok is False and "429) after 1 try;" in result.error


async def test_connect_errors_are_retried():
    with respx.mock(base_url=HOST) as mock:
        mock.get("/tools").mock(side_effect=[httpx.ConnectError("refused"), httpx.Response(200, json=TOOLS)])
        invoke = mock.post("/invoke").mock(side_effect=[httpx.ConnectTimeout("slow connect"), httpx.Response(200, json={"ok": True, "result": 1})])
        sleeps = Sleeps()
        result = await backend(sleeps).invoke("ping", {}, CTX)
    assert result.ok and invoke.call_count == 2 and len(sleeps.waits) == 2


async def test_host_down_after_the_last_try():
    with respx.mock(base_url=HOST) as mock:
        mock.get("/tools").mock(side_effect=httpx.ConnectError("refused"))
        mock.post("/invoke").mock(side_effect=httpx.ConnectError("refused"))
        b = backend(Sleeps(), max_retries=3)
        with pytest.raises(ToolHostError, match="unreachable after 4 tries"):
            await b.list_tools(CTX)
        result = await b.invoke("ping", {}, CTX)
    assert result.ok is False and result.error == "tool host unreachable after 4 tries"


async def test_read_timeout_is_not_retried(host):
    route = host.post("/invoke").mock(side_effect=httpx.ReadTimeout("slow"))
    result = await backend(Sleeps()).invoke("ping", {}, CTX)
    assert result.ok is False and "did not answer within" in result.error and route.call_count == 1


async def test_slow_host_is_bounded_by_the_timeout_and_by_the_run_budget(host):
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json={"ok": True, "result": 1})

    host.post("/invoke").mock(side_effect=slow)
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await backend(timeout_s=0.3).invoke("ping", {}, CTX)
    assert result.ok is False and "did not answer within 0.3 s" in result.error
    assert loop.time() - started < 1.5
    started = loop.time()
    result = await backend(timeout_s=10).invoke("ping", {}, ToolContext(timeout_s=0.3))
    assert result.ok is False and "did not answer" in result.error and loop.time() - started < 1.5
    text = render().decode()
    assert 'proxy_ext_tool_timeouts_total{backend="http",tool="ping"}' in text


# ------------------------------------------------------------------------------------- headers


async def test_configured_headers_merge_with_forwarded_ones_and_win(host):
    route = host.post("/invoke").respond(json={"ok": True, "result": 1})
    b = backend(headers={"X-Tool-Key": "configured", "X-Tenant": "from-config"}, forward_headers=["X-Request-Id", "X-Tenant", "X-Absent"])
    await b.invoke("ping", {}, CTX)
    sent = route.calls[0].request.headers
    assert sent["x-tool-key"] == "configured" and sent["x-request-id"] == "req-1"
    assert sent["x-tenant"] == "from-config" and "x-absent" not in sent
    assert "authorization" not in sent  # forward_authorization is off by default
    listing = host.routes[0].calls[0].request.headers
    assert listing["x-tool-key"] == "configured"


async def test_authorization_is_forwarded_only_when_enabled(host):
    route = host.post("/invoke").respond(json={"ok": True, "result": 1})
    await backend(forward_authorization=False).invoke("ping", {}, CTX)
    await backend(forward_authorization=True).invoke("ping", {}, CTX)
    await backend(forward_authorization=True).invoke("ping", {}, ToolContext())
    assert "authorization" not in route.calls[0].request.headers
    assert route.calls[1].request.headers["authorization"] == "Bearer sk-caller"
    assert "authorization" not in route.calls[2].request.headers


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"forward_headers": ["Authorization"]}, "use forward_authorization"),
        ({"forward_headers": ["x-litellm-api-key"]}, "a credential"),
        ({"forward_headers": ["Host"]}, "set by the HTTP client"),
        ({"headers": {"Authorization": "Bearer x"}, "forward_authorization": True}, "choose one"),
    ],
)
def test_config_refuses_ambiguous_or_unsafe_header_settings(section, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({"tools": {"http": {"base_url": HOST, **section}}})


# ---------------------------------------------------------------------------------- pure parts


def test_parse_retry_after():
    now = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after("0.5", now) == 0.5
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0.0  # in the past: retry now
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None and parse_retry_after("-3", now) is None


def test_retry_policy_caps_retries_and_total_wait():
    policy = RetryPolicy(max_retries=5, max_wait_s=3.5, backoff_s=1.0, random=lambda: 1.0)
    waits = []
    while (wait := policy.next_wait(None)) is not None:
        waits.append(wait)
    assert waits == [1.25, 2.25]  # 1 + jitter, then 2 + jitter cut to the 3.5 s cap; 4 would exceed it
    assert RetryPolicy(max_retries=1, max_wait_s=60, backoff_s=1.0, random=lambda: 0.0).next_wait(5.0, time_left_s=4.0) is None
    few = RetryPolicy(max_retries=1, max_wait_s=60, backoff_s=1.0, random=lambda: 0.0)
    assert few.next_wait(None) == 1.0 and few.next_wait(None) is None  # max_retries


def _metric(line_prefix: str) -> float:
    for line in render().decode().splitlines():
        if line.startswith(line_prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
