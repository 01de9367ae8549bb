"""The extension's HTTP routes, gathered into one APIRouter that the entry module adds to the
stock app, and the JSON schemas they publish in ``/openapi.json``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from proxy_ext import metrics, ready
from proxy_ext.config import ProxyExtConfig

__all__ = ["build_router", "openapi_components"]


def _metrics_router() -> APIRouter:
    # No auth dependency of our own: LiteLLM's PrometheusAuthMiddleware guards /metrics whoever
    # serves it (proxy_ext.metrics.require_auth sets its switch: litellm_adapter.set_metrics_auth).
    router = APIRouter()

    @router.get("/metrics", tags=["proxy_ext"], include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE_LATEST)

    return router


def build_router(settings: ProxyExtConfig) -> APIRouter:
    """Routes of every enabled capability."""
    router = APIRouter()
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
    if settings.metrics.enabled:
        router.include_router(_metrics_router())
    return router


def openapi_components(settings: ProxyExtConfig) -> dict[str, Any]:
    """The JSON schemas the enabled routes reference."""
    if not settings.agent.enabled:
        return {}
    from proxy_ext.agent.routes import openapi_components as agent_components

    return agent_components()
