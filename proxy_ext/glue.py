"""The LiteLLM glue: every touch point with LiteLLM's proxy internals lives in this one module.

A LiteLLM upgrade should only ever need changes here. The rest of proxy_ext talks to:

- :func:`proxy_app` — the stock FastAPI app (``litellm.proxy.proxy_server.app``);
- :func:`proxy_config_path` — the YAML file the proxy was started with;
- :func:`llm_router` — the proxy's Router (None until the config is loaded);
- :data:`user_api_key_auth` — the proxy's own auth dependency for our routes;
- :class:`ProxyExtension` — the CustomLogger registered by ``litellm_settings.callbacks``.

Entry point: ``callbacks: ["proxy_ext.extension"]`` makes LiteLLM import ``proxy_ext`` and read its
``extension`` attribute, which calls :func:`get_extension` — that validates the ``proxy_ext:``
section, registers the routes (exactly once per app) and returns the process-wide callback.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from proxy_ext.config import ConfigError
from proxy_ext.state import get_runtime, load_runtime, set_runtime

__all__ = [
    "ProxyExtension",
    "get_extension",
    "llm_router",
    "proxy_app",
    "proxy_config_path",
    "user_api_key_auth",
]

logger = logging.getLogger("proxy_ext")

_ROUTES_MARKER = "proxy_ext_routes_registered"


def proxy_app() -> Any:
    """The stock proxy's FastAPI app."""
    from litellm.proxy import proxy_server

    return proxy_server.app


def proxy_config_path() -> str | None:
    """Path of the config file the proxy loaded (``--config`` or ``CONFIG_FILE_PATH``)."""
    from litellm.proxy import proxy_server

    return getattr(proxy_server, "user_config_file_path", None) or os.environ.get("CONFIG_FILE_PATH")


def llm_router() -> Any:
    """The proxy's Router, or None while the config is still loading."""
    from litellm.proxy import proxy_server

    return getattr(proxy_server, "llm_router", None)


def _user_api_key_auth() -> Any:
    from litellm.proxy.auth.user_api_key_auth import user_api_key_auth as dependency

    return dependency


def __getattr__(name: str) -> Any:
    if name == "user_api_key_auth":
        return _user_api_key_auth()
    if name == "extension":
        # Resolve through the canonical module even when this file was exec'd a second time by
        # LiteLLM's file-path loader: one callback object and one set of routes per process.
        import proxy_ext.glue as canonical

        return canonical.get_extension()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ProxyExtension(CustomLogger):
    """The callback LiteLLM holds for proxy_ext. Hooks delegate to ``proxy_ext.hooks``."""

    def __repr__(self) -> str:
        return "<proxy_ext.extension>"


_lock = threading.Lock()
_extension: ProxyExtension | None = None


def _fail_startup(message: str) -> None:
    # LiteLLM swallows ordinary exceptions raised while loading callbacks; SystemExit is not one.
    # Print the reason where operators look (stderr) and stop the proxy.
    print(f"\nproxy_ext: {message}\nproxy_ext: the proxy will not start until this is fixed.\n", file=sys.stderr, flush=True)
    raise SystemExit(3)


def register_routes(app: Any) -> bool:
    """Add the extension's routes to ``app`` unless they are already there; True if added now."""
    if getattr(app.state, _ROUTES_MARKER, False):
        return False
    from proxy_ext.routes import build_router

    app.include_router(build_router(get_runtime().settings))
    setattr(app.state, _ROUTES_MARKER, True)
    return True


_CONTEXT_MARKER = "proxy_ext_request_context_installed"


def install_request_context(app: Any) -> bool:
    """Wrap the app's built middleware stack with :class:`RequestContextMiddleware` (once).

    Starlette refuses ``add_middleware`` once the app has started, and LiteLLM loads callbacks
    during start-up; the built stack (``app.middleware_stack``) is wrapped instead.
    """
    if getattr(app.state, _CONTEXT_MARKER, False):
        return False
    from proxy_ext.request_context import RequestContextMiddleware

    if getattr(app, "middleware_stack", None) is None:
        app.middleware_stack = app.build_middleware_stack()
    app.middleware_stack = RequestContextMiddleware(app.middleware_stack)
    setattr(app.state, _CONTEXT_MARKER, True)
    return True


def get_extension() -> ProxyExtension:
    """Load the settings, register the routes and return the process-wide callback (idempotent)."""
    global _extension
    with _lock:
        if _extension is not None:
            return _extension
        problem = None
        try:
            runtime = load_runtime(proxy_config_path())
        except ConfigError as exc:
            problem = str(exc)
        if problem is not None:  # outside the except block: no chained traceback in the log
            _fail_startup(problem)
        set_runtime(runtime)
        register_routes(proxy_app())
        install_request_context(proxy_app())
        _extension = ProxyExtension()
        logger.info("proxy_ext enabled (config: %s)", runtime.config_path)
        return _extension


def model_is_served(name: str) -> bool:
    """Whether the proxy's Router knows ``name`` (a model_name, an alias or a wildcard match)."""
    router = llm_router()
    if router is None:
        return False
    if name in getattr(router, "model_names", ()):
        return True
    if name in (getattr(router, "model_group_alias", None) or {}):
        return True
    pattern_router = getattr(router, "pattern_router", None)
    try:
        return bool(pattern_router and pattern_router.route(name))
    except Exception:  # a pattern router that cannot match this name: not served
        return False


def running_proxy_config_path() -> str | None:
    """The proxy's config path when this process is a LiteLLM proxy; else ``CONFIG_FILE_PATH`` or None.

    Unlike :func:`proxy_config_path` it never imports the proxy server module, so SDK users of a
    provider do not pay for (or trigger) the proxy's import-time set-up.
    """
    if "litellm.proxy.proxy_server" in sys.modules:
        return proxy_config_path()
    return os.environ.get("CONFIG_FILE_PATH")


def in_proxy() -> bool:
    """Whether this process runs the LiteLLM proxy (its server module is loaded and has a Router)."""
    return "litellm.proxy.proxy_server" in sys.modules and llm_router() is not None


def deployment_litellm_params(model_id: str | None) -> dict[str, Any] | None:
    """The operator-configured ``litellm_params`` of the proxy deployment ``model_id`` (None: unknown).

    Request bodies can add arbitrary keys to a call's parameters; providers that take settings from
    ``litellm_params`` read them from the deployment itself so a caller cannot change them.
    """
    router = llm_router()
    if router is None or not model_id:
        return None
    try:
        deployment = router.get_deployment(model_id=model_id)
    except Exception:  # a malformed entry: treat as unknown
        return None
    if deployment is None:
        return None
    params = deployment.litellm_params
    return params.model_dump(exclude_none=True) if hasattr(params, "model_dump") else dict(params)


def call_model_id(litellm_params: dict[str, Any] | None) -> str | None:
    """The Router deployment id of a call, from the ``litellm_params`` a provider handler receives."""
    params = litellm_params or {}
    for info in (params.get("model_info"), (params.get("metadata") or {}).get("model_info"),
                 (params.get("litellm_metadata") or {}).get("model_info")):
        if isinstance(info, dict) and info.get("id"):
            return str(info["id"])
    return None
