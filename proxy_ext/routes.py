"""The extension's HTTP routes, gathered into one APIRouter that the glue adds to the stock app."""

from __future__ import annotations

from fastapi import APIRouter

from proxy_ext.config import ProxyExtConfig

__all__ = ["build_router"]


def build_router(settings: ProxyExtConfig) -> APIRouter:
    """Routes of every enabled capability."""
    from proxy_ext import ready

    router = APIRouter()
    router.include_router(ready.router)
    return router
