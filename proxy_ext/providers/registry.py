"""The model providers proxy_ext serves, and how a config's models use them.

The extension's callbacks line registers every provider below with LiteLLM itself
(:func:`proxy_ext.glue.register_providers`, through :func:`proxy_ext.litellm_adapter.add_custom_providers`), so ``custom_provider_map`` lines for them are optional;
an operator's own entry for one of these names wins over ours.

``codex-agent/*`` and ``codex_cli_agent/*`` are two names of the same HTTP provider (as in the
fork). A model runs the local codex CLI only when its ``litellm_params.codex_agent.mode`` is
``cli`` (or the section's ``proxy_ext.providers.codex_agent.mode`` is): never because of the alias.

No LiteLLM import here: ``proxy-ext doctor`` and ``/ready`` read this module too.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from proxy_ext.config import CodexAgentConfig

__all__ = [
    "CODEX_ALIASES", "PROVIDERS", "CodexModel", "cli_in_use", "codex_models", "codex_off_detail", "codex_warnings", "legacy_cli_message",
    "legacy_cli_models", "load_handler", "announce_migrations", "model_entries", "provider_of",
]

PROVIDERS: dict[str, str] = {
    "echo": "proxy_ext.providers.echo.handler",
    "codex-agent": "proxy_ext.providers.codex_agent.handler",
    "codex_cli_agent": "proxy_ext.providers.codex_agent.handler",
    "mini-agent": "proxy_ext.providers.mini_agent.handler",
}
"""Provider name → the ``CustomLLM`` instance serving it (a dotted path)."""

CODEX_ALIASES = ("codex-agent", "codex_cli_agent")
OVERRIDE_KEY = "codex_agent"
"""The ``litellm_params`` key holding a model's codex-agent settings (``mode``, ``cli``, …)."""


def load_handler(provider: str) -> Any:
    """The handler object of one of :data:`PROVIDERS`."""
    module_name, _, attribute = PROVIDERS[provider].rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)


