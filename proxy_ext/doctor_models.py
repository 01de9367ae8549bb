"""``proxy-ext doctor``, the models: every model names a provider LiteLLM will know (the one a
misspelt prefix was probably meant as), the models the agent names exist, and models of LiteLLM's
own providers whose API key is not in the environment.

Such a model's calls fail (an authentication error) until its key is set. A model the agent uses (``agent.default_model``,
``agent.escalation``, a profile's models) without its key is a warning: ``/agent/run`` fails; the
other models are listed on the capability line (the default config lists real models that answer
as soon as their key is set).
"""

from __future__ import annotations

import difflib
import importlib
import os
from typing import Any, Protocol

from proxy_ext.config import ProxyExtConfig
from proxy_ext.providers import registry
from proxy_ext.providers.stale import EXTENSION_CALLBACK
from proxy_ext.state import Runtime

__all__ = ["check_models", "check_providers", "model_known", "provider_keys_report"]


class DoctorReport(Protocol):
    """What these checks add to (:class:`proxy_ext.cli.DoctorReport`)."""

    problems: list[str]
    warnings: list[str]


def _missing(params: dict[str, Any]) -> list[str]:
    from proxy_ext.litellm_adapter.keys import missing_api_keys

    key = params.get("api_key")
    if isinstance(key, str) and key.startswith("os.environ/"):
        name = key.removeprefix("os.environ/")
        return [] if os.environ.get(name) else [name]
    if key:
        return []
    return missing_api_keys(str(params.get("model")))


def _agent_models(settings: ProxyExtConfig) -> set[str]:
    agent = settings.agent
    names: set[str | None] = {agent.default_model, *agent.escalation}
    for profile in agent.profiles.values():
        names |= {profile.model, *(profile.escalation or [])}
    return {name for name in names if name}


def provider_keys_report(document: dict[str, Any], settings: ProxyExtConfig) -> tuple[str, list[str]]:
    """The capability line (empty: every key is there) and the warnings."""
    from proxy_ext import litellm_adapter as adapter

    litellm_settings = found if isinstance(found := document.get("litellm_settings"), dict) else {}
    mapped = {e.get("provider") for e in litellm_settings.get("custom_provider_map") or [] if isinstance(e, dict)}
    missing: dict[str, list[str]] = {}
    for name, params in registry.model_entries(document):
        provider = registry.provider_of(params)
        if provider in registry.PROVIDERS or provider in mapped or (provider is not None and not adapter.known_provider(provider)):
            continue
        keys = _missing(params)
        if keys:
            missing[name] = keys
    used = _agent_models(settings)
    warnings = [f"model_list: {name} needs {' and '.join(keys)}, which is not set in this environment: its calls fail "
                f"(authentication error), and the agent uses it (set it in the environment or in .env, or name another model)"
                for name, keys in missing.items() if name in used]
    line = "; ".join(f"{name} ({', '.join(keys)})" for name, keys in missing.items())
    return (f"keys missing for {line}: those models fail until their key is set" if line else ""), warnings


def check_providers(document: dict[str, Any], extension_on: bool, report: DoctorReport) -> None:
    """Every model names a provider LiteLLM will know at run time; model strings LiteLLM
    mis-routes; codex_cli_agent models written for the alias's old meaning."""
    from proxy_ext import litellm_adapter as adapter

    litellm_settings = found if isinstance(found := document.get("litellm_settings"), dict) else {}
    mapped = {e.get("provider") for e in litellm_settings.get("custom_provider_map") or [] if isinstance(e, dict)}
    ours = set(registry.PROVIDERS) if extension_on else set()
    for name, params in registry.model_entries(document):
        provider = registry.provider_of(params)
        if provider is None:
            continue
        model = str(params.get("model"))
        # proxy_ext's own names are registered by this config or not at all (never LiteLLM built-ins).
        registered = provider in mapped | ours or (provider not in registry.PROVIDERS and adapter.known_provider(provider))
        if not registered:
            hint = (f" (proxy_ext registers it when litellm_settings.callbacks contains {EXTENSION_CALLBACK!r})"
                    if provider in registry.PROVIDERS else f" (not a LiteLLM provider, nor in custom_provider_map{_meant(provider)})")
            report.warnings.append(f"model_list: {name} ({model}) names the provider {provider!r}, which is not registered{hint}: "
                                   "its calls will fail")
        if model == f"{provider}/{provider}" and not params.get("custom_llm_provider"):
            report.warnings.append(f"model_list: {name} ({model}): the model after the prefix repeats the provider name, and "
                                   f"LiteLLM answers /v1/responses for it with a 400 (list index out of range); "
                                   f"name it differently, e.g. {provider}/{provider}-1")


def _meant(provider: str) -> str:
    from proxy_ext.litellm_adapter.keys import close_provider

    close = close_provider(provider, also=registry.PROVIDERS)  # codex_agent → codex-agent, mini_agent → mini-agent
    return f"; did you mean {close!r}?" if close else ""


def _closest(name: str, names: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(names), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else f" (model_list has: {', '.join(sorted(names))})"


def model_known(name: str, names: set[str]) -> bool:
    """A model_name of the list, or served by a wildcard route ("fake/*" serves "fake/anything")."""
    return name in names or any(n.endswith("*") and name.startswith(n[:-1]) for n in names)


def check_models(runtime: Runtime, names: set[str], report: DoctorReport) -> None:
    agent = runtime.settings.agent
    for label, model in [("agent.default_model", agent.default_model)] + [
        (f"agent.escalation[{i}]", m) for i, m in enumerate(agent.escalation)
    ]:
        if model and names and not model_known(model, names):
            report.problems.append(f"{label} = {model!r} is not a model_name in model_list{_closest(model, names)}")
    for name, profile in agent.profiles.items():
        for model in [profile.model, *(profile.escalation or [])]:
            if model and names and not model_known(model, names):
                report.problems.append(f"agent.profiles.{name} names {model!r}, which is not in model_list{_closest(model, names)}")
    for entry in runtime.document.get("model_list") or []:
        model = ((entry or {}).get("litellm_params") or {}).get("model") if isinstance(entry, dict) else None
        if isinstance(model, str) and model.startswith("mini-agent/") and model.split("/", 1)[1] not in agent.profiles:
            report.problems.append(f"model_list: {model!r} needs a profile {model.split('/', 1)[1]!r} in proxy_ext.agent.profiles")
    for path in agent.local_tools:
        module_name, _, attribute = path.rpartition(".")
        try:
            if not callable(getattr(importlib.import_module(module_name), attribute)):
                report.problems.append(f"agent.local_tools: {path} is not callable")
        except Exception as exc:
            report.problems.append(f"agent.local_tools: {path} cannot be imported: {type(exc).__name__}: {exc}")
