"""The ``codex exec --json`` event stream, and the prompt the CLI is given.

Events (one JSON object per line): ``thread.started``, ``turn.started``,
``item.started|updated|completed`` (``item.type`` is ``agent_message`` with ``text``,
``command_execution``, ``reasoning``, ``error`` (a warning), …), ``turn.completed`` with
``usage {input_tokens, cached_input_tokens, output_tokens}``, ``turn.failed {error.message}`` and
``error {message}``.

Mapping: the last ``agent_message`` is the answer; usage sums every ``turn.completed``;
``turn.failed`` fails the call with its message, as does a top-level ``error`` unless a turn
completed after it (codex reports recoverable stream errors that way too).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from proxy_ext.response_utils import content_text

__all__ = ["CodexRun", "render_prompt"]


def _text(content: Any) -> str:
    return content_text(content, "\n", omitted="[{type} omitted]")


def render_prompt(messages: list[dict[str, Any]]) -> str:
    """The chat messages as one prompt for ``codex exec`` (sent on stdin).

    A lone user message is passed as is; a conversation becomes labelled sections so the agent
    sees the system instructions and earlier turns.
    """
    if len(messages) == 1 and messages[0].get("role") == "user":
        return _text(messages[0].get("content"))
    sections = []
    for message in messages:
        role = str(message.get("role", "user"))
        body = _text(message.get("content"))
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            body += f"\n[tool call {function.get('name')}({function.get('arguments', '')})]"
        label = {"system": "System", "developer": "System", "user": "User", "assistant": "Assistant"}.get(role, f"Tool result ({message.get('name') or message.get('tool_call_id') or role})")
        sections.append(f"## {label}\n{body.strip()}")
    sections.append("## Task\nReply to the last User message above.")
    return "\n\n".join(sections)


@dataclass
class CodexRun:
    """What a codex run said so far; :meth:`feed` one parsed event at a time."""

    messages: list[str] = field(default_factory=list)
    """Agent messages in order of completion."""
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    completed: bool = False
    """A ``turn.completed`` was seen (and nothing failed after it)."""
    failure: str | None = None
    """Message of ``turn.failed`` (fatal)."""
    error: str | None = None
    """Message of the last top-level ``error`` event."""
    thread_id: str | None = None
    _partial: dict[str, str] = field(default_factory=dict)
    _streamed: bool = False

    def feed_line(self, line: str | bytes) -> str:
        """Parse one JSONL line (non-JSON lines are ignored) and :meth:`feed` it."""
        if isinstance(line, bytes):
            line = line.decode("utf-8", errors="replace")
        line = line.strip()
        if not line.startswith("{"):
            return ""
        try:
            event = json.loads(line)
        except ValueError:
            return ""
        return self.feed(event) if isinstance(event, dict) else ""

    def feed(self, event: dict[str, Any]) -> str:
        """Record ``event``; return agent-message text that is new since the last call (for streaming)."""
        kind = event.get("type")
        if kind == "thread.started":
            self.thread_id = event.get("thread_id")
        elif kind in {"item.started", "item.updated", "item.completed"}:
            item = event.get("item") or {}
            if item.get("type") == "agent_message":
                return self._agent_text(str(item.get("id", "")), str(item.get("text") or ""), kind == "item.completed")
        elif kind == "turn.completed":
            usage = event.get("usage") or {}
            self.input_tokens += int(usage.get("input_tokens") or 0)
            self.cached_input_tokens += int(usage.get("cached_input_tokens") or 0)
            self.output_tokens += int(usage.get("output_tokens") or 0)
            self.completed = True
            self.error = None
        elif kind == "turn.failed":
            error = event.get("error") or {}
            self.failure = str(error.get("message") or error or "turn failed")
            self.completed = False
        elif kind == "error":
            self.error = str(event.get("message") or "codex reported an error")
        return ""

    def _agent_text(self, item_id: str, text: str, done: bool) -> str:
        # Updates carry the whole text so far: stream only the new suffix. A rewritten text (not an
        # extension of what was streamed) streams nothing more; the non-stream answer is unaffected.
        seen = self._partial.get(item_id)
        new = text if seen is None else (text[len(seen):] if text.startswith(seen) else "")
        if done:
            self._partial.pop(item_id, None)
            self.messages.append(text)
        else:
            self._partial[item_id] = text
        if new and seen is None and self._streamed:
            new = "\n\n" + new  # a further agent message: keep it apart from the previous one
        self._streamed = self._streamed or bool(new)
        return new

    @property
    def answer(self) -> str | None:
        """The last agent message (None when codex produced none)."""
        return self.messages[-1] if self.messages else None

    @property
    def fatal(self) -> str | None:
        """Why the run failed, or None when it succeeded (or is still going)."""
        if self.failure:
            return self.failure
        if self.error and not self.completed:
            return self.error
        return None
