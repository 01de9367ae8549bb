"""The extension's routes in the stock app: matched first, and known to LiteLLM's auth as what they
are; and what LiteLLM's Responses API routes can do for the extension's models."""

from __future__ import annotations

from typing import Any

__all__ = ["flat_routes", "include_router_first", "remember_route_kind", "response_id_provider", "responses_sessions_available"]


def flat_routes(routes: Any) -> Any:
    """Every route in ``routes``, also those of included routers (FastAPI ≥ 0.150 nests them)."""
    for route in routes:
        if hasattr(route, "effective_candidates"):
            yield from flat_routes(route.effective_candidates())
        else:
            yield getattr(route, "original_route", route)


def include_router_first(app: Any, router: Any) -> None:
    """Include ``router`` in ``app`` in front of the routes already there (the stock app matches
    routes in order; its own come first otherwise). Only for paths no stock route has."""
    app.include_router(router)
    routes = app.router.routes
    routes.insert(0, routes.pop())
    mark_changed = getattr(app.router, "_mark_routes_changed", None)  # FastAPI >= 0.150 caches route lists
    if callable(mark_changed):
        mark_changed()


def remember_route_kind(router: Any) -> None:
    """Remember LiteLLM's "is this an LLM API route?" answer for the paths of ``router`` (the
    extension's own; templated paths such as ``/agent/runs/{run_id}`` are left to LiteLLM).

    LiteLLM's auth asks it several times per request, and for a path that is no LLM route it tries
    every pattern it knows (about 1 ms of CPU per /agent/run). The answer for these paths is
    LiteLLM's own, computed once per path; every other path is asked of LiteLLM as before."""
    from litellm.proxy.auth.route_checks import RouteChecks

    original = RouteChecks.__dict__["is_llm_api_route"]
    ask = original.__func__ if isinstance(original, staticmethod) else original
    if getattr(ask, "proxy_ext_paths", None) is not None:
        return
    paths = frozenset(path for path in (getattr(r, "path", None) for r in flat_routes(router.routes)) if path and "{" not in path)
    known = {path: ask(route=path) for path in paths}

    def is_llm_api_route(route: str) -> bool:
        answer = known.get(route) if isinstance(route, str) else None
        return ask(route=route) if answer is None else answer

    is_llm_api_route.proxy_ext_paths = paths  # type: ignore[attr-defined]
    is_llm_api_route.__doc__ = ask.__doc__
    RouteChecks.is_llm_api_route = staticmethod(is_llm_api_route)  # type: ignore[method-assign]


def responses_sessions_available() -> bool:
    """Whether LiteLLM can continue a Responses API conversation from ``previous_response_id``
    for a model it serves through chat completions: its session handler rebuilds the earlier turns
    from the proxy's spend logs, so without a database (or with spend logs off) it silently drops
    them."""
    from litellm.proxy import proxy_server

    return getattr(proxy_server, "prisma_client", None) is not None and not getattr(proxy_server, "disable_spend_logs", False)


def response_id_provider(response_id: str) -> str | None:
    """The provider LiteLLM encoded in a Responses API response id (None: none, or not one of LiteLLM's ids).

    The proxy hands out ids encrypted with its key (``ResponsesIDSecurity``, unless
    ``disable_responses_id_security``); they are decrypted first, as LiteLLM's routes do."""
    try:
        from litellm.responses.utils import ResponsesAPIRequestUtils

        try:
            from litellm.proxy.hooks.responses_id_security import decrypted_response_id

            response_id = decrypted_response_id(response_id)
        except ImportError:  # a LiteLLM without encrypted ids
            pass
        decoded = ResponsesAPIRequestUtils.decode_responses_api_response_id(response_id)
    except Exception:  # noqa: BLE001  # any id a client sends: LiteLLM answers it then
        return None
    provider = decoded.get("custom_llm_provider") if isinstance(decoded, dict) else None  # a TypedDict
    return provider if isinstance(provider, str) else None
