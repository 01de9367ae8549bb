"""``echo``: a hermetic model provider that answers with the last user message.

It needs no key and no network, so the default ``proxy_config.yaml`` answers
``/v1/chat/completions`` and ``/v1/responses`` (streaming included) on a fresh machine. The
extension's callbacks line registers the provider; a model entry is all a config needs::

    model_list:
      - model_name: echo
        litellm_params: {model: echo/echo-1}

(Not ``echo/echo``: LiteLLM 1.108.7 cannot route ``/v1/responses`` for a model whose name after the
prefix equals the provider's name.)

The reply is the text of the last user message (``"(empty)"`` when there is none); usage counts
whitespace-separated words as tokens so LiteLLM's accounting has numbers to work with.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from litellm.llms.custom_llm import CustomLLM
from litellm.types.utils import GenericStreamingChunk, ModelResponse, Usage

from proxy_ext.response_utils import content_text
from proxy_ext.providers.chunks import final_chunk, text_chunk, usage_dict

__all__ = ["EchoLLM", "handler", "echo_text"]


def _text_of(content: Any) -> str:
    return content_text(content, " ") if isinstance(content, (str, list)) else ""


def echo_text(messages: list[dict[str, Any]]) -> str:
    """The reply the echo model gives to ``messages``."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return _text_of(message.get("content")) or "(empty)"
    return "(empty)"


def _count(messages: list[dict[str, Any]]) -> int:
    return sum(len(_text_of(m.get("content")).split()) + 3 for m in messages)


class EchoLLM(CustomLLM):
    """LiteLLM CustomLLM handler for the ``echo`` provider."""

    def _response(self, model: str, messages: list, model_response: ModelResponse) -> ModelResponse:
        text = echo_text(messages)
        model_response.choices[0].message.content = text  # type: ignore[union-attr]
        model_response.choices[0].finish_reason = "stop"
        model_response.model = model
        prompt, completion = _count(messages), len(text.split())
        setattr(model_response, "usage", Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion))
        model_response.created = int(time.time())
        return model_response

    def _chunks(self, messages: list) -> Iterator[GenericStreamingChunk]:
        text = echo_text(messages)
        words = text.split(" ")
        for i, word in enumerate(words):
            yield text_chunk(word if i == 0 else " " + word)
        yield final_chunk("stop", usage_dict(_count(messages), len(text.split())))

    def completion(self, model: str, messages: list, *args: Any, model_response: ModelResponse, **kwargs: Any) -> ModelResponse:  # type: ignore[override]
        return self._response(model, messages, model_response)

    async def acompletion(self, model: str, messages: list, *args: Any, model_response: ModelResponse, **kwargs: Any) -> ModelResponse:  # type: ignore[override]
        return self._response(model, messages, model_response)

    def streaming(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Iterator[GenericStreamingChunk]:  # type: ignore[override]
        yield from self._chunks(messages)

    async def astreaming(self, model: str, messages: list, *args: Any, **kwargs: Any) -> AsyncIterator[GenericStreamingChunk]:  # type: ignore[override]
        for chunk in self._chunks(messages):
            yield chunk


handler = EchoLLM()
"""The handler registered for the ``echo`` provider."""
