"""A JSON request body as the extension's routes accept it: JSON media type, a JSON object, bounded depth.

Used by the request guard in front of the proxy (:mod:`proxy_ext.guard`) and by the routes that
read their body themselves; errors are :class:`~proxy_ext.exceptions.RequestError` (400) saying
what to fix.
"""

from __future__ import annotations

import json
import math
from typing import Any

from proxy_ext.exceptions import RequestError

__all__ = ["NON_FINITE", "content_type_problem", "loads_finite", "parse_json_object"]

NON_FINITE = "NaN, Infinity and numbers beyond the float range are not JSON: send finite numbers"


class _NonFinite(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _NonFinite(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NonFinite(text)
    return value


def loads_finite(raw: bytes | str) -> Any:
    """``json.loads`` that refuses ``NaN``, ``Infinity`` and ``1e999`` (Python's json takes them; they
    fail later, when the body is sent on as JSON) with :class:`RequestError` (400)."""
    try:
        return json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except _NonFinite as exc:
        raise RequestError(f"request body holds {str(exc)[:40]}: {NON_FINITE}") from None


def content_type_problem(content_type: str | None) -> str | None:
    """Why a JSON route refuses this ``Content-Type`` (None: it is JSON, or absent)."""
    if not content_type:
        return None
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or (media.startswith("application/") and media.endswith("+json")):
        return None
    return f"Content-Type {media!r} is not accepted here: send the body as JSON with Content-Type: application/json"


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values() if isinstance(child, (dict, list)))
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node if isinstance(child, (dict, list)))
    return False


def parse_json_object(raw: bytes, max_depth: int) -> dict[str, Any]:
    """The body as a JSON object; :class:`RequestError` (400) when it is not one."""
    if not raw.strip():
        raise RequestError("request body is empty: send a JSON object")
    try:
        value = loads_finite(raw)
    except RecursionError:
        raise RequestError(f"request body is nested deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise RequestError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise RequestError(f"request body must be a JSON object, not {type(value).__name__ if value is not None else 'null'}")
    if _depth_exceeds(value, max_depth):
        raise RequestError(f"request body is nested deeper than {max_depth} levels (proxy_ext.guard.max_json_depth)")
    return value
