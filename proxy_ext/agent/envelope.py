"""The stable /agent/run response envelope ``{ok, final_answer, stopped_reason, messages, metrics}``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["Envelope", "RunMetrics", "StoppedReason"]

StoppedReason = Literal["final_answer", "max_iterations", "budget_exceeded", "timeout", "error", "fallback", "tool_calls",
                        "awaiting_approval", "approval_expired", "cancelled", "interrupted"]
"""``tool_calls``: the model called one of the client's own tools (agent profiles served as models,
``mini-agent/<profile>``, with OpenAI ``tools`` in the request); the run hands the calls back.
``awaiting_approval``: the run paused before tool calls that need a person's decision (its id and
the pending calls are in ``metrics``); ``approval_expired``: nobody decided in time;
``cancelled``: cancelled on request; ``interrupted``: its worker stopped and it could not go on."""


@dataclass
class RunMetrics:
    """What a run did and cost."""

    iterations: int = 0
    """Model turns taken (all models of the ladder)."""
    tool_calls: int = 0
    """Tool calls executed."""
    escalated: bool = False
    """Whether the run moved up the model ladder."""
    used_model: str | None = None
    """The model that produced the final answer (or the last one tried)."""
    models_tried: list[str] = field(default_factory=list)
    """Models of the ladder used, in order (the fallback model is appended when it ran)."""
    prompt_tokens: int = 0
    """Summed prompt tokens of every model call."""
    completion_tokens: int = 0
    """Summed completion tokens of every model call."""
    cost_usd: float = 0.0
    """Sum of LiteLLM's own computed response costs (``x-litellm-response-cost``)."""
    duration_ms: int = 0
    """Wall time of the run."""
    trace_id: str = ""
    """Identifier of the run (the trace record's ``trace_id``)."""
    error: str | None = None
    """Why the run failed; present only when ``ok`` is false (the envelope's keys stay fixed)."""
    pending_approvals: list[dict[str, Any]] | None = None
    """The tool calls awaiting a decision (only with ``stopped_reason: awaiting_approval``); decide
    with ``POST /agent/runs/{trace_id}/approvals``."""


@dataclass
class Envelope:
    """The body of a /agent/run answer (HTTP 200 whenever the request was well-formed)."""

    ok: bool
    final_answer: str | None
    stopped_reason: StoppedReason
    messages: list[dict[str, Any]]
    metrics: RunMetrics

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        for optional in ("error", "pending_approvals"):
            if body["metrics"][optional] is None:
                body["metrics"].pop(optional)
        return body
