"""The extension's HTTP routes, gathered into one APIRouter that the glue adds to the stock app."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from proxy_ext.config import ProxyExtConfig

__all__ = ["build_router"]


def _metrics_router(require_auth: bool) -> APIRouter:
    from proxy_ext import glue, metrics

    dependencies = [Depends(glue.user_api_key_auth)] if require_auth else []
    router = APIRouter()

    @router.get("/metrics", tags=["proxy_ext"], dependencies=dependencies, include_in_schema=False)
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
        router.include_router(_metrics_router(settings.metrics.require_auth))
    return router
