"""MCP tool results as the text a model reads (text, structured content, images, resources)."""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["result_text"]


def _get(item: Any, name: str) -> Any:
    """A field of an MCP object or dict: the SDK's snake_case attribute or the wire's camelCase key."""
    camel = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)
    if isinstance(item, dict):
        return item.get(camel, item.get(name))
    value = getattr(item, name, None)
    return value if value is not None else getattr(item, camel, None)


def _part_text(part: Any) -> str:
    kind = _get(part, "type")
    if kind == "text":
        return str(_get(part, "text") or "")
    if kind in ("image", "audio"):
        data = _get(part, "data") or ""
        return f"[{kind}: {_get(part, 'mime_type') or 'unknown type'}, {len(data) * 3 // 4} bytes]"
    if kind == "resource_link":
        return f"[resource link: {_get(part, 'uri')}" + (f" ({_get(part, 'name')})" if _get(part, "name") else "") + "]"
    if kind == "resource":
        resource = _get(part, "resource")
        text = _get(resource, "text")
        header = f"[resource: {_get(resource, 'uri')}]"
        if isinstance(text, str):
            return f"{header}\n{text}"
        blob = _get(resource, "blob") or ""
        return f"{header[:-1]}, {_get(resource, 'mime_type') or 'binary'}, {len(blob) * 3 // 4} bytes]"
    return f"[{kind or 'content'}]"


def result_text(result: Any) -> str:
    """The text of an MCP ``CallToolResult``: its content parts in order (images and binary
    resources described, not inlined), then its structured content as JSON when the parts do not
    already carry it."""
    parts = [_part_text(part) for part in _get(result, "content") or []]
    structured = _get(result, "structured_content")
    if structured is not None and not _already_said(parts, structured):
        parts.append(json.dumps(structured, separators=(",", ":"), default=str))
    return "\n".join(part for part in parts if part)


def _already_said(parts: list[str], structured: Any) -> bool:
    """Whether the text parts already carry the structured content (as JSON, or as the value of a
    ``{"result": ...}`` wrapper that SDK servers add to plain return values)."""
    if isinstance(structured, dict) and len(structured) == 1 and "result" in structured:
        value = structured["result"]
        if isinstance(value, str) and value in parts:
            return True
        structured = value
    return any(_same_json(part, structured) for part in parts)


def _same_json(text: str, value: Any) -> bool:
    try:
        return bool(json.loads(text) == value)
    except ValueError:
        return False
