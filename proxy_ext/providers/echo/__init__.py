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

To try tools without a real model, a last user message ``call <tool> {json arguments}`` naming a
tool the request offers makes the echo model call that tool; once the tool results are in the
conversation it answers with their text (docs/agent.md, "Background runs and approvals").
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from litellm.llms.custom_llm import CustomLLM
from litellm.types.utils import GenericStreamingChunk, ModelResponse, Usage

from proxy_ext.response_utils import content_text

__all__ = ["EchoLLM", "echo_reply", "echo_text", "handler"]


def _text_of(content: Any) -> str:
    return content_text(content, " ") if isinstance(content, (str, list)) else ""


def echo_text(messages: list[dict[str, Any]]) -> str:
    """The reply the echo model gives to ``messages``."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return _text_of(message.get("content")) or "(empty)"
    return "(empty)"


_CALL = re.compile(r"\s*call\s+([A-Za-z0-9_.:-]+)\s*(\{.*\})?\s*", re.S)


def echo_reply(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> tuple[str, dict[str, Any] | None]:
    """(text, tool call or None) of the echo model: a tool call for a ``call <tool> {...}`` message
    when the request offers that tool, the tool results' text after it ran, else :func:`echo_text`."""
    last_user = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].get("role") == "user"), None)
    offered = {(t.get("function") or {}).get("name") for t in tools or [] if isinstance(t, dict)}
    directive = _CALL.fullmatch(_text_of(messages[last_user].get("content"))) if last_user is not None else None
    if directive is None or directive.group(1) not in offered:
        return echo_text(messages), None
    results = [_text_of(m.get("content")) for m in messages[last_user + 1:] if m.get("role") == "tool"]
    if results:
        return "\n".join(results), None
    arguments = directive.group(2) or "{}"
    try:
        json.loads(arguments)
    except ValueError:
        return f"(not JSON arguments: {arguments})", None
    return "", {"id": f"echo-call-{len(messages)}", "type": "function", "function": {"name": directive.group(1), "arguments": arguments}}


def _count(messages: list[dict[str, Any]]) -> int:
    return sum(len(_text_of(m.get("content")).split()) + 3 for m in messages)


def _tools(kwargs: dict[str, Any]) -> Any:
    return (kwargs.get("optional_params") or {}).get("tools")


class EchoLLM(CustomLLM):
    """LiteLLM CustomLLM handler for the ``echo`` provider."""

    def _response(self, model: str, messages: list, model_response: ModelResponse, tools: Any = None) -> ModelResponse:
        text, tool_call = echo_reply(messages, tools)
        message = model_response.choices[0].message  # type: ignore[union-attr]
        message.content = text if tool_call is None else None
        if tool_call is not None:
            from litellm.types.utils import ChatCompletionMessageToolCall

            message.tool_calls = [ChatCompletionMessageToolCall(**tool_call)]
        model_response.choices[0].finish_reason = "stop" if tool_call is None else "tool_calls"
        model_response.model = model
        prompt, completion = _count(messages), len(text.split())
        setattr(model_response, "usage", Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion))
        model_response.created = int(time.time())
        return model_response

    def _chunks(self, messages: list, tools: Any = None) -> Iterator[GenericStreamingChunk]:
        text, tool_call = echo_reply(messages, tools)
        if tool_call is not None:
            prompt = _count(messages)
            yield GenericStreamingChunk(text="", is_finished=True, finish_reason="tool_calls", index=0,
                                        usage={"prompt_tokens": prompt, "completion_tokens": 1, "total_tokens": prompt + 1},
                                        tool_use={**tool_call, "index": 0})  # type: ignore[typeddict-item]
            return
        words = text.split(" ")
        for i, word in enumerate(words):
            yield GenericStreamingChunk(
                text=word if i == 0 else " " + word, is_finished=False, finish_reason="", usage=None, index=0, tool_use=None
            )
        prompt, completion = _count(messages), len(text.split())
        yield GenericStreamingChunk(
            text="",
            is_finished=True,
            finish_reason="stop",
            usage={"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
            index=0,
            tool_use=None,
        )

    def completion(self, model: str, messages: list, *args: Any, model_response: ModelResponse, **kwargs: Any) -> ModelResponse:  # type: ignore[override]
        return self._response(model, messages, model_response, _tools(kwargs))

    async def acompletion(self, model: str, messages: list, *args: Any, model_response: ModelResponse, **kwargs: Any) -> ModelResponse:  # type: ignore[override]
        return self._response(model, messages, model_response, _tools(kwargs))

    def streaming(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Iterator[GenericStreamingChunk]:  # type: ignore[override]
        yield from self._chunks(messages, _tools(kwargs))

    async def astreaming(self, model: str, messages: list, *args: Any, **kwargs: Any) -> AsyncIterator[GenericStreamingChunk]:  # type: ignore[override]
        for chunk in self._chunks(messages, _tools(kwargs)):
            yield chunk


handler = EchoLLM()
"""The handler registered for the ``echo`` provider."""
