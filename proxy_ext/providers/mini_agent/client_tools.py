"""The client's own tools on a ``mini-agent/<profile>`` request (OpenAI ``tools`` / ``tool_choice``),
and the other request fields the run honours (``response_format``, ``n``).

Behaviour (docs/agent.md, "Tools the client offers"): the client's function tools join the run's
tools. When the model calls one, the run ends and the reply is an ordinary tool-call turn
(``finish_reason: "tool_calls"``); the client executes the call and continues the conversation
with a ``tool`` message, as with any model. Nothing the client sends is dropped silently: what the
agent cannot honour is a 400 naming the profile.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["ClientToolError", "client_tools", "model_params"]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TOOL_CHOICES = ("auto", "none")
_FORMATS = ("text", "json_object", "json_schema")


class ClientToolError(ValueError):
    """A request whose tools the agent cannot honour (a 400)."""


def _function_tool(profile: str, index: int, tool: Any) -> dict[str, Any]:
    where = f"tools[{index}]"
    if not isinstance(tool, dict):
        raise ClientToolError(f"{where} must be an object")
    if tool.get("type") != "function":
        raise ClientToolError(f"agent profile {profile!r} accepts only function tools from the client; "
                              f"{where} has type {tool.get('type')!r}")
    function = tool.get("function")
    if not isinstance(function, dict):
        function = {}
    name = function.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ClientToolError(f"{where}.function.name must be 1-64 letters, digits, '_' or '-'")
    clean: dict[str, Any] = {"name": name}
    for key, kind in (("description", str), ("parameters", dict), ("strict", bool)):
        value = function.get(key)
        if value is None:
            continue
        if not isinstance(value, kind):
            raise ClientToolError(f"{where}.function.{key} must be a {kind.__name__}")
        clean[key] = value
    return {"type": "function", "function": clean}


def client_tools(profile: str, optional_params: dict[str, Any] | None) -> tuple[dict[str, Any], ...]:
    """The client's function tools to offer next to the profile's, cleaned; ``()`` when there are
    none or ``tool_choice`` is ``"none"``. Raises :class:`ClientToolError` for what the agent cannot
    honour: non-function tools, duplicate names, ``tool_choice`` ``"required"`` or a named function
    (the agent decides its own tool calls), the legacy ``functions`` / ``function_call``."""
    params = optional_params or {}
    legacy = [key for key in ("functions", "function_call") if params.get(key) is not None]
    if legacy:  # else the model would never see them, and the client would wait for calls that cannot come
        raise ClientToolError(f"agent profile {profile!r} takes the client's functions as tools: "
                              f"send {' and '.join(legacy)} as tools=[{{\"type\": \"function\", \"function\": ...}}] instead")
    tools = params.get("tools")
    choice = params.get("tool_choice")
    if choice is not None and choice not in _TOOL_CHOICES:
        shown = choice if isinstance(choice, str) else "a named function"
        raise ClientToolError(f"agent profile {profile!r} runs its own tool loop and chooses its tool calls itself: "
                              f"tool_choice {shown!r} is not supported (use 'auto' or 'none')")
    if tools is None:
        return ()
    if not isinstance(tools, list):
        raise ClientToolError("tools must be a list")
    cleaned = [_function_tool(profile, index, tool) for index, tool in enumerate(tools)]
    names = [t["function"]["name"] for t in cleaned]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ClientToolError(f"tool names must be unique; repeated: {duplicates}")
    return () if choice == "none" else tuple(cleaned)


def model_params(profile: str, optional_params: dict[str, Any] | None) -> dict[str, Any]:
    """Chat-completion fields of the client's request that every model call of the run carries:
    ``response_format`` (structured output: the Agents SDK's ``output_type``, LangChain's
    ``with_structured_output``), so the agent's models are asked for the format the client parses.
    Raises :class:`ClientToolError` for a malformed ``response_format`` and for ``n`` > 1 (a run
    gives one answer)."""
    params = optional_params or {}
    n = params.get("n")
    if n is not None and n != 1:
        raise ClientToolError(f"agent profile {profile!r} gives one answer per request: n={n!r} is not supported (use n=1)")
    response_format = params.get("response_format")
    if response_format is None:
        return {}
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind not in _FORMATS:
        raise ClientToolError(f"response_format must be an object with type one of {', '.join(_FORMATS)}")
    if kind == "json_schema" and not isinstance(response_format.get("json_schema"), dict):
        raise ClientToolError("response_format of type 'json_schema' needs a json_schema object")
    return {} if kind == "text" else {"response_format": dict(response_format)}
