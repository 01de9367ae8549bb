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


_BY_STATUS = {
    400: litellm.BadRequestError, 401: litellm.AuthenticationError, 403: litellm.PermissionDeniedError,
    404: litellm.NotFoundError, 422: litellm.UnprocessableEntityError, 429: litellm.RateLimitError,
    500: litellm.InternalServerError, 502: litellm.BadGatewayError, 503: litellm.ServiceUnavailableError,
}


def provider_error(provider: str, status: int, message: str, model: str, url: str | None = None) -> Exception:
    """The LiteLLM exception for a ``provider`` failure with HTTP-like ``status``; the message is
    prefixed with the provider's name."""
    response = _response(status, provider, url)
    text = f"{provider}: {message}"
    if status == 408:
        return litellm.Timeout(text, model=model, llm_provider=provider)
    kind = _BY_STATUS.get(status)
    if kind is None:  # any other status (409, 499, 504, …) keeps its code; APIError takes a request, not a response
        return litellm.APIError(status_code=status, message=text, llm_provider=provider, model=model, request=response.request)
    return kind(text, model=model, llm_provider=provider, response=response)
