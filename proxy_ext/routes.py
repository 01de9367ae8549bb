"""The extension's HTTP routes, gathered into one APIRouter that the entry module adds to the
stock app, and the JSON schemas they publish in ``/openapi.json``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from proxy_ext import litellm_adapter as adapter
from proxy_ext import metrics, ready
from proxy_ext.config import ProxyExtConfig

__all__ = ["build_metrics_router", "build_router", "openapi_components"]


def _metrics_router() -> APIRouter:
    # No auth dependency of our own: LiteLLM's PrometheusAuthMiddleware guards /metrics whoever
    # serves it (proxy_ext.metrics.require_auth sets its switch: litellm_adapter.set_metrics_auth).
    router = APIRouter()

    @router.get("/metrics", tags=["proxy_ext"], include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE_LATEST)

    return router


async def _end_litellm_request_span(request: Request) -> AsyncIterator[None]:
    # Runs after the response was sent (FastAPI's request-scoped dependency exit): LiteLLM's otel
    # callback opened a span for this request in its auth and, for routes not its own, never ends it.
    try:
        yield
    except BaseException:
        adapter.end_proxy_request_span(request.state, failed=True)
        raise
    adapter.end_proxy_request_span(request.state)


def build_router(settings: ProxyExtConfig) -> APIRouter:
    """Routes of every enabled capability except ``/metrics`` (each ends LiteLLM's OTel span of
    its request). No stock route has these paths: they can be matched before LiteLLM's."""
    router = APIRouter(dependencies=[Depends(_end_litellm_request_span)])
    router.include_router(ready.router)
    if settings.agent.enabled:
        from proxy_ext.agent.routes import build_router as agent_router

        if settings.runs.enabled:
            from proxy_ext.runs.routes import RunsHandoff
            from proxy_ext.runs.routes import build_router as runs_router

            router.include_router(agent_router(RunsHandoff()))
            router.include_router(runs_router())
        else:
            router.include_router(agent_router())
    return router


def build_metrics_router(settings: ProxyExtConfig) -> APIRouter | None:
    """``/metrics`` (None when off): matched after LiteLLM's routes, so a stock ``/metrics`` wins."""
    if not settings.metrics.enabled:
        return None
    router = APIRouter(dependencies=[Depends(_end_litellm_request_span)])
    router.include_router(_metrics_router())
    return router


def openapi_components(settings: ProxyExtConfig) -> dict[str, Any]:
    """The JSON schemas the enabled routes reference."""
    if not settings.agent.enabled:
        return {}
    from proxy_ext.agent.routes import openapi_components as agent_components

    return agent_components()
