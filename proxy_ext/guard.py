"""A pure-ASGI request guard in front of the whole proxy (``proxy_ext.guard``).

Every route, stock ones included:

- a request body larger than its limit is refused with a 413 **before anyone reads it** when its
  ``Content-Length`` says so, and cut off at the limit when it is sent chunked (the app then sees
  the client leave; the 413 is already on its way);
- a body that stops arriving (declared but never sent, or stalled mid-way) gets a 408 after
  ``body_timeout_s`` of silence, and one still arriving after ``body_deadline_s`` (a byte now and
  then: slowloris) too, instead of holding a worker's connection forever.

The extension's own JSON routes (``/agent/run`` …) also get their body checked here, before the
proxy's auth parses it: it must be ``application/json``, at most the route's byte limit, valid
JSON, a JSON object, and nested at most ``max_json_depth`` deep. A request without any credential
header is refused with a 401 first (unless ``custom_auth`` decides who may call). The parsed object
is handed on (``on_parsed``), so nobody parses the body twice.

Errors are OpenAI-style bodies (:func:`proxy_ext.exceptions.error_body`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from proxy_ext import credentials
from proxy_ext.control_params import ControlFieldScan, header_problem
from proxy_ext.exceptions import RequestError, error_body
from proxy_ext.json_body import content_type_problem, loads_finite, parse_json_object
from proxy_ext.providers.request_check import ServedModels, accepted_params, agent_body_problem, request_problem
from proxy_ext.providers.stored_responses import NotStoredAnswer, stored_response_problem

__all__ = ["CREDENTIAL_HEADERS", "GuardPolicy", "RequestGuard"]

CREDENTIAL_HEADERS = tuple(name.encode() for name in credentials.CREDENTIAL_HEADERS)
"""Headers the proxy's auth reads a key from."""

_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
OBJECT_BODY_PREFIXES = ("/v1/", "/chat/", "/completions", "/embeddings", "/responses", "/engines/", "/openai/")
"""LiteLLM's OpenAI-compatible routes: their JSON bodies must be objects (provider pass-through
routes are left alone: they forward whatever the provider takes)."""
_DISCONNECT = {"type": "http.disconnect"}


@dataclass(frozen=True)
class GuardPolicy:
    """What the guard enforces (built from ``proxy_ext.guard`` and the extension's routes)."""

    max_body_bytes: int
    """Limit for any route without a more specific one."""
    body_timeout_s: float
    """Longest silence while a body is being received."""
    max_json_depth: int
    """Deepest nesting accepted in the JSON body of a JSON route."""
    body_deadline_s: float = 120.0
    """Longest time a whole body may take to arrive."""
    max_json_elements: int = 1_000_000
    """Most ``,``/``[``/``{`` bytes in a JSON body of an OpenAI or extension route."""
    prefix_limits: tuple[tuple[str, int], ...] = ()
    """(path prefix, limit), longest prefix first."""
    json_routes: Mapping[str, int] = field(default_factory=dict)
    """POST paths of the extension's JSON routes, each with its byte limit."""
    json_route_patterns: tuple[tuple[str, str, int], ...] = ()
    """(prefix, suffix, limit) of templated JSON routes, e.g. ``/agent/runs/{id}/approvals``."""
    require_credentials: bool = True
    """401 on a JSON route when no credential header is sent (off when ``custom_auth`` decides)."""
    served_models: ServedModels | None = None
    """The extension's own models: requests
    to LiteLLM's routes naming one get :func:`~proxy_ext.providers.request_check.request_problem`'s
    400 (None: the config has none; bodies stream through untouched)."""
    sessions_available: Callable[[], bool] | None = None
    """Whether LiteLLM can rebuild a ``previous_response_id`` conversation for the extension's
    models right now (None: not checked)."""
    response_id_provider: Callable[[str], str | None] | None = None
    """The provider a Responses API response id names (None: not checked, the config has none of
    the extension's models): :mod:`proxy_ext.providers.stored_responses`."""
    max_client_retries: int = 10
    """Most retries a request may ask LiteLLM for (:mod:`proxy_ext.control_params`)."""
    rewrite_401_paths: tuple[str, ...] = ()
    """Paths whose 401 bodies are rewritten into the OpenAI error shape (LiteLLM's ``/metrics``
    auth answers with a bare JSON string)."""

    def json_limit(self, path: str) -> int | None:
        """The byte limit when ``path`` is one of the extension's JSON routes (else None)."""
        limit = self.json_routes.get(path)
        if limit is not None:
            return limit
        for prefix, suffix, pattern_limit in self.json_route_patterns:
            if path.startswith(prefix) and path.endswith(suffix) and "/" not in path[len(prefix):-len(suffix) or None]:
                return pattern_limit
        return None

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.prefix_limits:
            if path.startswith(prefix):
                return limit
        return self.max_body_bytes


