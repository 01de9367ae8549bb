"""The contract between the agent loop and its tool backends (local, exec, http, mcp)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["ToolBackend", "ToolContext", "ToolResult", "ToolSpec", "cap_text"]


def cap_text(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` UTF-8 bytes, with a note of how much was cut."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode(errors="ignore") + f"\n[truncated: {len(encoded) - limit} more bytes]"


@dataclass(frozen=True)
class ToolSpec:
    """A tool as the model sees it (OpenAI function-tool shape)."""

    name: str
    """Function name the model calls."""
    description: str = ""
    """What the tool does, for the model."""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    """JSON schema of the arguments object."""

    def openai_tool(self) -> dict[str, Any]:
        """The ``tools`` entry for a chat-completions request."""
        return {"type": "function", "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


@dataclass(frozen=True)
class ToolResult:
    """Outcome of one tool call. ``content`` is what the model is shown (JSON-serialisable)."""

    ok: bool
    """False when the tool failed; the model still sees ``error``."""
    content: Any = None
    """The tool's result."""
    error: str | None = None
    """What went wrong (ok=False)."""
    duration_ms: float = 0.0
    """Wall time of the call."""

    def model_text(self) -> str:
        """The text placed in the ``tool`` message for the model."""
        import json

        if not self.ok:
            return json.dumps({"ok": False, "error": self.error or "tool failed"})
        if isinstance(self.content, str):
            return self.content
        return json.dumps(self.content, default=str)


@dataclass(frozen=True)
class ToolContext:
    """Per-run facts a backend may need."""

    request_headers: Mapping[str, str] = field(default_factory=dict)
    """Headers of the caller's /agent/run request (lower-case names)."""
    run_id: str = ""
    """Trace id of the run."""
    timeout_s: float | None = None
    """Time left in the run's budget; backends must not exceed it."""
    identity: Any = None
    """The caller's identity as the proxy resolved it (LiteLLM's ``UserAPIKeyAuth``), for backends
    that apply the proxy's own permissions (MCP servers); None when unknown."""


@runtime_checkable
class ToolBackend(Protocol):
    """A source of tools. Implementations never raise for a failing tool: they return ok=False."""

    async def list_tools(self, ctx: ToolContext) -> list[ToolSpec]:
        """Tools this backend offers."""
        ...

    async def invoke(self, name: str, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        """Run one tool call."""
        ...
