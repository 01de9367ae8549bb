"""Lines of a config carried over from the fork that name modules which no longer exist: a
``custom_provider_map`` entry for one of proxy_ext's provider names, or a dotted
``litellm_settings.callbacks`` entry. LiteLLM would stop on them with an ImportError traceback
that does not say what to change; these messages do (at start-up and in ``proxy-ext doctor``)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from proxy_ext.providers.registry import PROVIDERS

__all__ = ["stale_lines"]

EXTENSION_CALLBACK = "proxy_ext.extension"
_MIGRATING = "see docs/migrating-from-the-fork.md"


def _load_problem(dotted: str, config_dir: Path) -> str | None:
    """Why LiteLLM could not load ``a.b.attr`` (None: it can). LiteLLM first looks for a file
    ``a/b.py`` next to the config: such a file counts as loadable."""
    module_name, _, attribute = dotted.rpartition(".")
    if not module_name or "://" in dotted:  # s3:// and gcs:// modules: LiteLLM fetches them
        return None
    if config_dir.joinpath(*module_name.split(".")).with_suffix(".py").exists():
        return None
    try:
        getattr(importlib.import_module(module_name), attribute)
    except Exception as exc:  # noqa: BLE001 - whatever stops the import is the reason
        return f"{type(exc).__name__}: {exc}"
    return None


def _litellm_settings(document: dict[str, Any]) -> dict[str, Any]:
    found = document.get("litellm_settings")
    return found if isinstance(found, dict) else {}


def stale_lines(document: dict[str, Any], config_dir: Path) -> list[str]:
    """One message per entry that names a module that cannot be loaded."""
    settings = _litellm_settings(document)
    messages = []
    for entry in settings.get("custom_provider_map") or []:
        if not isinstance(entry, dict) or entry.get("provider") not in PROVIDERS or not isinstance(entry.get("custom_handler"), str):
            continue
        provider, handler = entry["provider"], entry["custom_handler"]
        problem = _load_problem(handler, config_dir)
        if problem:
            messages.append(
                f"litellm_settings.custom_provider_map: the entry for {provider!r} names {handler}, which cannot be loaded "
                f"({problem}). The callbacks line {EXTENSION_CALLBACK!r} registers {provider!r} itself: remove the entry "
                f"(a line of the fork's config?), or name {PROVIDERS[provider]}; {_MIGRATING}")
    callbacks = settings.get("callbacks") or []
    for callback in [callbacks] if isinstance(callbacks, str) else callbacks:
        if not isinstance(callback, str) or "." not in callback or callback == EXTENSION_CALLBACK:
            continue
        problem = _load_problem(callback, config_dir)
        if problem:
            messages.append(
                f"litellm_settings.callbacks: {callback} cannot be loaded ({problem}): the proxy stops on it. If it is a "
                f"module of the fork, remove it: {EXTENSION_CALLBACK!r} replaces the fork's callbacks; {_MIGRATING}")
    return messages
