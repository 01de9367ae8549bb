"""Agent metrics (Prometheus, via proxy_ext.metrics)."""

from __future__ import annotations

from collections.abc import Callable

from proxy_ext.metrics import counter, gauge_function, histogram, refresh, refreshing

__all__ = ["ESCALATIONS", "MODEL_TURN_SECONDS", "RUNS", "RUN_SECONDS", "RunObserver", "runs_changed", "watch_runs"]

RUNS = counter("agent_runs", "Agent runs by stopped_reason.", ("stopped_reason",))
ESCALATIONS = counter("agent_escalations", "Moves up the model ladder, by reason.", ("reason",))
RUN_SECONDS = histogram("agent_run_duration_seconds", "Wall time of agent runs.",
                        buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600))
MODEL_TURN_SECONDS = histogram("agent_model_turn_duration_seconds", "Wall time of one model call of an agent run.",
                               ("outcome",), buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))


def watch_runs(in_progress: "Callable[[], int]", tasks: "Callable[[], int]") -> None:
    """Gauges read at scrape time: runs holding a slot, and live asyncio tasks of runs."""
    gauge_function("agent_runs_in_progress", "Agent runs in progress (holding a run slot); with several workers, their sum.", in_progress)
    gauge_function("agent_tasks", "Live asyncio tasks of agent runs (leak check: 0 when idle); with several workers, their sum.", tasks)


def runs_changed() -> None:
    """A run took or gave back its slot: with several workers, publish this worker's gauges now
    (the task count a little later, once the run's helper tasks have ended)."""
    if not refreshing():
        return
    refresh("agent_runs_in_progress")
    try:
        import asyncio

        asyncio.get_running_loop().call_later(0.5, refresh, "agent_tasks")
    except RuntimeError:  # not on an event loop
        refresh("agent_tasks")


class RunObserver:
    """The Prometheus consumer of one run's event stream (:func:`proxy_ext.agent.facade.start`
    subscribes a new one to each run). A run cancelled before it answered (its client hung up, or
    the process shut down under it) counts as ``stopped_reason="cancelled"``, as in its OTel span,
    and its duration is from its start to the cancellation."""

    __slots__ = ("started_at",)

    def __init__(self) -> None:
        self.started_at: float | None = None

    def __call__(self, event: object) -> None:
        from proxy_ext.agent import events as ev

        if isinstance(event, ev.ModelTurnFinished):
            MODEL_TURN_SECONDS.labels("ok" if event.ok else "error").observe(event.duration_ms / 1000)
        elif isinstance(event, ev.Escalated):
            if event.to_model is not None:
                ESCALATIONS.labels(event.reason).inc()
        elif isinstance(event, ev.RunStarted):
            self.started_at = event.at
        elif isinstance(event, ev.RunFinished):
            if event.envelope is not None:
                RUNS.labels(event.envelope.stopped_reason).inc()
                RUN_SECONDS.observe(event.envelope.metrics.duration_ms / 1000)
            else:
                RUNS.labels("cancelled").inc()
                if self.started_at is not None:
                    RUN_SECONDS.observe(max(0.0, event.at - self.started_at))
