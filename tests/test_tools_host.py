"""The http tool backend against the reference tool host started as a real process."""

from __future__ import annotations

import hashlib
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from proxy_ext.config import HttpToolConfig
from proxy_ext.tools.base import ToolContext
from proxy_ext.tools.http import HttpToolBackend, ToolHostError
from tests.harness.tool_host import ToolHostProcess

TOKEN = "tool-host-token-" + uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def host() -> Iterator[ToolHostProcess]:
    with ToolHostProcess(token=TOKEN) as process:
        yield process


def backend(host: ToolHostProcess, **overrides: Any) -> HttpToolBackend:
    settings: dict[str, Any] = {"base_url": host.base_url, "headers": {"X-Tool-Token": TOKEN}, "retry_backoff_s": 0.01, **overrides}
    return HttpToolBackend(HttpToolConfig(**settings))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_lists_the_reference_tools(host):
    specs = await backend(host).list_tools(ToolContext())
    assert {"echo", "add", "sleep", "flaky", "whoami"} <= {s.name for s in specs}
    add = next(s for s in specs if s.name == "add")
    assert add.parameters["required"] == ["a", "b"]


async def test_invokes_a_tool_and_reports_tool_errors(host):
    b = backend(host)
    result = await b.invoke("add", {"a": 40, "b": 2}, ToolContext())
    assert result.ok and result.content == 42
    failed = await b.invoke("fail", {"message": "disk on fire"}, ToolContext())
    assert failed.ok is False and failed.error == "disk on fire"
    invalid = await b.invoke("add", {"a": "x", "b": 2}, ToolContext())
    assert invalid.ok is False and "is not of type 'integer'" in invalid.error


async def test_missing_token_is_an_error_the_model_sees(host):
    b = backend(host, headers={})
    with pytest.raises(ToolHostError, match="HTTP 401"):
        await b.list_tools(ToolContext())
    result = await b.invoke("add", {"a": 1, "b": 2}, ToolContext())
    assert result.ok is False and "HTTP 401" in result.error


async def test_429_from_the_host_is_retried_then_succeeds(host):
    key = uuid.uuid4().hex
    result = await backend(host, max_retries=3).invoke("flaky", {"key": key, "failures": 2}, ToolContext())
    assert result.ok and result.content == {"attempts": 3}


async def test_429_retries_exhausted(host):
    key = uuid.uuid4().hex
    started = time.monotonic()
    result = await backend(host, max_retries=2).invoke("flaky", {"key": key, "failures": 10, "retry_after": "1"}, ToolContext())
    assert result.ok is False and "429) after 3 tries; it asked to wait 1 s" in result.error
    assert 2.0 <= time.monotonic() - started < 5.0  # two Retry-After waits of 1 s (+ jitter)


async def test_headers_reach_the_host_as_configured(host):
    ctx = ToolContext(request_headers={"authorization": "Bearer sk-caller-1", "x-request-id": "rid-7", "x-secret-internal": "no"})
    plain = await backend(host, forward_headers=["X-Request-Id"]).invoke("whoami", {}, ctx)
    assert plain.ok and plain.content["authorization_sha256"] is None
    assert plain.content["x_request_id"] == "rid-7" and "x-secret-internal" not in plain.content["headers"]
    forwarded = await backend(host, forward_authorization=True).invoke("whoami", {}, ctx)
    assert forwarded.content["authorization_sha256"] == hashlib.sha256(b"Bearer sk-caller-1").hexdigest()[:16]
    assert forwarded.content["x_request_id"] is None


async def test_slow_host_times_out(host):
    started = time.monotonic()
    result = await backend(host, timeout_s=0.5).invoke("sleep", {"seconds": 5}, ToolContext())
    assert result.ok is False and "did not answer within 0.5 s" in result.error
    assert time.monotonic() - started < 2.0
    budget = await backend(host).invoke("sleep", {"seconds": 5}, ToolContext(timeout_s=0.4))
    assert budget.ok is False and "did not answer" in budget.error


async def test_host_down():
    b = HttpToolBackend(HttpToolConfig(base_url=f"http://127.0.0.1:{closed_port()}", max_retries=2, retry_backoff_s=0.01))
    with pytest.raises(ToolHostError, match="unreachable after 3 tries"):
        await b.list_tools(ToolContext())
    result = await b.invoke("add", {"a": 1, "b": 2}, ToolContext())
    assert result.ok is False and result.error == "tool host unreachable after 3 tries"


async def test_host_that_goes_away_keeps_the_last_listing():
    with ToolHostProcess() as process:
        b = HttpToolBackend(HttpToolConfig(base_url=process.base_url, tools_cache_ttl_s=0, max_retries=1, retry_backoff_s=0.01))
        names = [s.name for s in await b.list_tools(ToolContext())]
        assert (await b.invoke("echo", {"text": "hi"}, ToolContext())).content == "hi"
    assert [s.name for s in await b.list_tools(ToolContext())] == names
    result = await b.invoke("echo", {"text": "hi"}, ToolContext())
    assert result.ok is False and "unreachable" in result.error


# ------------------------------------------------------------------ through the real proxy (POST /agent/run)


