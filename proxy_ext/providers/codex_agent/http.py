"""HTTP mode: an OpenAI chat-completions compatible codex-agent service.

``POST {api_base}/chat/completions`` with the call's messages and the standard OpenAI parameters;
``Authorization: Bearer <api_key>`` only when a key is configured. One pooled httpx client per
(timeouts, pool size) is reused across calls (one per event loop for the async client). Upstream
error statuses become the matching LiteLLM exceptions (see :mod:`.errors`).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
from litellm.types.utils import ChatCompletionMessageToolCall, GenericStreamingChunk, ModelResponse, Usage

from proxy_ext.providers.codex_agent import errors
from proxy_ext.providers.codex_agent.settings import CallSettings
from proxy_ext.providers.chunks import final_chunk, text_chunk, tool_use_chunk

__all__ = ["acomplete", "astream", "complete", "stream"]

# OpenAI chat parameters forwarded to the service; everything else LiteLLM or the proxy adds
# (metadata, proxy_ext's own keys) stays here.
FORWARDED_PARAMS = (
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "presence_penalty",
    "frequency_penalty", "seed", "user", "response_format", "tools", "tool_choice", "parallel_tool_calls",
    "logit_bias", "reasoning_effort", "verbosity",
)
MAX_ERROR_TEXT = 2000


def _url(settings: CallSettings) -> str:
    if not settings.api_base:
        hint = ""
        if settings.alias == "codex_cli_agent":
            hint = ("; codex_cli_agent/* is the HTTP provider (as in the fork): to run the local codex CLI, "
                    "set litellm_params.codex_agent.mode: cli on the model")
        raise errors.bad_request(
            "HTTP mode needs a base URL: set litellm_params.api_base on the model, "
            f"proxy_ext.providers.codex_agent.api_base, or CODEX_AGENT_API_BASE{hint}",
            settings.model,
        )
    base = settings.api_base.rstrip("/")
    return base if base.endswith("/chat/completions") else f"{base}/chat/completions"


def _request(settings: CallSettings, messages: list[Any], optional_params: dict[str, Any], stream: bool) -> tuple[str, dict[str, str], dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if settings.api_key:
        headers["Authorization"] = f"Bearer {settings.api_key}"
    body: dict[str, Any] = {"model": settings.model, "messages": messages}
    body.update({k: optional_params[k] for k in FORWARDED_PARAMS if optional_params.get(k) is not None})
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return _url(settings), headers, body


def _timeout(settings: CallSettings, call_timeout: Any) -> httpx.Timeout:
    read = settings.config.timeout_s
    if isinstance(call_timeout, (int, float)) and call_timeout > 0:
        read = min(read, float(call_timeout))
    return httpx.Timeout(read, connect=settings.config.connect_timeout_s)


def _error_message(status: int, text: str) -> str:
    try:
        data = json.loads(text)
        error = data.get("error") if isinstance(data, dict) else None
        message = error.get("message") if isinstance(error, dict) else (error if isinstance(error, str) else None)
        if message:
            return f"upstream returned {status}: {message}"
    except ValueError:
        pass
    return f"upstream returned {status}: {text[:MAX_ERROR_TEXT] or '(empty body)'}"


def _raise_for_status(response: httpx.Response, text: str, model: str) -> None:
    if response.status_code >= 400:
        raise errors.from_status(response.status_code, _error_message(response.status_code, text), model, str(response.url))


def _transport_error(exc: httpx.HTTPError, model: str, url: str) -> Exception:
    # The message reaches API clients: name the failure, not the internal URL.
    if isinstance(exc, httpx.TimeoutException):
        return errors.timeout(f"the codex-agent service did not answer in time ({type(exc).__name__})", model)
    return errors.connection_error(f"cannot reach the codex-agent service ({type(exc).__name__}: {exc})", model, url)


# ------------------------------------------------------------------------------ pooled clients

_clients_lock = threading.Lock()
_sync_clients: dict[tuple[Any, ...], httpx.Client] = {}
# Keyed by the loop object itself (weakly): a client must never outlive its loop, and the id of a
# closed loop can be reused by the next one (asyncio.run in a loop).
_async_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], httpx.AsyncClient]]" = weakref.WeakKeyDictionary()


def _pool_key(settings: CallSettings) -> tuple[Any, ...]:
    return (settings.config.max_connections,)


def _limits(settings: CallSettings) -> httpx.Limits:
    return httpx.Limits(max_connections=settings.config.max_connections, max_keepalive_connections=settings.config.max_connections)


def _sync_client(settings: CallSettings) -> httpx.Client:
    key = _pool_key(settings)
    with _clients_lock:
        client = _sync_clients.get(key)
        if client is None or client.is_closed:
            client = _sync_clients[key] = httpx.Client(limits=_limits(settings))
        return client


def _async_client(settings: CallSettings) -> httpx.AsyncClient:
    # An AsyncClient's connections belong to the loop that opened them: one client per loop.
    key = _pool_key(settings)
    with _clients_lock:
        per_loop = _async_clients.setdefault(asyncio.get_running_loop(), {})
        client = per_loop.get(key)
        if client is None or client.is_closed:
            client = per_loop[key] = httpx.AsyncClient(limits=_limits(settings))
        return client


# ------------------------------------------------------------------------------ responses

def _usage(data: dict[str, Any] | None) -> Usage | None:
    if not isinstance(data, dict):
        return None
    prompt = int(data.get("prompt_tokens") or 0)
    completion = int(data.get("completion_tokens") or 0)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=int(data.get("total_tokens") or prompt + completion))


def _fill(model_response: ModelResponse, data: Any, model: str) -> ModelResponse:
    choices = data.get("choices") if isinstance(data, dict) else None
    if not choices or not isinstance(choices[0], dict):
        raise errors.from_status(502, f"upstream answered without choices: {str(data)[:MAX_ERROR_TEXT]}", model)
    choice = choices[0]
    message = choice.get("message") or {}
    target = model_response.choices[0].message  # type: ignore[union-attr]
    target.content = message.get("content")
    if message.get("tool_calls"):
        # LiteLLM's objects, as Message() itself would build them: its Responses API bridge reads
        # ``call.id`` (plain dicts made /v1/responses with function tools fail with a 400).
        target.tool_calls = [ChatCompletionMessageToolCall(**c) if isinstance(c, dict) else c for c in message["tool_calls"]]
    model_response.choices[0].finish_reason = choice.get("finish_reason") or "stop"
    model_response.model = model
    model_response.created = int(data.get("created") or time.time())
    usage = _usage(data.get("usage"))
    if usage is not None:
        setattr(model_response, "usage", usage)
    return model_response


def _tool_call_delta(delta: dict[str, Any]) -> dict[str, Any]:
    """One tool-call delta of the service's stream, in OpenAI's shape."""
    function = delta.get("function")
    if not isinstance(function, dict):
        function = {}
    return {"index": int(delta.get("index") or 0), "id": delta.get("id"), "type": delta.get("type") or "function",
            "function": {"name": function.get("name"), "arguments": function.get("arguments") or ""}}


class _StreamState:
    """Turns chat-completion SSE lines into LiteLLM generic chunks."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.finish_reason = "stop"
        self.usage: dict[str, int] | None = None
        self.done = False

    def feed(self, line: str) -> list[GenericStreamingChunk]:
        """The chunks of one SSE line: its text, then its tool-call deltas (as the service sent them:
        the first delta of a call has its id and name, the next ones pieces of its arguments)."""
        line = line.strip()
        if not line.startswith("data:"):
            return []
        payload = line[5:].strip()
        if payload == "[DONE]":
            self.done = True
            return []
        try:
            data = json.loads(payload)
        except ValueError:
            raise errors.from_status(502, f"upstream sent a malformed stream event: {payload[:200]}", self.model) from None
        if isinstance(data, dict) and data.get("error"):
            raise errors.from_status(502, _error_message(502, payload), self.model)
        usage = _usage(data.get("usage"))
        if usage is not None:
            self.usage = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens, "total_tokens": usage.total_tokens}
        text, calls = "", []
        for choice in data.get("choices") or []:
            delta = choice.get("delta") or {}
            text += delta.get("content") or ""
            calls += [_tool_call_delta(c) for c in delta.get("tool_calls") or [] if isinstance(c, dict)]
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return ([text_chunk(text)] if text else []) + [tool_use_chunk(call) for call in calls]

    def final(self) -> GenericStreamingChunk:
        return final_chunk(self.finish_reason, self.usage)


