"""History pruning before each model call.

Invariants (property-tested):
- every system message and the first user message are kept;
- an assistant message with ``tool_calls`` is never separated from its tool results: they are kept
  or dropped together, as one unit;
- the result stays under the token budget whenever the protected messages and the newest unit fit;
  otherwise only protected messages and the newest unit remain;
- kept messages keep their original order.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["estimate_tokens", "prune_history"]


def estimate_tokens(message: dict[str, Any]) -> int:
    """A cheap, conservative token estimate (~4 characters per token plus per-message overhead)."""
    content = message.get("content")
    size = len(content) if isinstance(content, str) else len(json.dumps(content, default=str)) if content else 0
    if message.get("tool_calls"):
        size += len(json.dumps(message["tool_calls"], default=str))
    return size // 4 + 4


def _units(messages: list[dict[str, Any]], protected: set[int]) -> list[list[int]]:
    """Indices grouped into droppable units: an assistant tool_calls message with its tool results."""
    units: list[list[int]] = []
    index = 0
    while index < len(messages):
        if index in protected:
            index += 1
            continue
        message = messages[index]
        unit = [index]
        if message.get("role") == "assistant" and message.get("tool_calls"):
            ids = {call.get("id") for call in message["tool_calls"]}
            following = index + 1
            while following < len(messages) and messages[following].get("role") == "tool" and (
                messages[following].get("tool_call_id") in ids or not ids
            ):
                unit.append(following)
                following += 1
            index = following
        else:
            index += 1
        units.append(unit)
    return units


def prune_history(messages: list[dict[str, Any]], max_tokens: int) -> list[dict[str, Any]]:
    """Drop the oldest units until the estimated size is at most ``max_tokens``."""
    sizes = [estimate_tokens(m) for m in messages]
    if sum(sizes) <= max_tokens:
        return messages
    protected = {i for i, m in enumerate(messages) if m.get("role") in ("system", "developer")}
    first_user = next((i for i, m in enumerate(messages) if m.get("role") == "user"), None)
    if first_user is not None:
        protected.add(first_user)
    units = _units(messages, protected)
    total = sum(sizes)
    dropped: set[int] = set()
    # Oldest first; the newest unit always stays so the model sees the latest step.
    for unit in units[:-1]:
        if total <= max_tokens:
            break
        dropped.update(unit)
        total -= sum(sizes[i] for i in unit)
    return [m for i, m in enumerate(messages) if i not in dropped]
