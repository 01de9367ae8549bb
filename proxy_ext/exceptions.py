"""The exceptions proxy_ext raises on purpose: one base class, mapped to HTTP in one place.

Every error a client can cause is a :class:`RequestError` (a 4xx with a message that says what to
fix); :func:`error_body` is the one OpenAI-style body every extension route answers with.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ERROR_TYPES", "ClientDisconnected", "ModelCallError", "ModelRefused", "ProxyExtError", "RequestError", "Unavailable",
           "error_body"]

ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error", 405: "method_not_allowed",
    408: "request_timeout", 409: "conflict_error", 413: "request_too_large", 415: "unsupported_media_type",
    422: "invalid_request_error", 429: "rate_limit_error", 499: "client_closed_request", 501: "not_implemented", 503: "service_unavailable",
}
"""OpenAI-style ``error.type`` per HTTP status (anything else: ``invalid_request_error`` for 4xx,
``server_error`` for 5xx)."""


def error_body(status: int, message: str, param: str | None = None) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}``, as the proxy's own routes answer."""
    kind = ERROR_TYPES.get(status) or ("server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": str(status)}}


class ProxyExtError(Exception):
    """Base class of proxy_ext's exceptions; ``status`` is the HTTP status it is answered with."""

    status: int = 500
    retry_after_s: int | None = None
    """When set, the answer carries ``Retry-After`` with it (a condition that passes, e.g. a store
    that cannot be reached right now)."""

    def __init__(self, message: str, status: int | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.param = param

    def body(self) -> dict[str, Any]:
        """The OpenAI-style error body for this error."""
        return error_body(self.status, self.message, self.param)


class RequestError(ProxyExtError):
    """The request cannot be served as sent (a 4xx by default 400); the message says what to fix."""

    status = 400


class Unavailable(ProxyExtError):
    """A service the extension needs cannot be reached right now (503 with ``Retry-After``): a
    Redis that is down or hung, behind its :class:`proxy_ext.outage.Breaker`."""

    status = 503
    retry_after_s = 2


class ClientDisconnected(RequestError):
    """The client hung up and the work done for it was cancelled (499, as nginx logs it)."""

    status = 499


class ModelRefused(RequestError):
    """The proxy refused the caller's key for a model of the run before anything was done
    (401/403, with the proxy's message); ``envelope`` is the run's (failed) envelope."""

    def __init__(self, status: int, message: str, envelope: Any = None) -> None:
        super().__init__(message, status)
        self.envelope = envelope


class ModelCallError(ProxyExtError):
    """A model call of the agent through the proxy failed. ``status`` is the proxy's HTTP status
    (0: no answer at all, e.g. a timeout)."""

    def __init__(self, model: str, status: int, message: str) -> None:
        super().__init__(f"{model}: HTTP {status}: {message}" if status else f"{model}: {message}", status)
        self.model = model
        self.message = message

    @property
    def is_auth_error(self) -> bool:
        """The caller's key may not use this model (or is invalid): never escalate around it."""
        return self.status in (401, 403)
