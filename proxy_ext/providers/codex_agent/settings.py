"""Effective settings of one codex-agent call: the ``proxy_ext.providers.codex_agent`` section,
overridden per model by the deployment's ``litellm_params``.

Where settings come from:

- The section is read from the proxy's config file. When the extension's callbacks line loaded it,
  that runtime is reused; otherwise (the provider is used without ``callbacks: [proxy_ext.extension]``)
  the provider loads the file the proxy was started with itself, once.
- Per model: ``litellm_params.api_base`` / ``api_key`` (LiteLLM's own keys; a deployment's
  ``litellm_credential_name`` fills in what it lacks) and ``litellm_params.codex_agent`` (a mapping
  with the section's keys except ``enabled``; its ``mode: cli`` is how a model chooses the codex CLI).

Inside the proxy, everything per model (those keys, the upstream model name, the provider alias) is
read from the Router's deployment the call runs on, never from the call's parameters: a request body
can add keys to them (``codex_agent``, ``api_key``, ``api_base``, ``base_url``,
``custom_llm_provider``, ``litellm_credential_name``...), and a caller must not be able to pick the
codex binary, sandbox or mode, the service a call goes to, or the key it carries. So:

- a client's ``api_key`` / ``api_base`` / ``base_url`` are ignored, even where LiteLLM lets clients
  send them (``allow_client_side_credentials``, ``configurable_clientside_auth_params``): the
  operator's values (deployment, section, environment) are the only ones used, and a codex call never
  goes to a URL a client chose. LiteLLM runs such a call on a per-request copy of the deployment with
  a new id; the original id is in ``model_info.original_model_id``, which is how the deployment is
  still found.
- a call whose deployment is not a codex-agent model (``custom_llm_provider`` in the body naming
  ``codex-agent`` for another model) is refused with a 400;
- a call that matches no deployment is refused with a 400, except LiteLLM's own ``/health`` probes,
  which pass a ``model_list`` entry's ``litellm_params`` as they are (the operator's, as in SDK use).

Outside the proxy (the SDK) the call's own parameters are the model's: the caller is the operator.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import litellm
from pydantic import ValidationError

from proxy_ext import litellm_adapter as adapter
from proxy_ext.config import CodexAgentConfig, ConfigError, _resolve_env_refs, format_validation_error
from proxy_ext.providers.codex_agent import errors
from proxy_ext.providers.registry import CODEX_ALIASES, OVERRIDE_KEY, provider_of
from proxy_ext.state import Runtime, installed_runtime, load_runtime, set_runtime

__all__ = ["CallSettings", "OVERRIDE_KEY", "current_runtime", "resolve"]

_lock = threading.Lock()


@dataclass(frozen=True)
class CallSettings:
    """Everything one call needs."""

    mode: Literal["http", "cli"]
    model: str
    """The model name after the provider prefix (``codex-agent/<model>``)."""
    config: CodexAgentConfig
    """The section merged with the model's overrides."""
    api_base: str | None
    api_key: str | None
    runtime: Runtime
    alias: str | None = None
    """The provider name the model used (``codex-agent`` or ``codex_cli_agent``), for messages."""


def current_runtime() -> Runtime:
    """The extension's runtime; loaded from the proxy's config file when the extension did not."""
    runtime = installed_runtime()
    if runtime is not None:
        return runtime
    with _lock:
        runtime = installed_runtime()
        if runtime is None:
            runtime = load_runtime(adapter.running_proxy_config_path())
            set_runtime(runtime)
        return runtime


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# LiteLLM's /health probes run as this service account (litellm.constants, where it is spelled so).
HEALTH_CHECK_ACCOUNT = str(getattr(litellm.constants, "LITTELM_INTERNAL_HEALTH_SERVICE_ACCOUNT_NAME", "litellm-internal-health-check"))


@dataclass(frozen=True)
class _ModelEntry:
    """What the operator configured for the model a call runs on."""

    params: dict[str, Any]
    """Its ``litellm_params`` (holding the ``codex_agent`` overrides)."""
    model: str
    provider: str | None
    api_base: str | None
    api_key: str | None


