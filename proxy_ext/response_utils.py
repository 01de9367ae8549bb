"""Response utilities for client code: read text and tool calls out of any response shape, and add a
USD cost to an OpenAI-style JSON body.

Works on LiteLLM objects (``ModelResponse``, ``ModelResponseStream``, ``TextCompletionResponse``,
``ResponsesAPIResponse``), on OpenAI SDK objects (``ChatCompletion``, ``ChatCompletionChunk``,
``Completion``, ``Response`` and its stream events) and on plain dicts (parsed JSON). Nothing here
imports LiteLLM or the OpenAI SDK: objects are read by attribute or key, so the helpers are usable
without the proxy installed around them.

    from proxy_ext import extract_content, assemble_stream_text, augment_json_with_cost

    reply = client.chat.completions.create(...)
    content = extract_content(reply)          # content.text, content.tool_calls
    text = assemble_stream_text(client.chat.completions.create(..., stream=True))
    body = augment_json_with_cost(body, 0.00042, input_cost=0.0003, output_cost=0.00012)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ExtractedContent",
    "ToolCall",
    "assemble_stream_text",
    "assemble_stream_texts",
    "augment_json_with_cost",
    "content_text",
    "extract_content",
]


@dataclass(frozen=True)
class ToolCall:
    """One tool (function) call the model asked for."""

    name: str
    """Function name."""
    arguments: str
    """Arguments as the JSON text the model produced (not parsed: it may be invalid JSON)."""
    id: str | None = None
    """Call id (chat ``tool_calls[].id`` or Responses ``call_id``), when present."""

    def parsed_arguments(self) -> Any:
        """The arguments parsed as JSON (raises ``ValueError`` when they are not valid JSON)."""
        return json.loads(self.arguments) if self.arguments else {}


@dataclass(frozen=True)
class ExtractedContent:
    """What a response said: its text and the tool calls it made."""

    text: str = ""
    """All text of the chosen choice / output, content parts joined in order ("" when none)."""
    tool_calls: list[ToolCall] = field(default_factory=list)
    """Tool calls in the order the model made them."""
    refusal: str | None = None
    """The model's refusal message, when it refused."""


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """``obj[name]`` for mappings, ``obj.name`` for objects; ``default`` when missing or None."""
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        value = obj.get(name, default)
    else:
        try:
            value = getattr(obj, name, default)
        except Exception:  # some SDK objects raise on unknown attributes instead of AttributeError
            value = default
    return default if value is None else value


