"""The entry module: what ``litellm_settings.callbacks: ["proxy_ext.extension"]`` switches on.

LiteLLM imports ``proxy_ext`` and reads its ``extension`` attribute, which calls
:func:`get_extension`: that validates the ``proxy_ext:`` section, registers proxy_ext's model
providers, routes (exactly once per app) and middleware (the request guard and the request
context), and returns the process-wide callback, :class:`ProxyExtension`.

This module sits on top of the package: it imports the capabilities and wires them into LiteLLM
through :mod:`proxy_ext.litellm_adapter` (the one module that touches LiteLLM's internals);
nothing in the package imports it back.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
from collections.abc import AsyncIterator
from typing import Any

from proxy_ext import litellm_adapter as adapter
from proxy_ext import heap, metrics_multiproc, request_context
from proxy_ext.config import ConfigError, environment_warnings
from proxy_ext.guard import GuardPolicy, RequestGuard
from proxy_ext.providers import registry
from proxy_ext.providers.request_check import served_models
from proxy_ext.providers.stale import stale_lines
from proxy_ext.state import Runtime, load_runtime, set_runtime

__all__ = ["CostProxyExtension", "ProxyExtension", "get_extension", "guard_policy", "register_providers"]

logger = logging.getLogger("proxy_ext")

_ROUTES_MARKER = "proxy_ext_routes_registered"


def __getattr__(name: str) -> Any:
    if name == "extension":
        # Resolve through the canonical module even when this file was exec'd a second time by
        # LiteLLM's file-path loader: one callback object and one set of routes per process.
        import proxy_ext.glue as canonical

        return canonical.get_extension()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ProxyExtension(adapter.custom_logger_class()):  # type: ignore[misc]
    """The callback LiteLLM holds for proxy_ext. Hooks delegate to ``proxy_ext.hooks``.

    No ``async_pre_call_hook`` on purpose: overriding it moves every request of the proxy off
    LiteLLM's pre-call fast path, and cost needs nothing before the call.
    """

    def __repr__(self) -> str:
        return "<proxy_ext.extension>"

    async def async_post_call_failure_hook(self, request_data: dict, original_exception: Exception,
                                           user_api_key_dict: Any, traceback_str: str | None = None) -> Any:
        """Auth failures of a database-less proxy become 401s (see :func:`adapter.auth_failure_without_db`)."""
        return adapter.auth_failure_without_db(request_data, original_exception)


class CostProxyExtension(ProxyExtension):
    """:class:`ProxyExtension` with the cost hooks (``proxy_ext.cost.enabled``).

    A subclass, not a runtime switch, because LiteLLM decides per callback *class* whether a
    streaming iterator hook exists (it looks for the method in the leaf class), and any such hook
    moves every stream off its fast path. With cost off, the class LiteLLM sees has no hooks at all:
    stock bodies and stock speed.
    """

    def __init__(self) -> None:
        super().__init__()
        from proxy_ext.hooks.cost import build_cost_hooks

        self.cost = build_cost_hooks(enabled=True)

    async def async_post_call_success_hook(self, data: dict, user_api_key_dict: Any, response: Any) -> Any:
        """Non-streaming responses: ``usage.cost`` (see :mod:`proxy_ext.hooks.cost`)."""
        return await self.cost.post_call_success(data, response)

    def async_post_call_streaming_iterator_hook(self, user_api_key_dict: Any, response: Any, request_data: dict) -> AsyncIterator[Any]:  # type: ignore[override]
        """Streams: ``usage.cost`` on the usage chunk / ``response.completed`` event.

        A plain method returning the async iterator (LiteLLM only iterates what this returns): one
        generator layer less per streamed chunk than ``async for …: yield``."""
        return self.cost.stream(response, request_data)


_lock = threading.Lock()
_extension: ProxyExtension | None = None


def _fail_startup(message: str) -> None:
    # LiteLLM swallows ordinary exceptions raised while loading callbacks; SystemExit is not one.
    # Print the reason where operators look (stderr) and stop the proxy.
    print(f"\nproxy_ext: {message}\nproxy_ext: the proxy will not start until this is fixed.\n", file=sys.stderr, flush=True)
    raise SystemExit(3)


def register_routes(app: Any, runtime: Runtime) -> bool:
    """Add the extension's routes to ``app`` unless they are already there; True if added now."""
    if getattr(app.state, _ROUTES_MARKER, False):
        return False
    from proxy_ext.routes import build_metrics_router, build_router, openapi_components

    # In front of LiteLLM's ~570 routes: matching them first saves ~1 ms per /agent/run request.
    router = build_router(runtime.settings)
    adapter.include_router_first(app, router)
    adapter.remember_route_kind(router)
    metrics = build_metrics_router(runtime.settings)
    if metrics is not None:
        app.include_router(metrics)
    adapter.install_openapi_components(app, openapi_components(runtime.settings))
    setattr(app.state, _ROUTES_MARKER, True)
    return True


