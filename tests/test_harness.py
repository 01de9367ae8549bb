"""The fake upstream itself, driven by the official openai client (no proxy in between)."""

from __future__ import annotations

import time

import openai
import pytest

from tests.harness import Reply, call


@pytest.fixture()
def client(upstream):
    return openai.OpenAI(base_url=upstream.base_url, api_key="sk-fake", max_retries=0)


def test_scripted_replies_in_order_then_last_repeats(upstream, client):
    upstream.script("h-order", Reply(text="one"), Reply(tool_calls=[call("add", {"a": 1}, "call_1")]), Reply(text="last"))
    texts = []
    for _ in range(4):
        message = client.chat.completions.create(model="h-order", messages=[{"role": "user", "content": "x"}]).choices[0].message
        texts.append(message.content or message.tool_calls[0].function.name)
    assert texts == ["one", "add", "last", "last"]


def test_stream_has_a_usage_chunk(upstream, client):
    upstream.script("h-stream", Reply(text="a b c", prompt_tokens=3, completion_tokens=5))
    chunks = list(client.chat.completions.create(model="h-stream", messages=[{"role": "user", "content": "x"}], stream=True,
                                                 stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "a b c"
    assert chunks[-1].usage.total_tokens == 8


def test_streamed_tool_calls(upstream, client):
    upstream.script("h-stream-tools", Reply(tool_calls=[call("f", {"x": 1}, "call_a"), call("g", {}, "call_b")]))
    chunks = list(client.chat.completions.create(model="h-stream-tools", messages=[{"role": "user", "content": "x"}], stream=True))
    names = [tc.function.name for c in chunks if c.choices and c.choices[0].delta.tool_calls for tc in c.choices[0].delta.tool_calls]
    assert names == ["f", "g"]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_injected_errors_and_latency(upstream, client):
    upstream.script("h-err", Reply(status=429, headers={"Retry-After": "1"}), Reply(status=500), Reply(text="ok", latency_s=0.3))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="h-err", messages=[{"role": "user", "content": "x"}])
    assert info.value.response.headers["retry-after"] == "1"
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="h-err", messages=[{"role": "user", "content": "x"}])
    started = time.monotonic()
    assert client.chat.completions.create(model="h-err", messages=[{"role": "user", "content": "x"}]).choices[0].message.content == "ok"
    assert time.monotonic() - started >= 0.3


def test_unscripted_model_echoes_and_requests_are_recorded(upstream, client):
    client.chat.completions.create(model="h-echo", messages=[{"role": "user", "content": "repeat me"}])
    assert upstream.requests_for("h-echo")[-1]["body"]["messages"][0]["content"] == "repeat me"


def test_embeddings_and_responses(upstream, client):
    assert len(client.embeddings.create(model="h-emb", input=["a", "b"]).data) == 2
    upstream.script("h-resp", Reply(text="resp text"))
    assert client.responses.create(model="h-resp", input="hi").output_text == "resp text"
    events = [e.type for e in client.responses.create(model="h-resp", input="hi", stream=True)]
    assert events[0] == "response.created" and events[-1] == "response.completed"
