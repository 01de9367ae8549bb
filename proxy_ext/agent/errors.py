"""Exceptions of the agent package."""

from __future__ import annotations

__all__ = ["AgentRequestError", "ModelCallError"]


class AgentRequestError(Exception):
    """The /agent/run request cannot be run as asked; ``status`` is the 4xx to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ModelCallError(Exception):
    """A model call through the proxy failed. ``status`` is the proxy's HTTP status (0: no answer)."""

    def __init__(self, model: str, status: int, message: str) -> None:
        super().__init__(f"{model}: HTTP {status}: {message}" if status else f"{model}: {message}")
        self.model = model
        self.status = status
        self.message = message

    @property
    def is_auth_error(self) -> bool:
        """The caller's key may not use this model (or is invalid): never escalate around it."""
        return self.status in (401, 403)
