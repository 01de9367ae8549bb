"""A chat completion made in process as a caller: LiteLLM's own auth, then its own route handler.

What a ``POST /v1/chat/completions`` of the caller runs, minus HTTP: no socket, no ASGI middleware
stack, no route matching, no FastAPI dependency solving, no JSON encoding of the request nor of
the answer. Per call, exactly as for a direct request:

1. ``user_api_key_auth`` with the caller's headers, for the ``/v1/chat/completions`` route and
   this body: key/JWT/custom auth (LiteLLM caches key lookups), expiry and blocked keys, route
   permissions, key/team/user/end-user model access, every budget, budget reservation;
2. the route's own endpoint (``chat_completion``): metadata for spend logging, the pre-call hooks
   (rpm/tpm and parallel-request limiters, budget limiters, guardrails, callbacks), the Router,
   the post-call hooks, the cost headers;
3. a budget reservation no callback took is released when the call is over (what LiteLLM's
   ``BudgetReservationReleaseMiddleware`` does for an HTTP request).

The body LiteLLM gets is a copy: hooks and guardrails may edit it in place, the caller's
transcript must not change.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from proxy_ext.litellm_adapter.routes import flat_routes

__all__ = ["DirectChatReply", "direct_auth_refusal", "direct_chat", "direct_chat_problem"]

CHAT_ROUTE = "/v1/chat/completions"


@dataclass
class DirectChatReply:
    """What LiteLLM answered: a status, its response headers, and a JSON body or an SSE stream."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    """The JSON answer (non-streamed), or an error body."""
    stream: Any = None
    """SSE text as LiteLLM sends it (streamed): an async iterator of str; ``aclose()`` it when done,
    read or not."""
    error: str | None = None
    """The error message, for a status other than 200."""


@dataclass(frozen=True)
class _Entry:
    app: Any
    route: Any
    endpoint: Any
    auth: Any
    key_headers: tuple[tuple[str, str], ...]
    """(parameter of ``user_api_key_auth``, header it reads) for each of its API key headers."""


_entry: _Entry | None = None


def _key_headers(auth: Any) -> tuple[tuple[str, str], ...]:
    from fastapi.params import Security
    from fastapi.security import APIKeyHeader

    found = []
    for name, parameter in inspect.signature(auth).parameters.items():
        default = parameter.default
        if isinstance(default, Security) and isinstance(default.dependency, APIKeyHeader):
            found.append((name, default.dependency.model.name))
    return tuple(found)


def _resolve() -> _Entry:
    global _entry
    if _entry is None:
        from litellm.proxy import proxy_server
        from litellm.proxy.auth.user_api_key_auth import user_api_key_auth

        endpoint = proxy_server.chat_completion
        # The route object goes into the scope as FastAPI would put it (route templates for metrics).
        route = next((r for r in flat_routes(proxy_server.app.routes) if getattr(r, "endpoint", None) is endpoint), None)
        _entry = _Entry(proxy_server.app, route, endpoint, user_api_key_auth, _key_headers(user_api_key_auth))
    return _entry


def direct_chat_problem() -> str | None:
    """Why in-process calls cannot be made with this LiteLLM (None: they can)."""
    try:
        entry = _resolve()
        parameters = inspect.signature(entry.endpoint).parameters
    except Exception as exc:  # noqa: BLE001  # any shape we do not know: fall back, and say why
        return f"LiteLLM's chat route could not be resolved ({type(exc).__name__})"
    missing = {"request", "fastapi_response", "user_api_key_dict"} - set(parameters)
    return f"LiteLLM's chat route has no parameter(s) {sorted(missing)}" if missing else None


def _plain_copy(value: Any) -> Any:
    """A copy of JSON-like data (dicts and lists copied, leaves shared: they are immutable)."""
    if isinstance(value, dict):
        return {k: _plain_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_copy(v) for v in value]
    return value


def _encode(body: dict[str, Any]) -> bytes:
    try:
        import orjson  # LiteLLM's own dependency; several times faster than json

        return orjson.dumps(body)
    except (ImportError, TypeError):  # e.g. an integer beyond 64 bits, which json writes
        return json.dumps(body).encode()


def _request(entry: _Entry, body: dict[str, Any], headers: Mapping[str, str], client: tuple[str, int] | None) -> Any:
    from starlette.requests import Request

    raw = [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-type", b"application/json"))
    sent = False

    async def receive() -> dict[str, Any]:  # for code that reads the raw body (LiteLLM's model-alias check does)
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": _encode(body), "more_body": False}
        await asyncio.Event().wait()  # never a disconnect: cancellation ends the call
        return {"type": "http.disconnect"}

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": CHAT_ROUTE, "raw_path": CHAT_ROUTE.encode(), "root_path": "", "query_string": b"", "headers": raw,
             "client": client or ("127.0.0.1", 0), "server": ("proxy.internal", 80), "state": {}, "app": entry.app,
             "endpoint": entry.endpoint, "path_params": {}, "parsed_body": (tuple(body), body)}
    if entry.route is not None:
        scope["route"] = entry.route
    return Request(scope, receive)


def _message(value: Any) -> str | None:
    """The message of an OpenAI-style error value: ``{"error": {"message": ...}}``, ``{"message": ...}``
    or plain text (None when there is none)."""
    error = value.get("error", value) if isinstance(value, dict) else value
    message = error.get("message", error) if isinstance(error, dict) else error
    return str(message) if message else None


def _failure(exc: BaseException) -> DirectChatReply:
    """The status and message a direct request would have got for ``exc``."""
    from fastapi import HTTPException
    from litellm.proxy._types import ProxyException

    if isinstance(exc, ProxyException):
        code = str(exc.code or "")
        return DirectChatReply(int(code) if code.isascii() and code.isdigit() and len(code) == 3 else 500, error=str(exc.message))
    if isinstance(exc, HTTPException):
        return DirectChatReply(exc.status_code, error=_message(exc.detail) or str(exc.detail))
    status = getattr(exc, "status_code", None)
    return DirectChatReply(status if isinstance(status, int) and 400 <= status < 600 else 500, error=f"{type(exc).__name__}: {exc}")


async def _release_reservation(request: Any) -> None:
    reservation = request.scope["state"].get("budget_reservation")
    if not isinstance(reservation, Mapping):
        return
    try:
        from litellm.proxy.spend_tracking.budget_reservation import release_unbound_budget_reservation
    except ImportError:  # releases without budget reservations
        return
    await release_unbound_budget_reservation(reservation)


class _Stream:
    """The SSE text of a streamed answer. ``aclose`` ends it whether or not it was read (the
    endpoint's iterator holds the upstream connection) and releases the call's budget reservation."""

    def __init__(self, request: Any, iterator: Any) -> None:
        self.request = request
        self.iterator = iterator.__aiter__()
        self.closed = False

    def __aiter__(self) -> "_Stream":
        return self

    async def __anext__(self) -> str:
        chunk = await self.iterator.__anext__()
        return chunk.decode() if isinstance(chunk, (bytes, bytearray)) else str(chunk)

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            close = getattr(self.iterator, "aclose", None)
            if close is not None:
                await close()
        finally:
            await _release_reservation(self.request)


def _from_response(result: Any) -> DirectChatReply:
    """A reply from a starlette ``Response`` the endpoint returned (e.g. a JSON error)."""
    try:
        data = json.loads(bytes(result.body) or b"null")
    except (ValueError, TypeError):
        data = None
    reply = DirectChatReply(result.status_code, dict(result.headers), data)
    if result.status_code != 200:
        reply.error = _message(data) or f"model call failed with status {result.status_code}"
    return reply


def _cancel_swallowed() -> bool:
    """The calling task was cancelled and the endpoint returned anyway: LiteLLM code awaited in
    ``except BaseException: pass`` (e.g. its first-chunk disconnect watch) can absorb a
    cancellation. A cancelled run must still stop, so the cancellation is raised again."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def direct_chat(body: dict[str, Any], headers: Mapping[str, str], client: tuple[str, int] | None = None) -> DirectChatReply:
    """``POST /v1/chat/completions`` with ``body`` as the caller whose ``headers`` these are."""
    from starlette.responses import Response, StreamingResponse

    entry = _resolve()
    request = None
    streaming = False
    try:
        request = _request(entry, _plain_copy(body), headers, client)
        keys = {name: request.headers.get(header) for name, header in entry.key_headers}
        identity = await entry.auth(request=request, **keys)
        answer = Response()
        result = await entry.endpoint(request=request, fastapi_response=answer, model=None, user_api_key_dict=identity)
        if isinstance(result, StreamingResponse):
            if _cancel_swallowed():
                await _Stream(request, result.body_iterator).aclose()
                streaming = True  # released by aclose
                raise asyncio.CancelledError
            streaming = True
            return DirectChatReply(result.status_code, dict(result.headers), stream=_Stream(request, result.body_iterator))
        if _cancel_swallowed():
            raise asyncio.CancelledError
        if isinstance(result, Response):
            return _from_response(result)
        if hasattr(result, "model_dump"):
            result = result.model_dump(exclude_none=True)
        return DirectChatReply(200, dict(answer.headers), result)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001  # what the proxy's exception handlers would have answered
        return _failure(exc)
    finally:
        if request is not None and not streaming:
            await _release_reservation(request)


async def direct_auth_refusal(model: str, headers: Mapping[str, str], client: tuple[str, int] | None = None) -> DirectChatReply | None:
    """What step 1 (``user_api_key_auth``) answers a chat call to ``model`` by the caller whose
    ``headers`` these are, when it refuses it (None: it passes). Nothing is called; a budget
    reservation auth made is released. Durable runs check this when one is submitted: a key
    without access to the model is refused then, not at the run's first turn."""
    entry = _resolve()
    request = None
    try:
        request = _request(entry, {"model": model, "messages": [{"role": "user", "content": ""}]}, headers, client)
        keys = {name: request.headers.get(header) for name, header in entry.key_headers}
        await entry.auth(request=request, **keys)
        return None
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001  # what the proxy's exception handlers would have answered
        return _failure(exc)
    finally:
        if request is not None:
            await _release_reservation(request)
