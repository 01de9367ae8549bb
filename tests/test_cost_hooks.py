"""CostHooks on real LiteLLM response objects, with the price lookup replaced by plain functions
(our own seam; LiteLLM is not mocked). The proxy-level behaviour is in test_cost.py."""

from __future__ import annotations

import logging

import httpx
import pytest

from proxy_ext import glue, litellm_adapter
from proxy_ext.hooks.cost import CostHooks


def _response(cost=None):
    from litellm.types.utils import ModelResponse, Usage

    response = ModelResponse(model="m", usage=Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7))
    response._hidden_params["response_cost"] = cost
    return response


def _hooks(*, enabled=True, price=lambda response, data: (0.5, 0.2, 0.3)):
    return CostHooks(enabled=enabled, kind_of=litellm_adapter.cost_response_kind, call_cost=price, chunk_cost=price)


async def test_success_hook_returns_a_copy_with_cost_and_leaves_litellms_object_alone():
    original = _response(cost=0.5)
    result = await _hooks().post_call_success({}, original)
    assert result is not original
    assert result.usage.cost == 0.5 and result.usage.cost_details == {"input_cost": 0.2, "output_cost": 0.3}
    assert result._hidden_params["response_cost"] == 0.5  # the proxy builds its headers from these
    assert getattr(original.usage, "cost", None) is None and not hasattr(original.usage, "cost_details")


async def test_non_json_responses_and_unpriced_calls_pass_through_untouched():
    from litellm.types.llms.openai import HttpxBinaryResponseContent

    audio = HttpxBinaryResponseContent(httpx.Response(200, content=b"RIFF....WAVE"))
    assert await _hooks().post_call_success({}, audio) is None
    assert await _hooks().post_call_success({}, {"some": "dict"}) is None
    assert await _hooks(price=lambda r, d: (None, None, None)).post_call_success({}, _response()) is None
    assert await _hooks(enabled=False).post_call_success({}, _response(0.5)) is None


async def test_a_raising_price_lookup_leaves_the_response_and_is_logged_once(caplog):
    def broken(response, data):
        raise KeyError("no price")

    hooks = _hooks(price=broken)
    with caplog.at_level(logging.DEBUG, logger="proxy_ext.cost"):
        assert await hooks.post_call_success({}, _response()) is None
        assert await hooks.post_call_success({}, _response()) is None
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "post_call_success failed" in errors[0].getMessage()


async def _collect(stream):
    return [chunk async for chunk in stream]


async def _source(chunks, error=None):
    for chunk in chunks:
        yield chunk
    if error is not None:
        raise error


def _stream_chunks():
    from litellm.types.utils import ModelResponseStream, Usage

    text = ModelResponseStream(model="m", choices=[{"index": 0, "delta": {"content": "hi"}}])
    usage = ModelResponseStream(model="m", choices=[], usage=Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2))
    return [text, usage]


async def test_stream_prices_only_the_usage_chunk():
    text, usage = _stream_chunks()
    out = await _collect(_hooks().stream(_source([text, usage]), {}))
    assert out[0] is text
    assert out[1].usage.cost == 0.5 and getattr(usage.usage, "cost", None) is None


async def test_stream_errors_from_upstream_propagate_and_pricing_errors_do_not():
    text, usage = _stream_chunks()
    with pytest.raises(RuntimeError, match="upstream broke"):
        await _collect(_hooks().stream(_source([text], RuntimeError("upstream broke")), {}))

    def broken(chunk, data):
        raise ValueError("no price")

    out = await _collect(_hooks(price=broken).stream(_source([text, usage, "raw"]), {}))
    assert out == [text, usage, "raw"]


def test_with_cost_off_litellm_sees_no_hooks_at_all():
    # LiteLLM looks for a streaming iterator hook in the callback's own class; any such hook moves
    # every stream off its fast path, so the class used with cost off must define none.
    for hook in ("async_post_call_streaming_iterator_hook", "async_post_call_success_hook", "async_pre_call_hook", "async_post_call_streaming_hook"):
        assert hook not in glue.ProxyExtension.__dict__
    assert "async_post_call_streaming_iterator_hook" in glue.CostProxyExtension.__dict__


async def test_an_agent_runs_cost_is_added_to_the_outer_calls_own_figure():
    from proxy_ext.hooks.cost import Cost

    run = Cost(0.004, 0.001, 0.003)
    hooks = CostHooks(enabled=True, kind_of=litellm_adapter.cost_response_kind, call_cost=lambda r, d: (0.0, 0.0, 0.0),
                      chunk_cost=lambda r, d: (0.0, 0.0, 0.0), run_cost=lambda: run)
    result = await hooks.post_call_success({}, _response(cost=0.0))
    assert result.usage.cost == 0.004 and result.usage.cost_details == {"input_cost": 0.001, "output_cost": 0.003}
    # An operator who prices the agent model itself: both figures, still one split.
    priced = CostHooks(enabled=True, kind_of=litellm_adapter.cost_response_kind, call_cost=lambda r, d: (0.5, 0.2, 0.3),
                       chunk_cost=lambda r, d: (0.5, 0.2, 0.3), run_cost=lambda: run)
    result = await priced.post_call_success({}, _response(cost=0.5))
    assert result.usage.cost == pytest.approx(0.504)
    assert result.usage.cost_details == {"input_cost": pytest.approx(0.201), "output_cost": pytest.approx(0.303)}
    # A run without a split (an unpriced turn) gives the total only.
    bare = CostHooks(enabled=True, kind_of=litellm_adapter.cost_response_kind, call_cost=lambda r, d: (None, None, None),
                     chunk_cost=lambda r, d: (None, None, None), run_cost=lambda: Cost(0.004))
    result = await bare.post_call_success({}, _response())
    assert result.usage.cost == 0.004 and not hasattr(result.usage, "cost_details")


async def test_the_run_cost_note_belongs_to_its_request_only():
    from proxy_ext.hooks.cost import Cost, RUN_COST_NOTE, _noted_run_cost, note_agent_run_cost
    from proxy_ext.request_context import RequestContextMiddleware, request_note

    seen = {}

    async def app(scope, receive, send):
        seen[scope["path"]] = _noted_run_cost()
        if scope["path"] == "/agent":
            note_agent_run_cost(0.25, 0.1, 0.15)
            seen["after"] = request_note(RUN_COST_NOTE)

    middleware = RequestContextMiddleware(app)
    for path in ("/agent", "/other"):
        await middleware({"type": "http", "path": path, "headers": []}, None, None)
    assert seen == {"/agent": None, "after": Cost(0.25, 0.1, 0.15), "/other": None}
    note_agent_run_cost(1.0, None, None)  # outside a request: nowhere to put it, and no error
    assert _noted_run_cost() is None
