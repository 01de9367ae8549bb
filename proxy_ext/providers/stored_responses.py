"""Requests for a stored Responses API response whose id one of the extension's models made.

``GET /v1/responses/{id}``, ``GET …/{id}/input_items``, ``DELETE /v1/responses/{id}`` and
``POST …/{id}/cancel`` are answered by the provider that made the response; LiteLLM reads it from
the id. The extension's models (``mini-agent``, ``codex-agent``, ``echo``) store no responses, and
LiteLLM answered every such request with a 500 ("GET responses is not supported for mini-agent").
They get a 404 saying so instead: an OpenAI client raises ``NotFoundError``, as for an unknown id.
The request still goes to LiteLLM first, so its auth answers as for any request (401, 403); only
its 500 is replaced.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from proxy_ext.exceptions import error_body
from proxy_ext.providers.registry import PROVIDERS

__all__ = ["RESPONSE_ROUTE_PREFIXES", "NotStoredAnswer", "stored_response_problem"]

RESPONSE_ROUTE_PREFIXES = ("/v1/responses/", "/responses/", "/openai/v1/responses/")
_ACTIONS = {("GET", ""): "retrieve", ("DELETE", ""): "delete", ("GET", "input_items"): "list the input items of",
            ("POST", "cancel"): "cancel"}


def stored_response_problem(method: str, path: str, provider_of_id: Callable[[str], str | None]) -> str | None:
    """Why the request is answered with a 404 (None: it is LiteLLM's to answer)."""
    prefix = next((p for p in RESPONSE_ROUTE_PREFIXES if path.startswith(p)), None)
    if prefix is None:
        return None
    response_id, _, action = path[len(prefix):].partition("/")
    verb = _ACTIONS.get((method, action))
    if verb is None or not response_id:
        return None
    provider = provider_of_id(response_id)
    if provider not in PROVIDERS:
        return None
    shown = response_id if len(response_id) <= 80 else f"{response_id[:80]}..."
    return (f"response {shown!r} was made by a model of provider {provider!r}, which does not store responses: there is "
            f"nothing to {verb}. Send the whole conversation as the next request's input.")


class NotStoredAnswer:
    """An ASGI ``send`` that answers LiteLLM's 5xx for such a request with the 404 and drops
    LiteLLM's own body; any other answer (auth's 401/403, a 200) passes unchanged."""

    __slots__ = ("_send", "message", "_replaced")

    def __init__(self, send: Any, message: str) -> None:
        self._send = send
        self.message = message
        self._replaced = False

    async def send(self, message: Any) -> None:
        if self._replaced:
            return
        if message["type"] == "http.response.start" and message["status"] >= 500:
            self._replaced = True
            body = json.dumps(error_body(404, self.message)).encode()
            await self._send({"type": "http.response.start", "status": 404,
                              "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
            await self._send({"type": "http.response.body", "body": body})
            return
        await self._send(message)
