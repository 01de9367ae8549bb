"""Model calls of the agent, made through the proxy's own ``/v1/chat/completions`` as the caller.

Why through the proxy's route rather than calling the Router directly: the request then passes
through exactly the same auth, model-access checks, budgets, rate limits, hooks and spend logging
as the caller's own chat call — with the caller's headers — so an agent run can never reach a
model the key may not use, and a LiteLLM upgrade cannot silently change that.

The transport is the ``httpx.AsyncClient`` given to :class:`ModelClient` (chosen by
``agent.model_transport``, see :mod:`proxy_ext.agent.service`): by default ``asgi``, the proxy's
own ASGI app called in process (no socket; streamed calls through
:class:`proxy_ext.agent.asgi_stream.StreamingASGITransport`); ``http`` is loopback HTTP to
``agent.proxy_base_url`` or the address the request arrived on, over one pooled keep-alive client.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Mapping
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

    def __init__(self, base_url: str, headers: Mapping[str, str], http: httpx.AsyncClient,
                 stream_http: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers)
        self.http = http
        self.stream_http = stream_http or http
        self.trace_headers: Callable[[], Mapping[str, str]] | None = None

    def _headers(self) -> dict[str, str]:
        if self.trace_headers is None:
            return self.headers
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _TRACE_CONTEXT}
        headers.update(self.trace_headers())
        return headers

    def _request(self, http: httpx.AsyncClient, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                 timeout_s: float, **extra: Any) -> httpx.Request:
        body: dict[str, Any] = {"model": model, "messages": messages, **extra}
        if tools:
            body["tools"] = tools
        return http.build_request("POST", f"{self.base_url}/v1/chat/completions", json=body, headers=self._headers(),
                                  timeout=httpx.Timeout(timeout_s, connect=min(5.0, timeout_s)))

    async def complete(self, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                       timeout_s: float) -> ModelTurn:
        response = await _send(self.http, self._request(self.http, model, messages, tools, timeout_s), model, stream=False)
        if response.status_code != 200:
            raise ModelCallError(model, response.status_code, _error_message(response))
        data = response.json()
        try:
            choice = data["choices"][0]
            message = choice["message"]
        except (KeyError, IndexError, TypeError):
            raise ModelCallError(model, 502, "model answer had no choices[0].message") from None
        usage = data.get("usage") or {}
        headers = response.headers
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

    async def complete_streaming(self, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                                 timeout_s: float, on_text: Callable[[str], Awaitable[None]]) -> ModelTurn:
        """Like :meth:`complete`, but streamed: ``on_text`` gets each content delta as it arrives.

        The cost is the ``usage.cost`` LiteLLM puts on the stream's usage chunk (streams carry no
        cost header)."""
        request = self._request(self.stream_http, model, messages, tools, timeout_s, stream=True, stream_options={"include_usage": True})
        response = await _send(self.stream_http, request, model, stream=True)
        try:
            if response.status_code != 200:
                await response.aread()
                raise ModelCallError(model, response.status_code, _error_message(response))
            return await _read_stream(model, response, on_text)
        except httpx.TimeoutException:
            raise ModelCallError(model, 0, "model call timed out") from None
        finally:
            await response.aclose()


async def _send(http: httpx.AsyncClient, request: httpx.Request, model: str, stream: bool) -> httpx.Response:
    try:
        return await http.send(request, stream=stream)
    except httpx.TimeoutException:
        raise ModelCallError(model, 0, "model call timed out") from None
    except httpx.HTTPError as exc:
        raise ModelCallError(model, 0, f"model call failed: {type(exc).__name__}") from None


async def _read_stream(model: str, response: httpx.Response, on_text: Callable[[str], Awaitable[None]]) -> ModelTurn:
    content: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    usage: dict[str, Any] = {}
    finish_reason = None
    async for line in response.aiter_lines():
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
            raise ModelCallError(model, int(error.get("code") or 502) if str(error.get("code") or "").isdigit() else 502,
                                 str(error.get("message") or "stream failed"))
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
