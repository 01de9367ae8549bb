"""Cost-augmented JSON through the real proxy and the fake upstream, on every route, streaming or not.

Four proxies share one config (started together): cost on, the extension off (stock), the
extension on with ``cost.enabled: false``, and cost on with an injected price-lookup failure.
Each route has its own priced model: LiteLLM itself prices /v1/responses at 0 once the same model
has served /v1/completions, and these tests compare against LiteLLM's own figure.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from proxy_ext import assemble_stream_text, extract_content
from proxy_ext.hooks.cost import FAULT_ENV
from tests.conftest import base_config
from tests.harness import ProxyProcess, Reply, fake_model_entry

IN_PRICE, OUT_PRICE = 1e-6, 2e-6
PROMPT, COMPLETION = 10, 5
EXPECTED = PROMPT * IN_PRICE + COMPLETION * OUT_PRICE
MODELS = {route: f"cost-{route}" for route in ("chat", "text", "embed", "resp", "sdk")}


def _models(upstream) -> list[dict[str, Any]]:
    return [fake_model_entry(name, upstream.base_url, name, input_cost_per_token=IN_PRICE, output_cost_per_token=OUT_PRICE) for name in MODELS.values()]


@pytest.fixture(scope="module")
def proxies(upstream):
    for name in MODELS.values():
        upstream.script(name, Reply(text="alpha beta gamma", prompt_tokens=PROMPT, completion_tokens=COMPLETION))
    models = _models(upstream)
    variants = {
        "on": ProxyProcess(base_config(upstream, {"cost": {"enabled": True}}, models=models)),
        "stock": ProxyProcess(base_config(upstream, None, extension=False, models=models)),
        "off": ProxyProcess(base_config(upstream, {"cost": {"enabled": False}}, models=models)),
        "faulty": ProxyProcess(base_config(upstream, {"cost": {"enabled": True}}, models=models), env={FAULT_ENV: "1"}),
    }
    with ThreadPoolExecutor(len(variants)) as pool:  # 2 cores: start together, not one after another
        list(pool.map(lambda p: p.start(), variants.values()))
    try:
        yield variants
    finally:
        for process in variants.values():
            process.stop()


def _post(proxy: ProxyProcess, path: str, body: dict[str, Any]) -> httpx.Response:
    response = httpx.post(f"{proxy.base_url}{path}", json=body, headers=proxy.headers, timeout=30)
    assert response.status_code == 200, response.text
    return response


def _sse(response: httpx.Response) -> list[dict[str, Any]]:
    events = []
    for line in response.text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            events.append(json.loads(line[len("data: "):]))
    return events


CHAT = {"model": MODELS["chat"], "messages": [{"role": "user", "content": "hi"}]}
TEXT = {"model": MODELS["text"], "prompt": "hi"}
EMBED = {"model": MODELS["embed"], "input": ["one", "two"]}
RESP = {"model": MODELS["resp"], "input": "hi"}
STREAM = {"stream": True, "stream_options": {"include_usage": True}}


def _has_cost(value: Any, keys: tuple[str, ...] = ("cost", "cost_details")) -> bool:
    """Whether a JSON value has one of ``keys`` anywhere."""
    if isinstance(value, dict):
        return any(k in value for k in keys) or any(_has_cost(v, keys) for v in value.values())
    if isinstance(value, list):
        return any(_has_cost(v, keys) for v in value)
    return False


def _assert_cost(usage: dict[str, Any], expected: float) -> None:
    assert usage["cost"] == pytest.approx(expected, rel=1e-9)
    details = usage["cost_details"]
    assert details["input_cost"] + details["output_cost"] == pytest.approx(usage["cost"], rel=1e-9)


# ------------------------------------------------------------------------- non-streaming routes


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/v1/chat/completions", CHAT, EXPECTED),
        ("/v1/completions", TEXT, EXPECTED),
        ("/v1/embeddings", EMBED, PROMPT * IN_PRICE),
        ("/v1/responses", RESP, EXPECTED),
    ],
    ids=["chat", "completions", "embeddings", "responses"],
)
def test_non_streaming_usage_cost_equals_the_response_cost_header(proxies, path, body, expected):
    response = _post(proxies["on"], path, body)
    usage = response.json()["usage"]
    assert usage["cost"] == float(response.headers["x-litellm-response-cost"])
    _assert_cost(usage, expected)
    assert usage["cost_details"]["input_cost"] == pytest.approx(PROMPT * IN_PRICE)


# What LiteLLM 1.108.7 sends in its cost headers, as docs/cost.md states it: the figure equals
# usage.cost where x-litellm-response-cost is sent at all; zero-priced calls and every stream get
# no x-litellm-response-cost and "0.0" placeholders in -original/-input/-output.

def test_cost_headers_of_a_priced_non_streaming_call_equal_usage_cost(proxies):
    response = _post(proxies["on"], "/v1/chat/completions", CHAT)
    usage, headers = response.json()["usage"], response.headers
    assert float(headers["x-litellm-response-cost"]) == float(headers["x-litellm-response-cost-original"]) == usage["cost"]
    assert float(headers["x-litellm-response-cost-input"]) == pytest.approx(usage["cost_details"]["input_cost"])
    assert float(headers["x-litellm-response-cost-output"]) == pytest.approx(usage["cost_details"]["output_cost"])


@pytest.mark.parametrize(("path", "body"), [("/v1/chat/completions", {**CHAT, **STREAM}), ("/v1/responses", {**RESP, "stream": True})],
                         ids=["chat", "responses"])
def test_streams_send_no_cost_header_only_zero_placeholders(proxies, path, body):
    response = _post(proxies["on"], path, body)
    assert "x-litellm-response-cost" not in response.headers
    assert [response.headers[f"x-litellm-response-cost-{k}"] for k in ("original", "input", "output")] == ["0.0"] * 3
    assert '"cost":' in response.text  # the body carries the real figure (checked exactly above)


def test_a_zero_priced_model_gets_no_cost_header_and_usage_cost_zero(proxies):
    response = _post(proxies["on"], "/v1/chat/completions", {"model": "echo", "messages": [{"role": "user", "content": "hi"}]})
    assert "x-litellm-response-cost" not in response.headers
    assert response.headers["x-litellm-response-cost-original"] == "0.0"
    assert response.json()["usage"]["cost"] == 0.0


# ------------------------------------------------------------------------- streaming routes


@pytest.mark.parametrize(("path", "body"), [("/v1/chat/completions", CHAT), ("/v1/completions", TEXT)], ids=["chat", "completions"])
def test_the_usage_chunk_of_a_stream_carries_the_cost(proxies, path, body):
    chunks = _sse(_post(proxies["on"], path, {**body, **STREAM}))
    with_usage = [c for c in chunks if c.get("usage")]
    assert len(with_usage) == 1
    _assert_cost(with_usage[0]["usage"], EXPECTED)
    assert not any(_has_cost(c) for c in chunks if not c.get("usage"))


def test_a_stream_without_include_usage_has_no_usage_and_no_cost(proxies):
    chunks = _sse(_post(proxies["on"], "/v1/chat/completions", {**CHAT, "stream": True}))
    assert chunks and not any(c.get("usage") for c in chunks)


def test_responses_stream_completed_event_carries_the_cost(proxies):
    events = _sse(_post(proxies["on"], "/v1/responses", {**RESP, "stream": True}))
    completed = [e for e in events if e["type"] == "response.completed"]
    assert len(completed) == 1
    _assert_cost(completed[0]["response"]["usage"], EXPECTED)
    assert not any(_has_cost(e) for e in events if e["type"] != "response.completed")


# ------------------------------------------------------------------------- the official openai client


def test_openai_client_reads_usage_cost_and_the_header(proxies):
    client = proxies["on"].openai()
    raw = client.chat.completions.with_raw_response.create(model=MODELS["sdk"], messages=[{"role": "user", "content": "hi"}])
    reply = raw.parse()
    assert reply.usage.cost == float(raw.headers["x-litellm-response-cost"]) == pytest.approx(EXPECTED)
    assert reply.usage.cost_details == {"input_cost": pytest.approx(PROMPT * IN_PRICE), "output_cost": pytest.approx(COMPLETION * OUT_PRICE)}
    assert extract_content(reply).text == "alpha beta gamma"

    chunks = list(client.chat.completions.create(model=MODELS["sdk"], messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}))
    assert assemble_stream_text(chunks) == "alpha beta gamma"
    assert chunks[-1].usage.cost == pytest.approx(EXPECTED)

    stream = client.responses.create(model=MODELS["resp"], input="hi", stream=True)
    completed = [e for e in stream if e.type == "response.completed"][0]
    assert completed.response.usage.cost == pytest.approx(EXPECTED)
    assert extract_content(completed).text == "alpha beta gamma"


# ------------------------------------------------------------------------- off means stock


def _shape(value: Any) -> Any:
    """The structure of a JSON value: keys and types, not ids, timestamps or floats."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        return [_shape(item) for item in value]
    return type(value).__name__


