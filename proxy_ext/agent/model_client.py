"""Model calls of the agent, made as the caller: LiteLLM's auth and chat route handler for each turn.

Why as the caller's own chat call rather than a bare Router call: each turn then passes exactly
the same auth, model-access checks, budgets, rate limits, hooks and spend logging as the caller's
own ``/v1/chat/completions`` request — with the caller's headers — so an agent run can never reach
a model the key may not use, nor make a call the key's limits would refuse.

How (``agent.model_transport``, see :mod:`proxy_ext.agent.service`): by default ``direct``, in
process without HTTP (:func:`proxy_ext.litellm_adapter.direct_chat`: LiteLLM's ``user_api_key_auth``
and its chat endpoint, called as functions; no ASGI stack, no JSON encoding); ``asgi`` hands an
HTTP request to the proxy's ASGI app in process (streamed calls through
:class:`proxy_ext.agent.asgi_stream.StreamingASGITransport`); ``http`` is loopback HTTP to
``agent.proxy_base_url`` or the address the request arrived on, over one pooled keep-alive client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from proxy_ext.agent.errors import ModelCallError

__all__ = ["ModelClient", "ModelTurn", "forwardable_headers"]

# Hop-by-hop and body-describing headers are not forwarded; everything else (Authorization,
# x-litellm-api-key, custom-auth headers, tracing headers) is, so the identity is the caller's.
_DROP = {"host", "content-length", "content-type", "transfer-encoding", "connection", "keep-alive",
         "accept-encoding", "expect", "upgrade", "te", "trailer", "proxy-authorization", "accept"}
_TRACE_CONTEXT = ("traceparent", "tracestate")


def forwardable_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The caller's headers to repeat on the agent's model calls."""
    return {k: v for k, v in headers.items() if k.lower() not in _DROP}


@dataclass(frozen=True)
class ModelTurn:
    """One assistant reply."""

    message: dict[str, Any]
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    input_cost_usd: float | None = None
    """Prompt side of ``cost_usd`` (None when LiteLLM gave no split)."""
    output_cost_usd: float | None = None
    """Completion side of ``cost_usd``."""
    finish_reason: str | None = None
    """``finish_reason`` of the answer's choice (None when it gave none)."""


def _usd(value: Any) -> float | None:
    """A USD figure from a header or a usage field; None when absent or not a finite number."""
    if isinstance(value, bool) or value in (None, ""):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _reason(value: Any) -> str | None:
    return value[:64] if isinstance(value, str) and value else None


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        error = body.get("error", body) if isinstance(body, dict) else body
        message = error.get("message") if isinstance(error, dict) else error
        return str(message or response.text)[:2000]
    except (json.JSONDecodeError, ValueError):
        return response.text[:2000] or response.reason_phrase


class ModelClient:
    """Chat completions against this proxy, with the caller's headers.

    ``trace_headers``, when set (OpenTelemetry on, :mod:`proxy_ext.agent.otel`), gives the W3C
    trace context of the model turn being made (``traceparent``, ``tracestate``): it replaces the
    caller's own on each call, so the proxy's spans of the call nest under the run's ``chat`` span.
    """

    def __init__(self, base_url: str, headers: Mapping[str, str], http: httpx.AsyncClient | None = None,
                 stream_http: httpx.AsyncClient | None = None, *, client: tuple[str, int] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers)
        self.direct = http is None
        """No HTTP client: calls are made in process (:func:`proxy_ext.litellm_adapter.direct_chat`)."""
        self.http = http
        self.stream_http = stream_http or http
        self.client = client
        """The caller's address, for the proxy's checks of in-process calls (IP allowlists)."""
        self.trace_headers: Callable[[], Mapping[str, str]] | None = None
        self.params: dict[str, Any] = {}
        """Chat-completion fields every call of the run carries (a ``mini-agent`` client's
        ``response_format``)."""

    def _headers(self) -> dict[str, str]:
        if self.trace_headers is None:
            return self.headers
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _TRACE_CONTEXT}
        headers.update(self.trace_headers())
        return headers

    def _request(self, http: httpx.AsyncClient, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                 timeout_s: float, **extra: Any) -> httpx.Request:
        return http.build_request("POST", f"{self.base_url}/v1/chat/completions", json=_body(model, messages, tools, **self.params, **extra),
                                  headers=self._headers(),
                                  timeout=httpx.Timeout(timeout_s, connect=min(5.0, timeout_s)))

    async def complete(self, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                       timeout_s: float) -> ModelTurn:
        if self.direct:
            reply = await self._direct(model, _body(model, messages, tools, **self.params), timeout_s)
            if reply.status != 200:
                raise ModelCallError(model, reply.status, (reply.error or "model call failed")[:2000])
            return _turn(model, reply.body, reply.headers)
        assert self.http is not None
        response = await _send(self.http, self._request(self.http, model, messages, tools, timeout_s), model, stream=False)
        if response.status_code != 200:
            raise ModelCallError(model, response.status_code, _error_message(response))
        return _turn(model, response.json(), response.headers)

    async def _direct(self, model: str, body: dict[str, Any], timeout_s: float) -> Any:
        async with _deadline(model, timeout_s):
            return await self._direct_call(body)

    async def _direct_call(self, body: dict[str, Any]) -> Any:
        from proxy_ext import litellm_adapter as adapter

        return await adapter.direct_chat(body, self._headers(), self.client)

    async def complete_streaming(self, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                                 timeout_s: float, on_text: Callable[[str], Awaitable[None]]) -> ModelTurn:
        """Like :meth:`complete`, but streamed: ``on_text`` gets each content delta as it arrives.

        The cost is the ``usage.cost`` LiteLLM puts on the stream's usage chunk (streams carry no
        cost header)."""
        if self.direct:
            return await self._direct_streaming(model, messages, tools, timeout_s, on_text)
        assert self.stream_http is not None
        request = self._request(self.stream_http, model, messages, tools, timeout_s, stream=True, stream_options={"include_usage": True})
        response = await _send(self.stream_http, request, model, stream=True)
        try:
            if response.status_code != 200:
                await response.aread()
                raise ModelCallError(model, response.status_code, _error_message(response))
            return await _read_stream(model, response.aiter_lines(), on_text)
        except httpx.TimeoutException:
            raise ModelCallError(model, 0, "model call timed out") from None
        finally:
            await response.aclose()

    async def _direct_streaming(self, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                                timeout_s: float, on_text: Callable[[str], Awaitable[None]]) -> ModelTurn:
        body = _body(model, messages, tools, **self.params, stream=True, stream_options={"include_usage": True})
        reply = None
        try:
            async with _deadline(model, timeout_s):
                reply = await self._direct_call(body)
                if reply.status != 200:
                    raise ModelCallError(model, reply.status, (reply.error or "model call failed")[:2000])
                if reply.stream is None:  # a whole answer where a stream was asked (e.g. a guardrail's reply)
                    turn = _turn(model, reply.body, reply.headers)
                    if turn.message.get("content") and not turn.message.get("tool_calls"):
                        await on_text(turn.message["content"])
                    return turn
                return await _read_stream(model, _lines(reply.stream), on_text)
        finally:
            if reply is not None and reply.stream is not None:
                await reply.stream.aclose()


