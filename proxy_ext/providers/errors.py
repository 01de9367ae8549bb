"""LiteLLM exceptions for our model providers, by HTTP-like status.

LiteLLM passes its own exception types raised by a custom handler through unchanged, so raising
the type that matches a status makes the proxy answer with that status and makes the Router's
retries, cooldowns and fallbacks treat our providers like any other.
"""

from __future__ import annotations

import httpx
import litellm

__all__ = ["provider_error"]


def _response(status: int, provider: str, url: str | None) -> httpx.Response:
    # Several LiteLLM exceptions require an httpx.Response with a request attached.
    return httpx.Response(status, request=httpx.Request("POST", url or f"http://{provider}.invalid/"))


def provider_error(provider: str, status: int, message: str, model: str, url: str | None = None) -> Exception:
    """The LiteLLM exception for a ``provider`` failure with HTTP-like ``status``; the message is
    prefixed with the provider's name."""
    response = _response(status, provider, url)
    text = f"{provider}: {message}"
    if status == 400:
        return litellm.BadRequestError(text, model=model, llm_provider=provider, response=response)
    if status == 401:
        return litellm.AuthenticationError(text, llm_provider=provider, model=model, response=response)
    if status == 403:
        return litellm.PermissionDeniedError(text, llm_provider=provider, model=model, response=response)
    if status == 404:
        return litellm.NotFoundError(text, model=model, llm_provider=provider, response=response)
    if status == 408:
        return litellm.Timeout(text, model=model, llm_provider=provider)
    if status == 422:
        return litellm.UnprocessableEntityError(text, model=model, llm_provider=provider, response=response)
    if status == 429:
        return litellm.RateLimitError(text, llm_provider=provider, model=model, response=response)
    if status == 500:
        return litellm.InternalServerError(text, llm_provider=provider, model=model, response=response)
    if status == 502:
        return litellm.BadGatewayError(text, llm_provider=provider, model=model, response=response)
    if status == 503:
        return litellm.ServiceUnavailableError(text, llm_provider=provider, model=model, response=response)
    return litellm.APIError(status_code=status, message=text, llm_provider=provider, model=model, response=response)
