"""``proxy_ext.agent``: the run loop's models, limits and profiles."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from proxy_ext._config.base import _Section

__all__ = ["AgentBudget", "AgentConfig", "AgentLimits", "AgentProfile"]


class AgentBudget(_Section):
    """Default per-run budget. A request may ask for less, or more up to ``agent.limits``."""

    max_cost_usd: float | None = Field(default=None, gt=0)
    """Stop the run once the summed LiteLLM response cost reaches this many USD (None: no cost stop)."""
    max_tokens: int | None = Field(default=None, gt=0)
    """Stop once prompt + completion tokens over all model turns reach this (None: no token stop)."""
    timeout_s: float = Field(default=120.0, gt=0)
    """Wall-clock limit for one run, in seconds."""


class AgentLimits(_Section):
    """Operator maxima: per-request values above these are rejected with a 400."""

    max_iterations: int = Field(default=32, ge=1, le=1000)
    """Largest ``max_iterations`` a request may ask for."""
    max_cost_usd: float = Field(default=5.0, gt=0)
    """Largest ``budget.max_cost_usd`` a request may ask for."""
    max_tokens: int = Field(default=1_000_000, gt=0)
    """Largest ``budget.max_tokens`` a request may ask for."""
    timeout_s: float = Field(default=600.0, gt=0)
    """Largest ``budget.timeout_s`` a request may ask for."""
    max_request_bytes: int = Field(default=1_048_576, gt=0)
    """Largest /agent/run request body, in bytes; also of a request to a ``mini-agent`` model on
    LiteLLM's routes (checked by the guard)."""
    max_messages: int = Field(default=500, ge=1)
    """Largest number of input messages."""
    max_concurrent_tool_calls: int = Field(default=8, ge=1, le=256)
    """How many tool calls from one model turn may run at the same time."""
    max_tool_result_bytes: int = Field(default=65_536, ge=256)
    """Tool results longer than this are cut (with a note) before the model sees them."""
    max_concurrent_runs: int = Field(default=256, ge=1)
    """Runs in progress per proxy instance, across all its workers (``--num_workers``); further
    requests get a 429 until one finishes. See ``scale`` for per-key and cross-instance limits."""


class AgentProfile(_Section):
    """A named agent setup, selected by ``profile`` on /agent/run or the model ``mini-agent/<name>``."""

    model: str | None = None
    """First model of the ladder (defaults to ``agent.default_model``)."""
    escalation: list[str] | None = None
    """Model ladder; overrides ``agent.escalation``."""
    tools: list[str] | None = None
    """Tool names the agent may use (None: every tool of the backend)."""
    backend: Literal["local", "http", "echo"] | None = None
    """Tool backend (defaults to ``agent.backend``)."""
    max_iterations: int | None = Field(default=None, ge=1)
    """Iteration limit for this profile."""
    budget: AgentBudget | None = None
    """Budget for this profile."""
    system_prompt: str | None = None
    """System message prepended when the request has none."""
    requires_approval: list[str] | None = None
    """Tool names or patterns (``exec_*``, ``everything-*``) whose calls wait for a person's approval
    (replaces ``agent.requires_approval`` for this profile)."""


class AgentConfig(_Section):
    """``proxy_ext.agent``: defaults and limits of POST /agent/run."""

    enabled: bool = True
    """Register POST /agent/run."""
    default_model: str | None = None
    """Model used when a request names none (a ``model_name`` of the proxy's model_list)."""
    escalation: list[str] = Field(default_factory=list)
    """Model ladder, cheapest first; the run moves up on model errors, iteration exhaustion without
    an answer and repeated tool errors."""
    max_iterations: int = Field(default=8, ge=1)
    """Default number of model turns per model of the ladder."""
    backend: Literal["local", "http", "echo"] = "local"
    """Default tool backend."""
    budget: AgentBudget = Field(default_factory=AgentBudget)
    """Default per-run budget."""
    limits: AgentLimits = Field(default_factory=AgentLimits)
    """Operator maxima for per-request values."""
    max_history_tokens: int = Field(default=24_000, ge=256)
    """History pruning keeps each model call's prompt under this many tokens."""
    tool_error_escalation: int = Field(default=3, ge=1)
    """Escalate after this many consecutive failing tool results."""
    fallback: bool = True
    """When every model of the ladder fails, try one plain one-shot completion."""
    fallback_model: str | None = None
    """Model of the one-shot fallback (default: the last model of the run's ladder)."""
    model_transport: Literal["direct", "asgi", "http"] = "direct"
    """How the agent's model calls reach this proxy's chat completions as the caller: ``direct`` (in
    process: LiteLLM's auth and chat route handler called as functions for each turn — the same
    checks, hooks and spend logging as a /v1/chat/completions request, without HTTP; falls back to
    ``asgi`` with a warning when this LiteLLM's route cannot be called so), ``asgi`` (in process,
    an HTTP request through the proxy's whole ASGI app, middleware included) or ``http`` (loopback
    HTTP to ``proxy_base_url`` or the address the request arrived on)."""
    proxy_base_url: str | None = None
    """Where the agent reaches this proxy for its model calls (default: the address the request
    arrived on; set it when the proxy listens on an address it cannot call itself, e.g. behind a
    Unix socket)."""
    local_tools: list[str] = Field(default_factory=list)
    """Dotted paths (``package.module.function``) of Python callables added to the local backend."""
    requires_approval: list[str] = Field(default_factory=list)
    """Tool names or patterns (``exec_*``) whose calls wait for a person's approval: the run pauses
    (``awaiting_approval``) until ``POST /agent/runs/{id}/approvals`` decides (docs/agent.md)."""
    profiles: dict[str, AgentProfile] = Field(default_factory=dict)
    """Named agent profiles."""

    def named_models(self) -> list[tuple[str, str]]:
        """Every model the agent may call, as (config key, model name)."""
        named = [("agent.default_model", self.default_model), ("agent.fallback_model", self.fallback_model),
                 *(("agent.escalation", m) for m in self.escalation)]
        for name, profile in self.profiles.items():
            named += [(f"agent.profiles.{name}", m) for m in [profile.model, *(profile.escalation or [])]]
        return [(where, model) for where, model in named if model]

    @model_validator(mode="after")
    def _defaults_within_limits(self) -> "AgentConfig":
        if self.max_iterations > self.limits.max_iterations:
            raise ValueError(
                f"agent.max_iterations ({self.max_iterations}) exceeds agent.limits.max_iterations "
                f"({self.limits.max_iterations})"
            )
        if self.budget.timeout_s > self.limits.timeout_s:
            raise ValueError(
                f"agent.budget.timeout_s ({self.budget.timeout_s}) exceeds agent.limits.timeout_s "
                f"({self.limits.timeout_s})"
            )
        for where, model in self.named_models():
            if model.startswith("mini-agent/"):
                raise ValueError(
                    f"{where} names the model {model!r}: the agent cannot use a mini-agent/* model "
                    "(that would recurse); name a model of the model_list"
                )
        return self

