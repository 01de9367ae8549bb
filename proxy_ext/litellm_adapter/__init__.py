"""The one adapter over LiteLLM's proxy internals: every such touch point lives here.

A LiteLLM upgrade should only ever need changes in this module. It imports nothing of proxy_ext
(a leaf: the entry module :mod:`proxy_ext.glue` and the capabilities import it, never the other
way round), and LiteLLM itself only inside the functions, so importing it costs nothing. Six
self-contained groups live in submodules (:mod:`.chat`, :mod:`.cost`, :mod:`.identity`, :mod:`.mcp`, :mod:`.otel`, :mod:`.routes`) and are re-exported here:
import everything from ``proxy_ext.litellm_adapter``.

What proxy_ext uses:

- the app, config path and Router: :func:`proxy_app`, :func:`proxy_config_path`,
  :func:`running_proxy_config_path`, :func:`llm_router`, :func:`in_proxy`, :func:`model_is_served`,
  :func:`deployment_litellm_params`, :func:`call_deployment_params`;
- the agent's model calls in process (LiteLLM's auth and chat endpoint as functions):
  :func:`direct_chat`, :func:`direct_auth_refusal`, :func:`direct_chat_problem` (:mod:`.chat`);
- auth: :func:`auth_dependency` (the proxy's ``user_api_key_auth``), :func:`auth_failure_without_db`,
  :func:`set_metrics_auth`;
- the ASGI stack, routes and OpenAPI document: :func:`wrap_middleware_stack`, :func:`include_router_first`,
  :func:`remember_route_kind`, :func:`share_parsed_body`, :func:`responses_sessions_available`,
  :func:`response_id_provider`,
  :func:`install_openapi_components`;
- providers: :func:`add_custom_providers`, :func:`known_provider`;
- cost: :func:`cost_response_kind`, :func:`call_cost`, :func:`stream_chunk_cost`;
- OpenTelemetry (LiteLLM's ``otel`` callback): :func:`proxy_request_span`, :func:`end_proxy_request_span`;
  shutdown: :func:`on_proxy_shutdown`;
- MCP (the gateway's servers, permissions and client): :func:`mcp_servers`, :func:`mcp_allowed_server_ids`,
  :func:`mcp_permitted_tools`, :func:`mcp_open`, :func:`mcp_list_tools`, :func:`mcp_call_tool`,
  :func:`caller_identity`;
- durable runs (the caller kept across workers): :func:`seal`, :func:`unseal`, :func:`dump_identity`,
  :func:`load_identity`, :func:`identity_owner`;
- the callback base class: :func:`custom_logger_class`;
- the supported version range: :data:`SUPPORTED_LITELLM`, :func:`litellm_version`, :func:`version_problem`
  (differences between supported releases are absorbed here, nowhere else).

LiteLLM's documented extension APIs that providers subclass or build (``CustomLLM``,
``ModelResponse``, ``GenericStreamingChunk``, ``Usage``) are imported by the providers themselves.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from proxy_ext.litellm_adapter.chat import DirectChatReply, direct_auth_refusal, direct_chat, direct_chat_problem
from proxy_ext.litellm_adapter.routes import include_router_first, remember_route_kind, response_id_provider, responses_sessions_available
from proxy_ext.litellm_adapter.cost import call_cost, cost_response_kind, stream_chunk_cost
from proxy_ext.litellm_adapter.mcp import (mcp_allowed_server_ids, mcp_call_tool, mcp_list_tools, mcp_open, mcp_permitted_tools,
                                           mcp_server_label, mcp_servers, mcp_tool_name)
from proxy_ext.litellm_adapter.identity import dump_identity, identity_owner, load_identity, seal, unseal
from proxy_ext.litellm_adapter.otel import end_proxy_request_span, on_proxy_shutdown, proxy_request_span

__all__ = [
    "DirectChatReply", "direct_auth_refusal", "direct_chat", "direct_chat_problem",
    "PARSED_BODY_SCOPE_KEY", "add_custom_providers", "auth_dependency", "auth_failure_without_db", "call_cost", "call_deployment_params",
    "cost_response_kind", "custom_logger_class", "deployment_litellm_params", "in_proxy", "include_router_first", "install_openapi_components", "remember_route_kind",
    "response_id_provider", "responses_sessions_available",
    "known_provider", "llm_router", "model_is_served", "proxy_app", "proxy_config_path", "running_proxy_config_path",
    "end_proxy_request_span", "on_proxy_shutdown", "proxy_request_span",
    "set_metrics_auth", "share_parsed_body", "stream_chunk_cost", "wrap_middleware_stack",
    "caller_identity", "mcp_allowed_server_ids", "mcp_call_tool", "mcp_list_tools", "mcp_open", "mcp_permitted_tools",
    "mcp_server_label", "mcp_servers", "mcp_tool_name",
    "dump_identity", "identity_owner", "load_identity", "seal", "unseal",
    "SUPPORTED_LITELLM", "litellm_version", "version_problem",
]


def custom_logger_class() -> type:
    """LiteLLM's ``CustomLogger``: the base class of the extension's callback."""
    from litellm.integrations.custom_logger import CustomLogger

    return CustomLogger


def proxy_app() -> Any:
    """The stock proxy's FastAPI app."""
    from litellm.proxy import proxy_server

    return proxy_server.app


