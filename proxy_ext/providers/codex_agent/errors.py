"""The one place the codex-agent provider builds LiteLLM exceptions.

LiteLLM passes its own exception types raised by a custom handler through unchanged, so raising
the type that matches the upstream status makes the proxy answer with that status and makes the
Router's retries, cooldowns and fallbacks treat codex-agent like any other provider.
"""

from __future__ import annotations

import httpx
import litellm

from proxy_ext.providers.errors import provider_error

__all__ = ["PROVIDER", "bad_request", "connection_error", "disabled", "from_status", "timeout"]

PROVIDER = "codex-agent"


def from_status(status: int, message: str, model: str, url: str | None = None) -> Exception:
    """The LiteLLM exception for an upstream (or CLI) failure with HTTP-like ``status``."""
    return provider_error(PROVIDER, status, message, model, url)


def bad_request(message: str, model: str) -> Exception:
    """A 400 for a request or configuration the operator/caller must fix."""
    return from_status(400, message, model)


def disabled(model: str) -> Exception:
    """The provider is switched off (403): the message names both switches."""
    return from_status(
        403,
        "the codex-agent provider is disabled. Set proxy_ext.providers.codex_agent.enabled: true in the "
        "proxy config or LITELLM_ENABLE_CODEX_AGENT=1 in the proxy's environment, then restart the proxy.",
        model,
    )


def timeout(message: str, model: str) -> Exception:
    """A timeout (408); the Router may retry it (a CLI run's is marked not to be retried)."""
    return litellm.Timeout(f"codex-agent: {message}", model=model, llm_provider=PROVIDER)


def connection_error(message: str, model: str, url: str | None = None) -> Exception:
    """The upstream could not be reached."""
    return litellm.APIConnectionError(
        message=f"codex-agent: {message}", llm_provider=PROVIDER, model=model,
        request=httpx.Request("POST", url or "http://codex-agent.invalid/"),
    )