def model_entries(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(model_name, litellm_params)`` of every well-formed ``model_list`` entry."""
    model_list = document.get("model_list")
    for entry in model_list if isinstance(model_list, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("litellm_params"), dict):
            yield str(entry.get("model_name", "")), entry["litellm_params"]


def provider_of(params: dict[str, Any]) -> str | None:
    """The provider a deployment names: ``custom_llm_provider``, else the prefix of ``model``
    (None when the model has no prefix: LiteLLM infers the provider from the model name)."""
    explicit = params.get("custom_llm_provider")
    if isinstance(explicit, str) and explicit:
        return explicit
    model = params.get("model")
    if isinstance(model, str) and "/" in model:
        return model.split("/", 1)[0]
    return None


@dataclass(frozen=True)
class CodexModel:
    """One ``model_list`` entry served by the codex-agent provider."""

    name: str
    model: str
    mode: str
    """``http`` or ``cli``: what the call will run."""
    mode_chosen: bool
    """The mode was stated (the model's ``codex_agent.mode`` or the section's ``mode``)."""
    cli_settings: bool
    """The model (or the section) carries CLI settings."""
    has_api_base: bool
    """An HTTP base URL is configured for it (model, section or ``CODEX_AGENT_API_BASE``)."""
    cli_binary: str = "codex"
    """The codex executable its CLI calls start (the model's ``codex_agent.cli.binary``, else the section's)."""


def _raw_section(document: dict[str, Any]) -> dict[str, Any]:
    node: Any = document.get("proxy_ext")
    for key in ("providers", "codex_agent"):
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


def codex_models(document: dict[str, Any], section: CodexAgentConfig) -> list[CodexModel]:
    """The codex-agent models of a config, with the mode each call runs in."""
    raw = _raw_section(document)
    found = []
    for name, params in model_entries(document):
        if provider_of(params) not in CODEX_ALIASES:
            continue
        overrides: dict[str, Any] = given if isinstance(given := params.get(OVERRIDE_KEY), dict) else {}
        own_mode = overrides.get("mode")
        own_cli: dict[str, Any] = given if isinstance(given := overrides.get("cli"), dict) else {}
        own_binary = own_cli.get("binary")
        found.append(CodexModel(
            name=name,
            model=str(params.get("model")),
            mode=str(own_mode or section.mode),
            mode_chosen=own_mode is not None or "mode" in raw,
            cli_settings=bool(overrides.get("cli")) or bool(raw.get("cli")),
            has_api_base=bool(params.get("api_base") or overrides.get("api_base") or section.api_base),
            cli_binary=own_binary if isinstance(own_binary, str) and own_binary else section.cli.binary,
        ))
    return found


def cli_in_use(document: dict[str, Any], section: CodexAgentConfig) -> bool:
    """Whether the provider is enabled and some model runs the codex CLI."""
    return section.enabled and any(model.mode == "cli" for model in codex_models(document, section))


def legacy_cli_models(document: dict[str, Any], section: CodexAgentConfig) -> list[CodexModel]:
    """``codex_cli_agent/*`` models that look written for the old meaning of the alias (it used to
    imply the codex CLI): no mode stated, and CLI settings or no HTTP base URL anywhere."""
    return [
        model for model in codex_models(document, section)
        if model.model.startswith("codex_cli_agent/") and not model.mode_chosen
        and (model.cli_settings or not model.has_api_base)
    ]


def legacy_cli_message(models: list[CodexModel]) -> str:
    """What an operator with an old CLI config must change (start-up message and doctor warning)."""
    names = ", ".join(f"{m.name} ({m.model})" for m in models)
    return (
        f"codex_cli_agent/* is the codex-agent HTTP provider, as in the fork: it no longer implies the codex CLI. "
        f"These models now run in HTTP mode: {names}. To keep running the local codex CLI, add "
        "`codex_agent: {mode: cli}` to each model's litellm_params (or set proxy_ext.providers.codex_agent.mode: cli "
        "for every codex model); for HTTP, set CODEX_AGENT_API_BASE or the model's api_base. "
        "See docs/migrating-from-the-fork.md."
    )


def announce_migrations(document: dict[str, Any], section: CodexAgentConfig) -> str | None:
    """At start-up: tell the operator (stderr and the log) what to change in a config written for the
    old meaning of ``codex_cli_agent``; returns the message (None: nothing to say)."""
    legacy = legacy_cli_models(document, section)
    if not legacy:
        return None
    message = legacy_cli_message(legacy)
    print(f"\nproxy_ext: warning: {message}\n", file=sys.stderr, flush=True)
    logging.getLogger("proxy_ext").warning("%s", message)
    return message


def codex_warnings(document: dict[str, Any], section: CodexAgentConfig) -> list[str]:
    """Codex-agent models that cannot answer as configured (doctor warnings): the provider is off
    although a base URL says it is meant to be used, or on without a base URL for HTTP models."""
    models = codex_models(document, section)
    names = ", ".join(m.name for m in models)
    if not models:
        return []
    if not section.enabled:
        if not (section.api_base or any(m.has_api_base for m in models)):
            return []
        return [f"model_list: {names} use the codex-agent provider, which is off, although a base URL is set: their calls "
                "answer 403; set LITELLM_ENABLE_CODEX_AGENT=1 in the proxy's environment "
                "(or proxy_ext.providers.codex_agent.enabled: true)"]
    told = {m.name for m in legacy_cli_models(document, section)}  # their warning says it already
    missing = [m.name for m in models if m.mode == "http" and not m.has_api_base and m.name not in told]
    if not missing:
        return []
    return [f"model_list: {', '.join(missing)} run the codex-agent provider over HTTP without a base URL: their calls "
            "answer 400; set CODEX_AGENT_API_BASE (or proxy_ext.providers.codex_agent.api_base, or the model's api_base)"]


def codex_off_detail(document: dict[str, Any], section: CodexAgentConfig) -> str:
    """The doctor's capability line of a disabled provider: which models answer 403 until when."""
    names = ", ".join(m.name for m in codex_models(document, section))
    if not names:
        return ""
    return f"; calls to {names} answer 403 until LITELLM_ENABLE_CODEX_AGENT=1 or providers.codex_agent.enabled: true"
