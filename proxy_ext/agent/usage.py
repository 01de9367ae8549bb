"""What a run used, and what it may use: one :class:`Usage` and one :class:`Limits`.

The request's ``budget`` and the operator's defaults and caps (``proxy_ext.agent``) resolve to a
run's :class:`Limits`; the loop adds every model turn to its :class:`Usage` and asks the limits
before each turn whether there is room for another.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits", "Usage"]


@dataclass
class Usage:
    """Summed over a run's model turns."""

    requests: int = 0
    """Model turns that answered."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    """LiteLLM's computed cost of every turn, summed."""
    input_cost_usd: float | None = 0.0
    """Prompt side of ``cost_usd`` (None once a priced turn came without LiteLLM's split)."""
    output_cost_usd: float | None = 0.0
    """Completion side of ``cost_usd``."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, prompt_tokens: int, completion_tokens: int, cost_usd: float,
            input_cost_usd: float | None = None, output_cost_usd: float | None = None) -> None:
        """Count one model turn."""
        self.requests += 1
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.cost_usd += cost_usd
        if self.input_cost_usd is None or self.output_cost_usd is None:
            return
        if input_cost_usd is None or output_cost_usd is None:
            if cost_usd:
                self.input_cost_usd = self.output_cost_usd = None
            return
        self.input_cost_usd += input_cost_usd
        self.output_cost_usd += output_cost_usd

    def rounded(self) -> "Usage":
        """The same figures with costs rounded to 1e-10 USD (float sums drift)."""
        def r(value: float | None) -> float | None:
            return None if value is None else round(value, 10)

        return Usage(self.requests, self.prompt_tokens, self.completion_tokens, round(self.cost_usd, 10),
                     r(self.input_cost_usd), r(self.output_cost_usd))


@dataclass(frozen=True)
class Limits:
    """What one run may use."""

    max_iterations: int
    """Model turns per model of the ladder."""
    timeout_s: float
    """Wall-clock time of the whole run."""
    max_tokens: int | None = None
    """Prompt + completion tokens over all turns (None: no token stop)."""
    max_cost_usd: float | None = None
    """Summed cost in USD (None: no cost stop)."""

    def exceeded(self, usage: Usage) -> str | None:
        """Why another model turn is not allowed (None: it is). Checked before each turn."""
        if self.max_tokens is not None and usage.total_tokens >= self.max_tokens:
            return f"token budget reached: {usage.total_tokens} >= {self.max_tokens}"
        if self.max_cost_usd is not None and usage.cost_usd >= self.max_cost_usd:
            return f"cost budget reached: {usage.cost_usd:.6f} >= {self.max_cost_usd} USD"
        return None