def running_proxy_app() -> Any:
    """The proxy's FastAPI app when this process is a LiteLLM proxy, else None (never imports it)."""
    return getattr(sys.modules.get("litellm.proxy.proxy_server"), "app", None)


def proxy_config_path() -> str | None:
    """Path of the config file the proxy loaded (``--config`` or ``CONFIG_FILE_PATH``)."""
    from litellm.proxy import proxy_server

    return getattr(proxy_server, "user_config_file_path", None) or os.environ.get("CONFIG_FILE_PATH")


def llm_router() -> Any:
    """The proxy's Router, or None while the config is still loading."""
    from litellm.proxy import proxy_server

    return getattr(proxy_server, "llm_router", None)


def auth_dependency() -> Any:
    """The proxy's own ``user_api_key_auth`` FastAPI dependency (master key, virtual keys, JWT,
    ``custom_auth``), for the extension's routes."""
    from litellm.proxy.auth.user_api_key_auth import user_api_key_auth as dependency

    return dependency



PARSED_BODY_SCOPE_KEY = "proxy_ext.body"
"""ASGI scope key under which the request guard leaves a JSON route's parsed body."""


def share_parsed_body(scope: dict[str, Any], body: dict[str, Any]) -> None:
    """Hand a body the guard parsed to the proxy's auth (LiteLLM reads ``scope["parsed_body"]``
    before it reads the body itself) and to our route."""
    scope["parsed_body"] = (tuple(body), body)
    scope[PARSED_BODY_SCOPE_KEY] = body


