"""LiteLLM exceptions for our model providers, by HTTP-like status.

LiteLLM passes its own exception types raised by a custom handler through unchanged, so raising
the type that matches a status makes the proxy answer with that status and makes the Router's
retries, cooldowns and fallbacks treat our providers like any other.
"""

from __future__ import annotations

import httpx
import litellm

__all__ = ["not_retried", "provider_error"]


def _response(status: int, provider: str, url: str | None) -> httpx.Response:
    # Several LiteLLM exceptions require an httpx.Response with a request attached.
    return httpx.Response(status, request=httpx.Request("POST", url or f"http://{provider}.invalid/"))


_BY_STATUS = {
    400: litellm.BadRequestError, 401: litellm.AuthenticationError, 403: litellm.PermissionDeniedError,
    404: litellm.NotFoundError, 422: litellm.UnprocessableEntityError, 429: litellm.RateLimitError,
    500: litellm.InternalServerError, 502: litellm.BadGatewayError, 503: litellm.ServiceUnavailableError,
}


def provider_error(provider: str, status: int, message: str, model: str, url: str | None = None,
                   retry_after_s: int | None = None) -> Exception:
    """The LiteLLM exception for a ``provider`` failure with HTTP-like ``status``; the message is
    prefixed with the provider's name.

    ``retry_after_s``: the failure is known to last that long (a breaker that is open). The answer
    then carries ``Retry-After``, and LiteLLM's Router does not retry the call (:func:`not_retried`):
    each retry before then would fail the same way, only later.
    """
    response = _response(status, provider, url)
    text = f"{provider}: {message}"
    error: Exception
    if status == 408:
        error = litellm.Timeout(text, model=model, llm_provider=provider)
    elif (kind := _BY_STATUS.get(status)) is None:  # any other status (409, 499, 504, …) keeps its code; APIError takes a request
        error = litellm.APIError(status_code=status, message=text, llm_provider=provider, model=model, request=response.request)
    else:
        error = kind(text, model=model, llm_provider=provider, response=response)
    if retry_after_s is not None:
        error.headers = {"retry-after": str(retry_after_s)}  # type: ignore[attr-defined]  # the proxy answers with an error's `headers`
        not_retried(error)
    return error


def not_retried(error: Exception) -> Exception:
    """``error``, marked so that LiteLLM's Router does not retry the call (a request that asks for
    retries itself, ``num_retries``, still gets them; fallbacks still apply)."""
    error.num_retries = 0  # type: ignore[attr-defined]  # the Router's per-deployment retry count, read off the error
    return error
