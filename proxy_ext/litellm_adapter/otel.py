"""LiteLLM's OpenTelemetry request span and shutdown hook, for proxy_ext.agent.otel.

Part of :mod:`proxy_ext.litellm_adapter` (import the names from there); LiteLLM only inside the
functions.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

__all__ = ["end_proxy_request_span", "on_proxy_shutdown", "proxy_request_span"]


# ----------------------------------------------------------------------------------- OTel glue
# LiteLLM's ``otel`` callback (V1) opens a SERVER span, "Received Proxy Server Request", in its
# auth dependency for every authenticated request and keeps it on ``request.state.parent_otel_span``
# and on the caller's ``UserAPIKeyAuth``. It ends it itself only for its own routes (LLM calls in
# its logging, management routes in their wrapper); for the extension's routes we do it.


def _litellm_request_span(span: Any) -> bool:
    try:
        from litellm.integrations.opentelemetry import LITELLM_PROXY_REQUEST_SPAN_NAME
        from litellm.integrations.otel.model.config import is_otel_v2_enabled
    except ImportError:
        return False
    # Under V2 the FastAPI instrumentor owns (and ends) the server span.
    return getattr(span, "name", None) == LITELLM_PROXY_REQUEST_SPAN_NAME and not is_otel_v2_enabled()


def proxy_request_span(identity: Any) -> Any:
    """LiteLLM's still-open span of the request a caller's identity came with (None: LiteLLM's
    ``otel`` callback is off, or the span is gone), to parent spans of work done for it."""
    span = getattr(identity, "parent_otel_span", None)
    if span is None or not getattr(span, "is_recording", lambda: False)():
        return None
    return span


def end_proxy_request_span(request_state: Any, failed: bool = False) -> None:
    """End LiteLLM's "Received Proxy Server Request" span of one of the extension's routes, once
    its response was sent (LiteLLM leaves it open there; a no-op without the span or under V2)."""
    span = getattr(request_state, "parent_otel_span", None)
    if span is None or not getattr(span, "is_recording", lambda: False)() or not _litellm_request_span(span):
        return
    try:
        if failed:
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR))
        span.end()
    except Exception:  # noqa: BLE001 - tracing must never fail a request
        pass


def on_proxy_shutdown(callback: Callable[[], None]) -> bool:
    """Run ``callback`` (blocking, in a thread) when the proxy shuts down, after LiteLLM's own
    shutdown steps; False outside a proxy. Needed because uvicorn ends the process by re-raising
    SIGTERM after shutdown, so ``atexit`` handlers never run."""
    if "litellm.proxy.proxy_server" not in sys.modules:
        return False
    from litellm.proxy import proxy_server

    original = proxy_server.proxy_shutdown_event
    callbacks = getattr(original, "_proxy_ext_callbacks", None)
    if callbacks is None:
        callbacks = []

        async def proxy_shutdown_event(*args: Any, **kwargs: Any) -> None:
            import asyncio

            try:
                await original(*args, **kwargs)
            finally:
                for registered in list(callbacks):
                    try:
                        await asyncio.to_thread(registered)
                    except Exception:  # noqa: BLE001 - shutdown goes on
                        pass

        proxy_shutdown_event._proxy_ext_callbacks = callbacks  # type: ignore[attr-defined]
        proxy_shutdown_event.__wrapped__ = original  # type: ignore[attr-defined]
        proxy_server.proxy_shutdown_event = proxy_shutdown_event
    callbacks.append(callback)
    return True