def install_openapi_components(app: Any, components: dict[str, Any]) -> None:
    """Add JSON schemas our routes reference to the app's ``/openapi.json`` (LiteLLM builds the
    document once with its own generator; ours are merged into ``components.schemas``)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, value in components.items():
            schemas.setdefault(name, value)
        return schema

    app.openapi = openapi


def wrap_middleware_stack(app: Any, wrap: Callable[[Any], Any], name: str) -> bool:
    """Wrap the app's built middleware stack with ``wrap(stack)`` once per ``name``; True if done now.

    Starlette refuses ``add_middleware`` once the app has started, and LiteLLM loads callbacks
    during start-up; the built stack (``app.middleware_stack``) is wrapped instead: outermost, in
    front of every LiteLLM middleware.
    """
    marker = f"proxy_ext_middleware_{name}"
    if getattr(app.state, marker, False):
        return False
    if getattr(app, "middleware_stack", None) is None:
        app.middleware_stack = app.build_middleware_stack()
    app.middleware_stack = wrap(app.middleware_stack)
    setattr(app.state, marker, True)
    return True


def auth_failure_without_db(request_data: Any, exc: Exception) -> Any:
    """The 401 for an auth failure of a proxy without a database, else None (LiteLLM's answer stands).

    LiteLLM 1.108.7 without a database answers a missing or malformed key with a bare 500 (its
    error classifier imports the optional ``prisma`` package, which a ``litellm[proxy]`` install
    lacks), a body its checks reject ("Rejected Request: api_base is not allowed") too (now a 400),
    and a wrong key with 400 "No connected db". Its auth failure handler lets a callback
    replace the exception with an HTTPException; only failures raised before a request was
    admitted qualify (LiteLLM stamps ``proxy_server_request`` on every admitted request).
    """
    from fastapi import HTTPException
    from litellm.proxy import proxy_server
    from litellm.proxy._types import ProxyErrorTypes, ProxyException

    if getattr(proxy_server, "prisma_client", None) is not None:
        return None
    if not isinstance(request_data, dict) or "proxy_server_request" in request_data:
        return None
    if isinstance(exc, ProxyException):
        if exc.type == ProxyErrorTypes.no_db_connection:
            return HTTPException(status_code=401, detail="Authentication Error, invalid API key")
        return None
    if type(exc) is Exception:  # the auth builder rejects credentials with bare Exceptions
        return HTTPException(status_code=401, detail=f"Authentication Error, {exc}")
    if isinstance(exc, ValueError) and str(exc).lower().startswith("rejected request"):  # its body checks
        return HTTPException(status_code=400, detail=str(exc))
    return None


def set_metrics_auth(required: bool) -> None:
    """Set LiteLLM's own ``/metrics`` auth switch (its middleware guards that path whoever serves it)."""
    import litellm

    litellm.require_auth_for_metrics_endpoint = required


# ------------------------------------------------------------------------- provider registration
# LiteLLM loads callbacks in the same loop over litellm_settings that handles custom_provider_map,
# before it builds the Router: registering then puts the names into litellm.provider_list in time
# for the Router to accept the deployments. A custom_provider_map key *after* the callbacks line
# replaces litellm.custom_provider_map and then calls litellm.utils.custom_llm_setup(); a wrapper
# re-adds the missing entries at that moment, so the keys' order does not matter. An operator's own
# entry for one of these names always wins.

_providers: dict[str, Callable[[], Any]] = {}


def _add_missing_providers() -> list[str]:
    import litellm

    present = {item.get("provider") for item in litellm.custom_provider_map if isinstance(item, dict)}
    added = [name for name in _providers if name not in present]
    for name in added:
        litellm.custom_provider_map.append({"provider": name, "custom_handler": _providers[name]()})
    return added


def _install_registration_guard() -> None:
    import litellm.utils

    original = litellm.utils.custom_llm_setup
    if getattr(original, "_proxy_ext_guard", False):
        return

    def custom_llm_setup() -> None:
        _add_missing_providers()
        original()

    custom_llm_setup._proxy_ext_guard = True  # type: ignore[attr-defined]
    custom_llm_setup.__wrapped__ = original  # type: ignore[attr-defined]
    litellm.utils.custom_llm_setup = custom_llm_setup


def add_custom_providers(handlers: Mapping[str, Callable[[], Any]]) -> list[str]:
    """Register custom providers (name → a function returning the handler) with LiteLLM unless
    the config maps those names itself; the names added now. Idempotent."""
    from litellm.utils import custom_llm_setup

    _providers.update(handlers)
    _install_registration_guard()
    added = _add_missing_providers()
    custom_llm_setup()
    return added


def known_provider(name: str) -> bool:
    """Whether LiteLLM itself knows provider ``name`` (built in, JSON-configured, or registered)."""
    import litellm
    from litellm.litellm_core_utils.get_llm_provider_logic import is_registered_custom_provider
    from litellm.llms.openai_like.json_loader import JSONProviderRegistry

    return name in litellm.provider_list or JSONProviderRegistry.exists(name) or is_registered_custom_provider(name)


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


def call_deployment_params(litellm_params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The operator's ``litellm_params`` of the Router deployment a provider call runs on (None: none).

    With client-side credentials in the request (``api_key``, ``api_base``, ``base_url``) LiteLLM
    runs the call on an unregistered copy of the deployment under a new id and keeps the real one
    as ``original_model_id``."""
    params = litellm_params or {}
    for info in (params.get("model_info"), (params.get("metadata") or {}).get("model_info"),
                 (params.get("litellm_metadata") or {}).get("model_info")):
        for key in ("id", "original_model_id"):
            model_id = info.get(key) if isinstance(info, dict) else None
            found = deployment_litellm_params(str(model_id)) if model_id else None
            if found is not None:
                return found
    return None


def caller_identity(litellm_params: Mapping[str, Any] | None) -> Any:
    """The caller's ``UserAPIKeyAuth`` LiteLLM hands a provider call (in its metadata), or None."""
    params = litellm_params or {}
    for key in ("metadata", "litellm_metadata"):
        identity = (params.get(key) or {}).get("user_api_key_auth")
        if identity is not None:
            return identity
    return None


# ------------------------------------------------------------------------------------- versions

SUPPORTED_LITELLM = ">=1.100.0,<=1.108.7,!=1.107.0"
"""The LiteLLM releases proxy_ext is tested with (``make test-compat``), as pyproject.toml declares
them; 1.82.7, 1.82.8 and 1.107.0 were compromised on PyPI."""


def litellm_version() -> str | None:
    """The installed LiteLLM's version (None: not installed as a distribution)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("litellm")
    except PackageNotFoundError:
        return None


def version_problem(installed: str | None = None) -> str | None:
    """Why the installed LiteLLM is outside :data:`SUPPORTED_LITELLM` (None: it is inside)."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    installed = installed if installed is not None else litellm_version()
    if installed is None:
        return "the installed LiteLLM version is unknown"
    try:
        inside = Version(installed) in SpecifierSet(SUPPORTED_LITELLM)
    except InvalidVersion:
        inside = False
    if inside:
        return None
    return f"LiteLLM {installed} is outside the range proxy_ext supports ({SUPPORTED_LITELLM}); it may not work as documented"