def _completion(response: httpx.Response, model_response: ModelResponse, model: str) -> ModelResponse:
    """A non-streaming upstream answer as a ModelResponse (or the matching LiteLLM exception)."""
    _raise_for_status(response, response.text, model)
    try:
        data = response.json()
    except ValueError:
        raise errors.from_status(502, f"upstream answered with non-JSON: {response.text[:200]}", model) from None
    return _fill(model_response, data, model)


# ------------------------------------------------------------------------------ entry points

def complete(settings: CallSettings, messages: list[Any], optional_params: dict[str, Any], model_response: ModelResponse, call_timeout: Any = None) -> ModelResponse:
    """Blocking non-streaming call."""
    url, headers, body = _request(settings, messages, optional_params, stream=False)
    try:
        response = _sync_client(settings).post(url, json=body, headers=headers, timeout=_timeout(settings, call_timeout))
    except httpx.HTTPError as exc:
        raise _transport_error(exc, settings.model, url) from None
    return _completion(response, model_response, settings.model)


async def acomplete(settings: CallSettings, messages: list[Any], optional_params: dict[str, Any], model_response: ModelResponse, call_timeout: Any = None) -> ModelResponse:
    """Async non-streaming call."""
    url, headers, body = _request(settings, messages, optional_params, stream=False)
    try:
        response = await _async_client(settings).post(url, json=body, headers=headers, timeout=_timeout(settings, call_timeout))
    except httpx.HTTPError as exc:
        raise _transport_error(exc, settings.model, url) from None
    return _completion(response, model_response, settings.model)