def _is_health_check(litellm_params: Mapping[str, Any]) -> bool:
    identity = adapter.caller_identity(litellm_params)  # the proxy's own object: a body cannot forge it
    return not isinstance(identity, Mapping) and getattr(identity, "token", None) == HEALTH_CHECK_ACCOUNT


def _credential(name: Any) -> Mapping[str, Any]:
    for item in getattr(litellm, "credential_list", None) or []:
        if getattr(item, "credential_name", None) == name:
            return getattr(item, "credential_values", None) or {}
    return {}


def _name_for(provider: str | None, model: str) -> str:
    return model.split("/", 1)[1] if provider and model.startswith(provider + "/") else model


def _entry_of(params: dict[str, Any], call_model: str) -> _ModelEntry:
    provider = provider_of(params)
    configured = str(params.get("model") or "")
    # A wildcard deployment (codex-agent/*) serves the name the Router matched, which is the call's.
    model = _name_for(provider, call_model if "*" in configured else configured)
    credential = _credential(params["litellm_credential_name"]) if params.get("litellm_credential_name") else {}
    api_base = params.get("api_base") or params.get("base_url") or credential.get("api_base")
    api_key = params.get("api_key") or credential.get("api_key")
    return _ModelEntry(params, model, provider, api_base and str(api_base), api_key and str(api_key))


def _model_entry(
    provider: str | None, model: str, api_base: str | None, api_key: str | None,
    optional_params: dict[str, Any], litellm_params: dict[str, Any] | None,
) -> _ModelEntry:
    """The model's settings: the Router deployment's in the proxy, the call's own in SDK use."""
    call = _ModelEntry(optional_params, model, provider, api_base, api_key)
    if not adapter.in_proxy():
        return call  # SDK use: the caller is the operator
    params = adapter.call_deployment_params(litellm_params)
    if params is None:
        if _is_health_check(litellm_params or {}):
            return call  # LiteLLM's /health passes a model_list entry's litellm_params as they are
        raise errors.bad_request(
            "this call is not for a model of the proxy's model_list: codex-agent serves only the models configured there", model)
    if provider_of(params) not in CODEX_ALIASES:
        raise errors.bad_request(
            "this model is not a codex-agent model: a request cannot choose its provider (custom_llm_provider)", model)
    return _entry_of(params, model)


def resolve(
    provider: str | None,
    model: str,
    api_base: str | None,
    api_key: str | None,
    optional_params: dict[str, Any],
    litellm_params: dict[str, Any] | None,
) -> CallSettings:
    """Settings for one call; raises the LiteLLM error the caller should see (403 when disabled)."""
    try:
        runtime = current_runtime()
    except ConfigError as exc:
        raise errors.bad_request(f"cannot load the proxy_ext settings: {exc}", model) from None
    section = runtime.settings.providers.codex_agent
    if not section.enabled:
        raise errors.disabled(model)
    entry = _model_entry(provider, model, api_base, api_key, optional_params, litellm_params)
    model = entry.model
    overrides = entry.params.get(OVERRIDE_KEY) or {}
    config = section
    if overrides:
        where = f"litellm_params.{OVERRIDE_KEY}"
        if not isinstance(overrides, dict):
            raise errors.bad_request(f"{where} must be a mapping of proxy_ext.providers.codex_agent keys", model)
        if "enabled" in overrides:
            raise errors.bad_request(f"{where}.enabled is not allowed: the provider is switched on for the whole proxy", model)
        try:
            resolved = _resolve_env_refs(overrides, os.environ, where)
            config = CodexAgentConfig.model_validate(_deep_merge(section.model_dump(), resolved))
        except ConfigError as exc:
            raise errors.bad_request(str(exc), model) from None
        except ValidationError as exc:
            raise errors.bad_request(format_validation_error(exc, prefix=where, schema=CodexAgentConfig), model) from None
    # Both aliases (codex-agent, codex_cli_agent) run the mode the model or the section chose: the
    # alias never implies the CLI (fork parity).
    return CallSettings(
        mode=config.mode,
        model=model,
        config=config,
        api_base=entry.api_base or config.api_base,
        api_key=entry.api_key or config.api_key,
        runtime=runtime,
        alias=entry.provider,
    )
