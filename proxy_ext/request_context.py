"""The incoming HTTP request, visible to code running for it: headers, address, and its client's hang-up.

LiteLLM strips the caller's ``Authorization`` before it reaches a model provider. The
``mini-agent/<profile>`` provider needs it: the agent's own model calls must be made *as the
caller*, so the key's model list, budget and rate limits apply to them. A tiny pure-ASGI wrapper
(installed by :mod:`proxy_ext.glue`) records each request in a context variable for the duration
of that request; nothing else reads it and nothing is logged.

It also ties work to the client that asked for it: :func:`cancel_on_disconnect` registers a task
(an agent run) that is cancelled when the client hangs up — noticed by a watcher on the request's
ASGI ``receive`` — or, as a backstop, when the request's ASGI call ends for any reason.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["RequestContextMiddleware", "RequestInfo", "cancel_on_disconnect", "client_gone", "current_request", "install",
           "request_note", "set_request_note", "watch_client"]

_DISCONNECT = {"type": "http.disconnect"}


@dataclass(frozen=True)
class RequestInfo:
    """What is known about the HTTP request being served."""

    headers: dict[str, str]
    """Request headers, lower-case names."""
    server: tuple[str, int] | None
    """Address the request arrived on (host, port)."""
    scheme: str
    """``http`` or ``https``."""
    client: tuple[str, int] | None = None
    """The client's address (host, port)."""


class _Channel:
    """One request's ASGI ``receive``, shared between the app and a disconnect watcher.

    Until a run asks for it, ``receive`` is a pass-through that only notices a disconnect. Then a
    watcher task (:meth:`watch`) owns reading the connection: messages the app has not read yet
    (e.g. a body the request guard replays) are kept for the app's later ``receive`` calls, and the
    ``http.disconnect`` it finally gets cancels the registered tasks and answers every later call.
    """

    __slots__ = ("scope", "_receive", "_watcher", "_pending", "_disconnect", "_changed", "tasks", "gone", "notes")

    def __init__(self, scope: dict[str, Any], receive: Any) -> None:
        self.scope = scope
        self._receive = receive
        self._watcher: asyncio.Task[Any] | None = None
        self._pending: collections.deque[Any] = collections.deque()
        self._disconnect: Any = None
        self._changed: asyncio.Future[None] | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.gone = False
        """The client hung up (or the request ended): tasks registered from now on are cancelled at once."""
        self.notes: dict[str, Any] | None = None

    async def receive(self) -> Any:
        if self._watcher is None:
            message = await self._receive()
            if message.get("type") == "http.disconnect":
                self.cancel_tasks()
            return message
        while not self._pending and self._disconnect is None:
            if self._changed is None or self._changed.done():
                self._changed = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._changed)
        return self._pending.popleft() if self._pending else self._disconnect

    def watch(self) -> None:
        if self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch(), name="proxy_ext.disconnect_watch")

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message.get("type") == "http.disconnect":
                self._disconnect = message
                self.cancel_tasks()
            else:
                self._pending.append(message)
            if self._changed is not None and not self._changed.done():
                self._changed.set_result(None)
            if self._disconnect is not None:
                return

    def cancel_tasks(self) -> None:
        self.gone = True
        for task in list(self.tasks):
            task.cancel()
        self.tasks.clear()

    def close(self) -> None:
        self.cancel_tasks()
        if self._watcher is not None and not self._watcher.done():
            self._watcher.cancel()


# The channel (and through it the ASGI scope) is stored: headers are decoded only when a provider
# asks, so the other requests of the proxy pay for one context-variable set and reset, nothing more.
_current: contextvars.ContextVar[_Channel | None] = contextvars.ContextVar("proxy_ext_request", default=None)


def current_request() -> RequestInfo | None:
    """The request being served by this task (None outside an HTTP request)."""
    channel = _current.get()
    if channel is None:
        return None
    scope = channel.scope
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
    return RequestInfo(headers, scope.get("server"), scope.get("scheme", "http"), scope.get("client"))


def set_request_note(name: str, value: Any) -> bool:
    """Leave ``value`` for later code serving the same HTTP request (e.g. a provider's figure for a
    response hook); False outside an HTTP request. Notes live exactly as long as the request."""
    channel = _current.get()
    if channel is None:
        return False
    if channel.notes is None:
        channel.notes = {}
    channel.notes[name] = value
    return True


def request_note(name: str) -> Any:
    """A note left by :func:`set_request_note` for the current request, or None."""
    channel = _current.get()
    return None if channel is None or channel.notes is None else channel.notes.get(name)


def watch_client() -> None:
    """Start watching the current request's client for a hang-up (call it once the app has what
    it needs of the body: unread body messages are kept for the app, not lost).

    Call it *before* creating a task that :func:`cancel_on_disconnect` will register: the watcher
    then runs first, so a client that already left cancels the task before it does anything."""
    channel = _current.get()
    if channel is not None:
        channel.watch()


def client_gone() -> bool:
    """True once the current request's client has hung up (or its ASGI call has ended): work started
    for it now would be thrown away. False outside an HTTP request and while nobody watches."""
    channel = _current.get()
    return channel is not None and channel.gone


def cancel_on_disconnect(task: asyncio.Task[Any]) -> Callable[[], None]:
    """Cancel ``task`` when the current request's client hangs up, or when the request's ASGI call
    ends while ``task`` still runs. Returns a function that unregisters it (call it when the task
    is done with the client). Outside an HTTP request this does nothing."""
    channel = _current.get()
    if channel is None:
        return lambda: None
    if channel.gone:  # e.g. a Router retry of a call whose client already left
        task.cancel()
        return lambda: None
    channel.tasks.add(task)
    channel.watch()
    return lambda: channel.tasks.discard(task)


class RequestContextMiddleware:
    """Pure ASGI: sets :func:`current_request` around each HTTP request; adds no work to responses."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        channel = _Channel(scope, receive)
        token = _current.set(channel)
        try:
            await self.app(scope, channel.receive, send)
        finally:
            _current.reset(token)
            channel.close()


def install(app: Any) -> bool:
    """Put :class:`RequestContextMiddleware` around ``app``'s middleware stack, once (the extension
    and the codex-agent provider, which also runs without the extension, both ask); True if done now."""
    from proxy_ext import litellm_adapter as adapter

    return adapter.wrap_middleware_stack(app, RequestContextMiddleware, "request_context")
