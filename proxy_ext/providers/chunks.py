"""The stream chunks our providers yield (LiteLLM's documented ``GenericStreamingChunk``), built in
one place: a content delta, a tool-call delta, the final chunk with usage."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litellm.types.utils import GenericStreamingChunk

__all__ = ["final_chunk", "text_chunk", "tool_call_chunk", "tool_use_chunk", "usage_dict"]


def usage_dict(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """OpenAI-style usage numbers (total included)."""
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}


def text_chunk(text: str) -> GenericStreamingChunk:
    """A content delta."""
    return GenericStreamingChunk(text=text, is_finished=False, finish_reason="", usage=None, index=0, tool_use=None)


def tool_call_chunk(index: int, call: Mapping[str, Any]) -> GenericStreamingChunk:
    """One whole tool call (OpenAI ``tool_calls`` entry) as the ``index``-th tool-call delta."""
    return tool_use_chunk({"id": call["id"], "type": "function", "index": index,
                           "function": {"name": call["function"]["name"], "arguments": call["function"]["arguments"]}})


def tool_use_chunk(delta: Mapping[str, Any]) -> GenericStreamingChunk:
    """A tool-call delta (``index``, ``id``, ``type``, ``function``: OpenAI's streamed shape)."""
    return GenericStreamingChunk(text="", is_finished=False, finish_reason="", usage=None, index=0, tool_use=dict(delta))  # type: ignore[typeddict-item]


def final_chunk(finish_reason: str = "stop", usage: Mapping[str, Any] | None = None) -> GenericStreamingChunk:
    """The last chunk of a stream: why it ended and the call's usage."""
    return GenericStreamingChunk(text="", is_finished=True, finish_reason=finish_reason, usage=usage, index=0, tool_use=None)  # type: ignore[typeddict-item]
