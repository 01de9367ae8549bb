"""Effective settings of one codex-agent call: the ``proxy_ext.providers.codex_agent`` section,
overridden per model by the deployment's ``litellm_params``.

Where settings come from:

- The section is read from the proxy's config file. When the extension's callbacks line loaded it,
  that runtime is reused; otherwise (the provider is used without ``callbacks: [proxy_ext.extension]``)
  the provider loads the file the proxy was started with itself, once.
- Per model: ``litellm_params.api_base`` / ``api_key`` (LiteLLM's own keys) and
  ``litellm_params.codex_agent`` (a mapping with the section's keys except ``enabled``; its
  ``mode: cli`` is how a model chooses the codex CLI). Inside the
  proxy these are read from the Router's deployment, never from the request body: a caller can add
  keys to a call's parameters, and must not be able to pick the codex binary, sandbox or mode.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from proxy_ext import litellm_adapter as adapter
from proxy_ext.config import CodexAgentConfig, ConfigError, _resolve_env_refs, format_validation_error
from proxy_ext.providers.codex_agent import errors
from proxy_ext.providers.registry import OVERRIDE_KEY
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


def _model_params(optional_params: dict[str, Any], litellm_params: dict[str, Any] | None) -> dict[str, Any]:
    if adapter.in_proxy():
        return adapter.deployment_litellm_params(adapter.call_model_id(litellm_params)) or {}
    return optional_params  # SDK use: the caller is the operator


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
    overrides = _model_params(optional_params, litellm_params).get(OVERRIDE_KEY) or {}
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
            raise errors.bad_request(format_validation_error(exc, prefix=where), model) from None
    # Both aliases (codex-agent, codex_cli_agent) run the mode the model or the section chose: the
    # alias never implies the CLI (fork parity).
    return CallSettings(
        mode=config.mode,
        model=model,
        config=config,
        api_base=api_base or config.api_base,
        api_key=api_key or config.api_key,
        runtime=runtime,
        alias=provider,
    )
