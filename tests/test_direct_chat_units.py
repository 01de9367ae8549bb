"""Unit tests of the in-process model calls' glue (``litellm_adapter.chat``) and the SSE line reader."""

from __future__ import annotations

import asyncio
import json

from fastapi import HTTPException
from fastapi.responses import JSONResponse, Response
from litellm.proxy._types import ProxyException

from proxy_ext.agent.model_client import _lines
from proxy_ext.litellm_adapter.chat import _failure, _from_response, _plain_copy


def test_failures_get_the_status_and_message_the_proxy_would_answer():
    assert (_failure(ProxyException(message="slow down", type="rate", param=None, code=429)).status, "slow down") == (429, "slow down")
    reply = _failure(HTTPException(status_code=403, detail={"error": {"message": "model not allowed"}}))
    assert (reply.status, reply.error) == (403, "model not allowed")
    assert _failure(HTTPException(status_code=401, detail="bad key")).error == "bad key"
    assert _failure(ProxyException(message="odd", type="x", param=None, code="teapot")).status == 500
    reply = _failure(ValueError("boom"))
    assert reply.status == 500 and reply.error == "ValueError: boom"


def test_error_responses_are_read_whatever_their_body():
    assert _from_response(JSONResponse({"error": {"message": "nope"}}, status_code=400)).error == "nope"
    assert _from_response(JSONResponse({"error": "plain words"}, status_code=400)).error == "plain words"
    reply = _from_response(Response(b"<html>", status_code=502))
    assert reply.status == 502 and reply.body is None and "502" in (reply.error or "")
    ok = _from_response(JSONResponse({"choices": []}))
    assert ok.status == 200 and ok.error is None and ok.body == {"choices": []}


def test_litellm_gets_a_copy_hooks_cannot_change_the_transcript_through():
    messages = [{"role": "user", "content": [{"type": "text", "text": "secret 123"}]}]
    body = {"model": "m", "messages": messages, "tools": [{"type": "function", "function": {"name": "f"}}]}
    copy = _plain_copy(body)
    copy["messages"][0]["content"][0]["text"] = "[MASKED]"
    copy["messages"].append({"role": "system", "content": "injected"})
    copy["tools"][0]["function"]["name"] = "g"
    assert messages == [{"role": "user", "content": [{"type": "text", "text": "secret 123"}]}]
    assert body["tools"][0]["function"]["name"] == "f"


def test_sse_lines_are_put_together_from_chunks_of_any_size():
    async def chunks():
        for part in ["data: {\"a\"", ": 1}\n\ndata: [DO", "NE]\r\n", "\n", "tail"]:
            yield part

    async def collect():
        return [line async for line in _lines(chunks())]

    assert asyncio.run(collect()) == ['data: {"a": 1}', "", "data: [DONE]", "", "tail"]


def test_the_raw_body_is_json_even_where_orjson_refuses():
    from proxy_ext.litellm_adapter.chat import _encode

    assert json.loads(_encode({"messages": [{"role": "user", "content": "hi", "n": 2 ** 70}]}))["messages"][0]["n"] == 2 ** 70
    assert json.loads(_encode({"a": [1, "é", None]})) == {"a": [1, "é", None]}


def _client_answering(monkeypatch, reply_or_delay):
    from proxy_ext import litellm_adapter
    from proxy_ext.agent.model_client import ModelClient

    async def fake(body, headers, client=None):
        if isinstance(reply_or_delay, float):
            await asyncio.sleep(reply_or_delay)
        return reply_or_delay

    monkeypatch.setattr(litellm_adapter, "direct_chat", fake)
    return ModelClient("http://proxy.internal", {"authorization": "Bearer k"}, client=("10.0.0.7", 5000))


def test_direct_turns_map_refusals_timeouts_and_whole_answers_to_a_stream(monkeypatch):
    import pytest

    from proxy_ext.agent.errors import ModelCallError
    from proxy_ext.litellm_adapter.chat import DirectChatReply

    answer = {"choices": [{"message": {"role": "assistant", "content": "blocked by policy"}, "finish_reason": "content_filter"}],
              "usage": {"prompt_tokens": 3, "completion_tokens": 2}}
    client = _client_answering(monkeypatch, DirectChatReply(200, {"x-litellm-response-cost": "0.5"}, answer))
    assert client.direct and client.http is None
    seen: list[str] = []

    async def on_text(text):
        seen.append(text)

    turn = asyncio.run(client.complete_streaming("m", [{"role": "user", "content": "x"}], None, 5, on_text))
    assert (turn.message["content"], turn.cost_usd, turn.finish_reason, seen) == ("blocked by policy", 0.5, "content_filter", ["blocked by policy"])

    client = _client_answering(monkeypatch, DirectChatReply(429, error="rate limit reached"))
    with pytest.raises(ModelCallError) as refused:
        asyncio.run(client.complete("m", [], None, 5))
    assert (refused.value.status, refused.value.message) == (429, "rate limit reached")

    client = _client_answering(monkeypatch, 1.0)
    with pytest.raises(ModelCallError) as late:
        asyncio.run(client.complete("m", [], None, 0.05))
    assert (late.value.status, late.value.message) == (0, "model call timed out")


def test_a_stream_closed_unread_still_closes_litellms_iterator_and_releases_the_reservation(monkeypatch):
    from proxy_ext.litellm_adapter import chat

    released, closed = [], []

    class Upstream:
        def __aiter__(self):
            return self

        async def __anext__(self):
            return b"data: {}\n\n"

        async def aclose(self):
            closed.append(True)

    async def release(request):
        released.append(request)

    monkeypatch.setattr(chat, "_release_reservation", release)

    async def scenario():
        unread = chat._Stream("req-1", Upstream())
        await unread.aclose()
        await unread.aclose()  # once only
        read = chat._Stream("req-2", Upstream())
        assert await read.__anext__() == "data: {}\n\n"
        await read.aclose()

    asyncio.run(scenario())
    assert closed == [True, True] and released == ["req-1", "req-2"]


def test_a_cancel_the_endpoint_swallowed_is_raised_again_and_its_stream_closed(monkeypatch):
    # LiteLLM's first-chunk wait awaits its disconnect watch inside `except BaseException: pass`: a
    # cancel landing there is absorbed and the endpoint returns its stream as if nothing happened.
    from starlette.responses import StreamingResponse

    from proxy_ext.litellm_adapter import chat

    closed, released = [], []

    async def body():
        try:
            yield b"data: {}\n\n"
        finally:
            closed.append(True)

    async def endpoint(**_):
        try:
            await asyncio.sleep(3600)
        except BaseException:  # noqa: BLE001  # what the foreign code does
            pass
        iterator = body()
        await iterator.__anext__()  # started, as LiteLLM's first-chunk read leaves it
        return StreamingResponse(iterator)

    async def auth(**_):
        return "identity"

    async def release(request):
        released.append(request)

    monkeypatch.setattr(chat, "_entry", chat._Entry(None, None, endpoint, auth, ()))
    monkeypatch.setattr(chat, "_release_reservation", release)

    async def scenario():
        task = asyncio.ensure_future(chat.direct_chat({"model": "m", "messages": []}, {}))
        await asyncio.sleep(0.01)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return "cancelled"
        return "returned"

    assert asyncio.run(scenario()) == "cancelled"
    assert closed == [True] and len(released) == 1
