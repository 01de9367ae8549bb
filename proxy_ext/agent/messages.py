"""OpenAI chat messages as strict types: what ``/agent/run`` accepts as ``messages``.

Roles are a tagged union (``system``, ``developer``, ``user``, ``assistant``, ``tool``); a role that
is not one of these strings — ``{}``, ``[]``, ``5`` — is a 422 naming the message, never a crash.
Fields the types do not name (``name``, provider extensions, …) are kept as given.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

__all__ = ["ChatMessage", "ROLES", "role_of"]

ROLES = ("system", "developer", "user", "assistant", "tool")

NonEmpty = Annotated[str, Field(min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class ContentPart(_Strict):
    """One part of a content list (``{"type": "text", "text": ...}``, an image, …)."""

    type: NonEmpty


class FunctionCall(_Strict):
    name: NonEmpty
    arguments: str


class ToolCall(_Strict):
    id: NonEmpty
    type: Literal["function"] = "function"
    function: FunctionCall


Content = Union[str, list[ContentPart]]


class SystemMessage(_Strict):
    role: Literal["system"]
    content: Content


class DeveloperMessage(_Strict):
    role: Literal["developer"]
    content: Content


class UserMessage(_Strict):
    role: Literal["user"]
    content: Content


class AssistantMessage(_Strict):
    role: Literal["assistant"]
    content: Content | None = None
    tool_calls: list[ToolCall] | None = None


class ToolMessage(_Strict):
    role: Literal["tool"]
    tool_call_id: NonEmpty
    content: Content


def role_of(message: Any) -> str | None:
    """The union's tag: the role when it is one of :data:`ROLES`, else None (a validation error)."""
    role = message.get("role") if isinstance(message, dict) else getattr(message, "role", None)
    return role if isinstance(role, str) and role in ROLES else None


ChatMessage = Annotated[
    Union[
        Annotated[SystemMessage, Tag("system")],
        Annotated[DeveloperMessage, Tag("developer")],
        Annotated[UserMessage, Tag("user")],
        Annotated[AssistantMessage, Tag("assistant")],
        Annotated[ToolMessage, Tag("tool")],
    ],
    Discriminator(role_of, custom_error_type="invalid_role",
                  custom_error_message=f"role must be one of {', '.join(ROLES)}"),
]
"""One chat message; dump with ``model_dump(exclude_unset=True)`` to get the dict as sent."""