def guard_policy(runtime: Runtime) -> GuardPolicy:
    """The request guard's policy for these settings and the extension's JSON routes."""
    settings = runtime.settings
    guard = settings.guard
    prefixes = tuple(sorted(guard.route_max_body_bytes.items(), key=lambda item: -len(item[0])))
    json_routes = {"/agent/run": settings.agent.limits.max_request_bytes} if settings.agent.enabled else {}
    patterns = (("/agent/runs/", "/approvals", 65_536),) if settings.agent.enabled and settings.runs.enabled else ()
    custom_auth = (runtime.document.get("general_settings") or {}).get("custom_auth")
    served = served_models(runtime.document, settings.agent.limits.max_request_bytes)
    return GuardPolicy(max_body_bytes=guard.max_body_bytes, body_timeout_s=guard.body_timeout_s, body_deadline_s=guard.body_deadline_s,
                       max_json_depth=guard.max_json_depth, max_json_elements=guard.max_json_elements,
                       prefix_limits=prefixes, json_routes=json_routes, json_route_patterns=patterns, require_credentials=not custom_auth,
                       served_models=served, sessions_available=adapter.responses_sessions_available,
                       response_id_provider=adapter.response_id_provider if served is not None else None,
                       max_client_retries=guard.max_client_retries,
                       rewrite_401_paths=("/metrics",))


def install_middleware(app: Any, runtime: Runtime) -> None:
    """The request context around the proxy and, outermost, the request guard (once each)."""
    request_context.install(app)
    if runtime.settings.guard.enabled:
        adapter.wrap_middleware_stack(app, lambda stack: RequestGuard(stack, guard_policy(runtime), adapter.share_parsed_body), "guard")


def register_providers(runtime: Runtime | None = None) -> list[str]:
    """Register proxy_ext's providers (``echo``, ``codex-agent``, ``codex_cli_agent``,
    ``mini-agent``) unless the config maps those names itself, and (given the runtime) print the
    start-up message for configs written for an older meaning of a provider name. Returns the names
    added now. Idempotent."""
    added = adapter.add_custom_providers({name: functools.partial(registry.load_handler, name) for name in registry.PROVIDERS})
    if runtime is not None:
        registry.announce_migrations(runtime.document, runtime.settings.providers.codex_agent)
        _announce(environment_warnings(runtime.document))
    return added


def _announce(notes: list[str]) -> None:
    """Start-up warnings an operator must see: stderr (where they look) and the log."""
    for note in notes:
        print(f"\nproxy_ext: warning: {note}\n", file=sys.stderr, flush=True)
        logger.warning("%s", note)


def _start_durable_runs(runtime: Runtime) -> None:
    """Start this worker's durable-run executor when the proxy starts in an event loop, so runs
    left by a stopped worker are continued without waiting for a request. A SQLite store that does
    not exist yet is not created here (no file until runs are used): the executor starts once
    another worker created it, or on this worker's first request that needs it."""
    import asyncio

    settings = runtime.settings.runs
    if not (runtime.settings.agent.enabled and settings.enabled):
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # started on the first request that needs it
    if settings.store == "sqlite" and not runtime.resolve_path(settings.path).exists():
        loop.create_task(_start_when_created(runtime), name="proxy_ext-runs-watch")
        return
    _start_executor(runtime)


def _start_executor(runtime: Runtime) -> None:
    from proxy_ext.runs import durable_runs

    try:
        durable_runs(runtime).ensure_started()
    except Exception as exc:  # noqa: BLE001 - e.g. an unreachable Redis: /agent/runs reports it
        logger.warning("proxy_ext: durable runs are not available: %s", exc)


async def _start_when_created(runtime: Runtime) -> None:
    import asyncio

    path = runtime.resolve_path(runtime.settings.runs.path)
    while not path.exists():
        await asyncio.sleep(max(runtime.settings.runs.lease_s / 3, runtime.settings.runs.poll_interval_s))
    _start_executor(runtime)


def _watch_heap(runtime: Runtime) -> None:
    """Freeze the start-up heap (scale.gc_freeze_after_s) and time full collections (metrics)."""
    on_frozen = None
    if runtime.settings.metrics.enabled:
        from proxy_ext import metrics

        on_frozen = metrics.gauge("gc_frozen_objects", "Objects moved out of the garbage collector's way after start-up "
                                  "(scale.gc_freeze_after_s; 0: not yet, or off)", multiprocess_mode="livemin").set
        pauses = metrics.histogram("gc_full_collection_seconds", "Full garbage collections of the worker: each stops "
                                   "its event loop for this long", buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
        metrics.before_render(heap.FullCollectionTimer(pauses.observe).install().drain)
    heap.schedule_freeze(runtime.settings.scale.gc_freeze_after_s, on_frozen)


def get_extension() -> ProxyExtension:
    """Load the settings, register providers, routes and middleware; return the process-wide
    callback (idempotent)."""
    global _extension
    with _lock:
        if _extension is not None:
            return _extension
        problem = None
        try:
            runtime = load_runtime(adapter.proxy_config_path())
        except ConfigError as exc:
            problem = str(exc)
        if problem is None:
            problem = "\n".join(stale_lines(runtime.document, runtime.base_dir)) or None
        if problem is not None:  # outside the except block: no chained traceback in the log
            _fail_startup(problem)
        set_runtime(runtime)
        if runtime.settings.metrics.enabled:  # before any collector exists
            metrics_multiproc.setup(runtime.settings.scale.multiprocess_metrics, runtime.settings.scale.state_dir)
        register_providers(runtime)
        app = adapter.proxy_app()
        register_routes(app, runtime)
        install_middleware(app, runtime)
        if runtime.settings.metrics.require_auth is not None:
            adapter.set_metrics_auth(runtime.settings.metrics.require_auth)
        _start_durable_runs(runtime)
        _watch_heap(runtime)
        problem = adapter.version_problem()
        if problem:
            logger.warning("proxy_ext: %s (/ready reports it as degraded; `proxy-ext doctor` too)", problem)
        _extension = CostProxyExtension() if runtime.settings.cost.enabled else ProxyExtension()
        logger.info("proxy_ext enabled (config: %s)", runtime.config_path)
        return _extension