def stream(settings: CallSettings, messages: list[Any], optional_params: dict[str, Any], call_timeout: Any = None) -> Iterator[GenericStreamingChunk]:
    """Blocking streaming call: text deltas, then one final chunk with usage."""
    url, headers, body = _request(settings, messages, optional_params, stream=True)
    state = _StreamState(settings.model)
    try:
        with _sync_client(settings).stream("POST", url, json=body, headers=headers, timeout=_timeout(settings, call_timeout)) as response:
            if response.status_code >= 400:
                _raise_for_status(response, response.read().decode(errors="replace"), settings.model)
            for line in response.iter_lines():
                yield from state.feed(line)
    except httpx.HTTPError as exc:
        raise _transport_error(exc, settings.model, url) from None
    yield state.final()


async def astream(settings: CallSettings, messages: list[Any], optional_params: dict[str, Any], call_timeout: Any = None) -> AsyncIterator[GenericStreamingChunk]:
    """Async streaming call: text deltas, then one final chunk with usage."""
    url, headers, body = _request(settings, messages, optional_params, stream=True)
    state = _StreamState(settings.model)
    try:
        async with _async_client(settings).stream("POST", url, json=body, headers=headers, timeout=_timeout(settings, call_timeout)) as response:
            if response.status_code >= 400:
                _raise_for_status(response, (await response.aread()).decode(errors="replace"), settings.model)
            async for line in response.aiter_lines():
                for chunk in state.feed(line):
                    yield chunk
    except httpx.HTTPError as exc:
        raise _transport_error(exc, settings.model, url) from None
    yield state.final()