@pytest.fixture(scope="module")
def host_proxy(host, upstream):
    from tests.conftest import base_config
    from tests.harness import ProxyProcess

    config = base_config(upstream, {
        "agent": {"default_model": "fake/th-default"},
        "tools": {"http": {
            "base_url": host.base_url,
            "headers": {"X-Tool-Token": "os.environ/TOOL_HOST_TOKEN"},
            "forward_authorization": True,
            "forward_headers": ["X-Request-Id"],
            "timeout_s": 1.5,
            "max_retries": 2,
            "retry_backoff_s": 0.05,
            "tools_cache_ttl_s": 60,
        }},
    })
    with ProxyProcess(config, env={"TOOL_HOST_TOKEN": TOKEN}) as process:
        yield process


def agent_run(proxy, model: str, headers: dict[str, str] | None = None, **body: Any) -> dict[str, Any]:
    import httpx

    response = httpx.post(f"{proxy.base_url}/agent/run", json={"input": "use the tools", "backend": "http", "model": f"fake/{model}", **body},
                          headers={**proxy.headers, **(headers or {})}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def tool_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body["messages"] if m["role"] == "tool"]


def test_agent_lists_and_invokes_host_tools(host_proxy, upstream):
    from tests.harness import Reply, call

    upstream.script("th-add", Reply(tool_calls=[call("add", {"a": 2, "b": 40}, "c1")]), Reply(text="It is 42."))
    body = agent_run(host_proxy, "th-add")
    assert body["ok"] and body["final_answer"] == "It is 42." and body["metrics"]["tool_calls"] == 1
    assert tool_messages(body) == [{"role": "tool", "tool_call_id": "c1", "content": "42"}]
    first = upstream.requests_for("th-add")[0]["body"]
    assert {"add", "echo", "sleep", "flaky", "whoami"} <= {t["function"]["name"] for t in first["tools"]}


def test_agent_forwards_authorization_and_listed_headers_to_the_host(host_proxy, upstream):
    import json

    from tests.harness import Reply, call

    upstream.script("th-who", Reply(tool_calls=[call("whoami", {}, "w1")]), Reply(text="done"))
    body = agent_run(host_proxy, "th-who", headers={"X-Request-Id": "run-123", "X-Private": "not-forwarded"})
    seen = json.loads(tool_messages(body)[0]["content"])
    assert seen["authorization_sha256"] == hashlib.sha256(f"Bearer {host_proxy.master_key}".encode()).hexdigest()[:16]
    assert seen["x_request_id"] == "run-123" and "x-private" not in seen["headers"]


def test_agent_sees_validation_errors_and_429_retries_succeed(host_proxy, upstream):
    from tests.harness import Reply, call

    upstream.script("th-mixed", Reply(tool_calls=[call("add", {"a": "two", "b": 1}, "bad"),
                                                  call("flaky", {"key": uuid.uuid4().hex, "failures": 2}, "flaky")]), Reply(text="ok"))
    body = agent_run(host_proxy, "th-mixed")
    bad, flaky = tool_messages(body)
    assert bad["tool_call_id"] == "bad" and '"ok": false' in bad["content"] and "is not of type 'integer'" in bad["content"]
    assert flaky["tool_call_id"] == "flaky" and flaky["content"] == '{"attempts": 3}'
    assert body["ok"]


def test_slow_host_is_an_error_the_model_sees_and_the_run_goes_on(host_proxy, upstream):
    from tests.harness import Reply, call

    upstream.script("th-slow", Reply(tool_calls=[call("sleep", {"seconds": 10}, "s1")]), Reply(text="the tool was too slow"))
    started = time.monotonic()
    body = agent_run(host_proxy, "th-slow")
    assert time.monotonic() - started < 8
    assert body["ok"] and body["final_answer"] == "the tool was too slow"
    assert "did not answer within 1.5 s" in tool_messages(body)[0]["content"]
    # The model's second turn saw the error.
    assert "did not answer" in upstream.requests_for("th-slow")[-1]["body"]["messages"][-1]["content"]


def test_host_down_is_an_error_the_model_sees_and_the_run_goes_on(host_proxy, host, upstream):
    from tests.harness import Reply, call

    upstream.script("th-down-warm", Reply(text="listing cached"))
    agent_run(host_proxy, "th-down-warm")  # the proxy has the tool listing (TTL 60 s)
    host.stop()
    try:
        upstream.script("th-down", Reply(tool_calls=[call("echo", {"text": "hi"}, "e1")]), Reply(text="the host is down"))
        body = agent_run(host_proxy, "th-down")
        assert body["ok"] and body["final_answer"] == "the host is down"
        assert "tool host unreachable after 3 tries" in tool_messages(body)[0]["content"]
    finally:
        host.start()


def test_tool_metrics_are_in_the_extensions_metrics(host_proxy, upstream):
    import httpx

    from tests.harness import Reply, call

    upstream.script("th-metrics", Reply(tool_calls=[call("echo", {"text": "x"}, "m1")]), Reply(text="ok"))
    agent_run(host_proxy, "th-metrics")
    text = httpx.get(f"{host_proxy.base_url}/metrics", headers=host_proxy.headers, timeout=10).text
    assert 'proxy_ext_tool_calls_total{backend="http",outcome="ok",tool="echo"}' in text
    assert 'proxy_ext_tool_call_duration_seconds_bucket{backend="http",le="0.005",tool="echo"}' in text
    assert "proxy_ext_tool_retries_total" in text and "proxy_ext_tool_timeouts_total" in text