def _without_cost(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_cost(v) for k, v in value.items() if k not in ("cost", "cost_details")}
    if isinstance(value, list):
        return [_without_cost(v) for v in value]
    return value


ALL_CALLS = [
    ("/v1/chat/completions", CHAT, False),
    ("/v1/chat/completions", {**CHAT, **STREAM}, True),
    ("/v1/completions", TEXT, False),
    ("/v1/completions", {**TEXT, **STREAM}, True),
    ("/v1/embeddings", EMBED, False),
    ("/v1/responses", RESP, False),
    ("/v1/responses", {**RESP, "stream": True}, True),
]
CALL_IDS = ["chat", "chat-stream", "completions", "completions-stream", "embeddings", "responses", "responses-stream"]


def _body(proxy: ProxyProcess, path: str, body: dict[str, Any], stream: bool) -> Any:
    response = _post(proxy, path, body)
    return _sse(response) if stream else response.json()


@pytest.mark.parametrize(("path", "body", "stream"), ALL_CALLS, ids=CALL_IDS)
def test_off_gives_stock_bodies_and_on_adds_only_cost(proxies, path, body, stream):
    # Stock LiteLLM already sets usage.cost on a chat stream's usage chunk (no cost_details).
    stock = _body(proxies["stock"], path, body, stream)
    assert not _has_cost(stock, ("cost_details",))
    assert _shape(_body(proxies["off"], path, body, stream)) == _shape(stock)
    on = _body(proxies["on"], path, body, stream)
    assert _has_cost(on, ("cost_details",))
    assert _shape(_without_cost(on)) == _shape(_without_cost(stock))


# ------------------------------------------------------------------------- failures never fail the call


@pytest.mark.parametrize(("path", "body", "stream"), ALL_CALLS, ids=CALL_IDS)
def test_a_failing_price_lookup_never_fails_the_call(proxies, path, body, stream):
    result = _body(proxies["faulty"], path, body, stream)
    assert not _has_cost(result, ("cost_details",))
    assert _shape(result) == _shape(_body(proxies["stock"], path, body, stream))
    text = json.dumps(result)
    assert "alpha" in text or "embedding" in text  # the real answer went out


def test_a_failing_price_lookup_is_logged_once(proxies):
    for _ in range(2):
        _post(proxies["faulty"], "/v1/chat/completions", CHAT)
    log = proxies["faulty"].log(None)
    assert log.count("proxy_ext cost: post_call_success failed") == 1
    assert "injected price lookup failure" in log
