"""The /agent/run request, and its resolution against the operator's defaults and caps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from proxy_ext.agent.errors import AgentRequestError, quoted
from proxy_ext.agent.messages import ChatMessage, NonEmpty
from proxy_ext.agent.usage import Limits
from proxy_ext.config import AgentConfig

__all__ = ["AgentRunRequest", "Budget", "RunSpec", "resolve"]

class Budget(BaseModel):
    """Per-request budget; each value must be positive and at most the operator's cap."""

    model_config = ConfigDict(extra="forbid", strict=True)

    max_cost_usd: float | None = Field(default=None, gt=0)
    """Stop once the run's summed cost reaches this many USD."""
    max_tokens: int | None = Field(default=None, gt=0)
    """Stop once the run's prompt + completion tokens reach this."""
    timeout_s: float | None = Field(default=None, gt=0)
    """Wall-clock limit of the run, in seconds."""


class AgentRunRequest(BaseModel):
    """Body of POST /agent/run. Give ``messages`` (OpenAI chat messages) or ``input`` (text).

    Types are strict: ``true`` is not an iteration count, ``"yes"`` is not a boolean, and names are
    never empty."""

    model_config = ConfigDict(extra="forbid", strict=True)

    messages: list[ChatMessage] | None = None
    """The conversation (OpenAI chat messages)."""
    input: str | None = Field(default=None, min_length=1)
    """Shorthand for one user message."""
    model: NonEmpty | None = None
    """First model of the ladder (a ``model_name`` of the proxy)."""
    profile: NonEmpty | None = None
    """A named setup from ``agent.profiles``."""
    tools: list[NonEmpty] | None = None
    """Restrict the backend's tools to these names."""
    backend: Literal["local", "http", "echo"] | None = None
    """Where tools come from; ``echo`` makes no model call."""
    max_iterations: int | None = Field(default=None, gt=0)
    """Model turns per model of the ladder."""
    budget: Budget | None = None
    """Per-run budget."""
    stream: bool = False
    """Server-sent events instead of one JSON body."""
    background: bool = False
    """Run detached from this request: answer 202 with the run id at once (``/agent/runs/{id}``);
    with ``stream`` the events stream now and the run survives a disconnect."""
    metadata: dict[str, Any] | None = None
    """Copied into the trace record."""

    @field_validator("messages")
    @classmethod
    def _not_empty(cls, messages: list[Any] | None) -> list[Any] | None:
        if messages is not None and not messages:
            raise ValueError("messages must hold at least one message")
        return messages

    @model_validator(mode="after")
    def _messages_or_input(self) -> "AgentRunRequest":
        if self.messages is None and self.input is None:
            raise ValueError("give either messages (a non-empty list) or input (a non-empty string)")
        if self.messages is not None and self.input is not None:
            raise ValueError("give messages or input, not both")
        return self

    def conversation(self) -> list[dict[str, Any]]:
        """The input as chat messages (dicts, as sent)."""
        if self.messages is None:
            return [{"role": "user", "content": self.input}]
        return [m.model_dump(exclude_unset=True) for m in self.messages]


@dataclass(frozen=True)
class RunSpec:
    """A validated run: everything the runner needs, resolved against the config."""

    messages: list[dict[str, Any]]
    """The conversation (a system prompt of the profile already added)."""
    ladder: list[str]
    """Models to try, in order."""
    backend: str
    """Where tools come from: ``local``, ``http`` or ``echo``."""
    tool_names: list[str] | None
    """Only these of the backend's tools (None: all)."""
    limits: Limits
    """Iterations, wall time, tokens and USD the run may use."""
    stream: bool
    """The caller streams the run (SSE)."""
    metadata: dict[str, Any]
    """The caller's metadata, copied into the trace record."""
    profile: str | None
    """The agent profile the run uses."""
    client_tools: tuple[dict[str, Any], ...] = ()
    """OpenAI function tools the *client* executes (``mini-agent/<profile>`` requests with ``tools``):
    offered to the model next to the run's own tools; a call to one ends the run (``tool_calls``)."""
    model_params: dict[str, Any] = field(default_factory=dict)
    """Chat-completion fields the client asked for that every model call of the run carries
    (``mini-agent/<profile>`` requests: ``response_format``)."""

    @property
    def max_iterations(self) -> int:
        return self.limits.max_iterations

    @property
    def timeout_s(self) -> float:
        return self.limits.timeout_s


def _capped(name: str, value: float | int | None, cap: float | int) -> None:
    if value is not None and value > cap:
        raise AgentRequestError(f"{name} = {value} exceeds the operator's maximum of {cap} (proxy_ext.agent.limits)")


def resolve(request: AgentRunRequest, agent: AgentConfig) -> RunSpec:
    """Apply profile and config defaults; reject values over the operator's caps (400)."""
    limits = agent.limits
    profile = None
    if request.profile is not None:
        profile = agent.profiles.get(request.profile)
        if profile is None:
            known = ", ".join(sorted(agent.profiles)) or "none configured"
            raise AgentRequestError(f"unknown profile {quoted(request.profile)}; known profiles: {known}")
    messages = request.conversation()
    if len(messages) > limits.max_messages:
        raise AgentRequestError(f"{len(messages)} messages exceed the maximum of {limits.max_messages} (proxy_ext.agent.limits.max_messages)")
    _capped("max_iterations", request.max_iterations, limits.max_iterations)
    budget = request.budget or Budget()
    _capped("budget.max_cost_usd", budget.max_cost_usd, limits.max_cost_usd)
    _capped("budget.max_tokens", budget.max_tokens, limits.max_tokens)
    _capped("budget.timeout_s", budget.timeout_s, limits.timeout_s)
    base_budget = (profile.budget if profile and profile.budget else None) or agent.budget

    ladder_config = (profile.escalation if profile and profile.escalation else None) or agent.escalation
    first = request.model or (profile.model if profile else None)
    if first is not None and first.startswith("mini-agent/"):
        raise AgentRequestError(f"model {quoted(first)} is an agent profile; name a model of the model_list")
    if first is None:
        ladder = list(ladder_config) or ([agent.default_model] if agent.default_model else [])
    elif first in ladder_config:
        ladder = list(ladder_config[ladder_config.index(first):])  # escalate upwards from the asked model
    else:
        ladder = [first]
    backend = request.backend or (profile.backend if profile and profile.backend else None) or agent.backend
    if not ladder and backend != "echo":
        raise AgentRequestError("no model: give model in the request or set proxy_ext.agent.default_model")
    system_prompt = profile.system_prompt if profile else None
    if system_prompt and not any(m.get("role") == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system_prompt})
    tools = request.tools if request.tools is not None else (profile.tools if profile else None)
    return RunSpec(
        messages=messages,
        ladder=ladder,
        backend=backend,
        tool_names=tools,
        limits=Limits(
            max_iterations=request.max_iterations or (profile.max_iterations if profile and profile.max_iterations else None) or agent.max_iterations,
            timeout_s=budget.timeout_s or base_budget.timeout_s,
            max_tokens=budget.max_tokens or base_budget.max_tokens,
            max_cost_usd=budget.max_cost_usd or base_budget.max_cost_usd,
        ),
        stream=request.stream,
        metadata=dict(request.metadata or {}),
        profile=request.profile,
    )
