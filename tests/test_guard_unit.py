"""The ASGI guard on its own (no proxy): what it answers before any app sees a request."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from proxy_ext.guard import GuardPolicy, RequestGuard


async def _call(guard: RequestGuard, method: str, path: str, headers: list[tuple[bytes, bytes]],
                body: bytes = b"{}") -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await guard({"type": "http", "method": method, "path": path, "headers": headers}, receive, send)
    return sent


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if (await receive())["type"] == "http.disconnect":  # the guard answered
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/agent/run"])
@pytest.mark.parametrize("declared", [b"9" * 19, b"9" * 5000])  # int() refuses 4,300+ digits: no 500 from a header
def test_a_content_length_of_too_many_digits_is_a_413(path, declared):
    guard = RequestGuard(_app, GuardPolicy(max_body_bytes=1000, body_timeout_s=1, max_json_depth=10, json_routes={"/agent/run": 1000}))
    headers = [(b"content-length", declared), (b"content-type", b"application/json"), (b"authorization", b"Bearer k")]
    sent = asyncio.run(_call(guard, "POST", path, headers))
    assert sent[0]["status"] == 413
    message = json.loads(sent[1]["body"])["error"]["message"]
    assert "exceeds the limit of 1000 bytes" in message and len(message) < 200


def test_a_content_length_under_the_limit_reaches_the_app():
    guard = RequestGuard(_app, GuardPolicy(max_body_bytes=1000, body_timeout_s=1, max_json_depth=10))
    sent = asyncio.run(_call(guard, "POST", "/v1/chat/completions", [(b"content-length", b"2"), (b"content-type", b"application/json")]))
    assert sent[0]["status"] == 200


def test_a_body_with_a_byte_order_mark_is_told_so():
    guard = RequestGuard(_app, GuardPolicy(max_body_bytes=1000, body_timeout_s=1, max_json_depth=10))
    sent = asyncio.run(_call(guard, "POST", "/v1/chat/completions", [(b"content-type", b"application/json")], b"\xef\xbb\xbf{}"))
    assert sent[0]["status"] == 400 and "byte order mark" in json.loads(sent[1]["body"])["error"]["message"]
