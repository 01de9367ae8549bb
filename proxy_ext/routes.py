"""The extension's HTTP routes, gathered into one APIRouter that the glue adds to the stock app."""

from __future__ import annotations

from fastapi import APIRouter, Response

from proxy_ext.config import ProxyExtConfig

__all__ = ["build_router"]


def _metrics_router() -> APIRouter:
    # No auth dependency of our own: LiteLLM's PrometheusAuthMiddleware guards /metrics whoever
    # serves it (proxy_ext.metrics.require_auth sets its switch; see glue.apply_metrics_auth).
    from proxy_ext import metrics

    router = APIRouter()

    @router.get("/metrics", tags=["proxy_ext"], include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE_LATEST)

    return router


def build_router(settings: ProxyExtConfig) -> APIRouter:
    """Routes of every enabled capability."""
    from proxy_ext import ready

    router = APIRouter()
    router.include_router(ready.router)
    if settings.agent.enabled:
        from proxy_ext.agent.routes import build_router as agent_router

        router.include_router(agent_router())
    from proxy_ext import metrics

    if settings.metrics.enabled and metrics.AVAILABLE:
        router.include_router(_metrics_router())
    return router
