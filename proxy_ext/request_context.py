"""The incoming HTTP request's headers and address, visible to code running for that request.

LiteLLM strips the caller's ``Authorization`` before it reaches a model provider. The
``mini-agent/<profile>`` provider needs it: the agent's own model calls must be made *as the
caller*, so the key's model list, budget and rate limits apply to them. A tiny pure-ASGI wrapper
(installed by :mod:`proxy_ext.glue`) records each request's headers in a context variable for the
duration of that request; nothing else reads it and nothing is logged.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Any

__all__ = ["RequestContextMiddleware", "RequestInfo", "current_request"]


@dataclass(frozen=True)
class RequestInfo:
    """What is known about the HTTP request being served."""

    headers: dict[str, str]
    """Request headers, lower-case names."""
    server: tuple[str, int] | None
    """Address the request arrived on (host, port)."""
    scheme: str
    """``http`` or ``https``."""


# The ASGI scope itself is stored: headers are decoded only when a provider asks, so the other
# requests of the proxy pay for one context-variable set and reset, nothing more.
_current: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("proxy_ext_request", default=None)


def current_request() -> RequestInfo | None:
    """The request being served by this task (None outside an HTTP request)."""
    scope = _current.get()
    if scope is None:
        return None
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
    return RequestInfo(headers, scope.get("server"), scope.get("scheme", "http"))


class RequestContextMiddleware:
    """Pure ASGI: sets :func:`current_request` around each HTTP request; adds no work to responses."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        token = _current.set(scope)
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)
