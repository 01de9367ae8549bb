"""Tool metrics (Prometheus, via proxy_ext.metrics), joined to the extension's GET /metrics.

Label values are bounded: ``tool`` is a name the backend offers (calls to names it does not offer
are counted as ``unknown``), ``backend`` is ``exec`` or ``http``.
"""

from __future__ import annotations

from proxy_ext.metrics import counter, histogram

__all__ = ["TOOL_CALLS", "TOOL_CALL_SECONDS", "TOOL_RETRIES", "TOOL_TIMEOUTS", "observe_call"]

TOOL_CALLS = counter("tool_calls", "Tool calls by backend, tool and outcome.", ("backend", "tool", "outcome"))
TOOL_CALL_SECONDS = histogram(
    "tool_call_duration_seconds", "Wall time of tool calls, by backend and tool.", ("backend", "tool"),
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
TOOL_RETRIES = counter("tool_retries", "Tool-host request retries, by tool and reason (429, connect).", ("tool", "reason"))
TOOL_TIMEOUTS = counter("tool_timeouts", "Tool calls that hit their timeout, by backend and tool.", ("backend", "tool"))


def observe_call(backend: str, tool: str, outcome: str, seconds: float) -> None:
    """Count one finished call and record its latency."""
    TOOL_CALLS.labels(backend=backend, tool=tool, outcome=outcome).inc()
    TOOL_CALL_SECONDS.labels(backend=backend, tool=tool).observe(seconds)
    if outcome == "timeout":
        TOOL_TIMEOUTS.labels(backend=backend, tool=tool).inc()