def content_text(content: Any, separator: str = "", *, omitted: str | None = None) -> str:
    """Text of a message ``content``: a string, or a list of content parts (their text parts
    joined with ``separator``); "" for anything without text. With ``omitted`` (a format string
    with ``{type}``), every other part stands in the text as that note, e.g. ``[image_url omitted]``."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Iterable) and not isinstance(content, (bytes, Mapping)):
        pieces: list[str] = []
        for part in content:
            if isinstance(part, str):
                pieces.append(part)
                continue
            kind = _get(part, "type")
            if kind in (None, "text", "output_text", "input_text"):
                text = _get(part, "text")
                if isinstance(text, str):
                    pieces.append(text)
                elif text is not None:  # {"type": "text", "text": {"value": ...}} (assistants style)
                    pieces.append(str(_get(text, "value", "")))
            elif omitted is not None:
                pieces.append(omitted.format(type=kind))
        return separator.join(pieces)
    return str(content)




def _tool_calls_of(message: Any) -> list[ToolCall]:
    calls: list[ToolCall] = []
    for raw in _get(message, "tool_calls", []) or []:
        function = _get(raw, "function")
        if function is None:
            continue
        calls.append(ToolCall(name=str(_get(function, "name", "")), arguments=str(_get(function, "arguments", "")), id=_get(raw, "id")))
    legacy = _get(message, "function_call")  # pre-tools OpenAI shape
    if legacy is not None and not calls:
        calls.append(ToolCall(name=str(_get(legacy, "name", "")), arguments=str(_get(legacy, "arguments", ""))))
    return calls


def _from_responses_output(output: Any) -> ExtractedContent:
    texts: list[str] = []
    calls: list[ToolCall] = []
    refusal: str | None = None
    for item in output or []:
        kind = _get(item, "type")
        if kind == "message":
            for part in _get(item, "content", []) or []:
                if _get(part, "type") == "refusal":
                    refusal = _get(part, "refusal")
                else:
                    texts.append(content_text([part]))
        elif kind == "function_call":
            calls.append(ToolCall(name=str(_get(item, "name", "")), arguments=str(_get(item, "arguments", "")), id=_get(item, "call_id") or _get(item, "id")))
    return ExtractedContent(text="".join(texts), tool_calls=calls, refusal=refusal)


def _choice(response: Any, index: int) -> Any:
    for position, choice in enumerate(_get(response, "choices", []) or []):
        if _get(choice, "index", position) == index:
            return choice
    return None


def extract_content(response: Any, *, index: int = 0) -> ExtractedContent:
    """The text and tool calls of one choice of a response.

    ``response`` may be a chat completion (``choices[].message``), a chat stream chunk
    (``choices[].delta``), a text completion (``choices[].text``), a Responses API response
    (``output[]``, or a ``response.completed`` event holding one), or a bare message — as a LiteLLM
    object, an OpenAI SDK object or a dict. ``index`` picks the choice (ignored for Responses API
    objects). Message content may be a string or a list of content parts; text parts are joined.
    A missing choice or empty content gives ``ExtractedContent()`` (empty text, no tool calls).
    """
    if response is None:
        return ExtractedContent()
    if _get(response, "type") in ("response.completed", "response.incomplete", "response.failed"):
        response = _get(response, "response")
    output = _get(response, "output")
    if isinstance(output, list) or _get(response, "object") == "response":
        return _from_responses_output(output)
    if _get(response, "choices") is not None:
        choice = _choice(response, index)
        if choice is None:
            return ExtractedContent()
        message = _get(choice, "message") or _get(choice, "delta")
        if message is None:  # text completion choice
            return ExtractedContent(text=str(_get(choice, "text", "")))
    else:
        message = response  # a bare message or delta
    return ExtractedContent(
        text=content_text(_get(message, "content")),
        tool_calls=_tool_calls_of(message),
        refusal=_get(message, "refusal"),
    )


def assemble_stream_texts(chunks: Iterable[Any]) -> dict[int, str]:
    """The streamed text of every choice, by choice index.

    Chunks may be chat chunks (``choices[].delta.content``), text completion chunks
    (``choices[].text``) or Responses API events (``response.output_text.delta``, counted as
    index 0), in any of the shapes :func:`extract_content` accepts. Chunks without choices (the
    usage chunk), empty or None deltas and ``None`` chunks are skipped.
    """
    texts: dict[int, list[str]] = {}
    for chunk in chunks:
        if chunk is None:
            continue
        kind = _get(chunk, "type")
        if kind == "response.output_text.delta":
            texts.setdefault(0, []).append(str(_get(chunk, "delta", "")))
            continue
        for position, choice in enumerate(_get(chunk, "choices", []) or []):
            index = _get(choice, "index", position)
            delta = _get(choice, "delta")
            piece = content_text(_get(delta, "content")) if delta is not None else _get(choice, "text", "")
            if piece:
                texts.setdefault(index, []).append(str(piece))
    return {index: "".join(pieces) for index, pieces in sorted(texts.items())}


def assemble_stream_text(chunks: Iterable[Any], *, index: int = 0) -> str:
    """The full text of choice ``index`` from a stream's chunks ("" when that choice said nothing).

    See :func:`assemble_stream_texts` for the accepted chunk shapes. The iterable is consumed.
    """
    return assemble_stream_texts(chunks).get(index, "")


def augment_json_with_cost(
    body: Mapping[str, Any],
    cost: float,
    *,
    input_cost: float | None = None,
    output_cost: float | None = None,
) -> dict[str, Any]:
    """A copy of ``body`` with ``usage.cost`` (USD) and, when a split is given, ``usage.cost_details``.

    ``body`` is an OpenAI-style JSON object: a chat / text completion, an embeddings list, a
    Responses API response, or a ``response.completed`` stream event (whose ``response.usage`` gets
    the cost). A missing or null ``usage`` becomes ``{"cost": ...}``. ``body`` itself is never
    modified: the containers on the path to ``usage`` are copied, everything else is shared.
    """
    if not isinstance(body, Mapping):
        raise TypeError(f"augment_json_with_cost expects a JSON object (a mapping), got {type(body).__name__}")
    result = dict(body)
    if result.get("type") in ("response.completed", "response.incomplete") and isinstance(result.get("response"), Mapping):
        result["response"] = augment_json_with_cost(result["response"], cost, input_cost=input_cost, output_cost=output_cost)
        return result
    usage = dict(result.get("usage") or {})
    usage["cost"] = float(cost)
    if input_cost is not None or output_cost is not None:
        usage["cost_details"] = {"input_cost": float(input_cost or 0.0), "output_cost": float(output_cost or 0.0)}
    result["usage"] = usage
    return result