def _header(scope: dict[str, Any], name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return value
    return None


def _declared_over(declared: bytes | None, limit: int) -> TypeGuard[bytes]:
    """A ``Content-Length`` over ``limit``; a number of 19+ digits is (and int() refuses 4,300+)."""
    return declared is not None and declared.isdigit() and (len(declared) > 18 or int(declared) > limit)


async def _reply(send: Any, status: int, message: str, extra_headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    body = json.dumps(error_body(status, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close"), *extra_headers]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class _BoundedBody:
    """The app's view of one request: body bytes counted against the limit, silence timed out.

    When the guard has answered (413/408), the app sees the client leave and whatever it sends
    afterwards is dropped.
    """

    __slots__ = ("_receive", "_send", "limit", "timeout_s", "deadline_s", "ends", "received", "done", "started", "answered",
                 "expect_object", "max_elements", "elements_left", "control_scan")

    def __init__(self, receive: Any, send: Any, limit: int, timeout_s: float, deadline_s: float, expect_object: bool = False,
                 max_elements: int | None = None, control_scan: ControlFieldScan | None = None) -> None:
        self.control_scan = control_scan  # None: the body's retry and timeout fields are not checked
        self._receive, self._send = receive, send
        self.limit, self.timeout_s, self.deadline_s = limit, timeout_s, deadline_s
        self.max_elements = self.elements_left = max_elements  # None: not a JSON body, nothing counted
        self.ends: float | None = None  # when the whole body must be in (set at the first read)
        self.received = 0
        self.done = self.started = self.answered = False
        self.expect_object = expect_object

    async def receive(self) -> Any:
        if self.answered:
            return _DISCONNECT
        if self.done:
            return await self._receive()
        now = asyncio.get_running_loop().time()
        if self.ends is None:
            self.ends = now + self.deadline_s
        try:
            async with asyncio.timeout(min(self.timeout_s, self.ends - now)):  # no extra task, unlike wait_for on 3.11
                message = await self._receive()
        except TimeoutError:
            if asyncio.get_running_loop().time() >= self.ends:
                await self._answer(408, f"request body not complete within {self.deadline_s:g} s (proxy_ext.guard.body_deadline_s)")
            else:
                await self._answer(408, f"request body not received within {self.timeout_s:g} s of silence (proxy_ext.guard.body_timeout_s)")
            return _DISCONNECT
        if message["type"] == "http.request":
            chunk = message.get("body") or b""
            self.received += len(chunk)
            if self.received > self.limit:
                await self._answer(413, f"request body exceeds the limit of {self.limit} bytes (proxy_ext.guard)")
                return _DISCONNECT
            if self.elements_left is not None and chunk:
                self.elements_left -= chunk.count(b",") + chunk.count(b"[") + chunk.count(b"{")
                if self.elements_left < 0:
                    await self._answer(413, f"request body holds more than {self.max_elements} JSON elements (proxy_ext.guard.max_json_elements)")
                    return _DISCONNECT
            if self.expect_object and chunk.strip():
                # LiteLLM's JSON routes crash (500) on a body that is JSON but not an object; its
                # first byte tells, at no cost.
                self.expect_object = False
                if not chunk.lstrip().startswith(b"{"):
                    bom = chunk.startswith(b"\xef\xbb\xbf")  # LiteLLM's JSON parsers refuse it too
                    await self._answer(400, "request body starts with a UTF-8 byte order mark: send the JSON without it" if bom
                                       else "request body must be a JSON object ({...})")
                    return _DISCONNECT
            self.done = not message.get("more_body", False)
            problem = self.control_scan.feed(chunk, self.done) if self.control_scan is not None else None
            if problem:
                await self._answer(400, problem)
                return _DISCONNECT
        return message

    async def send(self, message: Any) -> None:
        if self.answered:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)

    async def _answer(self, status: int, text: str) -> None:
        self.answered = True
        if not self.started:
            await _reply(self._send, status, text)

    async def read_all(self) -> bytes | None:
        """The whole body (None when the guard answered instead)."""
        chunks = []
        while not self.done:
            message = await self.receive()
            if message["type"] != "http.request":
                return None
            chunks.append(message.get("body") or b"")
        return b"".join(chunks)


def _replaying(raw: bytes, receive: Any) -> Callable[[], Any]:
    """An ASGI ``receive`` that gives the body already read, then what ``receive`` gives."""
    replayed = False

    async def replay() -> Any:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return await receive()

    return replay


def _allowing_accepted_params(scope: dict[str, Any], raw: bytes, parsed: dict[str, Any],
                              served: ServedModels) -> tuple[dict[str, Any], bytes]:
    """(scope, body) of a request to one of the extension's models, with LiteLLM's
    ``allowed_openai_params`` naming the fields these models take that LiteLLM would refuse
    (:func:`~proxy_ext.providers.request_check.accepted_params`); unchanged when there are none."""
    wanted = accepted_params(scope["path"], parsed, served)
    allowed = parsed.get("allowed_openai_params")
    allowed = allowed if isinstance(allowed, list) else []
    missing = [name for name in wanted if name not in allowed]
    if not missing:
        return scope, raw
    raw = json.dumps({**parsed, "allowed_openai_params": [*allowed, *missing]}).encode()
    headers = [(k, v) for k, v in scope.get("headers") or () if k.lower() != b"content-length"]
    return {**scope, "headers": [*headers, (b"content-length", str(len(raw)).encode())]}, raw


class _Openai401:
    """Rewrites a 401 whose JSON body is a bare string into ``{"error": {...}}``."""

    __slots__ = ("_send", "_held")

    def __init__(self, send: Any) -> None:
        self._send = send
        self._held: dict[str, Any] | None = None

    async def send(self, message: Any) -> None:
        if message["type"] == "http.response.start" and message["status"] == 401:
            self._held = message
            return
        if self._held is None or message["type"] != "http.response.body":
            await self._send(message)
            return
        try:
            text = json.loads(message.get("body") or b"null")
        except ValueError:
            text = None
        start, self._held = self._held, None
        if not isinstance(text, str):
            await self._send(start)
            await self._send(message)
            return
        await _reply(self._send, 401, text, tuple((k, v) for k, v in start.get("headers") or () if k.lower() == b"www-authenticate"))


class RequestGuard:
    """The ASGI middleware. ``on_parsed(scope, body)`` receives each JSON route's parsed object."""

    def __init__(self, app: Any, policy: GuardPolicy, on_parsed: Callable[[dict[str, Any], dict[str, Any]], None] | None = None) -> None:
        self.app = app
        self.policy = policy
        self.on_parsed = on_parsed

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        json_limit = self.policy.json_limit(path)
        if json_limit is not None:
            if scope["method"] == "POST":
                await self._json_route(scope, receive, send, json_limit)
                return
            if scope["method"] != "OPTIONS":  # CORS preflights are the app's (its CORS middleware answers)
                await _reply(send, 405, f"{path} takes POST with a JSON body", ((b"allow", b"POST"),))
                return
        if self.policy.response_id_provider is not None and "/responses/" in path:
            problem = stored_response_problem(scope["method"], path, self.policy.response_id_provider)
            if problem:
                send = NotStoredAnswer(send, problem).send
        if path in self.policy.rewrite_401_paths:
            send = _Openai401(send).send
        declared = _header(scope, b"content-length")
        if declared is None and scope["method"] in _BODYLESS and _header(scope, b"transfer-encoding") is None:
            await self.app(scope, receive, send)  # no body to guard: the common GET costs one header scan
            return
        limit = self.policy.limit_for(path)
        if _declared_over(declared, limit):
            await _reply(send, 413, f"request body of {declared.decode()[:40]} bytes exceeds the limit of {limit} bytes (proxy_ext.guard)")
            return
        openai_route = scope["method"] == "POST" and path.startswith(OBJECT_BODY_PREFIXES)
        problem = header_problem(scope.get("headers") or (), self.policy.max_client_retries) if openai_route else None
        if problem:
            await _reply(send, 400, problem)
            return
        content_type = _header(scope, b"content-type")
        expect_object = openai_route and (content_type is None or content_type_problem(content_type.decode("latin-1")) is None)
        body = _BoundedBody(receive, send, limit, self.policy.body_timeout_s, self.policy.body_deadline_s, expect_object,
                            self.policy.max_json_elements if expect_object else None,
                            ControlFieldScan(self.policy.max_client_retries) if expect_object else None)
        if expect_object and self.policy.served_models is not None:
            await self._served_model_route(scope, body)
            return
        await self.app(scope, body.receive, body.send)

    async def _served_model_route(self, scope: dict[str, Any], body: _BoundedBody) -> None:
        """A LiteLLM route of a config with models of the extension: the whole body is read, and a
        request naming one of them is checked before LiteLLM sees it."""
        raw = await body.read_all()
        if raw is None:
            return  # answered (413/408/400) or the client left
        served = self.policy.served_models
        if served is not None and served.named_in(raw):
            try:
                parsed = loads_finite(raw)
            except RequestError as exc:  # NaN in a message: the run would fail on it after its model calls' retries
                await _reply(body.send, exc.status, exc.message)
                return
            except (ValueError, RecursionError):
                parsed = None  # LiteLLM answers a body that is no JSON itself
            if isinstance(parsed, dict):
                too_big = agent_body_problem(parsed, len(raw), served)
                if too_big:
                    await _reply(body.send, 413, too_big)
                    return
                problem = request_problem(scope["path"], parsed, served, self.policy.sessions_available)
                if problem:
                    await _reply(body.send, 400, problem)
                    return
                scope, raw = _allowing_accepted_params(scope, raw, parsed, served)
        await self.app(scope, _replaying(raw, body.receive), body.send)

    async def _json_route(self, scope: dict[str, Any], receive: Any, send: Any, limit: int) -> None:
        if self.policy.require_credentials and not any(_header(scope, name) for name in CREDENTIAL_HEADERS):
            await _reply(send, 401, "no API key: send Authorization: Bearer <proxy key>", ((b"www-authenticate", b"Bearer"),))
            return
        content_type = _header(scope, b"content-type")
        problem = content_type_problem(content_type.decode("latin-1") if content_type else None)
        if problem:
            await _reply(send, 415, problem)
            return
        problem = header_problem(scope.get("headers") or (), self.policy.max_client_retries)  # a run's turns carry them
        if problem:
            await _reply(send, 400, problem)
            return
        declared = _header(scope, b"content-length")
        if _declared_over(declared, limit):
            await _reply(send, 413, f"request body of {declared.decode()[:40]} bytes exceeds the limit of {limit} bytes "
                                    "(proxy_ext.agent.limits.max_request_bytes)")
            return
        body = _BoundedBody(receive, send, limit, self.policy.body_timeout_s, self.policy.body_deadline_s,
                            max_elements=self.policy.max_json_elements)
        raw = await body.read_all()
        if raw is None:
            return  # answered (413/408) or the client left
        try:
            parsed = parse_json_object(raw, self.policy.max_json_depth)
        except RequestError as exc:
            await _reply(send, exc.status, exc.message)
            return
        if self.on_parsed is not None:
            self.on_parsed(scope, parsed)
        await self.app(scope, _replaying(raw, receive), send)
