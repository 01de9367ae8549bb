"""The guard's checks of what a client asks LiteLLM to do per request (proxy_ext.control_params),
and the guard applying them to a body that streams through (no proxy: an ASGI app behind it)."""

from __future__ import annotations

import asyncio
import json

import pytest

from proxy_ext.control_params import ControlFieldScan, body_problem, header_problem
from proxy_ext.guard import GuardPolicy, RequestGuard


@pytest.mark.parametrize("value, ok", [("0", True), ("10", True), ("+3", True), ("11", False), ("-1", False), ("1e9", False), ("abc", False)])
def test_the_retries_header(value, ok):
    assert (header_problem([(b"x-litellm-num-retries", value.encode())], 10) is None) is ok


def test_other_control_headers_are_numbers_not_capped():
    assert header_problem([(b"x-litellm-timeout", b"600.5")], 10) is None
    assert "must be a number of seconds" in (header_problem([(b"x-litellm-timeout", b"nan")], 10) or "")
    assert "must be a positive number of seconds" in (header_problem([(b"x-litellm-stream-timeout", b"-5")], 10) or "")


@pytest.mark.parametrize("body, ok", [({}, True), ({"num_retries": 10, "max_retries": 0}, True), ({"num_retries": 2.0}, True),
                                      ({"num_retries": 11}, False), ({"max_retries": -1}, False), ({"num_retries": True}, False),
                                      ({"num_retries": "3"}, False), ({"max_retries": 2.5}, False), ([1], True)])
def test_the_body_fields(body, ok):
    assert (body_problem(body, 10) is None) is ok


@pytest.mark.parametrize("body, ok", [({"guardrails": ["pii", "caf\u00e9"]}, True), ({"guardrails": "x\u20ac"}, True),
                                      ({"guardrails": ["x\u20ac"]}, False), ({"guardrails": ["a\r\nSet-Cookie: x"]}, False),
                                      ({"metadata": {"guardrails": ["\u20ac"]}}, False), ({"litellm_metadata": {"guardrails": ["\x7f"]}}, False),
                                      ({"metadata": "x", "guardrails": [5, None]}, True)])
def test_guardrail_names_must_fit_a_response_header(body, ok):
    problem = body_problem(body, 10)
    assert (problem is None) is ok, problem
    assert ok or "guardrail names must be printable Latin-1 text" in (problem or "")


@pytest.mark.parametrize("cut", range(1, 40))
def test_the_scan_sees_a_field_wherever_the_chunks_are_cut(cut):
    raw = json.dumps({"model": "m", "num_retries": 500}).encode()
    scan = ControlFieldScan(10)
    assert scan.feed(raw[:cut], last=False) is None
    assert "asks for 500 retries" in (scan.feed(raw[cut:], last=True) or "")
    assert scan.chunks == []  # nothing kept once the body is complete


def test_a_body_without_the_mark_is_not_parsed():
    scan = ControlFieldScan(10)
    assert scan.feed(b"not json at all", last=True) is None  # it would not parse: it was not parsed
    assert ControlFieldScan(10).feed(b'{"content": "retries"}', last=True) is None  # parsed: the word alone is fine


def _through_guard(chunks: list[bytes], max_client_retries: int = 10) -> tuple[int | None, bytes | None]:
    """(status the guard answered, body the app read) for a chunked POST to a stock OpenAI route."""
    got: dict[str, object] = {}

    async def app(scope, receive, send):
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            body += message.get("body") or b""
            if not message.get("more_body"):
                got["body"] = body
                return

    async def main() -> None:
        messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

        async def receive():
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.start":
                got["status"] = message["status"]

        policy = GuardPolicy(max_body_bytes=1 << 20, body_timeout_s=5, max_json_depth=64, max_client_retries=max_client_retries)
        scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": [(b"transfer-encoding", b"chunked")]}
        await RequestGuard(app, policy)(scope, receive, send)

    asyncio.run(main())
    return got.get("status"), got.get("body")  # type: ignore[return-value]


def test_the_guard_refuses_a_streamed_body_asking_too_many_retries_before_the_app_has_it():
    status, body = _through_guard([b'{"model": "m", "num_re', b'tries": 11}'])
    assert (status, body) == (400, None)
    status, body = _through_guard([b'{"model": "m", "num_re', b'tries": 11}'], max_client_retries=20)
    assert (status, body) == (None, b'{"model": "m", "num_retries": 11}')


@pytest.mark.parametrize("value, ok", [(30, True), ("30", True), (0.5, True), (0, True), (None, True), ({}, True), (True, True),
                                       ("x", False), ("nan", False), ([1], False), ({"a": 1}, False), (-1, False), ("inf", False)])
@pytest.mark.parametrize("name", ["timeout", "stream_timeout"])
def test_the_timeout_fields(name, value, ok):
    # What LiteLLM ignores (0, null, {}) or converts (30, "30") passes; what it 500s on does not.
    assert (body_problem({name: value}, 10) is None) is ok


@pytest.mark.parametrize("cut", range(1, 30))
def test_the_scan_sees_a_timeout_wherever_the_chunks_are_cut(cut):
    raw = json.dumps({"model": "m", "timeout": "x"}).encode()
    scan = ControlFieldScan(10)
    assert scan.feed(raw[:cut], last=False) is None
    assert "timeout must be a positive number" in (scan.feed(raw[cut:], last=True) or "")
