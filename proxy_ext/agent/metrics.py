"""Agent metrics (Prometheus, via proxy_ext.metrics)."""

from __future__ import annotations

from proxy_ext.metrics import counter, histogram

__all__ = ["ESCALATIONS", "MODEL_TURN_SECONDS", "RUNS", "RUN_SECONDS"]

RUNS = counter("agent_runs", "Agent runs by stopped_reason.", ("stopped_reason",))
ESCALATIONS = counter("agent_escalations", "Moves up the model ladder, by reason.", ("reason",))
RUN_SECONDS = histogram("agent_run_duration_seconds", "Wall time of agent runs.",
                        buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600))
MODEL_TURN_SECONDS = histogram("agent_model_turn_duration_seconds", "Wall time of one model call of an agent run.",
                               ("outcome",), buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