@contextlib.asynccontextmanager
async def _deadline(model: str, timeout_s: float) -> AsyncIterator[None]:
    """At most ``timeout_s`` for an in-process call; running out is the model call timing out."""
    try:
        async with asyncio.timeout(timeout_s):
            yield
    except TimeoutError:
        raise ModelCallError(model, 0, "model call timed out") from None


def _body(model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": messages, **extra}
    if tools:
        body["tools"] = tools
    return body


def _turn(model: str, data: Any, headers: Mapping[str, str]) -> ModelTurn:
    """The assistant turn in a chat completion answer (cost from LiteLLM's cost headers)."""
    try:
        choice = data["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError):
        raise ModelCallError(model, 502, "model answer had no choices[0].message") from None
    usage = data.get("usage") or {}
    cost = _usd(headers.get("x-litellm-response-cost")) or 0.0
    clean = {"role": "assistant", "content": message.get("content")}
    if message.get("tool_calls"):
        clean["tool_calls"] = [
            {"id": c.get("id"), "type": "function", "function": {"name": c["function"]["name"], "arguments": c["function"].get("arguments") or "{}"}}
            for c in message["tool_calls"]
            if isinstance(c, dict) and isinstance(c.get("function"), dict)
        ]
    return ModelTurn(clean, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0), cost,
                     _usd(headers.get("x-litellm-response-cost-input")), _usd(headers.get("x-litellm-response-cost-output")),
                     _reason(choice.get("finish_reason")))


async def _lines(chunks: AsyncIterator[str]) -> AsyncIterator[str]:
    """The lines of SSE text that arrives in chunks of any size."""
    pending = ""
    async for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split("\n")
        for line in complete:
            yield line.rstrip("\r")
    if pending:
        yield pending


async def _send(http: httpx.AsyncClient, request: httpx.Request, model: str, stream: bool) -> httpx.Response:
    try:
        return await http.send(request, stream=stream)
    except httpx.TimeoutException:
        raise ModelCallError(model, 0, "model call timed out") from None
    except httpx.HTTPError as exc:
        raise ModelCallError(model, 0, f"model call failed: {type(exc).__name__}") from None


async def _read_stream(model: str, lines: AsyncIterator[str], on_text: Callable[[str], Awaitable[None]]) -> ModelTurn:
    content: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    usage: dict[str, Any] = {}
    finish_reason = None
    async for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            break
        try:
            chunk = json.loads(data)
        except ValueError:
            continue
        if isinstance(chunk.get("error"), dict):  # LiteLLM reports a failure mid-stream this way
            error = chunk["error"]
            code = str(error.get("code") or "")
            raise ModelCallError(model, int(code) if code.isascii() and code.isdigit() and len(code) == 3 else 502, str(error.get("message") or "stream failed"))
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            finish_reason = _reason(choice.get("finish_reason")) or finish_reason
            delta = choice.get("delta") or {}
            if delta.get("content"):
                content.append(delta["content"])
                if not calls:  # text written before any tool call is progress the caller sees
                    await on_text(delta["content"])
            for call in delta.get("tool_calls") or []:
                slot = calls.setdefault(int(call.get("index") or 0), {"id": None, "name": "", "arguments": ""})
                slot["id"] = call.get("id") or slot["id"]
                function = call.get("function") or {}
                slot["name"] += function.get("name") or ""
                slot["arguments"] += function.get("arguments") or ""
    message: dict[str, Any] = {"role": "assistant", "content": "".join(content) or None}
    if calls:
        message["tool_calls"] = [{"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"] or "{}"}}
                                 for _, c in sorted(calls.items())]
    details = found if isinstance(found := usage.get("cost_details"), dict) else {}
    return ModelTurn(message, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0),
                     _usd(usage.get("cost")) or 0.0, _usd(details.get("input_cost")), _usd(details.get("output_cost")), finish_reason)
